import type { Exec } from '../system/exec.js';
import type { FsRoot } from '../system/fs-root.js';
import { listProcesses, isProcessAlive, type InitSystem } from '../system/processes.js';
import { daemonOfProcess, type SyslogDaemon } from '../system/detect-daemon.js';
import { listListeners } from '../system/listeners.js';
import { DEFAULT_CONFIG_PATH } from '../config/schema.js';
import { VERSION } from '../version.js';
import { loadTemplate, renderTemplate } from './templates.js';
import { systemdPath, systemdWord } from './config-escape.js';

export const SERVICE_USER = 'sentinel-cef';
export const LIB_DIR = '/usr/lib/sentinel-cef';
export const FORWARDER_PATH = `${LIB_DIR}/forwarder.mjs`;
/**
 * Node flags of the forwarder service. A 4 MB young-generation semispace (V8's default is 16 MB)
 * keeps peak RSS under 200 MB while draining a backlog, for 15–30 % more CPU per event
 * (docs/BENCHMARKS.md, "Memory").
 */
export const FORWARDER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
/**
 * Environment of the forwarder service. A fixed glibc mmap threshold: buffers of 64 KiB and more
 * (socket reads, batches, the JSON chunks a parse worker hands over) go back to the system when freed.
 * With glibc's sliding threshold they stayed in per-thread heaps (peak RSS 222-234 → 168-205 MB,
 * docs/BENCHMARKS.md). Other libcs ignore it.
 */
