import { chmod, chown, mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as fwd from '../../src/troubleshoot/checks/forwarder.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { addProcess, cleanup, health, makeRoot, put, SECRET_SOURCES, startFakeAdmin, testDeps, type FakeAdmin } from './helpers.js';
import { commandLines, fakeExec } from '../helpers/fake-exec.js';

const CONFIG = '/etc/sentinel-cef/forwarder.json';
const WS = '11111111-2222-3333-4444-555555555555';

let root: string;
let admin: FakeAdmin;

function ctxFor(deps: Partial<TroubleshootDeps> = {}, opts: Record<string, unknown> = {}): Context {
  return new Context(troubleshootOptionsSchema.parse({ configPath: CONFIG, probes: 0, ...opts }), testDeps(root, deps));
}

async function writeConfig(c: object): Promise<void> {
  await put(root, CONFIG, JSON.stringify({ admin: `127.0.0.1:${admin.port}`, ...c }));
}

beforeEach(async () => {
  root = await makeRoot();
  admin = await startFakeAdmin();
});
afterEach(async () => {
  await admin.close();
  await cleanup(root);
});

describe('forwarder.installed / forwarder.config', () => {
  it('fails with the install fix when bundle and config are missing', async () => {
    const r = await fwd.checkInstalled(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('forwarder bundle');
    expect(r.fix).toContain('sentinel-cef install');
  });

  it('passes when both exist', async () => {
    await writeConfig({ sink: { type: 'file', path: '/tmp/x' } });
    await put(root, '/usr/lib/sentinel-cef/forwarder.mjs', '');
    expect((await fwd.checkInstalled(ctxFor())).status).toBe('pass');
  });

  it.each([
    ['not JSON', '{"sink": ', /not valid JSON/],
    [
      'schema error',
      JSON.stringify({ sink: { type: 'log-analytics', workspaceId: 'nope' } }),
      /sink.workspaceId: workspaceId must be a GUID/,
    ],
    ['unknown sink', JSON.stringify({ sink: { type: 'kafka' } }), /sink/],
    // The service warns and runs with it; the check refuses it, as `forward --check` does.
    [
      'an unknown key',
      JSON.stringify({ sink: { type: 'file', path: '/tmp/x' }, deadLeterFile: '/x' }),
      /deadLeterFile: unknown key \(did you mean deadLetterFile\?\)/,
    ],
    // An older install may have written an http endpoint to a remote host: refused, it sent the token in clear.
    [
      'an http endpoint to a remote host',
      JSON.stringify({
        sink: { type: 'logs-ingestion', endpoint: 'http://x.example', dcrImmutableId: 'dcr-1', auth: { kind: 'managed-identity' } },
      }),
      /sink\.endpoint: must be an https URL \(http only to a loopback address, for a local mock or relay\)/,
    ],
    [
      'an http Data Collector endpoint to a remote host',
      JSON.stringify({ sink: { type: 'log-analytics', workspaceId: WS, endpoint: 'http://ws.ods.opinsights.azure.com' } }),
      /sink\.endpoint: must be an https URL/,
    ],
  ])('fails on %s with the field named', async (_n, text, re) => {
    await put(root, CONFIG, text);
    const r = await fwd.checkConfig(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toMatch(re);
    expect(r.fix).toBeTruthy();
  });

  it('warns about the retired Data Collector API and checks the workspace id', async () => {
    await writeConfig({ sink: { type: 'log-analytics', workspaceId: WS, sharedKeyFile: '/etc/sentinel-cef/key' } });
    expect((await fwd.checkConfig(ctxFor())).status).toBe('warn');
    const other = await fwd.checkConfig(ctxFor({}, { workspaceId: '99999999-2222-3333-4444-555555555555' }));
    expect(other.status).toBe('fail');
    expect(other.message).toContain(`sends to workspace ${WS}`);
    expect(other.fix).toContain('`sentinel-cef install --workspace 99999999-2222-3333-4444-555555555555`');
  });
});

describe('forwarder.secret', () => {
  beforeEach(async () => {
    await writeConfig({ sink: { type: 'log-analytics', workspaceId: WS, sharedKeyFile: '/etc/sentinel-cef/key' } });
  });
  it('passes for a 0600 file', async () => {
    await put(root, '/etc/sentinel-cef/key', 'c2VjcmV0\n', 0o600);
    expect((await fwd.checkSecret(ctxFor())).status).toBe('pass');
  });
  it('fails for a world-readable file with chmod as the fix', async () => {
    await put(root, '/etc/sentinel-cef/key', 'c2VjcmV0\n', 0o644);
    const r = await fwd.checkSecret(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('0644');
    expect(r.fix).toBe('chmod 600 /etc/sentinel-cef/key');
  });
  it('fails for a missing or empty file', async () => {
    expect((await fwd.checkSecret(ctxFor())).message).toContain('missing');
    await put(root, '/etc/sentinel-cef/key', '', 0o600);
    expect((await fwd.checkSecret(ctxFor())).message).toContain('empty');
  });
});

describe('forwarder.running', () => {
  // The unit is PartOf=rsyslog.service: `systemctl stop rsyslog` stops it too, and starting rsyslog is the fix.
  it('names a stopped rsyslog as why a unit tied to it is inactive', async () => {
    await put(root, '/proc/1/comm', 'systemd\n');
    await put(root, '/run/systemd/system/.keep', '');
    await put(root, '/etc/systemd/system/sentinel-cef-forwarder.service', '[Unit]\nAfter=rsyslog.service\nPartOf=rsyslog.service\n');
    const table = {
      'systemctl is-active sentinel-cef-forwarder.service': { exitCode: 3, stdout: 'inactive\n' },
      'systemctl is-active rsyslog.service': { exitCode: 3, stdout: 'inactive\n' },
    };
    const down = await fwd.checkRunning(ctxFor({ exec: fakeExec(table) }));
    expect(down.message).toBe(
      'sentinel-cef-forwarder.service is inactive: it stops with rsyslog (PartOf=rsyslog.service), which is inactive',
    );
    expect(down.fix).toContain('systemctl start rsyslog');
    table['systemctl is-active rsyslog.service'] = { exitCode: 0, stdout: 'active\n' };
    expect((await fwd.checkRunning(ctxFor({ exec: fakeExec(table) }))).message).toBe('sentinel-cef-forwarder.service is inactive');
  });

  it('asks systemctl when PID 1 is systemd', async () => {
    await put(root, '/proc/1/comm', 'systemd\n');
    await put(root, '/run/systemd/system/.keep', '');
    const calls: string[][] = [];
    const down = await fwd.checkRunning(
      ctxFor({
        exec: fakeExec({ 'systemctl is-active sentinel-cef-forwarder.service': { exitCode: 3, stdout: 'inactive\n' } }, { calls }),
      }),
    );
    expect(down.status).toBe('fail');
    expect(down.message).toContain('inactive');
    expect(down.fix).toContain('systemctl restart sentinel-cef-forwarder.service');
    expect(commandLines(calls)).toEqual(['systemctl is-active sentinel-cef-forwarder.service']);
    const up = await fwd.checkRunning(
      ctxFor({ exec: fakeExec({ 'systemctl is-active sentinel-cef-forwarder.service': { stdout: 'active\n' } }) }),
    );
    expect(up.status).toBe('pass');
  });

  it('follows the supervisor and forwarder pidfiles without systemd, and starts it through the installer', async () => {
    await put(root, '/proc/1/comm', 'bash\n');
    await put(root, '/run/sentinel-cef/supervisor.pid', '777\n');
    const started: string[] = [];
    const services = {
      startForwarder: async (c: string) => (started.push(c), 'started'),
      restartDaemon: async () => 'no',
    };
    const stale = await fwd.checkRunning(ctxFor({ services }));
    expect(stale.status).toBe('fail');
    expect(stale.message).toContain('stale pidfile /run/sentinel-cef/supervisor.pid: pid 777');
    await stale.safeFix!.apply();
    expect(started).toEqual([CONFIG]);
    await addProcess(root, 777, 'node', ['node', 'sentinel-cef-supervise.mjs']);
    await put(
      root,
      '/var/log/sentinel-cef/forwarder.log',
      '2026-11-22T08:00:00Z supervisor: forwarder exited (code 2, signal null); restarting in 4000 ms\n',
    );
    const crashing = await fwd.checkRunning(ctxFor());
    expect(crashing.status).toBe('fail');
    expect(crashing.message).toContain('keeps exiting: 2026-11-22T08:00:00Z supervisor: forwarder exited (code 2');
    await put(root, '/run/sentinel-cef/forwarder.pid', '778\n');
    await addProcess(root, 778, 'node', ['node', '/usr/lib/sentinel-cef/forwarder.mjs']);
    await put(
      root,
      '/var/log/sentinel-cef/forwarder.log',
      '2026-11-22T08:00:00Z supervisor: forwarder exited (code 2, signal null); restarting in 4000 ms\n{"level":30,"msg":"forwarder started"}\n',
    );
    const up = await fwd.checkRunning(ctxFor());
    expect(up).toMatchObject({ status: 'pass', message: 'pid 778 (supervisor pid 777)' });
  });

  // A forwarder slow to answer once (a busy machine) is asked again, longer, before it is called hung (kill -9 offered).
  it('waits longer once for a slow health answer before calling the forwarder hung', async () => {
    admin.healthDelayMs = 10_000;
    const h = await ctxFor({}, { admin: `127.0.0.1:${admin.port}` }).health();
    expect(h.reachable, h.error).toBe(true);
  }, 20_000);

  // The supervisor (and a Type=simple unit) returns before the forwarder listens: probes sent right after the fix
  // found nothing on the intake port (CI). The fix is done when the admin endpoint answers, and fails honestly if not.
  it('the restart fix waits until the forwarder answers, and fails when it never does', async () => {
    await put(root, '/proc/1/comm', 'bash\n');
    const waited: Array<[string, number]> = [];
    const services = (ok: boolean): TroubleshootDeps['services'] => ({
      startForwarder: async () => 'started',
      restartDaemon: async () => 'no',
      forwarderReady: async (base, ms) => (waited.push([base, ms]), ok),
    });
    const down = await fwd.checkRunning(ctxFor({ services: services(true) }, { admin: '127.0.0.1:25999' }));
    await down.safeFix!.apply();
    expect(waited).toEqual([['http://127.0.0.1:25999', 30_000]]);
    const never = await fwd.checkRunning(ctxFor({ services: services(false) }, { admin: '127.0.0.1:25999' }));
    await expect(never.safeFix!.apply()).rejects.toThrow(
      'the forwarder was started but its admin endpoint http://127.0.0.1:25999 did not answer within 30 s',
    );
  });

  // Fault matrix (sink-eperm, queue-unwritable): the supervisor restarts a forwarder that exits at startup, so a
  // child is alive most of the time. Last exit after the last start, and no admin answer: a crash loop, with the
  // forwarder's own last line as the cause, and no restart offered (the supervisor already retries).
  it('calls a supervised forwarder that exits at startup a crash loop even while its new child is alive', async () => {
    await put(root, '/proc/1/comm', 'bash\n');
    await put(root, '/run/sentinel-cef/supervisor.pid', '777\n');
    await put(root, '/run/sentinel-cef/forwarder.pid', '778\n');
    await addProcess(root, 777, 'node', ['node', 'sentinel-cef-supervise.mjs']);
    await addProcess(root, 778, 'node', ['node', '/usr/lib/sentinel-cef/forwarder.mjs']);
    await put(
      root,
      '/var/log/sentinel-cef/forwarder.log',
      [
        '{"level":40,"pid":70,"error":"cannot write /srv/old.ndjson: EISDIR","msg":"delivery failed"}',
        '{"level":30,"pid":70,"msg":"forwarder stopped"}',
        'sentinel-cef forwarder: sink.file: cannot write under /srv/cef — choose a writable path for --sink file:PATH',
        '2026-11-22T08:00:00Z supervisor: forwarder exited (code 2, signal null); restarting in 1000 ms',
      ].join('\n'),
    );
    const r = await fwd.checkRunning(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('keeps exiting: sentinel-cef forwarder: sink.file: cannot write under /srv/cef');
    expect(r.message).not.toContain('EISDIR');
    expect(r.fix).toContain('`chown sentinel-cef: /srv/cef`');
    expect(r.safeFix).toBeUndefined();
    // Killed by a signal (--fix's own kill of a hung forwarder) is not a crash: the new child counts as running.
    await put(
      root,
      '/var/log/sentinel-cef/forwarder.log',
      '2026-11-22T08:00:00Z supervisor: forwarder exited (code null, signal SIGKILL); restarting in 1000 ms\n',
    );
    expect(await fwd.checkRunning(ctxFor())).toMatchObject({ status: 'pass', message: 'pid 778 (supervisor pid 777)' });
  });

  it('does not take another forwarder on the machine (other bundle or config) for ours', async () => {
    await addProcess(root, 902, 'node', ['/usr/bin/node', '/home/dev/dist/forwarder.mjs', '--config', '/tmp/other.json']);
    await addProcess(root, 903, 'node', ['/usr/bin/node', '/usr/lib/sentinel-cef/forwarder.mjs', '--config', '/tmp/other.json']);
    expect((await fwd.checkRunning(ctxFor())).status).toBe('fail');
  });

  it('finds the forwarder process when there is no pidfile', async () => {
    await addProcess(root, 901, 'node', ['/usr/bin/node', '/usr/lib/sentinel-cef/forwarder.mjs', '--config', CONFIG]);
    const r = await fwd.checkRunning(ctxFor());
    expect(r.status).toBe('pass');
    expect(r.message).toContain('901');
  });
});

describe('admin-endpoint checks against a fake admin server', () => {
  beforeEach(async () => {
    await writeConfig({ sink: { type: 'file', path: '/tmp/x' }, queue: { dir: '/var/lib/sentinel-cef/queue', maxBytes: 1000 } });
  });

  it('reports health, and fails when the endpoint is down', async () => {
    const ok = await fwd.checkAdmin(ctxFor());
    expect(ok.status).toBe('pass');
    expect(ok.message).toContain('version 0.1.0');
    admin.healthStatus = 503;
    admin.health = health({ status: 'degraded' });
    expect((await fwd.checkAdmin(ctxFor())).status).toBe('warn');
    await admin.close();
    const down = await fwd.checkAdmin(ctxFor());
    expect(down.status).toBe('fail');
    expect(down.message).toContain('ECONNREFUSED');
    admin = await startFakeAdmin();
  });

  it('honours --admin over the config', async () => {
    const other = await startFakeAdmin(health({ version: '9.9.9' }));
    try {
      const r = await fwd.checkAdmin(ctxFor({}, { admin: `127.0.0.1:${other.port}` }));
      expect(r.message).toContain('9.9.9');
    } finally {
      await other.close();
    }
  });

  it('grades the queue by fill and age', async () => {
    const q = (queue: Partial<ReturnType<typeof health>['queue']>) => {
      admin.health = health({ queue: { bytes: 0, records: 0, maxBytes: 1000, oldestAgeSec: null, intakePaused: false, ...queue } });
      return fwd.checkQueue(ctxFor());
    };
    expect((await q({})).status).toBe('pass');
    expect((await q({ records: 5, bytes: 600, oldestAgeSec: 10 })).status).toBe('warn');
    expect((await q({ records: 5, bytes: 10, oldestAgeSec: 900 })).status).toBe('warn');
    const paused = await q({ records: 50, bytes: 990, oldestAgeSec: 900, intakePaused: true });
    expect(paused.status).toBe('fail');
    expect(paused.message).toContain('intake paused');
  });

  it('counts dead letters and shows the last reason from the file', async () => {
    expect((await fwd.checkDeadLetters(ctxFor())).status).toBe('pass');
    admin.health = health({ counters: { ...health().counters, deadLettered: 2 } });
    await put(root, '/var/lib/sentinel-cef/dead-letter.ndjson', '{"reason":"400 bad column"}\n{"reason":"field too long"}\n');
    const r = await fwd.checkDeadLetters(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('2 since start');
    expect(r.message).toContain('last reason: field too long');
  });

  it('reports the dead-letter size against its cap, the entries deleted at the cap and the oldest entry', async () => {
    admin.health = health({
      counters: { ...health().counters, deadLettered: 9 },
      deadLetters: { file: '/var/lib/sentinel-cef/dead-letter.ndjson', bytes: 300, maxBytes: 1024 * 1024, files: 4, droppedEntries: 40 },
    });
    const line = (t: string) => JSON.stringify({ time: t, reason: 'parse_failure', raw: 'CEF:x' }) + '\n';
    await put(root, '/var/lib/sentinel-cef/dead-letter.ndjson', line('2026-12-03T00:00:00.000Z'));
    await put(root, '/var/lib/sentinel-cef/dead-letter.ndjson.1', line('2026-12-02T00:00:00.000Z'));
    await put(root, '/var/lib/sentinel-cef/dead-letter.ndjson.2', line('2026-12-01T00:00:00.000Z') + line('2026-12-01T01:00:00.000Z'));
    const r = await fwd.checkDeadLetters(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('in 3 files');
    expect(r.message).toMatch(/ of \d+(\.\d)? MiB in 3 files/);
    expect(r.message).toContain('40 oldest deleted at the cap');
    expect(r.message).toContain('oldest from 2026-12-01T00:00:00.000Z');
    expect(r.details).toMatchObject({ rotatedFiles: 2, droppedEntries: 40, oldestEntry: '2026-12-01T00:00:00.000Z', fileCount: 1 });
    expect((r.details as { bytes: number }).bytes).toBe(4 * line('2026-12-01T00:00:00.000Z').length);
    expect(r.fix).toContain('deadLetter.maxBytes');
  });

  it.each([
    [403, 'logs-ingestion', /Monitoring Metrics Publisher/],
    [403, 'log-analytics', /shared key/],
    [404, 'logs-ingestion', /DCR immutable id/],
    [413, 'logs-ingestion', /batch.maxBytes/],
  ])('turns a failed delivery (HTTP %i, %s) into a fix', async (status, sinkType, re) => {
    const sink =
      sinkType === 'logs-ingestion'
        ? { type: 'logs-ingestion', endpoint: 'https://dce.example.com', dcrImmutableId: 'dcr-1', auth: { kind: 'managed-identity' } }
        : { type: 'log-analytics', workspaceId: WS };
    await writeConfig({ sink });
    admin.health = health({ lastDelivery: { ok: false, at: '2026-11-22T08:00:00Z', httpStatus: status, error: 'refused' } });
    const r = await fwd.checkDelivery(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain(`HTTP ${status}`);
    expect(r.fix).toMatch(re);
  });

  // Fault matrix row li-token-refused: the token authority refuses before any HTTP call, so there is no status.
  it.each([
    ['AADSTS7000215: Invalid client secret provided.', 'the client secret is wrong or expired (see azure.credentials)'],
    [
      'AADSTS700016: Application with identifier x was not found in the directory',
      'Entra ID refused the credentials (see azure.credentials)',
    ],
  ])('names the credentials for a token refusal (%s), not the forwarder log', async (aad, fix) => {
    await writeConfig({
      sink: { type: 'logs-ingestion', endpoint: 'https://dce.example.com', dcrImmutableId: 'dcr-1', auth: { kind: 'managed-identity' } },
    });
    const error = `cannot get an Entra ID token for https://monitor.azure.com//.default: invalid_client: Error(s):  - Description: ${aad}`;
    admin.health = health({ lastDelivery: { ok: false, at: '2026-11-22T08:00:00Z', error } });
    const r = await fwd.checkDelivery(ctxFor());
    expect(r.fix).toContain(fix);
    expect(r.fix).not.toContain('forwarder log');
  });

  it('passes after a good delivery and notes when nothing was sent yet', async () => {
    expect((await fwd.checkDelivery(ctxFor())).status).toBe('pass');
    admin.health = health({ lastDelivery: null, counters: { ...health().counters, received: 0 } });
    expect((await fwd.checkDelivery(ctxFor())).status).toBe('skip');
  });

  // The pid file outlives a forwarder that died without its supervisor; its pid may then name another user's
  // stopped job. That process is not the forwarder: it must not be reported as a hung forwarder (--fix would
  // SIGKILL it) nor keep the checks from asking the forwarder that answers.
  it('does not take a stopped process of another program, named by a stale pid file, for the forwarder', async () => {
    await put(root, '/proc/1/comm', 'bash\n');
    await put(root, '/run/sentinel-cef/forwarder.pid', '4242\n');
    await addProcess(root, 4242, 'vim', ['vim', 'notes.txt']);
    await put(root, '/proc/4242/stat', '4242 (vim) T 1 4242 4242 0 -1 4194560\n');
    const ctx = ctxFor();
    expect(await ctx.stoppedForwarder()).toBeNull();
    const running = await fwd.checkRunning(ctx);
    expect(running.details?.hung).toBeUndefined();
    expect(running.safeFix?.description ?? '').not.toContain('4242');
    expect((await fwd.checkAdmin(ctxFor())).status).toBe('pass');
  });

  // The supervisor's command line holds the forwarder's (after `--`): without a pid file it was found as a forwarder.
  it('does not take the supervisor for the forwarder', async () => {
    await put(root, '/proc/1/comm', 'bash\n');
    const fwdArgv = ['/usr/bin/node', '/usr/lib/sentinel-cef/forwarder.mjs', '--config', CONFIG];
    await addProcess(root, 777, 'node', [
      '/usr/bin/node',
      '/usr/lib/sentinel-cef/sentinel-cef-supervise.mjs',
      '--pidfile',
      'x',
      '--',
      ...fwdArgv,
    ]);
    await put(root, '/proc/777/stat', '777 (node) T 1 777 777 0 -1 4194560\n');
    await addProcess(root, 778, 'node', fwdArgv);
    const ctx = ctxFor();
    expect(await ctx.forwarderPids()).toEqual([778]);
    expect(await ctx.stoppedForwarder()).toBeNull();
  });

  it('warns when the admin endpoint is disabled in the config', async () => {
    await put(root, CONFIG, JSON.stringify({ sink: { type: 'file', path: '/tmp/x' }, admin: false }));
    const r = await fwd.checkAdmin(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('disabled');
  });
});

// Issue 16 item 9: an unwritable file sink names the object, the cause and the exact command.
describe('forwarder.delivery with an unwritable file sink', () => {
  const path = '/var/lib/sentinel-cef/out.ndjson';
  it.each([
    [
      'EISDIR',
      `open ${path}: EISDIR illegal operation on a directory, open '${path}'`,
      `${path} is a directory, not a file: point sink.path at a file inside it (e.g. ${path}/rows.ndjson)`,
    ],
    [
      'EACCES',
      `open ${path}: EACCES permission denied, open '${path}'`,
      // Never a chown of our root-owned state directory (review finding 1, the same rule for the sink).
      "may not write /var/lib/sentinel-cef/out.ndjson, and /var/lib/sentinel-cef is not the forwarder's to own: point sink.path into a directory of its own (e.g. /var/lib/sentinel-cef/data/out.ndjson)",
    ],
    ['EPERM', `append ${path}: EPERM operation not permitted, write`, `\`chattr -i -a ${path}\``],
    ['ENOSPC', `append ${path}: ENOSPC no space left on device, write`, '`df -h /var/lib/sentinel-cef`'],
  ])('%s', async (_code, error, fix) => {
    await writeConfig({ sink: { type: 'file', path } });
    admin.health = health({ lastDelivery: { ok: false, at: 'now', error } });
    const r = await fwd.checkDelivery(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain(error);
    expect(r.fix).toContain(fix);
    expect(r.fix).not.toContain('see the forwarder log');
    expect(r.fix).not.toMatch(/chown \S+ \/var\/lib\/sentinel-cef\b(?!\/)/);
  });
});

// Review finding 5: the ports the daemon must forward to are read as the forwarder reads its listen URLs.
describe('Context.forwarderPorts', () => {
  it('reads a port behind a ?proxy= query, not the default', async () => {
    await writeConfig({
      listen: ['tcp://0.0.0.0:6514?proxy=v2', 'relp://127.0.0.1:2514?proxy=v1', 'udp://127.0.0.1:25230'],
      sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' },
    });
    expect(await ctxFor().forwarderPorts()).toEqual([6514, 2514, 25230]);
  });
});

// Issue 16 item 7: a queue dir the service user cannot write. Quote the forwarder's own error, not the
// supervisor's restart line, and judge permissions as the service user (as root everything is writable).
describe('forwarder.running when the service user cannot write the queue', () => {
  const QUEUE = '/var/lib/sentinel-cef/queue';
  const ERR = `{"level":60,"time":1763798399000,"msg":"cannot open the queue ${QUEUE}: EACCES: permission denied, open '${QUEUE}/ledger'"}`;
  const SUP = '2026-11-22T08:00:00Z supervisor: forwarder exited (code 1, signal null); restarting in 4000 ms';
  beforeEach(async () => {
    await chmod(root, 0o755);
    await writeConfig({ sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' }, queue: { dir: QUEUE } });
    await put(root, '/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nsentinel-cef:x:998:998::/var/lib/sentinel-cef:/usr/sbin/nologin\n');
    await put(root, '/proc/1/comm', 'bash\n');
    await addProcess(root, 777, 'node', ['node', 'sentinel-cef-supervise.mjs']);
    await put(root, '/run/sentinel-cef/supervisor.pid', '777\n');
    await put(root, '/var/log/sentinel-cef/forwarder.log', `${ERR}\n${SUP}\n`);
    for (const d of ['/var', '/var/lib', '/var/lib/sentinel-cef', QUEUE]) {
      await mkdir(join(root, d), { recursive: true });
      await chmod(join(root, d), 0o755);
    }
    await chown(join(root, '/var/lib/sentinel-cef'), 998, 998);
  });

  it('names the directory, its owner and mode, quotes the forwarder error and gives the chown', async () => {
    await chown(join(root, QUEUE), 0, 0);
    const r = await fwd.checkRunning(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain(`keeps exiting: ${ERR}`);
    expect(r.message).not.toContain('supervisor: forwarder exited');
    expect(r.message).toContain(`the service user sentinel-cef cannot write ${QUEUE} (owner root:root, mode 0755)`);
    expect(r.fix).toBe(`\`chown -R sentinel-cef: ${QUEUE}\` (or re-run \`sentinel-cef install\`), then restart the forwarder`);
    // The queue directory is ours: --fix gives it back to the service user, then restarts the forwarder.
    const started: string[] = [];
    const exec = fakeExec({}, { otherwise: () => ({}) });
    const fixable = await fwd.checkRunning(
      ctxFor({ exec, services: { startForwarder: async (c: string) => (started.push(c), 'started'), restartDaemon: async () => 'no' } }),
    );
    await fixable.safeFix!.apply();
    expect(commandLines(exec.calls)).toEqual([`chown -R 998:998 ${QUEUE}`, `chmod 0750 ${QUEUE}`]);
    expect(started).toEqual([CONFIG]);
  });

  // Review finding: a missing queue under a root-owned parent (our state dir, or /srv) must never be answered with
  // a chown of that parent; create the queue alone for the service user.
  it.each([
    ['/var/lib/sentinel-cef', QUEUE],
    ['/srv', '/srv/q'],
  ])('a missing queue whose parent %s is root-owned: create only the queue, never chown the parent', async (parent, queue) => {
    await writeConfig({ sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' }, queue: { dir: queue } });
    await rm(join(root, QUEUE), { recursive: true, force: true });
    await mkdir(join(root, parent), { recursive: true });
    await chown(join(root, parent), 0, 0);
    await chmod(join(root, parent), 0o755);
    const exec = fakeExec({}, { otherwise: () => ({}) });
    const r = await fwd.checkRunning(
      ctxFor({ exec, services: { startForwarder: async () => 'started', restartDaemon: async () => 'no' } }),
    );
    expect(r.message).toContain(`the service user sentinel-cef cannot write ${parent} (owner root:root, mode 0755)`);
    expect(r.fix).toBe(
      `\`install -d -o sentinel-cef -g 998 -m 0750 ${queue}\` (or re-run \`sentinel-cef install\`), then restart the forwarder`,
    );
    expect(r.fix).not.toContain('chown');
    await r.safeFix!.apply();
    expect(commandLines(exec.calls)).toEqual([`install -d -o 998 -g 998 -m 0750 ${queue}`]);
  });

  it('with the queue writable, suggests the check as the service user, not as root', async () => {
    await chown(join(root, QUEUE), 998, 998);
    const r = await fwd.checkRunning(ctxFor());
    expect(r.message).not.toContain('cannot write');
    expect(r.fix).toContain('`runuser -u sentinel-cef -- sentinel-cef forward --check --config /etc/sentinel-cef/forwarder.json`');
  });
});

// Issue 16: under systemd a forwarder that exits at start-up was only "activating/failed" with a restart as the
// fix. Its own error comes from the unit's journal; the cause is judged as the unit's User=, and a restart is
// offered only after a fix that removes the cause.
describe('forwarder.running under systemd when the forwarder exits at start-up', () => {
  const UNIT = 'sentinel-cef-forwarder.service';
  const QUEUE = '/var/lib/sentinel-cef/data/queue';
  const SINK_DIR = '/srv/cef';
  const journal = (...own: string[]) =>
    [
      `Started ${UNIT} - sentinel-cef forwarder (CEF to Microsoft Sentinel).`,
      ...own,
      `${UNIT}: Main process exited, code=exited, status=2/INVALIDARGUMENT`,
      `${UNIT}: Failed with result 'exit-code'.`,
      `${UNIT}: Scheduled restart job, restart counter is at 4.`,
      `Stopped ${UNIT} - sentinel-cef forwarder (CEF to Microsoft Sentinel).`,
      `Started ${UNIT} - sentinel-cef forwarder (CEF to Microsoft Sentinel).`,
      '',
    ].join('\n');
  function systemdCtx(log: string, state = 'activating', calls: string[][] = [], started: string[] = []) {
    const table = {
      [`systemctl is-active ${UNIT}`]: { exitCode: 3, stdout: `${state}\n` },
      [`journalctl -u ${UNIT} -n 60 -o cat --no-pager`]: { stdout: log },
      chown: {},
      chmod: {},
      systemctl: {},
    };
    return ctxFor({
      exec: fakeExec(table, { calls }),
      services: { startForwarder: async (c: string) => (started.push(c), 'started'), restartDaemon: async () => 'no' },
    });
  }
  beforeEach(async () => {
    await chmod(root, 0o755);
    await put(root, '/proc/1/comm', 'systemd\n');
    await put(root, '/run/systemd/system/.keep', '');
    await put(root, '/etc/systemd/system/sentinel-cef-forwarder.service', '[Service]\nUser=sentinel-cef\nProtectSystem=strict\n');
    await put(root, '/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nsentinel-cef:x:998:998::/var/lib/sentinel-cef:/usr/sbin/nologin\n');
    for (const d of ['/var', '/var/lib', '/var/lib/sentinel-cef', '/var/lib/sentinel-cef/data', QUEUE, '/srv', SINK_DIR]) {
      await mkdir(join(root, d), { recursive: true });
      await chmod(join(root, d), 0o755);
    }
    for (const d of ['/var/lib/sentinel-cef/data', QUEUE]) await chown(join(root, d), 998, 998);
  });

  it('names an unwritable sink directory with the chown, and offers no restart', async () => {
    await writeConfig({ sink: { type: 'file', path: `${SINK_DIR}/rows.ndjson` }, queue: { dir: QUEUE } });
    const r = await fwd.checkRunning(
      systemdCtx(
        journal(`sentinel-cef forwarder: sink.file: cannot write under ${SINK_DIR} — choose a writable path for --sink file:PATH`),
      ),
    );
    expect(r.status).toBe('fail');
    expect(r.message).toBe(
      `${UNIT} is activating: the forwarder keeps exiting at start-up, its error: sink.file: cannot write under ${SINK_DIR} — choose a writable path for --sink file:PATH`,
    );
    expect(r.fix).toBe(
      `let sentinel-cef write there (${SINK_DIR}: owner root:root, mode 0755): \`chown sentinel-cef: ${SINK_DIR}\`, or choose a path it can write in "sink.path" of ${CONFIG}, then \`systemctl restart ${UNIT}\``,
    );
    expect(r.safeFix).toBeUndefined();
  });

  it('says the unit keeps a writable directory read-only when it is not in ReadWritePaths=', async () => {
    await chown(join(root, SINK_DIR), 998, 998);
    await writeConfig({ sink: { type: 'file', path: `${SINK_DIR}/rows.ndjson` }, queue: { dir: QUEUE } });
    const r = await fwd.checkRunning(systemdCtx(journal(`sentinel-cef forwarder: sink.file: cannot write under ${SINK_DIR}`), 'failed'));
    expect(r.message).toContain(
      `${UNIT} is failed: the forwarder keeps exiting at start-up, its error: sink.file: cannot write under ${SINK_DIR}`,
    );
    expect(r.fix).toContain(`${SINK_DIR} is read-only inside the unit (ProtectSystem=strict, not in its ReadWritePaths=)`);
    expect(r.safeFix).toBeUndefined();
  });

  it("quotes the forwarder's pino error for an unwritable queue and gives it back, then restarts", async () => {
    await chown(join(root, QUEUE), 0, 0);
    await chmod(join(root, QUEUE), 0o700);
    await writeConfig({ sink: { type: 'file', path: '/var/lib/sentinel-cef/data/out.ndjson' }, queue: { dir: QUEUE } });
    const err = `{"level":60,"time":1763798399000,"pid":812,"msg":"cannot open the queue ${QUEUE}","err":{"type":"Error","message":"EACCES: permission denied, open '${QUEUE}/ledger'"}}`;
    const calls: string[][] = [];
    const r = await fwd.checkRunning(
      systemdCtx(journal('{"level":30,"msg":"listening","listen":"tcp://127.0.0.1:25226"}', err), 'activating', calls),
    );
    expect(r.message).toContain(
      `the forwarder keeps exiting at start-up, its error: cannot open the queue ${QUEUE}: EACCES: permission denied, open '${QUEUE}/ledger'`,
    );
    expect(r.message).toContain(`the service user sentinel-cef cannot write ${QUEUE} (owner root:root, mode 0700)`);
    expect(r.fix).toBe(`\`chown -R sentinel-cef: ${QUEUE}\` (or re-run \`sentinel-cef install\`), then restart the forwarder`);
    await r.safeFix!.apply();
    expect(commandLines(calls).slice(-3)).toEqual([`chown -R 998:998 ${QUEUE}`, `chmod 0750 ${QUEUE}`, `systemctl restart ${UNIT}`]);
  });

  it("names the unit's own User= for an unwritable queue, in the message and the chown", async () => {
    await put(root, '/etc/systemd/system/sentinel-cef-forwarder.service', '[Service]\nUser=cefsvc\nProtectSystem=strict\n');
    await put(root, '/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\ncefsvc:x:997:997::/var/lib/sentinel-cef:/usr/sbin/nologin\n');
    await chown(join(root, QUEUE), 0, 0);
    await chmod(join(root, QUEUE), 0o700);
    await writeConfig({ sink: { type: 'file', path: '/var/lib/sentinel-cef/data/out.ndjson' }, queue: { dir: QUEUE } });
    const err = `{"level":60,"msg":"cannot open the queue ${QUEUE}","err":{"message":"EACCES: permission denied"}}`;
    const r = await fwd.checkRunning(systemdCtx(journal(err)));
    expect(r.message).toContain(`the service user cefsvc cannot write ${QUEUE}`);
    expect(r.fix).toBe(`\`chown -R cefsvc: ${QUEUE}\` (or re-run \`sentinel-cef install\`), then restart the forwarder`);
  });

  it('names an unreadable TLS key as the service user would meet it, never echoing a secret', async () => {
    const key = '/etc/sentinel-cef/tls/key.pem';
    await put(root, key, '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n');
    await chmod(join(root, key), 0o600);
    const secret = 'Zq8~s3cr3t-value-0123456789';
    await put(root, '/etc/sentinel-cef/client-secret', `${secret}\n`);
    await writeConfig({
      sink: {
        type: 'logs-ingestion',
        endpoint: 'https://dce.example.ingest.monitor.azure.com',
        dcrImmutableId: 'dcr-00000000000000000000000000000000',
        auth: { kind: 'client-secret', tenantId: 't', clientId: 'c', clientSecretFile: '/etc/sentinel-cef/client-secret' },
      },
      tls: { certFile: '/etc/sentinel-cef/tls/cert.pem', keyFile: key },
      queue: { dir: QUEUE },
    });
    const r = await fwd.checkRunning(
      systemdCtx(
        journal(
          `sentinel-cef forwarder: tls.keyFile: cannot read ${key}: EACCES (client_secret=${secret}) — create it (0600) or fix the path`,
        ),
      ),
    );
    expect(r.message).toContain(`the forwarder keeps exiting at start-up, its error: tls.keyFile: cannot read ${key}: EACCES`);
    expect(JSON.stringify(r)).not.toContain(secret);
    expect(r.fix).toBe(
      `let sentinel-cef read ${key} (${key}: owner root:root, mode 0600): \`chown sentinel-cef: ${key} && chmod 600 ${key}\`, then \`systemctl restart ${UNIT}\``,
    );
    expect(r.safeFix).toBeUndefined();
  });

  it.each(SECRET_SOURCES)('never quotes the $source from a start-up error', async ({ secret, files, config }) => {
    for (const [path, text] of Object.entries(files)) await put(root, path, text, 0o600);
    await writeConfig({ ...config, queue: { dir: QUEUE } });
    const r = await fwd.checkRunning(systemdCtx(journal(`sentinel-cef forwarder: cannot start: unexpected ${secret} in input`)));
    expect(r.message).toContain('its error: cannot start: unexpected [REDACTED] in input');
    expect(JSON.stringify(r)).not.toContain(secret);
  });

  // One permission walk for the queue and the start-up fault: each case below was missed by one of the two before.
  it('judges a symlinked parent of the queue by its target, not the link', async () => {
    await rm(join(root, '/var/lib/sentinel-cef/data'), { recursive: true });
    await mkdir(join(root, '/srv/cefdata/queue'), { recursive: true });
    await chown(join(root, '/srv/cefdata/queue'), 998, 998);
    await chmod(join(root, '/srv/cefdata'), 0o700);
    await symlink('../../../srv/cefdata', join(root, '/var/lib/sentinel-cef/data'));
    await writeConfig({ sink: { type: 'file', path: '/var/lib/sentinel-cef/data/out.ndjson' }, queue: { dir: QUEUE } });
    const err = `{"level":60,"msg":"cannot open the queue ${QUEUE}","err":{"message":"EACCES: permission denied"}}`;
    const r = await fwd.checkRunning(systemdCtx(journal(err)));
    expect(r.message).toContain(`the service user sentinel-cef cannot enter /srv/cefdata (owner root:root, mode 0700)`);
    expect(r.fix).toBe('`chmod o+x /srv/cefdata`, then restart the forwarder');
    expect(r.safeFix).toBeUndefined();
  });

  it('names the parent it may not create a missing sink directory in', async () => {
    await writeConfig({ sink: { type: 'file', path: `${SINK_DIR}/new/rows.ndjson` }, queue: { dir: QUEUE } });
    const r = await fwd.checkRunning(systemdCtx(journal(`sentinel-cef forwarder: sink.file: cannot write under ${SINK_DIR}/new`)));
    expect(r.fix).toBe(
      `create ${SINK_DIR}/new for sentinel-cef (${SINK_DIR}: owner root:root, mode 0755): \`install -d -o sentinel-cef ${SINK_DIR}/new\`, or choose a path it can write in "sink.path" of ${CONFIG}, then \`systemctl restart ${UNIT}\``,
    );
  });

  it('keeps the restart for a unit that ran and crashed later, or was stopped', async () => {
    await writeConfig({ sink: { type: 'file', path: '/var/lib/sentinel-cef/data/out.ndjson' }, queue: { dir: QUEUE } });
    const later = await fwd.checkRunning(
      systemdCtx(journal('{"level":30,"msg":"forwarder started"}', '{"level":60,"msg":"out of memory"}')),
    );
    expect(later.message).toBe(`${UNIT} is activating`);
    expect(later.safeFix).toBeDefined();
    const stopped = await fwd.checkRunning(systemdCtx(`Stopped ${UNIT} - sentinel-cef forwarder.\n`, 'inactive'));
    expect(stopped.message).toBe(`${UNIT} is inactive`);
    expect(stopped.fix).toContain(`systemctl restart ${UNIT}`);
  });
});
