import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { checkConfig, loadForwarderConfig, parseSize } from '../../src/config/load.js';
import { parseListenUrl } from '../../src/config/listen.js';
import { parseWorkerCount } from '../../src/forwarder/forwarder.js';
import { tempDir } from './helpers.js';
import { PassThrough } from 'node:stream';
import { runForwardCommand } from '../../src/commands/forward.js';

const none = { defaultConfigPath: '/nonexistent/forwarder.json' };
const bin = new URL('../../bin/sentinel-cef', import.meta.url).pathname;
const env = { CI: 'true', NO_COLOR: '1' };

describe('forwarder config', () => {
  it('parses listen URLs including IPv6 and rejects bad ones', () => {
    expect(parseListenUrl('tcp://[::1]:25226')).toMatchObject({ protocol: 'tcp', host: '::1', port: 25226, url: 'tcp://[::1]:25226' });
    expect(parseListenUrl('udp://0.0.0.0:514')).toMatchObject({ protocol: 'udp', host: '0.0.0.0', port: 514 });
    expect(() => parseListenUrl('http://x:1')).toThrow(
      /^a listen address must be tcp:\/\/, udp:\/\/, tls:\/\/ or relp:\/\/HOST:PORT, e\.g\. .*got 'http:\/\/x:1'$/,
    );
    expect(() => parseListenUrl('tcp://x:70000')).toThrow(/with a port from 0 to 65535/);
  });

  it('parses sizes', () => {
    expect(parseSize('64K', 'x')).toBe(65536);
    expect(parseSize('2G', 'x')).toBe(2 * 1024 ** 3);
    expect(() => parseSize('lots', '--queue-max-bytes')).toThrow(/--queue-max-bytes/);
  });

  it('merges file and flags, flags win', () => {
    const dir = tempDir();
    const file = join(dir, 'forwarder.json');
    writeFileSync(
      file,
      JSON.stringify({
        listen: ['tcp://127.0.0.1:1'],
        queue: { dir: '/q', maxBytes: 1000 },
        sink: { type: 'file', path: '/a' },
        logLevel: 'warn',
      }),
    );
    const c = loadForwarderConfig(
      { config: file, listen: ['udp://127.0.0.1:2'], queueMaxBytes: '1M', maxMessageSize: '8K', admin: 'off' },
      none,
    );
    expect(c.listen).toEqual(['udp://127.0.0.1:2']);
    expect(c.queue).toMatchObject({ dir: '/q', maxBytes: 1024 * 1024 });
    expect(c.limits.maxMessageBytes).toBe(8192);
    expect(c.admin).toBe(false);
    expect(c.logLevel).toBe('warn');
    expect(c.sink).toEqual({ type: 'file', path: '/a' });
  });

  it('parse workers: auto by default, a count or auto from --parse-workers, anything else refused in one line', () => {
    const base = { sink: 'file:/tmp/rows.ndjson' };
    expect(loadForwarderConfig(base, none).batch.parseWorkers).toBe('auto');
    expect(loadForwarderConfig({ ...base, parseWorkers: '0' }, none).batch.parseWorkers).toBe(0);
    expect(loadForwarderConfig({ ...base, parseWorkers: '3' }, none).batch.parseWorkers).toBe(3);
    expect(loadForwarderConfig({ ...base, parseWorkers: 'auto' }, none).batch.parseWorkers).toBe('auto');
    for (const bad of ['x', '-1', '9', '1.5'])
      expect(() => loadForwarderConfig({ ...base, parseWorkers: bad }, none)).toThrow(/--parse-workers/);
    expect(parseWorkerCount('auto', 1)).toBe(0);
    expect(parseWorkerCount('auto', 2)).toBe(1);
    expect(parseWorkerCount('auto', 64)).toBe(4);
    expect(parseWorkerCount(2, 1)).toBe(2);
  });

  it('builds Azure sinks from flags', () => {
    const la = loadForwarderConfig(
      { sink: 'log-analytics', workspaceId: '11111111-2222-3333-4444-555555555555', keyFile: '/etc/k', cloud: 'AzureUSGovernment' },
      none,
    );
    expect(la.sink).toMatchObject({
      type: 'log-analytics',
      sharedKeyFile: '/etc/k',
      cloud: 'AzureUSGovernment',
      logType: 'CommonSecurityLog',
    });
    const li = loadForwarderConfig(
      {
        sink: 'logs-ingestion',
        dce: 'https://x.ingest.monitor.azure.com',
        dcr: 'dcr-1',
        tenant: 't',
        clientId: 'c',
        clientSecretFile: '/s',
      },
      none,
    );
    expect(li.sink).toMatchObject({
      type: 'logs-ingestion',
      endpoint: 'https://x.ingest.monitor.azure.com',
      dcrImmutableId: 'dcr-1',
      auth: { kind: 'client-secret', tenantId: 't', clientId: 'c', clientSecretFile: '/s' },
    });
    const mi = loadForwarderConfig(
      { sink: 'logs-ingestion', endpoint: 'https://x.ingest.monitor.azure.com', dcr: 'dcr-1', managedIdentity: true },
      none,
    );
    expect(mi.sink).toMatchObject({ auth: { kind: 'managed-identity' } });
  });

  it.each([
    [{ key: 'abc', sink: 'file:/x' }, /--key is refused.*--key-file/],
    [{ clientSecret: 'abc', sink: 'file:/x' }, /--client-secret is refused/],
    [{}, /no sink configured/],
    [{ sink: 'ftp' }, /unknown sink/],
    [{ sink: 'file:/x', admin: '0.0.0.0:25227' }, /not on loopback/],
    [{ sink: 'file:/x', listen: ['tls://127.0.0.1:6514'] }, /needs a certificate/],
    [{ sink: 'log-analytics', workspaceId: 'nope' }, /^--workspace-id must be a GUID, got 'nope' $/],
    [{ sink: 'file:/x', maxConnections: '-3' }, /--max-connections/],
  ])('refuses %o with one clear line', (flags, re) => {
    let msg = '';
    try {
      loadForwarderConfig(flags as never, none);
    } catch (err) {
      msg = `${(err as Error).message} ${(err as { suggestion?: string }).suggestion ?? ''}`;
      expect((err as { exitCode: number }).exitCode).toBe(2);
    }
    expect(msg).toMatch(re);
  });

  it.each([
    [{ deadLeterFile: '/x/dl.ndjson' }, 'deadLeterFile: unknown key (did you mean deadLetterFile?)'],
    [{ queue: { maxByte: 1024 } }, 'queue.maxByte: unknown key (did you mean maxBytes?)'],
    [{ sink: { type: 'file', path: '/x', pth: '/y' } }, 'sink.pth: unknown key (did you mean path?)'],
    [{ colour: 'blue' }, 'colour: unknown key — fix this field'],
    // A key of another variant of a discriminated union is unknown in the variant its type/kind selects.
    [{ sink: { type: 'file', path: '/x', dcrImmutableId: 'dcr-1' } }, 'sink.dcrImmutableId: unknown key — fix this field'],
    [{ sink: { type: 'file', path: '/x', sharedKeyFile: '/k' } }, 'sink.sharedKeyFile: unknown key — fix this field'],
    [
      {
        sink: {
          type: 'logs-ingestion',
          endpoint: 'https://x.example',
          dcrImmutableId: 'dcr-1',
          auth: { kind: 'managed-identity', clientSecretFile: '/s' },
        },
      },
      'sink.auth.clientSecretFile: unknown key — fix this field',
    ],
  ])('a config file key the schema does not know is refused, naming it and the nearest key: %j', (extra, want) => {
    const file = join(tempDir(), 'forwarder.json');
    writeFileSync(file, JSON.stringify({ sink: { type: 'file', path: '/x' }, ...extra }));
    const err = (() => {
      try {
        loadForwarderConfig({ config: file }, none);
      } catch (e) {
        return e as { message: string; exitCode: number };
      }
      return null;
    })();
    expect(err?.exitCode).toBe(2);
    expect(err?.message).toContain(`${file}: ${want}`);
    expect(err?.message.split('\n')).toHaveLength(1);
  });

  // A downgrade that leaves a newer key (or a hand typo) must not stop the service: its unit does not restart on exit 2.
  it(
    'the service start with an unknown key runs and logs one warning naming the nearest key; --check still exits 2',
    { timeout: 90_000 },
    async () => {
      const dir = tempDir();
      const file = join(dir, 'forwarder.json');
      const rows = join(dir, 'rows.ndjson');
      writeFileSync(
        file,
        JSON.stringify({
          listen: ['tcp://127.0.0.1:0'],
          queue: { dir: join(dir, 'q'), maxByte: 1024 },
          deadLetterFile: join(dir, 'dl.ndjson'),
          admin: false,
          sink: { type: 'file', path: rows },
        }),
      );
      const quiet = { stdout: new PassThrough(), stderr: new PassThrough() };
      await expect(runForwardCommand({ config: file, check: true }, quiet)).rejects.toMatchObject({
        exitCode: 2,
        message: expect.stringContaining('queue.maxByte: unknown key (did you mean maxBytes?)') as string,
      });
      let log = '';
      const logStream = new PassThrough().on('data', (b: Buffer) => (log += b.toString()));
      const run = runForwardCommand({ config: file }, { ...quiet, log: logStream });
      let settled = false;
      const settle = () => (settled = true);
      void run.then(settle, settle);
      const deadline = Date.now() + 60_000;
      while (!settled && !log.includes('forwarder started') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      process.emit('SIGTERM', 'SIGTERM');
      await expect(run).resolves.toBe(0);
      const lines = log
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(lines.some((l) => l.msg === 'forwarder started')).toBe(true);
      const warnings = lines.filter((l) => l.msg.includes('unknown key'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 40 });
      expect(warnings[0].msg).toContain(`${file}: queue.maxByte: unknown key (did you mean maxBytes?)`);
    },
  );

  // The service's entry holds SIGTERM/SIGINT while it loads (stop-signals.ts) and hands them over here.
  it('a stop held while loading: the forwarder is not started, the log says it stopped, and a --check takes no hold', async () => {
    const dir = tempDir();
    const file = join(dir, 'forwarder.json');
    writeFileSync(
      file,
      JSON.stringify({
        listen: ['tcp://127.0.0.1:0'],
        queue: { dir: join(dir, 'q') },
        admin: false,
        sink: { type: 'file', path: join(dir, 'rows') },
      }),
    );
    const quiet = { stdout: new PassThrough(), stderr: new PassThrough() };
    const released: string[] = [];
    const held = (first: NodeJS.Signals | null, name: string) => ({ first, release: () => void released.push(name) });
    await expect(runForwardCommand({ config: file, check: true }, quiet, held(null, 'check'))).resolves.toBe(0);
    let log = '';
    const logStream = new PassThrough().on('data', (b: Buffer) => (log += b.toString()));
    await expect(runForwardCommand({ config: file }, { ...quiet, log: logStream }, held('SIGTERM', 'run'))).resolves.toBe(0);
    expect(released).toEqual(['check', 'run']);
    const lines = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; signal?: string; started?: boolean });
    expect(lines).toEqual([
      expect.objectContaining({ msg: 'signal received', signal: 'SIGTERM' }),
      expect.objectContaining({ msg: 'forwarder stopped', started: false }),
    ]);
    expect(existsSync(join(dir, 'q'))).toBe(false);
  });

  it('every key the schema knows loads, at every level (a full config, as written by hand)', () => {
    const file = join(tempDir(), 'forwarder.json');
    const full = {
      listen: ['tcp://127.0.0.1:25226'],
      queue: { dir: '/x/q', maxBytes: 1024 },
      deadLetterFile: '/x/dl.ndjson',
      sink: {
        type: 'logs-ingestion',
        endpoint: 'https://x.example',
        dcrImmutableId: 'dcr-0123456789abcdef0123456789abcdef',
        stream: 'Custom-X',
        auth: { kind: 'managed-identity', clientId: '11111111-2222-3333-4444-555555555555' },
      },
      admin: '127.0.0.1:25227',
    };
    writeFileSync(file, JSON.stringify(full));
    expect(loadForwarderConfig({ config: file }, none).sink).toMatchObject({ auth: { kind: 'managed-identity' } });
  });

  it.each([
    ['an empty', ''],
    ['a blank', '  \n'],
  ])('forward --check with %s key file: one verdict per item, FAIL once, never ok then FAIL', async (_n, content) => {
    const dir = tempDir();
    const key = join(dir, 'key');
    writeFileSync(key, content, { mode: 0o600 });
    let out = '';
    const stdout = new PassThrough().on('data', (b: Buffer) => (out += b.toString()));
    const flags = {
      check: true,
      sink: 'log-analytics',
      workspaceId: '11111111-2222-3333-4444-555555555555',
      keyFile: key,
      queueDir: join(dir, 'q'),
      deadLetterFile: join(dir, 'dl.ndjson'),
      admin: 'off',
    };
    await expect(runForwardCommand(flags, { stdout, stderr: new PassThrough() })).rejects.toMatchObject({ exitCode: 2 });
    const lines = out.trim().split('\n');
    const labels = lines.map((l) => l.slice(5, l.indexOf(':')));
    expect(new Set(labels).size).toBe(labels.length);
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([
      `FAIL --key-file: shared key file ${key} is empty — write the shared key into it (mode 0600)`,
    ]);
  });

  it(
    'an Azure URL in the config must be https (http only to loopback): else a config error, the field named',
    { timeout: 60_000 },
    async () => {
      const dir = tempDir();
      const li = { type: 'logs-ingestion', endpoint: 'https://x.example', dcrImmutableId: 'dcr-1', auth: { kind: 'managed-identity' } };
      const sinks: Array<[string, Record<string, unknown>]> = [
        ['sink.endpoint', { ...li, endpoint: 'http://x-abcd.eastus-1.ingest.monitor.azure.com' }],
        ['sink.authorityHost', { ...li, authorityHost: 'http://login.microsoftonline.com' }],
        ['sink.endpoint', { type: 'log-analytics', workspaceId: '11111111-2222-3333-4444-555555555555', endpoint: 'http://10.1.2.3:8080' }],
      ];
      const file = join(dir, 'forwarder.json');
      const write = (sink: Record<string, unknown>) =>
        writeFileSync(file, JSON.stringify({ listen: ['tcp://127.0.0.1:0'], queue: { dir: join(dir, 'q') }, admin: false, sink }));
      for (const [field, sink] of sinks) {
        write(sink);
        expect(() => loadForwarderConfig({ config: file }, none)).toThrow(
          expect.objectContaining({
            exitCode: 2,
            message: `${file}: ${field}: must be an https URL (http only to a loopback address, for a local mock or relay) — fix this field (see \`sentinel-cef forward --help\`)`,
          }),
        );
      }
      // The same fields to this machine's loopback (a local mock or relay) load as before.
      for (const host of ['127.0.0.1:8080', '[::1]:8080', 'localhost:8080']) {
        write({ ...li, endpoint: `http://${host}`, authorityHost: `http://${host}/` });
        expect(loadForwarderConfig({ config: file }, none).sink).toMatchObject({ endpoint: `http://${host}` });
        write({ type: 'log-analytics', workspaceId: '11111111-2222-3333-4444-555555555555', endpoint: `http://${host}` });
        expect(loadForwarderConfig({ config: file }, none).sink).toMatchObject({ endpoint: `http://${host}` });
      }
      // forward --check refuses it, and the service refuses to start on it, as on any config error.
      write(sinks[0][1]);
      const quiet = { stdout: new PassThrough(), stderr: new PassThrough() };
      await expect(runForwardCommand({ config: file, check: true }, quiet)).rejects.toMatchObject({
        exitCode: 2,
        message: expect.stringContaining('sink.endpoint: must be an https URL'),
      });
      const start = await execa(bin, ['forward', '--config', file], { env, reject: false, timeout: 30_000 });
      expect(start.exitCode).toBe(2);
      expect(start.stderr).toContain(`${file}: sink.endpoint: must be an https URL`);
    },
  );

  it('check: secret files must exist and be 0600', () => {
    const dir = tempDir();
    const key = join(dir, 'key');
    writeFileSync(key, 'c2VjcmV0');
    chmodSync(key, 0o644);
    const c = loadForwarderConfig(
      { sink: 'log-analytics', workspaceId: '11111111-2222-3333-4444-555555555555', keyFile: key, queueDir: join(dir, 'q') },
      none,
    );
    const bad = checkConfig(c, {}).find((x) => x.id === 'sink.sharedKey')!;
    expect(bad).toMatchObject({ ok: false, fix: `chmod 600 ${key}` });
    chmodSync(key, 0o600);
    expect(checkConfig(c, {}).every((x) => x.ok)).toBe(true);
    const envOnly = loadForwarderConfig(
      { sink: 'log-analytics', workspaceId: '11111111-2222-3333-4444-555555555555', queueDir: join(dir, 'q') },
      none,
    );
    expect(checkConfig(envOnly, {}).find((x) => x.id === 'sink.sharedKey')!.ok).toBe(false);
    expect(checkConfig(envOnly, { SENTINEL_CEF_KEY: 'x' }).find((x) => x.id === 'sink.sharedKey')!.ok).toBe(true);
  });

  it('check: a file sink must be a regular file (or not exist yet), not a device, directory or pipe', () => {
    const dir = tempDir();
    const sinkCheck = (path: string) =>
      checkConfig(loadForwarderConfig({ sink: `file:${path}`, queueDir: join(dir, 'q') }, none), {}).find((x) => x.id === 'sink.file')!;
    expect(sinkCheck('/dev/null')).toMatchObject({ ok: false, message: 'file sink /dev/null is a character device, not a regular file' });
    expect(sinkCheck(dir)).toMatchObject({ ok: false, message: `file sink ${dir} is a directory, not a regular file` });
    expect(sinkCheck(join(dir, 'new.ndjson')).ok).toBe(true);
    writeFileSync(join(dir, 'old.ndjson'), '');
    expect(sinkCheck(join(dir, 'old.ndjson')).ok).toBe(true);
  });

  it('forward --check names the TLS flags as typed, the config fields when they came from a file', { timeout: 90_000 }, async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'key.pem'), 'k', { mode: 0o644 });
    chmodSync(join(dir, 'key.pem'), 0o644);
    const tls = [
      '--listen',
      'tls://127.0.0.1:0',
      '--sink',
      `file:${join(dir, 'rows.ndjson')}`,
      '--queue-dir',
      join(dir, 'q'),
      '--admin',
      'off',
    ];
    const flags = await execa(bin, ['forward', '--check', '--tls-cert', join(dir, 'none.pem'), '--tls-key', join(dir, 'key.pem'), ...tls], {
      env,
      reject: false,
    });
    expect(flags.exitCode).toBe(2);
    expect(flags.stdout).toContain(`FAIL --tls-cert: ${join(dir, 'none.pem')} not found`);
    expect(flags.stdout).toContain(`FAIL --tls-key: ${join(dir, 'key.pem')} is readable by group/others (mode 644)`);
    const cfg = join(dir, 'forwarder.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        listen: ['tls://127.0.0.1:0'],
        tls: { certFile: join(dir, 'none.pem'), keyFile: join(dir, 'key.pem') },
        sink: { type: 'file', path: join(dir, 'rows.ndjson') },
        queue: { dir: join(dir, 'q') },
        admin: false,
      }),
    );
    const file = await execa(bin, ['forward', '--check', '--config', cfg], { env, reject: false });
    expect(file.exitCode).toBe(2);
    expect(file.stdout).toContain(`FAIL tls.certFile: ${join(dir, 'none.pem')} not found`);
    expect(file.stdout).toContain('FAIL tls.keyFile: ');
  });

  it('forward --check exits 0 for a valid config and 2 with one line per problem', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'q'));
    const ok = await execa(bin, ['forward', '--check', '--sink', `file:${join(dir, 'rows.ndjson')}`, '--queue-dir', join(dir, 'q')], {
      env,
      reject: false,
    });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toContain('configuration is valid');
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ sink: { type: 'file', path: 'x' }, limits: { maxConnections: 'many' }, batch: { flushMs: -1 } }));
    const bad = await execa(bin, ['forward', '--check', '--config', file], { env, reject: false });
    expect(bad.exitCode).toBe(2);
    const lines = bad.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/limits\.maxConnections: .*fix this field/);
    expect(lines[1]).toMatch(/batch\.flushMs: /);
    const key = join(dir, 'key');
    writeFileSync(key, 'not base64 at all!\n', { mode: 0o600 });
    const badKey = await execa(
      bin,
      [
        'forward',
        '--check',
        '--sink',
        'log-analytics',
        '--workspace-id',
        '11111111-2222-3333-4444-555555555555',
        '--key-file',
        key,
        '--queue-dir',
        join(dir, 'q'),
      ],
      { env, reject: false },
    );
    expect(badKey.exitCode).toBe(2);
    expect(badKey.stdout).toMatch(/FAIL sink: /);
    expect(badKey.stdout).not.toContain('not base64');
    const secret = await execa(bin, ['forward', '--key', 'SECRETVALUE', '--sink', 'log-analytics'], { env, reject: false });
    expect(secret.exitCode).toBe(2);
    expect(secret.stderr).not.toContain('SECRETVALUE');
    expect(secret.stderr.trim().split('\n')).toHaveLength(1);
  });
});