export const FORWARDER_ENV: Readonly<Record<string, string>> = { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' };
export const SUPERVISOR_PATH = `${LIB_DIR}/sentinel-cef-supervise.mjs`;
export const CONFIG_DIR = '/etc/sentinel-cef';
export const RUN_DIR = '/run/sentinel-cef';
export const LOG_DIR = '/var/log/sentinel-cef';
export const UNIT_NAME = 'sentinel-cef-forwarder.service';
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;
export const SUPERVISOR_PIDFILE = `${RUN_DIR}/supervisor.pid`;
/** READY or SUSPENDED: whether rsyslog may begin a batch for the forwarder (render-rsyslog.ts, forwarder.ts). */
export const INTAKE_STATE_FILE = `${RUN_DIR}/intake.state`;

/** What the forwarder's unit is rendered from; install records it (InstalledOptions.unit) so a check renders the same. */
export interface UnitInputs {
  nodePath: string;
  sinkFile: string | null;
  bindPrivilegedPort?: boolean;
  intakeStateFile?: string | null;
}

/** Forwarder-only below port 1024, or a readiness endpoint there: the one case the unit grants CAP_NET_BIND_SERVICE. */
export function needsPrivilegedPort(forwarderOnly: boolean, port: number, readinessPort: number | undefined): boolean {
  return Math.min(forwarderOnly ? port : 65535, readinessPort ?? 65535) < 1024;
}

/** The unit's inputs from install's options and the forwarder's sink: install renders these; a check of an old record derives them so. */
export function unitInputsFrom(o: {
  nodePath: string;
  sink: { type: string; path?: unknown } | undefined;
  mode?: 'forwarder-only';
  port: number;
  /** The readiness endpoint's port as install parsed it (--readiness), if it listens on one. */
  readinessPort?: number;
  intakeStateFile: string | null;
}): Required<UnitInputs> {
  return {
    nodePath: o.nodePath,
    sinkFile: o.sink?.type === 'file' ? String(o.sink.path) : null,
    bindPrivilegedPort: needsPrivilegedPort(o.mode === 'forwarder-only', o.port, o.readinessPort),
    intakeStateFile: o.intakeStateFile,
  };
}

/** The forwarder's systemd unit. Every value is escaped for unit syntax (config-escape.ts). */
export function renderForwarderUnit(opts: UnitInputs): string {
  const rw = opts.sinkFile ? [dirnameOf(opts.sinkFile)] : [];
  const underTmp = opts.sinkFile !== null && /^\/(var\/)?tmp\//.test(opts.sinkFile);
  const exec = [opts.nodePath, ...FORWARDER_NODE_FLAGS, FORWARDER_PATH, '--config', DEFAULT_CONFIG_PATH];
  return renderTemplate(loadTemplate('systemd/sentinel-cef-forwarder.service'), {
    version: VERSION,
    user: systemdWord('User=', SERVICE_USER),
    group: systemdWord('Group=', SERVICE_USER),
    execStart: exec.map((w) => systemdWord('ExecStart=', w)).join(' '),
    environment: Object.entries(FORWARDER_ENV)
      .map(([k, v]) => `Environment=${systemdWord('Environment=', `${k}=${v}`)}`)
      .join('\n'),
    readWritePaths: rw.length ? `ReadWritePaths=${rw.map((p) => systemdPath('ReadWritePaths=', p)).join(' ')}` : '',
    // The file sink under /tmp must see the real /tmp.
    privateTmp: underTmp ? '# PrivateTmp is off: the file sink writes under /tmp.' : 'PrivateTmp=yes',
    capabilities: opts.bindPrivilegedPort
      ? '# Forwarder-only: the one capability it needs, to listen on the syslog port below 1024.\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE'
      : 'CapabilityBoundingSet=\nAmbientCapabilities=',
    // A capability held in a private user namespace does not reach the host's network namespace.
    privateUsers: opts.bindPrivilegedPort
      ? '# PrivateUsers is off: CAP_NET_BIND_SERVICE must count in the host network namespace.'
      : 'PrivateUsers=yes',
    stopOrder: opts.intakeStateFile
      ? [
          '# Started after rsyslog, so stopped before it (at a reboot): rsyslog reads SUSPENDED and keeps its queue, saved',
          '# when it stops. Stopping with it or after it, rsyslog dropped the batch it was sending (issue 15).',
          'After=rsyslog.service',
          '# Stopped and restarted with rsyslog (and so first, as above): `systemctl restart rsyslog` under load lost the',
          '# batch in flight while the forwarder ran on (issue 15). WantedBy= below starts it again with rsyslog.',
          'PartOf=rsyslog.service',
        ].join('\n')
      : '',
    startWith: opts.intakeStateFile ? 'WantedBy=rsyslog.service' : '',
    intakeState: opts.intakeStateFile
      ? [
          '# rsyslog holds its batches while the forwarder is down (action.externalstate.file): the forwarder writes',
          '# SUSPENDED when it stops; this covers a crash or kill. The file outlives a stop, so the directory is kept.',
          'RuntimeDirectoryPreserve=yes',
          `ExecStopPost=/bin/sh -c ${systemdWord('ExecStopPost=', `echo SUSPENDED >${opts.intakeStateFile}`)}`,
        ].join('\n')
      : '',
  });
}

function dirnameOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

export interface Ctx {
  fs: FsRoot;
  exec: Exec;
  init: InitSystem;
  log: (line: string) => void;
}

export interface UserIds {
  uid: number;
  gid: number;
}

export async function lookupUser(fs: FsRoot, name: string): Promise<UserIds | null> {
  const passwd = (await fs.readText('/etc/passwd')) ?? '';
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return null;
}

/** A system user with no login shell and no home, for the forwarder. Returns ids and whether we created it. */
export async function ensureServiceUser(ctx: Ctx): Promise<UserIds & { created: boolean }> {
  const existing = await lookupUser(ctx.fs, SERVICE_USER);
  if (existing) return { ...existing, created: false };
  const nologin = (await ctx.fs.exists('/usr/sbin/nologin')) ? '/usr/sbin/nologin' : '/sbin/nologin';
  const args = ['--system', '--user-group', '--no-create-home', '--home-dir', '/var/lib/sentinel-cef', '--shell', nologin, SERVICE_USER];
  if (!ctx.fs.isSystemRoot) args.unshift('--root', ctx.fs.root);
  const r = await ctx.exec.run('useradd', args);
  if (r.exitCode !== 0) throw new Error(`useradd ${SERVICE_USER} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  const ids = await lookupUser(ctx.fs, SERVICE_USER);
  if (!ids) throw new Error(`useradd reported success but ${SERVICE_USER} is not in /etc/passwd`);
  ctx.log(`created system user ${SERVICE_USER} (uid ${ids.uid})`);
  return { ...ids, created: true };
}

export async function removeServiceUser(ctx: Ctx): Promise<void> {
  if (!(await lookupUser(ctx.fs, SERVICE_USER))) return;
  const r = await ctx.exec.run('userdel', ctx.fs.isSystemRoot ? [SERVICE_USER] : ['--root', ctx.fs.root, SERVICE_USER]);
  if (r.exitCode !== 0) throw new Error(`userdel ${SERVICE_USER} failed: ${r.stderr.trim()}`);
}

// ---- syslog daemon ----

const UNITS: Record<SyslogDaemon, string> = { rsyslog: 'rsyslog', 'syslog-ng': 'syslog-ng' };

export const SYNTAX_CHECK: Record<SyslogDaemon, string> = { rsyslog: 'rsyslogd -N1', 'syslog-ng': 'syslog-ng --syntax-only' };

/** The daemon's own config check; `ran` is false when the binary could not be started at all. */
export async function checkDaemonSyntax(
  ctx: Ctx,
  daemon: SyslogDaemon,
  binary: string,
): Promise<{ ok: boolean; ran: boolean; output: string }> {
  const r =
    daemon === 'rsyslog'
      ? await ctx.exec.run(binary, ['-N1'], { timeoutMs: 60_000 })
      : await ctx.exec.run(binary, ['--syntax-only'], { timeoutMs: 60_000 });
  return { ok: r.exitCode === 0, ran: r.exitCode !== 127, output: `${r.stdout}\n${r.stderr}`.trim() };
}

/** The line of a syntax check's output that says what is wrong: the most specific error line, else the first line. */
export function syntaxErrorLine(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  // rsyslog prints "warnings occurred" error lines before the one that names the fault.
  const line =
    lines.find((l) => /syntax error|unexpected|invalid/i.test(l)) ?? lines.find((l) => /error/i.test(l)) ?? lines[0] ?? '(no output)';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

export async function runningDaemonPids(fs: FsRoot, daemon: SyslogDaemon): Promise<number[]> {
  const out: number[] = [];
  for (const p of await listProcesses(fs)) {
    if (daemonOfProcess(p.comm, p.exe) === daemon && (await isProcessAlive(fs, p.pid))) out.push(p.pid);
  }
  return out;
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

async function killAndWait(fs: FsRoot, pids: number[], timeoutMs = 15_000): Promise<boolean> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
  return waitFor(async () => {
    for (const pid of pids) if (await isProcessAlive(fs, pid)) return false;
    return true;
  }, timeoutMs);
}

/**
 * `systemctl restart UNIT`, accepting a failed restart that systemd repairs by itself. Debian 12's rsyslog 8.2302 can
 * die with SIGSEGV at stop; the start right after it then failed in the unit's vanished cgroup (219/CGROUP), while
 * Restart=on-failure had rsyslog running, its queue intact, 0.3 s later. Failing there rolled back a good install.
 */
export async function restartUnit(exec: Pick<Exec, 'run'>, unit: string, settleMs = 15_000): Promise<{ ok: boolean; detail: string }> {
  const r = await exec.run('systemctl', ['restart', unit], { timeoutMs: 90_000 });
  if (r.exitCode === 0) return { ok: true, detail: `systemctl restart ${unit}` };
  const why = r.stderr.trim().split('\n')[0] || `systemctl restart ${unit} failed (exit ${r.exitCode})`;
  const back = await waitFor(
    async () => (await exec.run('systemctl', ['is-active', unit], { timeoutMs: 30_000 })).exitCode === 0,
    settleMs,
    250,
  );
  return back
    ? { ok: true, detail: `systemctl restart ${unit} (it said "${why}"; systemd started it again itself)` }
    : { ok: false, detail: why };
}

/**
 * Restarts (or starts) the daemon and waits until it listens on the port. Under systemd via systemctl;
 * elsewhere the binary is started directly (it daemonizes and writes its own pidfile).
 */
export async function restartDaemon(
  ctx: Ctx,
  daemon: SyslogDaemon,
  binary: string,
  listen: { port: number; protocols: Array<'tcp' | 'udp'> },
): Promise<{ ok: boolean; detail: string }> {
  let restarted = '';
  if (ctx.init === 'systemd') {
    const r = await restartUnit(ctx.exec, UNITS[daemon]);
    if (!r.ok) return r;
    restarted = r.detail;
  } else {
    const old = await runningDaemonPids(ctx.fs, daemon);
    if (old.length > 0 && !(await killAndWait(ctx.fs, old))) return { ok: false, detail: `${daemon} (pid ${old.join(',')}) did not stop` };
    const args = daemon === 'rsyslog' ? [] : ['--pidfile', '/run/syslog-ng.pid'];
    // Both daemons fork, close their stdio and exit 0 once initialised, or print why and exit non-zero.
    const r = await ctx.exec.run(binary, args, { timeoutMs: 60_000 });
    if (r.exitCode !== 0)
      return { ok: false, detail: `${binary} failed to start: ${(r.stderr || r.stdout).trim().split('\n').slice(0, 4).join(' ')}` };
    const up = await waitFor(async () => (await runningDaemonPids(ctx.fs, daemon)).length > 0, 10_000);
    if (!up) return { ok: false, detail: `${binary} exited right after start` };
  }
  const listening = await waitFor(async () => {
    const ls = await listListeners(ctx.fs);
    return listen.protocols.every((p) => ls.some((l) => l.port === listen.port && l.protocol === p));
  }, 15_000);
  if (!listening) return { ok: false, detail: `${daemon} runs but does not listen on ${listen.protocols.join('+')} port ${listen.port}` };
  return {
    ok: true,
    detail: ctx.init === 'systemd' ? restarted : `started ${binary} directly (PID 1 is not systemd)`,
  };
}

// ---- forwarder ----

export async function isForwarderSupervised(fs: FsRoot): Promise<number | null> {
  const pid = Number((await fs.readText(SUPERVISOR_PIDFILE))?.trim());
  return pid > 0 && (await isProcessAlive(fs, pid)) ? pid : null;
}

export async function stopForwarder(ctx: Ctx): Promise<void> {
  if (ctx.init === 'systemd') {
    await ctx.exec.run('systemctl', ['disable', '--now', UNIT_NAME], { timeoutMs: 60_000 });
    return;
  }
  const pid = await isForwarderSupervised(ctx.fs);
  if (pid !== null && !(await killAndWait(ctx.fs, [pid], 35_000))) throw new Error(`forwarder supervisor (pid ${pid}) did not stop`);
}

/** (Re)starts the forwarder: systemd unit, or a detached supervisor running as the service user. */
export async function startForwarder(
  ctx: Ctx,
  opts: { nodePath: string; configPath: string; user: UserIds; restart: boolean },
): Promise<string> {
  if (ctx.init === 'systemd') {
    await mustRun(ctx, 'systemctl', ['daemon-reload']);
    await mustRun(ctx, 'systemctl', ['enable', UNIT_NAME]);
    await mustRun(ctx, 'systemctl', [opts.restart ? 'restart' : 'start', UNIT_NAME]);
    return `systemd unit ${UNIT_NAME} enabled and ${opts.restart ? 'restarted' : 'started'}`;
  }
  const running = await isForwarderSupervised(ctx.fs);
  if (running !== null && !opts.restart) return `forwarder already supervised (pid ${running})`;
  if (running !== null) await stopForwarder(ctx);
  for (const d of [RUN_DIR, LOG_DIR]) {
    await ctx.fs.mkdirp(d, { mode: 0o750 });
    await ctx.fs.chown(d, opts.user.uid, opts.user.gid);
  }
  await ctx.exec.spawnDetached(
    opts.nodePath,
    [
      SUPERVISOR_PATH,
      '--pidfile',
      SUPERVISOR_PIDFILE,
      '--child-pidfile',
      `${RUN_DIR}/forwarder.pid`,
      '--log',
      `${LOG_DIR}/forwarder.log`,
      '--',
      opts.nodePath,
      ...FORWARDER_NODE_FLAGS,
      FORWARDER_PATH,
      '--config',
      opts.configPath,
    ],
    {
      uid: opts.user.uid,
      gid: opts.user.gid,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', ...FORWARDER_ENV },
    },
  );
  const ok = await waitFor(async () => (await isForwarderSupervised(ctx.fs)) !== null, 10_000);
  if (!ok) throw new Error(`the forwarder supervisor did not start; see ${LOG_DIR}/forwarder.log`);
  return `PID 1 is not systemd: forwarder started under a supervisor (pidfile ${SUPERVISOR_PIDFILE}, log ${LOG_DIR}/forwarder.log)`;
}

/** Runs a program that must succeed: its first error line (or exit code) in the error otherwise. */
export async function mustRun(ctx: Pick<Ctx, 'exec'>, cmd: string, args: string[]): Promise<void> {
  const r = await ctx.exec.run(cmd, args, { timeoutMs: 90_000 });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
}

/** Whether the forwarder unit is enabled and active, so a rollback puts it back exactly so. */
export async function forwarderUnitState(ctx: Ctx): Promise<{ enabled: boolean; active: boolean }> {
  const enabled = await ctx.exec.run('systemctl', ['is-enabled', UNIT_NAME], { timeoutMs: 30_000 });
  const active = await ctx.exec.run('systemctl', ['is-active', UNIT_NAME], { timeoutMs: 30_000 });
  return { enabled: enabled.exitCode === 0, active: active.exitCode === 0 };
}

/**
 * The forwarder's own last lines (its journal, or the supervisor's log), to say why it failed rather than
 * only that it does not answer. Empty when there is nothing to show.
 */
export async function forwarderLastLines(ctx: Ctx, n = 8): Promise<string[]> {
  let text = '';
  if (ctx.init === 'systemd') {
    const r = await ctx.exec
      .run('journalctl', ['-u', UNIT_NAME, '-n', String(n), '--no-pager', '-o', 'cat'], { timeoutMs: 30_000 })
      .catch(() => null);
    if (r && r.exitCode === 0) text = r.stdout;
  } else {
    text = (await ctx.fs.readText(`${LOG_DIR}/forwarder.log`).catch(() => null)) ?? '';
  }
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l && !/^-- No entries --$/.test(l))
    .slice(-n);
}

/** The process-control side of install/uninstall, one object so tests can replace it. */
export interface Services {
  startForwarder: typeof startForwarder;
  stopForwarder: typeof stopForwarder;
  restartDaemon: typeof restartDaemon;
  isForwarderSupervised: typeof isForwarderSupervised;
  runningDaemonPids: typeof runningDaemonPids;
  /** Whether the started forwarder answers on its admin API (default: polls it on the real system). */
  forwarderHealthy?: (timeoutMs: number) => Promise<boolean>;
}

export const systemServices: Services = { startForwarder, stopForwarder, restartDaemon, isForwarderSupervised, runningDaemonPids };
