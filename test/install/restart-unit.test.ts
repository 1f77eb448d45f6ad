import { describe, expect, it } from 'vitest';
import { restartUnit } from '../../src/install/service.js';
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
