import { createHash } from 'node:crypto';
import path from 'node:path';
import type { FsRoot } from '../system/fs-root.js';
import type { UnitInputs } from './service.js';

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
  /** A key or secret: its backup is deleted as soon as nothing needs it (issue 14). */
  secret?: boolean;
}

export interface InstallState {
  version: 1;
  /**
   * 'in-progress' is written before install changes anything and lists every path and directory it may touch,
   * so `uninstall` can undo an install that crashed half-way. Absent in states written before this field.
   */
  status?: 'in-progress' | 'installed';
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
  /** Absent in a normal install (and in states written before forwarder-only existed). */
  mode?: 'forwarder-only';
  readiness?: string;
  /** The workspace (GUID) the rows go to, when install knew it (--workspace, or the legacy <workspaceId>). */
  workspaceId?: string;
  /** install --durable: the daemon's queues on disk (absent: the in-memory default). */
  durable?: true;
  /**
   * rsyslog only: how it sends to the forwarder, as install chose from the omrelp module it found; the forwarder
   * listens to match. Absent in states written before this field.
   */
  transport?: 'relp' | 'tcp';
  /** rsyslog only: the intake state file the drop-in reads (null: this rsyslog predates it). Absent in older states. */
  intakeStateFile?: string | null;
  /** What the forwarder's systemd unit was rendered from (systemd only). Absent in older states: derived then. */
  unit?: UnitInputs;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export async function readState(fs: FsRoot): Promise<InstallState | null> {
  const found = await fs.inspect(STATE_FILE);
  return found ? (JSON.parse(found.bytes.toString('utf8')) as InstallState) : null;
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
  /** Directories this transaction created (for files or backups), outermost first. */
  private readonly madeDirs: string[] = [];

  constructor(
    private readonly fs: FsRoot,
    stamp = new Date().toISOString().replace(/[:.]/g, '-'),
  ) {
    this.backupDir = `${BACKUP_ROOT}/${stamp}`;
  }

  get touched(): readonly OriginalFile[] {
    return this.originals;
  }

  /**
   * Notes each path's original (existence, checksum, mode, owner, where its backup will be) without writing
   * anything, so the install state can name every path before the first change; backupAll() then copies them.
   */
  async describe(files: Array<{ path: string; secret?: boolean }>): Promise<void> {
    for (const f of files) {
      if (this.originals.some((o) => o.path === f.path)) continue;
      const found = await this.fs.inspect(f.path);
      const flag = f.secret ? { secret: true } : {};
      if (!found) this.originals.push({ path: f.path, existed: false, ...flag });
      else {
        const { meta } = found;
        this.originals.push({
          path: f.path,
          existed: true,
          backup: path.join(this.backupDir, 'files', f.path),
          mode: meta.mode,
          uid: meta.uid,
          gid: meta.gid,
          sha256: sha256(found.bytes),
          ...flag,
        });
      }
    }
  }

  /** Copies the originals noted by describe() into the backup directory. */
  async backupAll(): Promise<void> {
    for (const o of this.originals) {
      if (!o.existed) continue;
      const found = await this.fs.inspect(o.path);
      if (!found || sha256(found.bytes) !== o.sha256) throw new Error(`${o.path} changed while install ran; nothing was changed`);
      await this.fs.mkdirp(path.dirname(o.backup!), { mode: 0o700 }, this.madeDirs);
      await this.fs.writeAtomic(o.backup!, found.bytes, { mode: 0o600 });
    }
    await this.writeManifest();
  }

  async write(p: string, data: string | Buffer, opts: { mode: number; uid?: number; gid?: number; secret?: boolean }): Promise<void> {
    if (!this.originals.some((o) => o.path === p)) await this.remember(p, opts.secret);
    await this.fs.mkdirp(path.dirname(p), {}, this.madeDirs);
    await this.fs.writeAtomic(p, data, opts);
  }

  private async remember(p: string, secret?: boolean): Promise<void> {
    const found = await this.fs.inspect(p);
    const flag = secret ? { secret: true } : {};
    if (found === null) {
      this.originals.push({ path: p, existed: false, ...flag });
    } else {
      const { bytes, meta } = found;
      const backup = path.join(this.backupDir, 'files', p);
      await this.fs.mkdirp(path.dirname(backup), { mode: 0o700 }, this.madeDirs);
      await this.fs.writeAtomic(backup, bytes, { mode: 0o600 });
      this.originals.push({
        path: p,
        existed: true,
        backup,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        sha256: sha256(bytes),
        ...flag,
      });
    }
    await this.writeManifest();
  }

  private async writeManifest(): Promise<void> {
    await this.fs.mkdirp(this.backupDir, { mode: 0o700 }, this.madeDirs);
    await this.fs.writeAtomic(`${this.backupDir}/manifest.json`, `${JSON.stringify({ files: this.originals }, null, 2)}\n`, {
      mode: 0o600,
    });
    this.manifestWritten = true;
  }

  /**
   * Puts every touched file back as it was, newest first, then removes the backups and every directory this
   * transaction created: after a rollback the tree is as it was.
   */
  async rollback(): Promise<void> {
    for (const o of [...this.originals].reverse()) await restoreOriginal(this.fs, o);
    await this.fs.removeTree(this.backupDir);
    await removeEmptyDirs(this.fs, this.madeDirs);
  }

  /**
   * After a successful install: deletes the backups of secrets that `keep` (the install state) does not need, so a
   * replaced key does not outlive its replacement; then drops the backup directory if nothing is left in it.
   */
  async commit(keep: readonly OriginalFile[]): Promise<void> {
    if (!this.manifestWritten) return;
    const needed = new Set(keep.map((k) => k.backup).filter(Boolean));
    let dropped = false;
    for (const o of this.originals) {
      if (o.secret && o.backup && !needed.has(o.backup)) {
        await this.fs.remove(o.backup);
        delete o.backup;
        o.existed = false;
        dropped = true;
      }
    }
    if (!this.originals.some((o) => o.existed)) {
      await this.fs.removeTree(this.backupDir);
      await removeEmptyDirs(this.fs, this.madeDirs);
    } else if (dropped) {
      await this.writeManifest();
    }
  }
}

/** Removes the given directories that are empty, innermost first. */
export async function removeEmptyDirs(fs: FsRoot, dirs: readonly string[]): Promise<void> {
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    if ((await fs.exists(d)) && (await fs.readdir(d)).length === 0) await fs.removeTree(d);
  }
}

