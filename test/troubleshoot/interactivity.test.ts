import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ReadbackClientOptions } from '../../src/azure/readback.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';

const seen: ReadbackClientOptions[] = [];
vi.mock('../../src/azure/readback.js', () => ({
  createReadbackClient: async (o: ReadbackClientOptions) => {
    seen.push(o);
    return {};
  },
}));

const tty = { stdin: process.stdin.isTTY, stderr: process.stderr.isTTY };
afterEach(() => {
  process.stdin.isTTY = tty.stdin;
  process.stderr.isTTY = tty.stderr;
  vi.unstubAllEnvs();
  seen.length = 0;
});

describe("troubleshoot's readback sign-in follows the one interactivity rule", () => {
  it.each([
    ['a terminal outside CI', undefined, true],
    ['a terminal with CI=true', 'true', false],
    ['a terminal with CI=1', '1', false],
    ['a terminal with CI=false', 'false', true],
  ])('%s (CI=%s): device-code login offered = %s', async (_name, ci, interactive) => {
    // A fake terminal on both ends: only CI decides.
    process.stdin.isTTY = true;
    process.stderr.isTTY = true;
    vi.stubEnv('CI', ci);
    const deps = createDefaultDeps({ root: '/', env: {} });
    await deps.readbackClient!({ cloud: 'AzureCloud' });
    expect(seen.map((o) => o.interactive)).toEqual([interactive]);
  });
});
