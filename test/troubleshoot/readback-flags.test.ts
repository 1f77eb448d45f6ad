import { describe, expect, it } from 'vitest';
import { parseTroubleshootFlags } from '../../src/commands/troubleshoot.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';

const base = { probes: '3', timeout: '10' };
const ws = '0b5e6a1c-9a34-4f6e-8d1e-2b3c4d5e6f70';

describe('troubleshoot --workspace / --readback-timeout', () => {
  it('--workspace is the same as the argument; readback defaults to 300 s', () => {
    const o = troubleshootOptionsSchema.parse(parseTroubleshootFlags(undefined, { ...base, workspace: ws }));
    expect(o.workspaceId).toBe(ws);
    expect(o.readbackTimeoutSec).toBe(300);
    expect(
      troubleshootOptionsSchema.parse(parseTroubleshootFlags(ws, { ...base, workspace: ws.toUpperCase(), readbackTimeout: '0' }))
        .readbackTimeoutSec,
    ).toBe(0);
  });

  it.each([
    [{ readbackTimeout: 'soon' }, undefined, /^--readback-timeout must be seconds from 0 to 3600, got 'soon'$/],
    [{ readbackTimeout: '3601' }, undefined, /^--readback-timeout must be seconds from 0 to 3600/],
    [{ workspace: 'not-a-guid' }, undefined, /^--workspace/],
    [{ workspace: ws }, '11111111-2222-4333-8444-555555555555', /^--workspace .* and <workspaceId> .* differ$/],
  ])('bad input is one usage error line: %o', (flags, arg, re) => {
    let err: unknown;
    try {
      parseTroubleshootFlags(arg, { ...base, ...flags });
    } catch (e) {
      err = e;
    }
    expect((err as { exitCode?: number }).exitCode).toBe(2);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).not.toContain('\n');
  });
});
