import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootVm, CLI, cefLines, lossAndDups, vmSkipReason, waitRows, type Vm, ROWS, UNIT } from './vm-env.js';

const reason = vmSkipReason();

// A smoke on the oldest and newest supported Debian: install with each suite's own rsyslog, a CEF line
// arrives under the hardened unit, uninstall leaves the unit gone and rsyslog running.
describe.skipIf(reason !== null).each(['bullseye', 'trixie'] as const)('Debian %s with systemd as PID 1 (smoke)', (suite) => {
  let vm: Vm;

  beforeAll(async () => {
    vm = await bootVm(suite, suite);
    await vm.ok('apt-get install -y -qq --no-install-recommends rsyslog >/dev/null && systemctl is-active rsyslog', { timeout: 180_000 });
  }, 900_000);

  afterAll(async () => {
    await vm?.down();
  }, 120_000);

  it('installs, delivers and uninstalls', async () => {
    const r = await vm.sh(`CI=true ${CLI} install --sink file:${ROWS} --yes`, { timeout: 180_000 });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect((await vm.sh(`systemctl is-active ${UNIT}`)).stdout.trim()).toBe('active');
    const verify = await vm.sh(`systemd-analyze verify /etc/systemd/system/${UNIT}.service`);
    expect(verify.exitCode, verify.stderr).toBe(0);
    await vm.ok(`nc -w 30 -N 127.0.0.1 514`, { input: cefLines('smoke', 20) });
    const expected = Array.from({ length: 20 }, (_, i) => `smoke-${i}`);
    expect(lossAndDups(expected, await waitRows(vm, ROWS, expected, 30_000, 'smoke-'))).toEqual({ lost: [], duplicated: [] });
    const u = await vm.sh(`CI=true ${CLI} uninstall --yes --remove-user --purge`, { timeout: 120_000 });
    expect(u.exitCode, u.stdout + u.stderr).toBe(0);
    expect((await vm.sh(`systemctl cat ${UNIT}`)).exitCode).not.toBe(0);
    expect((await vm.sh('systemctl is-active rsyslog')).stdout.trim()).toBe('active');
  }, 400_000);
});