export async function restoreOriginal(fs: FsRoot, o: OriginalFile): Promise<void> {
  if (!o.existed) {
    await fs.remove(o.path);
    return;
  }
  // Untouched (an install that stopped before writing it): nothing to put back, and its backup may not exist.
  if (await isUnchanged(fs, o)) return;
  const bytes = await fs.readBytes(o.backup!);
  if (bytes === null) throw new Error(`backup of ${o.path} is missing (${o.backup})`);
  if (o.sha256 && sha256(bytes) !== o.sha256) throw new Error(`backup of ${o.path} does not match its checksum`);
  await fs.writeAtomic(o.path, bytes, { mode: o.mode, uid: o.uid, gid: o.gid });
}

/** Whether the file is still exactly its original: content, mode and owner. */
export async function isUnchanged(fs: FsRoot, o: OriginalFile): Promise<boolean> {
  const now = await fs.inspect(o.path).catch(() => null);
  return now !== null && sha256(now.bytes) === o.sha256 && now.meta.mode === o.mode && now.meta.uid === o.uid && now.meta.gid === o.gid;
}

export const LOCK_FILE = `${STATE_DIR}/install.lock`;

/**
 * One install or uninstall at a time: an O_EXCL lock file holding our pid. A lock left by a process that is
 * gone is taken over.
 */
/** Releases the lock, then removes the directories it made and `alsoRemove` when they are empty. */
export interface Lock {
  (alsoRemove?: readonly string[]): Promise<void>;
  /** Directories created to hold the lock (outermost first): a first install counts them as its own. */
  made: readonly string[];
}

export async function acquireLock(fs: FsRoot): Promise<Lock> {
  const { open, readFile, rm } = await import('node:fs/promises');
  const real = fs.resolve(LOCK_FILE);
  // Directories made for the lock go again with it when they are empty (a failed first install leaves none).
  const made: string[] = [];
  try {
    await fs.mkdirp(STATE_DIR, { mode: 0o755 }, made);
  } catch (err) {
    await removeEmptyDirs(fs, made).catch(() => {});
    throw err;
  }
  await fs.inspect(LOCK_FILE); // refuses a planted link (O_EXCL would fail on it, and the stale-lock path would remove it)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(real, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      const release = async (alsoRemove: readonly string[] = []) => {
        await rm(real, { force: true });
        await removeEmptyDirs(fs, [...made, ...alsoRemove]);
      };
      return Object.assign(release, { made });
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
      if (alive)
        throw new Error(`another sentinel-cef install or uninstall is running (pid ${pid}); wait for it to finish`, { cause: err });
      await rm(real, { force: true });
    }
  }
  throw new Error(`cannot take the lock ${LOCK_FILE}`);
}
