import { describe, expect, it } from 'vitest';
import { restartDaemon, restartUnit } from '../../src/install/service.js';
import { createFsRoot } from '../../src/system/fs-root.js';
import { cleanup, makeRoot, procNet, put } from '../troubleshoot/helpers.js';
import { commandLines, fakeExec } from '../helpers/fake-exec.js';

// VM suite: Debian 12's rsyslog 8.2302 died with SIGSEGV at stop; systemd's start right after failed in the unit's
// vanished cgroup (219/CGROUP) and `systemctl restart` exited 1, while Restart=on-failure had rsyslog up 0.3 s later.
describe('restartUnit', () => {
  const failed = { exitCode: 1, stderr: 'Job for rsyslog.service failed because the control process exited with error code.\nSee …' };

  it('accepts a failed restart that systemd repairs itself, and says so', async () => {
    let asked = 0;
    const calls: string[][] = [];
    const exec = fakeExec(
      {
        'systemctl restart rsyslog': failed,
        // activating, then active: Restart=on-failure at work.
        'systemctl is-active rsyslog': () => (++asked < 3 ? { exitCode: 3, stdout: 'activating\n' } : { stdout: 'active\n' }),
      },
      { calls },
    );
    const r = await restartUnit(exec, 'rsyslog', 5_000);
    expect(r).toEqual({
      ok: true,
      detail:
        'systemctl restart rsyslog (it said "Job for rsyslog.service failed because the control process exited with error code."; systemd started it again itself)',
    });
    expect(commandLines(calls)).toEqual(['systemctl restart rsyslog', ...Array(3).fill('systemctl is-active rsyslog')]);
  });

  it('fails with systemctl’s own line when the unit stays down', async () => {
    const exec = fakeExec({ 'systemctl restart rsyslog': failed, 'systemctl is-active rsyslog': { exitCode: 3, stdout: 'failed\n' } });
    expect(await restartUnit(exec, 'rsyslog', 600)).toEqual({
      ok: false,
      detail: 'Job for rsyslog.service failed because the control process exited with error code.',
    });
  });

  it('asks nothing more after a restart that worked', async () => {
    const calls: string[][] = [];
    expect(await restartUnit(fakeExec({ 'systemctl restart syslog-ng': {} }, { calls }), 'syslog-ng')).toEqual({
      ok: true,
      detail: 'systemctl restart syslog-ng',
    });
    expect(commandLines(calls)).toEqual(['systemctl restart syslog-ng']);
  });
});

// The install path itself: restartDaemon goes on to its listening check instead of failing (and rolling back).
describe('restartDaemon under systemd', () => {
  it('accepts a restart systemd repaired, once the daemon listens again', async () => {
    const root = await makeRoot();
    try {
      await put(root, '/proc/net/tcp', procNet([{ local: ['0.0.0.0', 514], st: '0A', inode: 1 }]));
      const exec = fakeExec({
        'systemctl restart rsyslog': {
          exitCode: 1,
          stderr: 'Job for rsyslog.service failed because the control process exited with error code.',
        },
        'systemctl is-active rsyslog': { stdout: 'active\n' },
      });
      const ctx = { fs: createFsRoot(root), exec, init: 'systemd' as const, log: () => {} };
      const r = await restartDaemon(ctx, 'rsyslog', '/usr/sbin/rsyslogd', { port: 514, protocols: ['tcp'] });
      expect(r.ok).toBe(true);
      expect(r.detail).toMatch(/systemd started it again itself/);
    } finally {
      await cleanup(root);
    }
  });
});
