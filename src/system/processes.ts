import type { FsRoot } from './fs-root.js';

export interface ProcessInfo {
  pid: number;
  comm: string;
  exe: string | null;
}

/** Every process visible in /proc with its short name and executable path (when readable). */
export async function listProcesses(fs: FsRoot): Promise<ProcessInfo[]> {
  const out: ProcessInfo[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const comm = (await fs.readText(`/proc/${name}/comm`).catch(() => null))?.trim();
    if (!comm) continue;
    const exe = await fs.readlink(`/proc/${name}/exe`);
    out.push({ pid: Number(name), comm, exe: exe ? exe.replace(/ \(deleted\)$/, '') : null });
  }
  return out;
}

/** The one-letter state from /proc/PID/stat (R, S, T, Z…), or null when there is no such process. */
export async function processState(fs: FsRoot, pid: number): Promise<string | null> {
  const stat = await fs.readText(`/proc/${pid}/stat`).catch(() => null);
  // After the last ')': the command name itself may hold ')' or spaces.
  return stat ? stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) : null;
}

export async function isProcessAlive(fs: FsRoot, pid: number): Promise<boolean> {
  const state = await processState(fs, pid);
  // A zombie has exited; only its parent has not reaped it yet.
  return state !== null && state !== 'Z' && state !== 'X';
}

export type InitSystem = 'systemd' | 'other';

/** systemd only when PID 1 is systemd: containers and this kind of sandbox run something else as PID 1. */
export async function detectInitSystem(fs: FsRoot): Promise<{ kind: InitSystem; pid1: string }> {
  const pid1 = (await fs.readText('/proc/1/comm').catch(() => null))?.trim() ?? 'unknown';
  const booted = await fs.exists('/run/systemd/system');
  return { kind: pid1 === 'systemd' && booted ? 'systemd' : 'other', pid1 };
}
