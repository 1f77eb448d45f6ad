import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rename } from 'node:fs/promises';
import { Context } from '../../src/troubleshoot/context.js';
import { restartDaemon } from '../../src/troubleshoot/fixes.js';
import { LAYOUT } from '../../src/troubleshoot/layout.js';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';
import { cleanup, healthyTree, makeRoot, put, startFakeAdmin, testDeps, type FakeAdmin } from './helpers.js';
import { commandLines, fakeExec } from '../helpers/fake-exec.js';

describe('--fix', () => {
  let root: string;
  let admin: FakeAdmin;
  let active: boolean;
  let calls: string[][];
  const programs = () =>
    fakeExec(
      {
        'systemctl is-active sentinel-cef-forwarder.service': () =>
          active ? { stdout: 'active\n' } : { exitCode: 3, stdout: 'inactive\n' },
        'systemctl restart sentinel-cef-forwarder.service': () => {
          active = true;
          return {};
        },
      },
      { calls },
    );
  const opts = { configPath: '/etc/sentinel-cef/forwarder.json', probes: 0, fix: true };

  beforeEach(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    await healthyTree(root, { adminPort: admin.port, daemonPort: 514 });
    await put(root, '/proc/1/comm', 'systemd\n');
    await put(root, '/run/systemd/system/.keep', '');
    active = false;
    calls = [];
  });
  afterEach(async () => {
    await admin.close();
    await cleanup(root);
  });

  it('with --yes restarts the stopped forwarder and re-runs its check', async () => {
    const r = await runTroubleshoot({ ...opts, yes: true }, testDeps(root, { exec: programs() }));
    const c = r.checks.find((x) => x.id === 'forwarder.running')!;
    expect(c.status).toBe('pass');
    expect(c.details?.fix).toMatchObject({ applied: true, before: 'fail' });
    expect(commandLines(calls).filter((x) => x.startsWith('systemctl'))).toEqual([
      'systemctl is-active sentinel-cef-forwarder.service',
      'systemctl restart sentinel-cef-forwarder.service',
      'systemctl is-active sentinel-cef-forwarder.service',
    ]);
    expect(r.ok).toBe(true);
  });

  // Fault matrix (forwarder-frozen): restarting the forwarder leaves rsyslog's forwarding action suspended, a
  // fault the first look could not see. The fresh run after a fix gets a second round of fixes.
  it('fixes what the first round of fixes uncovered', async () => {
    const exec = programs();
    const restartForwarder = exec.table['systemctl restart sentinel-cef-forwarder.service'] as () => object;
    exec.table['systemctl restart sentinel-cef-forwarder.service'] = async () => {
      await rename(`${root}/proc/300`, `${root}/proc-300`);
      return restartForwarder();
    };
    exec.table['systemctl restart rsyslog'] = async () => {
      await rename(`${root}/proc-300`, `${root}/proc/300`);
      return {};
    };
    const r = await runTroubleshoot({ ...opts, yes: true }, testDeps(root, { exec }));
    expect(commandLines(calls).filter((x) => x.startsWith('systemctl restart'))).toEqual([
      'systemctl restart sentinel-cef-forwarder.service',
      'systemctl restart rsyslog',
    ]);
    expect(r.checks.find((x) => x.id === 'daemon.running')).toMatchObject({
      status: 'pass',
      details: { fix: { applied: true, before: 'fail' } },
    });
    expect(r.ok).toBe(true);
  });

  it('asks first without --yes, and leaves things alone on "no"', async () => {
    const asked: string[] = [];
    const r = await runTroubleshoot(opts, testDeps(root, { exec: programs(), confirm: async (q) => (asked.push(q), false) }));
    expect(asked).toEqual(['forwarder.running: restart the forwarder (sentinel-cef-forwarder.service)?']);
    expect(commandLines(calls)).not.toContain('systemctl restart sentinel-cef-forwarder.service');
    expect(r.checks.find((x) => x.id === 'forwarder.running')!.status).toBe('fail');
    expect(r.ok).toBe(false);
  });

  it('reports a fix that failed and keeps the check failing', async () => {
    const exec = fakeExec({
      'systemctl is-active sentinel-cef-forwarder.service': { exitCode: 3, stdout: 'failed\n' },
      'systemctl restart sentinel-cef-forwarder.service': { exitCode: 1, stderr: 'Job for sentinel-cef-forwarder.service failed.' },
    });
    const r = await runTroubleshoot({ ...opts, yes: true }, testDeps(root, { exec }));
    const c = r.checks.find((x) => x.id === 'forwarder.running')!;
    expect(c.status).toBe('fail');
    expect(c.details?.fix).toMatchObject({
      applied: false,
      error: expect.stringContaining('Job for sentinel-cef-forwarder.service failed'),
    });
  });

  it('without --fix never runs a fix', async () => {
    await runTroubleshoot({ ...opts, fix: false }, testDeps(root, { exec: programs() }));
    expect(commandLines(calls)).not.toContain('systemctl restart sentinel-cef-forwarder.service');
  });

  // VM fault matrix (daemon-down): `systemctl start rsyslog` returns before the forwarder it starts (PartOf=, After=,
  // WantedBy=rsyslog.service) listens, and the re-run after --fix saw its admin endpoint refuse.
  it.each([
    ['rsyslog', 'PartOf=rsyslog.service\n', [30_000]],
    ['rsyslog', '', []],
    ['syslog-ng', 'PartOf=rsyslog.service\n', []],
  ] as const)('restarting %s with the unit %j waits for the forwarder as needed', async (daemon, unitLine, waits) => {
    await put(root, LAYOUT.unitPath, `[Unit]\nAfter=rsyslog.service\n${unitLine}[Service]\nType=simple\n`);
    const waited: number[] = [];
    const deps = testDeps(root, {
      exec: fakeExec(
        {
          [`systemctl restart ${daemon}`]: {},
          'systemctl is-active sentinel-cef-forwarder.service': { exitCode: 3, stdout: 'inactive\n' },
          'systemctl is-enabled sentinel-cef-forwarder.service': { stdout: 'enabled\n' },
        },
        { calls },
      ),
      services: {
        startForwarder: async () => 'no',
        restartDaemon: async () => 'no',
        forwarderReady: async (_base, ms) => (waited.push(ms), false),
      },
    });
    // Not listening in time is forwarder.running's to report: the daemon's own fix still succeeds.
    await restartDaemon(new Context(troubleshootOptionsSchema.parse(opts), deps), daemon);
    expect(commandLines(calls).filter((c) => c.includes('restart'))).toEqual([`systemctl restart ${daemon}`]);
    expect(waited).toEqual(waits);
  });

  // VM suite: rsyslog died with SIGSEGV at stop and its next start failed (219/CGROUP); systemd had it up 0.3 s later.
  it('a restart that systemctl calls failed but systemd repairs is no failed fix', async () => {
    let asked = 0;
    const deps = testDeps(root, {
      exec: fakeExec({
        'systemctl restart rsyslog': {
          exitCode: 1,
          stderr: 'Job for rsyslog.service failed because the control process exited with error code.',
        },
        'systemctl is-active rsyslog': () => (++asked < 2 ? { exitCode: 3, stdout: 'activating\n' } : { stdout: 'active\n' }),
      }),
    });
    await expect(restartDaemon(new Context(troubleshootOptionsSchema.parse(opts), deps), 'rsyslog')).resolves.toBeUndefined();
    expect(asked).toBe(2);
  });

  // A unit PartOf= rsyslog comes back with it only if it ran (the restart is propagated to it) or is enabled (the
  // WantedBy=rsyslog.service link starts it); otherwise nothing starts it and waiting would hold --fix for 30 s.
  it.each([
    ['inactive', 'disabled', []],
    ['failed', 'disabled', []],
    ['inactive', 'enabled', [30_000]],
    ['active', 'disabled', [30_000]],
  ] as const)('restarting rsyslog with a forwarder unit %s and %s waits %j', async (state, enabled, waits) => {
    await put(root, LAYOUT.unitPath, '[Unit]\nAfter=rsyslog.service\nPartOf=rsyslog.service\n[Service]\nType=simple\n');
    const waited: number[] = [];
    const deps = testDeps(root, {
      exec: fakeExec(
        {
          'systemctl restart rsyslog': {},
          'systemctl is-active sentinel-cef-forwarder.service': { exitCode: state === 'active' ? 0 : 3, stdout: `${state}\n` },
          'systemctl is-enabled sentinel-cef-forwarder.service': { exitCode: enabled === 'enabled' ? 0 : 1, stdout: `${enabled}\n` },
        },
        { calls },
      ),
      services: {
        startForwarder: async () => 'no',
        restartDaemon: async () => 'no',
        forwarderReady: async (_b, ms) => (waited.push(ms), false),
      },
    });
    await restartDaemon(new Context(troubleshootOptionsSchema.parse(opts), deps), 'rsyslog');
    expect(waited).toEqual(waits);
  });
});
