import type { Exec } from './exec.js';
import type { FsRoot } from './fs-root.js';
import { listProcesses } from './processes.js';

export type SyslogDaemon = 'rsyslog' | 'syslog-ng';

export interface DaemonInfo {
  /** The daemon to configure: the running one, else the installed one (rsyslog preferred), else null. */
  daemon: SyslogDaemon | null;
  running: { daemon: SyslogDaemon; pid: number; exe?: string | null }[];
  installed: SyslogDaemon[];
  /** Path of the daemon binary: the running process's program when it exists under the root, else a standard path. */
  binary: string | null;
  version: string | null;
}

const BINARIES: Record<SyslogDaemon, string[]> = {
  rsyslog: ['/usr/sbin/rsyslogd', '/sbin/rsyslogd', '/usr/local/sbin/rsyslogd'],
  'syslog-ng': ['/usr/sbin/syslog-ng', '/sbin/syslog-ng', '/usr/local/sbin/syslog-ng'],
};

export function daemonOfProcess(comm: string, exe: string | null): SyslogDaemon | null {
  const base = exe ? exe.slice(exe.lastIndexOf('/') + 1) : '';
  if (comm === 'rsyslogd' || base === 'rsyslogd') return 'rsyslog';
  if (comm === 'syslog-ng' || base === 'syslog-ng') return 'syslog-ng';
  return null;
}

export async function findDaemonBinary(fs: FsRoot, daemon: SyslogDaemon): Promise<string | null> {
  for (const p of BINARIES[daemon]) if (await fs.exists(p)) return p;
  return null;
}

/** The running syslog daemon from /proc/<pid>/comm or exe, else the installed one. */
export async function detectDaemon(fs: FsRoot, exec?: Exec, prefer?: SyslogDaemon): Promise<DaemonInfo> {
  const running: DaemonInfo['running'] = [];
  for (const p of await listProcesses(fs)) {
    const d = daemonOfProcess(p.comm, p.exe);
    if (d) running.push({ daemon: d, pid: p.pid, exe: p.exe });
  }
  const installed: SyslogDaemon[] = [];
  for (const d of ['rsyslog', 'syslog-ng'] as const) if (await findDaemonBinary(fs, d)) installed.push(d);
  const daemon = prefer ?? running[0]?.daemon ?? installed[0] ?? null;
  const program = daemon ? await runningProgram(fs, running, daemon) : null;
  if (program && !installed.includes(daemon!)) installed.push(daemon!);
  const binary = program ?? (daemon ? await findDaemonBinary(fs, daemon) : null);
  let version: string | null = null;
  if (exec && binary && fs.isSystemRoot) version = await readDaemonVersion(exec, daemon!, binary);
  return { daemon, running, installed, binary, version };
}

/** The program of a running daemon as /proc/<pid>/exe names it, when that path exists under this root (a daemon of another container does not). */
async function runningProgram(fs: FsRoot, running: DaemonInfo['running'], daemon: SyslogDaemon): Promise<string | null> {
  for (const r of running) if (r.daemon === daemon && r.exe && r.exe.startsWith('/') && (await fs.exists(r.exe))) return r.exe;
  return null;
}

async function readDaemonVersion(exec: Exec, daemon: SyslogDaemon, binary: string): Promise<string | null> {
  const r = await exec.run(binary, daemon === 'rsyslog' ? ['-v'] : ['--version'], { timeoutMs: 10_000 });
  const m = daemon === 'rsyslog' ? /rsyslogd\s+([\d.]+)/.exec(r.stdout) : /syslog-ng \d+ \(([\d.]+)\)/.exec(r.stdout);
  return m ? m[1] : null;
}
