import { createHash } from 'node:crypto';
import path from 'node:path';
import type { FsRoot } from '../system/fs-root.js';

export const STATE_DIR = '/var/lib/sentinel-cef';
export const BACKUP_ROOT = `${STATE_DIR}/backup`;
export const STATE_FILE = `${STATE_DIR}/install-state.json`;

export interface OriginalFile {
  path: string;
  existed: boolean;
  /** Copy of the original under the backup directory, when it existed. */
  backup?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  sha256?: string;
}

export interface InstallState {
  version: 1;
  installedAt: string;
  updatedAt: string;
  daemon: string | null;
  init: string;
  user: { name: string; createdByUs: boolean } | null;
  /** The state of each path before the first install touched it: uninstall restores exactly this. */
  files: OriginalFile[];
  /** Directories we created (removed by uninstall when empty). */
  dirs: string[];
  applied: string[][];
  /** sha256 of what the last install wrote to each file it owns (not secrets): tells a hand edit from our own text. */
  written?: Record<string, string>;
  /** What the last install rendered from: troubleshoot checks and repairs against these, never its own defaults. */
  options?: InstalledOptions;
}

/** Every install option that shapes a rendered file. */
export interface InstalledOptions {
  port: number;
  protocol: 'tcp' | 'udp' | 'both';
  forwarderPort: number;
  daemon: string;
  configPath: string;
  dropin: string;
  sink: { type: string; describe: string };
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export async function readState(fs: FsRoot): Promise<InstallState | null> {
  const text = await fs.readText(STATE_FILE);
  return text ? (JSON.parse(text) as InstallState) : null;
}

export async function writeState(fs: FsRoot, state: InstallState): Promise<void> {
  await fs.mkdirp(STATE_DIR, { mode: 0o750 });
  await fs.writeAtomic(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Writes files so that every one can be put back byte for byte: originals are copied to
 * /var/lib/sentinel-cef/backup/<timestamp>/ (with manifest.json) before the first write, and rollback()
 * restores them (or removes files that did not exist).
 */
export class FileTransaction {
  readonly backupDir: string;
  private readonly originals: OriginalFile[] = [];
  private manifestWritten = false;

  constructor(
    private readonly fs: FsRoot,
    stamp = new Date().toISOString().replace(/[:.]/g, '-'),
  ) {
    this.backupDir = `${BACKUP_ROOT}/${stamp}`;
  }

  get touched(): readonly OriginalFile[] {
    return this.originals;
  }

  async write(p: string, data: string | Buffer, opts: { mode: number; uid?: number; gid?: number }): Promise<void> {
    if (!this.originals.some((o) => o.path === p)) await this.remember(p);
    await this.fs.writeAtomic(p, data, opts);
  }

  private async remember(p: string): Promise<void> {
    const bytes = await this.fs.readBytes(p);
    if (bytes === null) {
      this.originals.push({ path: p, existed: false });
    } else {
      const meta = (await this.fs.stat(p))!;
      const backup = path.join(this.backupDir, 'files', p);
      await this.fs.mkdirp(path.dirname(backup), { mode: 0o700 });
      await this.fs.writeAtomic(backup, bytes, { mode: 0o600 });
      this.originals.push({ path: p, existed: true, backup, mode: meta.mode, uid: meta.uid, gid: meta.gid, sha256: sha256(bytes) });
    }
    await this.writeManifest();
  }

  private async writeManifest(): Promise<void> {
    await this.fs.mkdirp(this.backupDir, { mode: 0o700 });
    await this.fs.writeAtomic(`${this.backupDir}/manifest.json`, `${JSON.stringify({ files: this.originals }, null, 2)}\n`, {
      mode: 0o600,
    });
    this.manifestWritten = true;
  }

  /** Puts every touched file back as it was, newest first. */
  async rollback(): Promise<void> {
    for (const o of [...this.originals].reverse()) await restoreOriginal(this.fs, o);
  }

  /** Drops the backup directory when nothing was backed up (only new files were created). */
  async discardIfEmpty(): Promise<void> {
    if (this.manifestWritten && !this.originals.some((o) => o.existed)) await this.fs.removeTree(this.backupDir);
  }
}

export async function restoreOriginal(fs: FsRoot, o: OriginalFile): Promise<void> {
  if (!o.existed) {
    await fs.remove(o.path);
    return;
  }
  const bytes = await fs.readBytes(o.backup!);
  if (bytes === null) throw new Error(`backup of ${o.path} is missing (${o.backup})`);
  if (o.sha256 && sha256(bytes) !== o.sha256) throw new Error(`backup of ${o.path} does not match its checksum`);
  await fs.writeAtomic(o.path, bytes, { mode: o.mode, uid: o.uid, gid: o.gid });
}

export const LOCK_FILE = `${STATE_DIR}/install.lock`;

/**
 * One install or uninstall at a time: an O_EXCL lock file holding our pid. A lock left by a process that is
 * gone is taken over.
 */
export async function acquireLock(fs: FsRoot): Promise<() => Promise<void>> {
  const { open, readFile, rm } = await import('node:fs/promises');
  const real = fs.resolve(LOCK_FILE);
  await fs.mkdirp(STATE_DIR, { mode: 0o755 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(real, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await rm(real, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(real, 'utf8').catch(() => '')).trim());
      let alive = false;
      if (pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (alive) throw new Error(`another sentinel-cef install or uninstall is running (pid ${pid}); wait for it to finish`);
      await rm(real, { force: true });
    }
  }
  throw new Error(`cannot take the lock ${LOCK_FILE}`);
}
