import type { Exec } from './exec.js';
import type { FsRoot } from './fs-root.js';

export type SelinuxMode = 'enforcing' | 'permissive' | 'disabled';

export interface SelinuxState {
  mode: SelinuxMode;
  /** TCP ports labelled syslogd_port_t, when semanage could be asked. */
  syslogPorts: number[] | null;
}

/** From /sys/fs/selinux/enforce (no SELinux filesystem means disabled), plus syslogd_port_t labels. */
export async function detectSelinux(fs: FsRoot, exec?: Exec): Promise<SelinuxState> {
  const enforce = (await fs.readText('/sys/fs/selinux/enforce').catch(() => null))?.trim();
  const mode: SelinuxMode = enforce === '1' ? 'enforcing' : enforce === '0' ? 'permissive' : 'disabled';
  let syslogPorts: number[] | null = null;
  if (mode !== 'disabled' && exec && (await exec.which('semanage'))) {
    const r = await exec.run('semanage', ['port', '-l'], { timeoutMs: 60_000 });
    if (r.exitCode === 0) syslogPorts = parseSyslogPorts(r.stdout);
  }
  return { mode, syslogPorts };
}

export function parseSyslogPorts(semanageList: string): number[] {
  const ports: number[] = [];
  for (const line of semanageList.split('\n')) {
    const m = /^syslogd_port_t\s+tcp\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const part of m[1].split(',')) {
      const [a, b] = part.trim().split('-').map(Number);
      if (Number.isFinite(a)) for (let p = a; p <= (Number.isFinite(b) ? b : a) && p - a < 100; p++) ports.push(p);
    }
  }
  return ports;
}

/** Commands that let the syslog daemon connect to the forwarder port and relabel the files written. */
export function planSelinuxFix(state: SelinuxState, forwarderPort: number, writtenPaths: string[]): string[][] {
  if (state.mode === 'disabled') return [];
  const cmds: string[][] = [];
  if (!(state.syslogPorts ?? []).includes(forwarderPort)) {
    cmds.push(['semanage', 'port', '-a', '-t', 'syslogd_port_t', '-p', 'tcp', String(forwarderPort)]);
  }
  if (writtenPaths.length > 0) cmds.push(['restorecon', '-F', ...writtenPaths]);
  return cmds;
}
