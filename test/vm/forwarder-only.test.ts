import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootVm, CLI, etcSnapshot, expectExposureAtMost, lossAndDups, vmSkipReason, waitRows, type Vm, ROWS, UNIT } from './vm-env.js';

const reason = vmSkipReason();
if (reason) console.warn(`VM suites skipped: ${reason}`);

const line = (seq: string) => `<134>Dec  6 10:00:00 fw1 CEF:0|Acme|FW|1.0|100|vm event|3|src=10.0.0.1 cs1Label=Seq cs1=${seq}`;

// A forwarder-only node as a scale set runs it: no syslog daemon, the forwarder on 514 under the real unit.
describe.skipIf(reason !== null)('Debian 12, systemd as PID 1: install --forwarder-only', () => {
  let vm: Vm;
  let etcBefore = '';

  beforeAll(async () => {
    vm = await bootVm('bookworm', 'fwdonly');
    etcBefore = await etcSnapshot(vm);
  }, 900_000);

  afterAll(async () => {
    await vm?.down();
  }, 120_000);

  it('installs with no daemon and verifies with a probe to 514', async () => {
    const r = await vm.sh(`CI=true ${CLI} install --forwarder-only --readiness 0.0.0.0:8080 --sink file:${ROWS} --yes`, {
      timeout: 180_000,
    });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Probe \S+: port 514\/tcp -> forwarder -> file \S+: accepted after \d+ ms/);
    expect((await vm.sh('ls /etc/rsyslog.d /etc/syslog-ng 2>&1')).stdout).toMatch(/No such file/);
    const verify = await vm.sh(`systemd-analyze verify /etc/systemd/system/${UNIT}.service`);
    expect([verify.exitCode, verify.stderr.trim()]).toEqual([0, '']);
  }, 240_000);

  it('runs as the service user with CAP_NET_BIND_SERVICE only, and exposure stays at most 1.5', async () => {
    const pid = (await vm.ok(`systemctl show -p MainPID --value ${UNIT}`)).trim();
    const status = await vm.ok(`cat /proc/${pid}/status`);
    const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, 'm').exec(status)![1];
    expect(field('Uid').split(/\s+/)[0]).not.toBe('0');
    expect((await vm.ok(`id -u sentinel-cef`)).trim()).toBe(/^Uid:\s*(\d+)/m.exec(status)![1]);
    // CAP_NET_BIND_SERVICE is bit 10.
    for (const k of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb']) expect([k, BigInt(`0x${field(k)}`)]).toEqual([k, 1n << 10n]);
    console.log(`forwarder-only unit: ${await expectExposureAtMost(vm, 1.5)}`);
  });

  it('delivers CEF sent to 514 over TCP and UDP, IPv4 and IPv6, every row once; readiness answers', async () => {
    const v6 = (await vm.sh('test -s /proc/net/if_inet6')).exitCode === 0;
    const expected: string[] = [];
    for (const host of v6 ? ['127.0.0.1', '::1'] : ['127.0.0.1']) {
      const tag = host === '::1' ? 'v6' : 'v4';
      const tcp = Array.from({ length: 20 }, (_, i) => `tcp-${tag}-${i}`);
      await vm.ok(`nc -w 30 -N ${host} 514`, { input: `${tcp.map(line).join('\n')}\n` });
      await vm.ok(`printf '%s\\n' '${line(`udp-${tag}`)}' | nc -u -w 1 ${host} 514`);
      expected.push(...tcp, `udp-${tag}`);
    }
    expect(lossAndDups(expected, await waitRows(vm, ROWS, expected))).toEqual({ lost: [], duplicated: [] });
    const ready = await vm.ok(`node -e "fetch('http://127.0.0.1:8080/').then(async r=>console.log(r.status, (await r.text()).trim()))"`);
    expect(ready.trim()).toBe('200 ready');
  }, 90_000);

  it('troubleshoot --json: no failure, daemon checks skipped, probes delivered straight to 514', async () => {
    const r = await vm.sh(`CI=true ${CLI} troubleshoot --json --probes 1 --timeout 20`, { timeout: 120_000 });
    const report = JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; message: string }> };
    expect(
      report.checks.filter((c) => c.status === 'fail'),
      r.stdout,
    ).toEqual([]);
    expect(report.checks.filter((c) => c.id.startsWith('daemon.')).every((c) => c.status === 'skip')).toBe(true);
    expect(report.checks.find((c) => c.id === 'e2e.probes')).toMatchObject({ status: 'pass' });
    expect(r.exitCode).toBe(0);
  }, 150_000);

  it('uninstalls: /etc is as before', async () => {
    const r = await vm.sh(`CI=true ${CLI} uninstall --yes --remove-user --purge`, { timeout: 120_000 });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect((await vm.sh(`systemctl cat ${UNIT}`)).exitCode).not.toBe(0);
    expect(await etcSnapshot(vm)).toBe(etcBefore);
  }, 180_000);

  // About two minutes (installing rsyslog in the machine): a long variant, SENTINEL_CEF_VM_LONG=1. The same refusal
  // runs on every `npm test` against a fixture /proc (test/install/forwarder-only.test.ts).
  it.skipIf(process.env.SENTINEL_CEF_VM_LONG !== '1')(
    'refuses in one line, exit 2, while rsyslog listens on 514, and names the fix',
    async () => {
      await vm.ok(
        `apt-get install -y -qq --no-install-recommends rsyslog >/dev/null && printf 'module(load="imudp")\\ninput(type="imudp" port="514")\\n' > /etc/rsyslog.d/50-udp.conf && systemctl restart rsyslog`,
        { timeout: 180_000 },
      );
      const before = await etcSnapshot(vm);
      const r = await vm.sh(`CI=true NO_COLOR=1 ${CLI} install --forwarder-only --sink file:${ROWS} --yes`, { timeout: 120_000 });
      expect(r.exitCode).toBe(2);
      expect(r.stderr.trim().split('\n').pop()).toMatch(
        /^sentinel-cef: udp port 514 is held by rsyslogd \(pid \d+\): a forwarder-only node listens there itself — stop it with `systemctl disable --now rsyslog syslog.socket`/,
      );
      expect(r.stderr).toContain('systemctl disable --now rsyslog syslog.socket');
      expect(await etcSnapshot(vm)).toBe(before);
    },
    240_000,
  );
});
