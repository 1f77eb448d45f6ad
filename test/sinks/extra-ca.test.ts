import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';

// How a forwarder process trusts the mock (or a private-link CA) without code changes: NODE_EXTRA_CA_CERTS.
const root = new URL('../..', import.meta.url).pathname;
let mock: MockAzure;
let dir: string;

beforeAll(async () => {
  mock = await startMockAzure();
  dir = mkdtempSync(join(tmpdir(), 'extra-ca-'));
});
afterAll(async () => mock.close());

function child(config: unknown, env: Record<string, string>) {
  return execa(process.execPath, ['--import', 'tsx', 'test/sinks/fixtures/send-once.ts'], {
    cwd: root,
    env: { SINK_CONFIG: JSON.stringify(config), ROWS: '3', ...env },
    extendEnv: false,
    reject: false,
  });
}

describe('trusting the mock CA in a child process', () => {
  const ingestion = () => ({
    type: 'logs-ingestion',
    endpoint: mock.url,
    dcrImmutableId: mock.dcrImmutableId,
    authorityHost: mock.url,
    auth: {
      kind: 'client-secret',
      tenantId: mock.tenantId,
      clientId: mock.clientId,
      clientSecretFile: writeSecretFile(dir, 'cs', mock.clientSecret),
    },
  });

  it('with NODE_EXTRA_CA_CERTS: token and data calls both succeed', async () => {
    const r = await child(ingestion(), { NODE_EXTRA_CA_CERTS: mock.caPath!, PATH: process.env.PATH! });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ status: 'success', accepted: 3 });
    expect(mock.rows.filter((x) => String(x.row.Activity).startsWith('child'))).toHaveLength(3);
  }, 30_000);

  it('without it: retryable with a certificate error, nothing sent', async () => {
    const before = mock.rows.length;
    const r = await child(
      {
        type: 'log-analytics',
        workspaceId: mock.workspaceId,
        endpoint: mock.url,
        sharedKeyFile: writeSecretFile(dir, 'k', mock.sharedKey),
      },
      { PATH: process.env.PATH! },
    );
    const result = JSON.parse(r.stdout);
    expect(result.status).toBe('retryable');
    expect(result.error).toMatch(/certificate/i);
    expect(mock.rows.length).toBe(before);
  }, 30_000);
});
