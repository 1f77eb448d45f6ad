/**
 * The mock Azure service as a standalone process, for sandbox tests, benchmarks and troubleshooting.
 *
 *   node --import tsx scripts/mock-azure.ts   (or npx tsx ...; npx does not pass SIGTERM on)
 *        [--port P] [--key-file F] [--client-secret-file F] [--http]
 *        [--workspace-id ID] [--tenant-id ID] [--client-id ID] [--dcr-immutable-id ID] [--stream S]
 *        [--audience URL] [--token-lifetime SEC] [--cert-dir DIR] [--info-file F]
 *
 * Secrets come from 0600 files (created with a random value when missing), never from argv.
 * When ready it prints one JSON line on stdout (url, port, caPath, workspaceId, tenantId, clientId,
 * dcrImmutableId, stream, keyFile, clientSecretFile) and writes it to --info-file when given.
 * Control API on the same port: POST /_mock/fail {FailRule}, POST /_mock/clear, POST /_mock/reset,
 * POST /_mock/revoke-tokens, POST /_mock/refuse {"ms":N}, POST /_mock/clock {"offsetMs":N}, GET /_mock/stats, GET /_mock/rows[?api=&since=],
 * GET /_mock/requests, GET /_mock/info.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readSecret } from '../src/util/secrets.js';
import { startMockAzure } from '../test/helpers/mock-azure.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'key-file': { type: 'string' },
    'client-secret-file': { type: 'string' },
    http: { type: 'boolean', default: false },
    'workspace-id': { type: 'string' },
    'tenant-id': { type: 'string' },
    'client-id': { type: 'string' },
    'dcr-immutable-id': { type: 'string' },
    stream: { type: 'string' },
    audience: { type: 'string' },
    'token-lifetime': { type: 'string' },
    'cert-dir': { type: 'string' },
    'info-file': { type: 'string' },
  },
  strict: true,
});

function secretFrom(file: string | undefined, make: () => string): string | undefined {
  if (!file) return undefined;
  if (!existsSync(file)) writeFileSync(file, `${make()}\n`, { mode: 0o600 });
  return readSecret({ file, label: 'mock secret' });
}

const mock = await startMockAzure({
  https: !values.http,
  port: Number(values.port),
  sharedKey: secretFrom(values['key-file'], () => randomBytes(64).toString('base64')),
  clientSecret: secretFrom(values['client-secret-file'], () => randomBytes(24).toString('base64url')),
  workspaceId: values['workspace-id'],
  tenantId: values['tenant-id'],
  clientId: values['client-id'],
  dcrImmutableId: values['dcr-immutable-id'],
  streams: values.stream ? [values.stream] : undefined,
  audience: values.audience,
  tokenLifetimeSec: values['token-lifetime'] ? Number(values['token-lifetime']) : undefined,
  certDir: values['cert-dir'],
});

const info = {
  url: mock.url,
  port: mock.port,
  https: mock.https,
  caPath: mock.caPath,
  workspaceId: mock.workspaceId,
  tenantId: mock.tenantId,
  clientId: mock.clientId,
  dcrImmutableId: mock.dcrImmutableId,
  stream: mock.stream,
  keyFile: values['key-file'],
  clientSecretFile: values['client-secret-file'],
};
if (values['info-file']) writeFileSync(values['info-file'], JSON.stringify(info) + '\n');
process.stdout.write(JSON.stringify(info) + '\n');

const stop = () => void mock.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
