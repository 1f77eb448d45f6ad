import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';

// The built CLI against the sinks' mock Entra ID and ingestion endpoint over TLS (its CA trusted the way an
// operator would, NODE_EXTRA_CA_CERTS): the token comes from the very credential the forwarder builds.
const bin = new URL('../../bin/sentinel-cef', import.meta.url).pathname;

describe('azure.credentials and azure.endpoint for the Logs Ingestion API (real @azure/identity, mock Entra ID)', () => {
  let dir: string;
  let mock: MockAzure;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ts-cred-'));
    mock = await startMockAzure({ https: true, quiet: true });
  });
  afterAll(async () => {
    await mock?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function run(secret: string) {
    const secretFile = join(dir, `secret-${secret.length}`);
    await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
    const config = join(dir, `forwarder-${secret.length}.json`);
    await writeFile(
      config,
      JSON.stringify({
        sink: {
          type: 'logs-ingestion',
          endpoint: mock.url,
          dcrImmutableId: mock.dcrImmutableId,
          stream: mock.stream,
          authorityHost: mock.url,
          auth: { kind: 'client-secret', tenantId: mock.tenantId, clientId: mock.clientId, clientSecretFile: secretFile },
        },
        admin: '127.0.0.1:9', // nothing there: the credential check must not lean on the forwarder
      }),
    );
    const r = await execa(bin, ['troubleshoot', '--json', '--probes', '0', '--config', config], {
      env: { CI: 'true', NO_COLOR: '1', NODE_EXTRA_CA_CERTS: mock.caPath! },
      reject: false,
    });
    const report = JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; message: string; fix?: string }> };
    return (id: string) => report.checks.find((c) => c.id === id)!;
  }

  it('passes with the right client secret, over a verified TLS handshake', async () => {
    const check = await run(mock.clientSecret);
    expect(check('azure.credentials')).toMatchObject({ status: 'pass' });
    expect(check('azure.credentials').message).toContain('token valid until');
    expect(check('azure.endpoint').status).toBe('pass');
    expect(check('azure.endpoint').message).toContain('TLS ok');
    expect(check('azure.clock').status).toBe('pass');
  });

  it('fails with the identity error and a fix for a wrong secret, without printing the secret', async () => {
    const wrong = 'definitely-not-the-secret-0123456789';
    const check = await run(wrong);
    const c = check('azure.credentials');
    expect(c.status).toBe('fail');
    expect(c.message).toContain('AADSTS7000215');
    expect(c.fix).toContain('client secret is wrong or expired');
    expect(JSON.stringify(c)).not.toContain(wrong);
  });
});
