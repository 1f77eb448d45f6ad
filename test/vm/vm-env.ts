import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';
import { DEFAULT_CONFIG_PATH, forwarderConfigSchema } from '../../src/config/schema.js';
import { UNIT_NAME } from '../../src/install/service.js';

export const repo = path.resolve(import.meta.dirname, '../..');
export const vmScript = path.join(repo, 'scripts/vm');

/** Why the VM suites cannot run here, or null when they can (root, systemd-nspawn, debootstrap, overlayfs). */
export function vmSkipReason(): string | null {
  if (process.env.SENTINEL_CEF_VM === '0') return 'SENTINEL_CEF_VM=0';
  const r = spawnSync(vmScript, ['status'], { encoding: 'utf8' });
  if (r.status === 0) return null;
  const why = (r.stdout || r.stderr).trim() || `scripts/vm status exited ${r.status}`;
  // CI prepares the rig; there a rig that cannot run is a failure, not a skip.
  if (process.env.CI === 'true' && process.getuid?.() === 0) return null;
  return why;
}

export interface Vm {
  name: string;
  /** Runs a command inside; resolves with its result (never rejects on exit code). */
  sh(script: string, opts?: { timeout?: number; input?: string }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** Like sh, but throws with the output when the command fails. */
  ok(script: string, opts?: { timeout?: number; input?: string }): Promise<string>;
  reboot(): Promise<void>;
  powerCut(): Promise<void>;
  start(): Promise<void>;
  down(): Promise<void>;
}

export async function bootVm(suite: 'bullseye' | 'bookworm' | 'trixie', tag: string): Promise<Vm> {
  const name = `t-${tag}-${process.pid % 100000}`.slice(0, 31);
  execFileSync(vmScript, ['down', name]);
  await execa(vmScript, ['up', name, suite], { timeout: 600_000 });
  await copyLinkedNodeModules(name);
  const sh: Vm['sh'] = async (script, opts = {}) => {
    const r = await execa(vmScript, ['exec', name, '--', 'bash', '-c', script], {
      reject: false,
      timeout: opts.timeout ?? 120_000,
      input: opts.input,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  return {
    name,
    sh,
    ok: async (script, opts) => {
      const r = await sh(script, opts);
      if (r.exitCode === 0) return r.stdout;
      // A unit that failed to start or stop says why only in the journal, which goes with the machine.
      const journal = /\bsystemctl\b/.test(script) ? (await sh('journalctl -n 40 --no-pager -o short-monotonic')).stdout : '';
      throw new Error(`in ${name}: ${script}\nexit ${r.exitCode}\n${r.stdout}\n${r.stderr}${journal ? `\njournal:\n${journal}` : ''}`);
    },
    reboot: async () => void (await execa(vmScript, ['reboot', name], { timeout: 300_000 })),
    powerCut: async () => void (await execa(vmScript, ['kill', name], { timeout: 60_000 })),
    start: async () => void (await execa(vmScript, ['start', name], { timeout: 300_000 })),
    down: async () => void (await execa(vmScript, ['down', name], { reject: false, timeout: 120_000 })),
  };
}

/**
 * A git worktree whose node_modules links outside the repo: the link's target is not in the machine, so
 * the CLI there would not find its dependencies. Copies the target in, at the same path.
 */
async function copyLinkedNodeModules(name: string): Promise<void> {
  const nm = path.join(repo, 'node_modules');
  if (!existsSync(nm) || !lstatSync(nm).isSymbolicLink()) return;
  const target = realpathSync(nm);
  if (target.startsWith(`${repo}/`)) return;
  const parent = path.dirname(target);
  await execa(
    'bash',
    [
      '-c',
      `tar -C "$1" -cf - "$2" | "$3" exec "$4" -- bash -c 'mkdir -p "$0" && tar -C "$0" -xf -' "$1"`,
      '_',
      parent,
      path.basename(target),
      vmScript,
      name,
    ],
    {
      timeout: 300_000,
    },
  );
}

/** The CLI inside a VM: the repo is bind-mounted read-only at /opt/sentinel-cef, a supported node is on PATH. */
export const CLI = 'node /opt/sentinel-cef/bin/sentinel-cef';
/** The forwarder's unit, and its journal identifier (SyslogIdentifier). */
export const UNIT = UNIT_NAME.replace(/\.service$/, '');
/** The file sink the suites install with. */
export const ROWS = '/var/lib/sentinel-cef-trial/rows.ndjson';

/**
 * /etc as "mode uid gid type path link-target" lines, then the sha256 of every file: what must be byte-identical
 * after uninstall. One sha256sum for all files (a process per file took over 120 s at load ~40). useradd/userdel
 * rewrite their own backups (passwd-, shadow-, …): those are the tools', not ours.
 */
const ETC_SNAPSHOT = `cd /etc && skip=(! -path ./machine-id ! -path ./ld.so.cache ! -name passwd- ! -name group- ! -name shadow- ! -name gshadow-) && find . -xdev \\( -type f -o -type l -o -type d \\) "\${skip[@]}" -printf '%m %U %G %y %p %l\\n' | sort && find . -xdev -type f "\${skip[@]}" -print0 | sort -z | xargs -0 -r sha256sum`;

export function etcSnapshot(vm: Vm): Promise<string> {
  return vm.ok(ETC_SNAPSHOT, { timeout: 300_000 });
}

/** `n` CEF lines with ids prefix-0 … prefix-(n-1), as one printf-able text. */
export function cefLines(prefix: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++)
    s += `<134>Dec  6 10:00:00 fw1 CEF:0|Acme|FW|1.0|100|vm event|3|src=10.0.0.1 cs1Label=Seq cs1=${prefix}-${i}\n`;
  return s;
}

/**
 * Run by node inside the VM (the rows file grows to tens of MB: only the ids leave the machine). Text after the
 * last newline is a row being appended now, or cut by a kill and removed at the next append: not a row yet. Every
 * complete line that is judged must parse; with no prefix that is every line.
 */
const SEQS_JS = `const [file, prefix] = process.argv.slice(2);
let text = '';
try { text = require('fs').readFileSync(file, 'utf8'); } catch (e) { if (e.code !== 'ENOENT') throw e; }
const out = [];
for (const line of text.slice(0, text.lastIndexOf('\\n') + 1).split('\\n')) {
  if (!line || (prefix && !line.includes('"' + prefix))) continue;
  let row;
  try { row = JSON.parse(line); } catch (e) { throw new Error('not a JSON row: ' + JSON.stringify(line.slice(0, 300))); }
  if (row.DeviceCustomString1Label === 'Seq' && String(row.DeviceCustomString1).startsWith(prefix)) out.push(row.DeviceCustomString1);
}
process.stdout.write(out.join('\\n'));`;

/** Sequence ids in the file sink's complete rows inside the VM; only those starting with `prefix` when given. */
export async function seqsIn(vm: Vm, rowsPath: string, prefix = ''): Promise<string[]> {
  const out = await vm.ok(`node - '${rowsPath}' '${prefix}'`, { input: SEQS_JS });
  return out ? out.split('\n') : [];
}

/** Rows in the sink whose id starts with `prefix` (or all), polled until every expected id arrived or `timeoutMs` passed. */
export async function waitRows(vm: Vm, rowsPath: string, expected: string[], timeoutMs = 30_000, prefix = ''): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = await seqsIn(vm, rowsPath, prefix);
    if (lossAndDups(expected, got).lost.length === 0 || Date.now() > end) return got;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Distinct TAG-N rows in the sink and extra copies, polled until `n` distinct arrived or `ms` passed. */
export async function countTagged(vm: Vm, rowsPath: string, tag: string, n: number, ms: number): Promise<{ unique: number; dups: number }> {
  const end = Date.now() + ms;
  for (;;) {
    const got = await seqsIn(vm, rowsPath, `${tag}-`);
    const unique = new Set(got).size;
    if (unique >= n || Date.now() > end) return { unique, dups: got.length - unique };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * What one SIGKILL of the forwarder may deliver twice: the batches it had handed the sink and not yet marked done in
 * its queue (batch.inFlight × batch.maxRecords), sent again from its last saved cursor: one contiguous run of lines
 * per kill, as the lines went in in order. The SIGKILL tests run with small batches (`withSmallBatches`), so that a
 * queue which re-sent more (a cursor saved late, or never) could not hide inside the defaults' 8 × 1,000.
 */
export const SMALL_BATCH = { maxRecords: 100, inFlight: 2 };
export const RESENT_PER_KILL = SMALL_BATCH.inFlight * SMALL_BATCH.maxRecords;
// The defaults must stay larger, or the small batches would test nothing the defaults do not.
const { batch: BATCH_DEFAULTS } = forwarderConfigSchema.parse({ sink: { type: 'file', path: '/x' } });
if (BATCH_DEFAULTS.inFlight * BATCH_DEFAULTS.maxRecords <= RESENT_PER_KILL) throw new Error('SMALL_BATCH is not smaller than the defaults');

/** Runs `fn` with the installed forwarder on SMALL_BATCH (config edited in place, forwarder restarted), then puts it back. */
export async function withSmallBatches<T>(vm: Vm, fn: () => Promise<T>): Promise<T> {
  const cfg = DEFAULT_CONFIG_PATH;
  const before = await vm.ok(`base64 -w0 ${cfg}`);
  const edit = `const fs = require('fs');
const c = JSON.parse(fs.readFileSync('${cfg}', 'utf8'));
c.batch = { ...c.batch, ...${JSON.stringify(SMALL_BATCH)} };
fs.writeFileSync('${cfg}', JSON.stringify(c, null, 2));`;
  await vm.ok('node -', { input: edit });
  await restartForwarder(vm);
  let failed = true;
  try {
    const result = await fn();
    failed = false;
    return result;
  } finally {
    await vm.ok(`echo ${before} | base64 -d >${cfg}`);
    // Up again before the next test, which may stop it at once. After a failure in fn, its error is the one to report.
    const restarted = restartForwarder(vm);
    if (failed) await restarted.catch(() => undefined);
    else await restarted;
  }
}

/** The lengths of the runs of consecutive `${tag}-N` lines that arrived more than once, and the most copies of one. */
export function duplicateRuns(got: string[], tag: string, n: number): { runs: number[]; maxCopies: number } {
  const copies = new Array<number>(n).fill(0);
  for (const g of got) {
    const i = g.startsWith(`${tag}-`) ? Number(g.slice(tag.length + 1)) : NaN;
    if (Number.isInteger(i) && i >= 0 && i < n) copies[i]!++;
  }
  const runs: number[] = [];
  for (let i = 0; i < n; i++) {
    if (copies[i]! <= 1) continue;
    if (i > 0 && copies[i - 1]! > 1) runs[runs.length - 1]!++;
    else runs.push(1);
  }
  return { runs, maxCopies: Math.max(0, ...copies) };
}

export function lossAndDups(expected: string[], got: string[]): { lost: string[]; duplicated: string[] } {
  const seen = new Map<string, number>();
  for (const g of got) seen.set(g, (seen.get(g) ?? 0) + 1);
  // Only this test's lines: an earlier test's duplicate (at-least-once after a reboot) is that test's to judge.
  const mine = new Set(expected);
  return {
    lost: expected.filter((e) => !seen.has(e)),
    duplicated: [...seen].filter(([k, n]) => n > 1 && mine.has(k)).map(([k]) => k),
  };
}

/**
 * `systemctl restart UNIT` as the product runs it (install/service.ts restartUnit): a restart systemctl calls failed
 * but systemd repairs by itself counts. Debian 12's rsyslog 8.2302 can die with SIGSEGV at stop, and the start after
 * it then failed in the vanished cgroup (219/CGROUP), with rsyslog up again 0.3 s later.
 */
export const restartCommand = (unit: string): string =>
  `systemctl restart ${unit} || { for i in $(seq 60); do systemctl is-active -q ${unit} && exit 0; sleep 0.25; done; exit 1; }`;

/** `systemctl start UNIT`, tried once more after a failure: the same rsyslog may fail its first start after that crash. */
export const startCommand = (unit: string): string =>
  `systemctl start ${unit} || { echo "first start of ${unit} failed; trying again:" >&2; journalctl -u ${unit} -n 10 --no-pager >&2; sleep 1; systemctl start ${unit}; }`;

/** Polls `script` inside the VM until it exits 0; throws naming `what` after `timeoutMs`. */
export async function waitFor(vm: Vm, script: string, timeoutMs: number, what: string): Promise<void> {
  if (!(await pollUntil(vm, script, timeoutMs))) throw new Error(`timed out waiting for ${what} in ${vm.name}`);
}

/** Polls `script` inside the VM until it exits 0 (true) or `timeoutMs` passes (false). */
async function pollUntil(vm: Vm, script: string, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if ((await vm.sh(script)).exitCode === 0) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Sum of the forwarder's received counter, from its admin API inside the VM. */
export const RECEIVED = `node -e "fetch('http://127.0.0.1:25227/metrics').then(r=>r.text()).then(t=>{let n=0;for(const l of t.split('\\\\n'))if(l.startsWith('sentinel_cef_received_total{'))n+=Number(l.split(' ').pop());console.log(n)})"`;

/**
 * The forwarder's unit is active and its admin API answers. A Type=simple unit is "active" as soon as node is forked,
 * seconds before the forwarder has loaded on a busy machine.
 */
export const FORWARDER_UP = `systemctl is-active -q ${UNIT} && ${RECEIVED} >/dev/null 2>&1`;

/** `systemctl restart` of the forwarder, then until it answers: the next action meets a running forwarder. */
export async function restartForwarder(vm: Vm): Promise<void> {
  await vm.ok(`systemctl restart ${UNIT}`, { timeout: 60_000 });
  await waitFor(vm, FORWARDER_UP, 60_000, 'the forwarder to answer after its restart');
}

/** /etc as "mode uid gid sha path" lines: what must be byte-identical after uninstall. */
// useradd/userdel rewrite their own backups (passwd-, shadow-, …): those are the tools', not ours.

/** A shell pipeline sending `n` CEF lines TAG-0 … TAG-(n-1) to 514 over TCP, 200 every 0.1 s (~5 s for 10,000). */
export function pacedSend(tag: string, n: number): string {
  return `for i in $(seq 0 ${n - 1}); do echo "<134>Dec  6 10:00:00 fw1 CEF:0|Acme|FW|1.0|100|vm event|3|src=10.0.0.1 cs1Label=Seq cs1=${tag}-$i"; [ $((i % 200)) = 0 ] && sleep 0.1; done | nc -w 30 -N 127.0.0.1 514`;
}

/**
 * `systemctl stop` of the forwarder and what systemd and the journal say about it: the unit's result and the main
 * process's exit, how long the stop took, and the forwarder's own messages since the stop began.
 */
async function stopForwarder(vm: Vm): Promise<{ show: Record<string, string>; stopMs: number; messages: string[]; unitLog: string }> {
  await waitFor(vm, FORWARDER_UP, 60_000, 'the forwarder to be up before its stop');
  const since = (await vm.ok('date +%s')).trim();
  const t0 = Date.now();
  await vm.ok(`systemctl stop ${UNIT}`, { timeout: 60_000 });
  const stopMs = Date.now() - t0;
  const show = Object.fromEntries(
    (await vm.ok(`systemctl show -p Result -p ExecMainCode -p ExecMainStatus -p ActiveState ${UNIT}`))
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  // journald may lag behind on a loaded machine: wait for the last message the forwarder writes.
  const own = `journalctl -t ${UNIT} --since @${since} -o cat -q --no-pager`;
  // Not a throw here: what systemd says of the stop (below, in expectCleanStop) tells more than a missing line.
  await pollUntil(vm, `${own} | grep -q '"forwarder stopped"'`, 30_000);
  const messages = (await vm.ok(own))
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return String((JSON.parse(l) as { msg?: unknown }).msg);
      } catch {
        return l;
      }
    });
  const unitLog = await vm.ok(`journalctl -u ${UNIT} --since @${since} -o cat -q --no-pager`);
  return { show, stopMs, messages, unitLog };
}

/**
 * Sends `n` paced lines tagged `tag` (pacedSend) and runs `act` after each of `gapsMs` while they flow; resolves
 * once the sender is done.
 */
export async function underLoad(vm: Vm, tag: string, n: number, gapsMs: number[], act: () => Promise<unknown>): Promise<void> {
  let sending = true;
  const sent = vm.ok(pacedSend(tag, n), { timeout: 180_000 }).then(
    () => null,
    (err: unknown) => err,
  );
  void sent.then(() => (sending = false));
  const during: boolean[] = [];
  for (const ms of gapsMs) {
    await new Promise((r) => setTimeout(r, ms));
    during.push(sending);
    await act();
  }
  const err = await sent;
  if (err) throw err;
  // Under load means under load: at least the first action came while lines were still being sent.
  expect(during[0], `actions while sending: ${JSON.stringify(during)}`).toBe(true);
}

/**
 * Issue 15's "clean stop": `systemctl stop` of the forwarder ends in Result=success with exit 0, inside
 * TimeoutStopSec (a stop that ran into it ends in SIGKILL and Result=timeout), the forwarder's last message says it
 * stopped, and systemd logged no kill.
 */
export async function expectCleanStop(vm: Vm): Promise<void> {
  const s = await stopForwarder(vm);
  const said = `systemd: ${s.unitLog}\nforwarder: ${s.messages.join(' | ')}`;
  expect(s.show, said).toEqual({ Result: 'success', ExecMainCode: '1', ExecMainStatus: '0', ActiveState: 'inactive' });
  expect(s.stopMs, said).toBeLessThan(30_000);
  expect(s.messages.at(-1), said).toBe('forwarder stopped');
  expect(s.unitLog).not.toMatch(/timed out|SIGKILL|Killing/);
}

/** `uninstall --purge --remove-user`: the unit and its files gone, the daemon still active, /etc as before install. */
export async function expectUninstalled(vm: Vm, daemon: 'rsyslog' | 'syslog-ng', etcBefore: string): Promise<void> {
  const r = await vm.sh(`CI=true ${CLI} uninstall --yes --remove-user --purge`, { timeout: 120_000 });
  expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  expect((await vm.sh(`systemctl is-active ${UNIT}`)).stdout.trim()).not.toBe('active');
  expect((await vm.sh(`systemctl cat ${UNIT}`)).exitCode).not.toBe(0);
  expect((await vm.sh(`systemctl is-active ${daemon}`)).stdout.trim()).toBe('active');
  expect(await etcSnapshot(vm)).toBe(etcBefore);
}

/** The forwarder's unit as install leaves it under systemd: active, enabled, and `systemd-analyze verify` silent. */
export async function expectUnitInstalled(vm: Vm): Promise<void> {
  expect((await vm.sh(`systemctl is-active ${UNIT}`)).stdout.trim()).toBe('active');
  expect((await vm.sh(`systemctl is-enabled ${UNIT}`)).stdout.trim()).toBe('enabled');
  const verify = await vm.sh(`systemd-analyze verify /etc/systemd/system/${UNIT}.service`);
  expect(verify.exitCode, verify.stderr).toBe(0);
  expect(verify.stderr.trim()).toBe('');
}

/** `systemd-analyze security` of the forwarder's unit at most `max` (issue 15: 1.5); returns the tool's verdict line. */
export async function expectExposureAtMost(vm: Vm, max: number): Promise<string> {
  const out = await vm.ok(`systemd-analyze security ${UNIT} --no-pager 2>&1 | tail -1`);
  const m = /exposure level.*?:\s*([\d.]+)/i.exec(out);
  expect(m, out).not.toBeNull();
  expect(Number(m![1])).toBeLessThanOrEqual(max);
  return out.trim();
}
