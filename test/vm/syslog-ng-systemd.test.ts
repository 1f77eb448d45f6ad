import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootVm,
  CLI,
  etcSnapshot,
  cefLines,
  countTagged,
  duplicateRuns,
  expectCleanStop,
  expectUninstalled,
  expectUnitInstalled,
  FORWARDER_UP,
  lossAndDups,
  RESENT_PER_KILL,
  restartForwarder,
  seqsIn,
  underLoad,
  vmSkipReason,
  waitFor,
  waitRows,
  withSmallBatches,
  type Vm,
  ROWS,
  UNIT,
} from './vm-env.js';

const reason = vmSkipReason();

/**
 * A cap on the lines one SIGKILL may lose over plain TCP, against a gross regression (everything after a kill lost):
 * measured 2-200 (docs/RELIABILITY.md 13), but loopback socket buffers grow to megabytes, and a kill while syslog-ng
 * flushes its backlog at full speed finds more in flight.
 */
const KILL_WINDOW = 5000;
const UP = `${FORWARDER_UP} && systemctl is-active -q syslog-ng`;

// Issue 15: the rsyslog suite's install, delivery, restart and uninstall proofs for syslog-ng, which sends to the
// forwarder over plain TCP (no acknowledged transport in syslog-ng 3.38 OSE) from a reliable disk buffer.
describe.skipIf(reason !== null)('Debian 12 with systemd as PID 1 and syslog-ng from its own packages', () => {
  let vm: Vm;
  let etcBefore = '';

  beforeAll(async () => {
    vm = await bootVm('bookworm', 'syslogng');
    // Debian 12 ships without a syslog daemon: syslog-ng's .debs are in the image's own cache (no network in the VM).
    await vm.ok(
      'apt-get install -y -qq --no-install-recommends -o Dir::Cache::archives=/var/cache/sentinel-vm/syslog-ng syslog-ng-core >/dev/null && systemctl is-active syslog-ng',
      { timeout: 180_000 },
    );
    etcBefore = await etcSnapshot(vm);
  }, 900_000);

  afterAll(async () => {
    await vm?.down();
  }, 120_000);

  it('installs under the hardened unit: active, enabled, verified', async () => {
    const r = await vm.sh(`CI=true ${CLI} install --sink file:${ROWS} --yes`, { timeout: 180_000 });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(await vm.ok('cat /etc/syslog-ng/conf.d/*sentinel-cef*')).toMatch(/destination d_sentinel_cef/);
    await expectUnitInstalled(vm);
    expect((await vm.sh('systemctl is-active syslog-ng')).stdout.trim()).toBe('active');
  }, 240_000);

  it('delivers CEF sent to 514 over TCP and UDP', async () => {
    await vm.ok(`nc -w 30 -N 127.0.0.1 514`, { input: cefLines('live', 50) });
    await vm.ok(
      `printf '%s\\n' '<134>Dec  6 10:00:00 fw1 CEF:0|Acme|FW|1.0|100|udp|3|cs1Label=Seq cs1=live-udp' | nc -u -w 1 127.0.0.1 514`,
    );
    const expected = [...Array.from({ length: 50 }, (_, i) => `live-${i}`), 'live-udp'];
    expect(lossAndDups(expected, await waitRows(vm, ROWS, expected, 30_000, 'live-'))).toEqual({ lost: [], duplicated: [] });
  }, 60_000);

  it('troubleshoot --json passes on the installed machine', async () => {
    const r = await vm.sh(`CI=true ${CLI} troubleshoot --json --probes 1 --timeout 20`, { timeout: 120_000 });
    const report = JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; message: string }> };
    const failed = report.checks.filter((c) => c.status === 'fail');
    expect(failed, JSON.stringify(failed, null, 1)).toEqual([]);
    expect(r.exitCode).toBe(0);
  }, 150_000);

  it('loses nothing when syslog-ng restarts under load', async () => {
    const n = 20_000;
    await vm.ok(`nc -w 30 -N 127.0.0.1 514`, { input: cefLines('ngr', n), timeout: 120_000 });
    await vm.ok('systemctl restart syslog-ng', { timeout: 120_000 });
    await waitFor(vm, UP, 60_000, 'syslog-ng and the forwarder after the restart');
    const { unique, dups } = await countTagged(vm, ROWS, 'ngr', n, 120_000);
    expect({ lost: n - unique, dups }).toEqual({ lost: 0, dups: 0 });
  }, 240_000);

  it('loses nothing when the forwarder restarts (systemctl restart) twice under load', async () => {
    const n = 10_000;
    // The forwarder sends syslog-ng a FIN at stop and reads until syslog-ng has closed (docs/RELIABILITY.md 13).
    // Each restart waits until the forwarder answers: the second one stops a forwarder that is running, not loading.
    await underLoad(vm, 'ngfr', n, [1500, 1500], () => restartForwarder(vm));
    const { unique, dups } = await countTagged(vm, ROWS, 'ngfr', n, 120_000);
    expect({ lost: n - unique, dups }).toEqual({ lost: 0, dups: 0 });
  }, 360_000);

  // syslog-ng → forwarder is plain TCP with no answer per message: syslog-ng is done with a line once the socket took
  // it, so a SIGKILL loses what sat in the socket buffers and in the forwarder's last read not yet queued (inherent;
  // figures in docs/RELIABILITY.md 13). What the product promises is asserted: systemd restarts it, syslog-ng
  // reconnects and delivery goes on; what is lost is one stretch of lines in flight per kill, nothing else.
  it('SIGKILL of the forwarder under load: restarted by systemd, at most the lines in flight at each kill lost', async () => {
    const n = 10_000;
    // Every line in before the batches go back to the defaults: that restart must not cut anything of its own.
    const got = await withSmallBatches(vm, async () => {
      await underLoad(vm, 'ngk', n, [1500, 1500], async () => {
        // After a kill systemd waits RestartSec (2 s) to start it again: kill a running one.
        await waitFor(vm, `[ "$(systemctl show -P MainPID ${UNIT})" != 0 ]`, 30_000, 'the forwarder running again');
        await vm.ok(`systemctl kill -s KILL --kill-who=main ${UNIT}`);
      });
      await waitFor(vm, UP, 60_000, 'the forwarder restarted by systemd');
      // syslog-ng sends in order and the forwarder delivers in order: once the last line is in, the rest is.
      await waitRows(vm, ROWS, [`ngk-${n - 1}`], 90_000, 'ngk-');
      // The sink may still write earlier batches (several in flight): until the count holds for 2 s.
      let rows: string[] = [];
      for (let prev = -1; rows.length !== prev; await new Promise((r) => setTimeout(r, 2000))) {
        prev = rows.length;
        rows = await seqsIn(vm, ROWS, 'ngk-');
      }
      return rows;
    });
    const seen = new Set(got);
    const stretches: number[] = [];
    for (let i = 0; i < n; i++) {
      if (seen.has(`ngk-${i}`)) continue;
      if (i > 0 && !seen.has(`ngk-${i - 1}`)) stretches[stretches.length - 1]! += 1;
      else stretches.push(1);
    }
    const dup = duplicateRuns(got, 'ngk', n);
    console.log(
      `syslog-ng SIGKILL x2 under load: lost ${n - seen.size} of ${n} in stretches ${JSON.stringify(stretches)}, dup ${got.length - seen.size} in runs ${JSON.stringify(dup.runs)}`,
    );
    expect(seen.has(`ngk-${n - 1}`)).toBe(true);
    expect(stretches.length).toBeLessThanOrEqual(2);
    for (const s of stretches) expect(s).toBeLessThanOrEqual(KILL_WINDOW);
    // At-least-once across a SIGKILL: the batches the sink had written but the queue not yet marked done are sent
    // again (one run per kill; with the default batches, 1,000 lines once at load ~14). Nothing else may come twice.
    expect(dup.runs.length).toBeLessThanOrEqual(2);
    for (const r of dup.runs) expect(r).toBeLessThanOrEqual(RESENT_PER_KILL);
    expect(dup.maxCopies).toBeLessThanOrEqual(3);
  }, 240_000);

  it('stops cleanly: systemctl stop ends in success within the stop timeout, and the journal says it stopped', async () => {
    await vm.ok(`nc -w 30 -N 127.0.0.1 514`, { input: cefLines('ngstop', 100) });
    await expectCleanStop(vm);
    await vm.ok(`systemctl start ${UNIT}`);
    await waitFor(vm, UP, 60_000, 'the forwarder started again');
    const expected = Array.from({ length: 100 }, (_, i) => `ngstop-${i}`);
    expect(lossAndDups(expected, await waitRows(vm, ROWS, expected, 40_000, 'ngstop-'))).toEqual({ lost: [], duplicated: [] });
  }, 240_000);

  it('uninstalls: the unit and its files are gone and /etc is as before', async () => {
    await expectUninstalled(vm, 'syslog-ng', etcBefore);
  }, 180_000);
});
