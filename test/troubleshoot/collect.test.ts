import { mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { x as extract } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Redactor, writeSupportBundle } from '../../src/troubleshoot/collect.js';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { cleanup, healthyTree, makeRoot, put, SECRET_SOURCES, startFakeAdmin, testDeps, type FakeAdmin } from './helpers.js';

// A workspace key has the shape of a real one: 64 random bytes, base64.
const KEY = 'q9Zp3kLx0R8vYt2mWc5nHb7jGf1sDa4eUo6iKy9TzXwVq3Nr8Lm2Pb5Hc7Jd1Fg4Sa6Ek0Yu2Ri9Ow3Qt5Zn8Mv1Bx==';
const CLIENT_SECRET = 'Xy7~Q8Q~abcdEFGHijklMNOPqrstUVWX12345678';
const PROXY_PASSWORD = 'pr0xyP4ssw0rd';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

describe('Redactor', () => {
  it.each([
    ['Authorization: SharedKey 1111:abcDEF123+/=', 'abcDEF123'],
    ['Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig', 'eyJhbGci'],
    ['https://user:hunter22@proxy:3128', 'hunter22'],
    ['https://x.blob.core.windows.net/c?sv=1&sig=AbCdEf%2B123', 'AbCdEf'],
    ['"client_secret": "s3cr3tvalue!!"', 's3cr3tvalue'],
    [`key ${KEY}`, KEY.slice(0, 20)],
  ])('removes %s', (text, secret) => {
    expect(new Redactor().redact(text)).not.toContain(secret);
  });
  it('keeps paths to secret files and ordinary text', () => {
    const t = '"sharedKeyFile": "/etc/sentinel-cef/workspace.key" and cs2Label=ProbeId';
    expect(new Redactor().redact(t)).toBe(t);
  });
});

describe('support bundle', () => {
  let root: string;
  let admin: FakeAdmin;
  let outDir: string;
  beforeEach(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    outDir = await mkdtemp(join(tmpdir(), 'ts-bundle-'));
    await healthyTree(root, {
      adminPort: admin.port,
      daemonPort: 514,
      sink: {
        type: 'log-analytics',
        workspaceId: '11111111-2222-3333-4444-555555555555',
        sharedKeyFile: '/etc/sentinel-cef/workspace.key',
      },
    });
    // Plant the secrets: in the key file, the config (an inline key someone added), the env and the logs.
    await put(root, '/etc/sentinel-cef/workspace.key', `${KEY}\n`, 0o600);
    const cfg = JSON.parse(await readFile(join(root, '/etc/sentinel-cef/forwarder.json'), 'utf8'));
    cfg.sink.sharedKey = KEY;
    await put(root, '/etc/sentinel-cef/forwarder.json', JSON.stringify(cfg));
    await put(
      root,
      '/var/log/sentinel-cef/forwarder.log',
      `{"level":30,"msg":"posting","auth":"SharedKey 1111:${KEY}"}\nretrying with key=${KEY}\n`,
    );
    await put(root, '/var/log/syslog', `Nov 22 host app: secret is ${CLIENT_SECRET}\n`);
    await put(root, '/var/lib/sentinel-cef/dead-letter.ndjson', `{"reason":"403","row":{"Message":"${KEY}"}}\n`);
  });
  afterEach(async () => {
    await admin.close();
    await cleanup(root);
    await cleanup(outDir);
  });

  it('holds configs, versions, results, logs and metrics, with no secret in any file', async () => {
    const env = {
      SENTINEL_CEF_KEY: KEY,
      AZURE_CLIENT_SECRET: CLIENT_SECRET,
      HTTPS_PROXY: `http://me:${PROXY_PASSWORD}@proxy:3128`,
    };
    const deps = testDeps(root, { env });
    const opts = { configPath: '/etc/sentinel-cef/forwarder.json', probes: 0 };
    const report = await runTroubleshoot(opts, deps);
    const file = join(outDir, 'bundle.tar.gz');
    const b = await writeSupportBundle(file, report, opts, deps);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(b.entries).toEqual(
      expect.arrayContaining([
        'checks.json',
        'versions.txt',
        'config/etc/sentinel-cef/forwarder.json',
        'config/etc/rsyslog.conf',
        'config/etc/rsyslog.d/10-sentinel-cef.conf',
        'environment.txt',
        'sockets.txt',
        'logs/var/log/sentinel-cef/forwarder.log',
        'logs/var/log/syslog',
        'logs/dead-letter-tail.ndjson',
        'health.json',
        'metrics.txt',
      ]),
    );
    const x = join(outDir, 'x');
    await import('node:fs/promises').then((f) => f.mkdir(x));
    await extract({ file, cwd: x });
    const files = await filesUnder(x);
    expect(files.length).toBe(b.entries.length);
    const all = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('\n');
    for (const secret of [KEY, KEY.slice(0, 40), CLIENT_SECRET, PROXY_PASSWORD, Buffer.from(KEY, 'base64').toString('hex')]) {
      for (const f of files) expect(await readFile(f, 'utf8'), `${secret.slice(0, 8)}… in ${f}`).not.toContain(secret);
    }
    // Still useful: the results, the path of the key file and the workspace id are there.
    expect(all).toContain('forwarder.config');
    expect(all).toContain('/etc/sentinel-cef/workspace.key');
    expect(all).toContain('11111111-2222-3333-4444-555555555555');
    expect(all).toContain('sentinel_cef_received_total');
  });
});

// The same secret set as the start-up error troubleshoot quotes (forwarder-checks.test.ts): one source each.
describe('support bundle secret sources', () => {
  let root: string;
  let admin: FakeAdmin;
  let outDir: string;
  beforeEach(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    outDir = await mkdtemp(join(tmpdir(), 'ts-bundle-'));
  });
  afterEach(async () => {
    await admin.close();
    await cleanup(root);
    await cleanup(outDir);
  });

  it.each(SECRET_SOURCES)('redacts the $source wherever it was logged', async ({ secret, files, config }) => {
    await healthyTree(root, { adminPort: admin.port, daemonPort: 514 });
    await put(root, '/etc/sentinel-cef/forwarder.json', JSON.stringify({ ...config, admin: `127.0.0.1:${admin.port}` }));
    for (const [path, text] of Object.entries(files)) await put(root, path, text, 0o600);
    await put(root, '/var/log/sentinel-cef/forwarder.log', `{"level":50,"msg":"cannot start: unexpected ${secret} in input"}\n`);
    const deps = testDeps(root, { env: {} });
    const opts = { configPath: '/etc/sentinel-cef/forwarder.json', probes: 0 };
    const file = join(outDir, 'bundle.tar.gz');
    const b = await writeSupportBundle(file, await runTroubleshoot(opts, deps), opts, deps);
    expect(b.entries).toContain('logs/var/log/sentinel-cef/forwarder.log');
    const x = join(outDir, 'x');
    await import('node:fs/promises').then((f) => f.mkdir(x));
    await extract({ file, cwd: x });
    const log = await readFile(
      (await filesUnder(x)).find((f) => f.endsWith('forwarder.log'))!,
      'utf8',
    );
    expect(log).toContain('unexpected [REDACTED] in input');
    for (const f of await filesUnder(x)) expect(await readFile(f, 'utf8'), f).not.toContain(secret);
  });
});
