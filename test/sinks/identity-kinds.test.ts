import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sinkSchema } from '../../src/config/schema.js';
import { createSink } from '../../src/sinks/index.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';

// Every credential kind, through @azure/identity's real code path, against the mock authority.
const dir = mkdtempSync(join(tmpdir(), 'idkinds-'));
const row = { TimeGenerated: '2026-01-01T00:00:00.000Z', Activity: 'x', DeviceVendor: 'Acme' };
let mock: MockAzure;
let certPem: string;
let certFile: string;

beforeAll(async () => {
  const key = join(dir, 'client.key');
  const crt = join(dir, 'client.crt');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=sentinel-cef-test'],
    { stdio: 'ignore' },
  );
  certPem = readFileSync(crt, 'utf8');
  certFile = join(dir, 'client.pem');
  writeFileSync(certFile, readFileSync(key, 'utf8') + certPem, { mode: 0o600 });
  mock = await startMockAzure({ clientCertificatePem: certPem, federatedToken: 'federated-token-from-aks' });
});
afterAll(async () => mock.close());

function config(auth: Record<string, unknown>) {
  return sinkSchema.parse({
    type: 'logs-ingestion',
    endpoint: mock.url,
    dcrImmutableId: mock.dcrImmutableId,
    authorityHost: mock.url,
    auth,
  });
}

describe('credential kinds', () => {
  it('certificate: a signed client assertion the mock verifies against the registered certificate', async () => {
    const sink = createSink(config({ kind: 'certificate', tenantId: mock.tenantId, clientId: mock.clientId, certificateFile: certFile }), {
      ca: mock.caPem,
    });
    expect(await sink.send([row])).toEqual({ status: 'success', accepted: 1 });
    await sink.close?.();
  });

  it('certificate: a PEM readable by others is refused', () => {
    const open = join(dir, 'open.pem');
    writeFileSync(open, readFileSync(certFile));
    chmodSync(open, 0o644);
    expect(() =>
      createSink(config({ kind: 'certificate', tenantId: mock.tenantId, clientId: mock.clientId, certificateFile: open })),
    ).toThrow(/chmod 600|mode 644/);
  });

  it('certificate: an unregistered certificate is refused by the authority → retryable with its words', async () => {
    const key = join(dir, 'other.key');
    const crt = join(dir, 'other.crt');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=other'],
      { stdio: 'ignore' },
    );
    const other = join(dir, 'other.pem');
    writeFileSync(other, readFileSync(key, 'utf8') + readFileSync(crt, 'utf8'), { mode: 0o600 });
    const sink = createSink(config({ kind: 'certificate', tenantId: mock.tenantId, clientId: mock.clientId, certificateFile: other }), {
      ca: mock.caPem,
    });
    const r = await sink.send([row]);
    expect(r.status).toBe('retryable');
    expect((r as { error: string }).error).toMatch(/AADSTS700027/);
    await sink.close?.();
  });

  it('workload identity: federated token file from the environment', async () => {
    const tokenFile = join(dir, 'federated-token');
    writeFileSync(tokenFile, 'federated-token-from-aks', { mode: 0o600 });
    const env = { AZURE_TENANT_ID: mock.tenantId, AZURE_CLIENT_ID: mock.clientId, AZURE_FEDERATED_TOKEN_FILE: tokenFile };
    const sink = createSink(config({ kind: 'workload-identity' }), { ca: mock.caPem, env });
    expect(await sink.send([row])).toEqual({ status: 'success', accepted: 1 });
    await sink.close?.();
  });

  it('managed identity: IMDS shape via AZURE_POD_IDENTITY_AUTHORITY_HOST', async () => {
    const imds = await startMockAzure({ https: false });
    const saved = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = imds.url;
    try {
      const sink = createSink(
        sinkSchema.parse({
          type: 'logs-ingestion',
          endpoint: imds.url,
          dcrImmutableId: imds.dcrImmutableId,
          auth: { kind: 'managed-identity' },
        }),
      );
      expect(await sink.send([row])).toEqual({ status: 'success', accepted: 1 });
      const msi = imds.requests.filter((q) => q.api === 'msi' && q.status === 200);
      expect(msi.length).toBeGreaterThan(0);
      // MSAL keeps managed-identity tokens in a process-wide cache that a new credential does not
      // bypass: a token revoked before expiry gets 401 twice, which must stay retryable (no loss).
      imds.revokeTokens();
      const r = await sink.send([row]);
      expect(r).toMatchObject({ status: 'retryable', httpStatus: 401 });
      await sink.close?.();
    } finally {
      if (saved === undefined) delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
      else process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = saved;
      await imds.close();
    }
  });
});
