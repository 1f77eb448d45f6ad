import { describe, expect, it } from 'vitest';
import { sinkSchema } from '../../src/config/schema.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';
import { AZURE_URL, isAzureUrl } from '../../src/util/option-schemas.js';

// Every URL the product sends a token, a secret, a signed request or events to: https, or http only to loopback.
const accepted = [
  'https://x-abcd.eastus-1.ingest.monitor.azure.com',
  'https://login.microsoftonline.us/',
  'https://203.0.113.7:8443/api',
  'http://127.0.0.1:8080',
  'http://127.1.2.3/path',
  'http://127.1',
  'http://[::1]:9000/',
  'http://[0:0:0:0:0:0:0:1]/',
  'http://localhost:3000',
  'http://LOCALHOST/',
];
const refused = [
  'http://x-abcd.eastus-1.ingest.monitor.azure.com',
  'http://login.microsoftonline.com/',
  'http://10.0.0.5:8080',
  'http://128.0.0.1/',
  'http://[::2]/',
  'http://[::ffff:203.0.113.7]/',
  'http://localhost.evil.example/',
  'http://relay.localhost:8080/',
  'http://127.0.0.1.nip.io/',
  'http://0.0.0.0:8080',
  'https://user:pass@x.example',
  'ftp://127.0.0.1/',
  'not a url',
];

const WS = '11111111-2222-3333-4444-555555555555';
type Place = [string, (url: string) => boolean];
const issuesAt = (r: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }, key: string) =>
  (r.error?.issues ?? []).filter((i) => i.path[0] === key || i.message.startsWith(`--${key}`));

// Each place that takes such a URL, as a function "is this URL accepted here".
const places: Place[] = [
  ['install --dce', (url) => issuesAt(installOptionsSchema.safeParse({ dce: url }), 'dce').length === 0],
  ['install --endpoint', (url) => issuesAt(installOptionsSchema.safeParse({ endpoint: url }), 'endpoint').length === 0],
  [
    'install --arm-endpoint',
    (url) => issuesAt(installOptionsSchema.safeParse({ armEndpoint: url, workspace: WS }), 'armEndpoint').length === 0,
  ],
  [
    'install --authority-host',
    (url) => issuesAt(installOptionsSchema.safeParse({ authorityHost: url, workspace: WS }), 'authorityHost').length === 0,
  ],
  ['troubleshoot --logs-query-endpoint', (url) => troubleshootOptionsSchema.safeParse({ logsQueryEndpoint: url }).success],
  ['troubleshoot --arm-endpoint', (url) => troubleshootOptionsSchema.safeParse({ armEndpoint: url }).success],
  [
    'config logs-ingestion sink.endpoint',
    (url) =>
      sinkSchema.safeParse({ type: 'logs-ingestion', endpoint: url, dcrImmutableId: 'dcr-1', auth: { kind: 'managed-identity' } }).success,
  ],
  [
    'config logs-ingestion sink.authorityHost',
    (url) =>
      sinkSchema.safeParse({
        type: 'logs-ingestion',
        endpoint: 'https://x.example',
        dcrImmutableId: 'dcr-1',
        auth: { kind: 'managed-identity' },
        authorityHost: url,
      }).success,
  ],
  ['config log-analytics sink.endpoint', (url) => sinkSchema.safeParse({ type: 'log-analytics', workspaceId: WS, endpoint: url }).success],
];
describe('Azure-facing URLs: https, or http only to loopback', () => {
  it.each(accepted)('accepts %s', (url) => expect(isAzureUrl(url)).toBe(true));
  it.each(refused)('refuses %s', (url) => expect(isAzureUrl(url)).toBe(false));

  it.each(places)('%s agrees with the rule for every URL above', (_name, acceptedHere) => {
    const wrong = [...accepted, ...refused].filter((url) => acceptedHere(url) !== accepted.includes(url));
    expect(wrong).toEqual([]);
  });

  it('the config file names the field and the rule', () => {
    const r = sinkSchema.safeParse({ type: 'log-analytics', workspaceId: WS, endpoint: 'http://x.example' });
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['endpoint', `must be ${AZURE_URL}`]]);
  });
});
