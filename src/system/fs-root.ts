import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CliError } from '../errors.js';

/**
 * Every path the installer touches goes through one root, so tests run against fixture trees
 * (`--root DIR`) and production uses `/`. Paths given to these methods are absolute system paths.
 */
export interface FileMeta {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  /** Last modification, epoch ms. */
  mtimeMs: number;
}

export interface WriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

/** A change to the tree, as the fault seam sees it. */
export type FsOp = 'write' | 'rename' | 'mkdir' | 'remove' | 'chmod' | 'chown';

/**
 * A path install will not write through: a link, a directory others can write, a file that is not a regular file.
 * See docs/SECURITY.md.
 */
export class UnsafePathError extends CliError {
  constructor(message: string) {
    super(message, {
      code: 'ERR_UNSAFE_PATH',
      suggestion: 'fix the path by hand (see docs/SECURITY.md), then run again; nothing was changed',
    });
    this.name = 'UnsafePathError';
  }
}

/** Groups below this id are system groups (useradd's SYS_GID_MAX is 999): a group-writable directory of one is trusted. */
const FIRST_LOGIN_GID = 1000;

export class FsRoot {
  readonly root: string;
  /** Test seam: called before each change to the tree; what it throws becomes that operation's error (ENOSPC at the Nth write). */
  faultHook?: (op: FsOp, p: string) => void;

  constructor(root = '/') {
    this.root = path.resolve(root);
  }

  get isSystemRoot(): boolean {
    return this.root === '/';
  }

  /** Maps a system path (/etc/x) into this root. */
  resolve(p: string): string {
    if (!path.isAbsolute(p)) throw new Error(`expected an absolute path, got ${p}`);
    return this.isSystemRoot ? path.normalize(p) : path.join(this.root, p);
  }

  async readText(p: string): Promise<string | null> {
    const buf = await this.readBytes(p);
    return buf === null ? null : buf.toString('utf8');
  }

  async readBytes(p: string): Promise<Buffer | null> {
    try {
      return await fsp.readFile(this.resolve(p));
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /** The first `n` bytes of a file (headers of large spool files), or null when it is missing. */
  async readHead(p: string, n: number): Promise<Buffer | null> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.resolve(p), constants.O_RDONLY);
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    try {
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async exists(p: string): Promise<boolean> {
    try {
      await fsp.lstat(this.resolve(p));
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  async stat(p: string): Promise<FileMeta | null> {
    try {
      const s = await fsp.lstat(this.resolve(p));
      return {
        mode: s.mode & 0o7777,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        isFile: s.isFile(),
        isDirectory: s.isDirectory(),
        isSymlink: s.isSymbolicLink(),
        mtimeMs: s.mtimeMs,
      };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async readdir(p: string): Promise<string[]> {
    try {
      return (await fsp.readdir(this.resolve(p))).sort();
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
      throw err;
    }
  }

  async readlink(p: string): Promise<string | null> {
    try {
      return await fsp.readlink(this.resolve(p));
    } catch {
      return null;
    }
  }

  /** Expands a shell-style glob in the last path component only (what rsyslog and syslog-ng includes use). */
  async glob(pattern: string): Promise<string[]> {
    const dir = path.dirname(pattern);
    const base = path.basename(pattern);
    if (!/[*?[]/.test(base)) return (await this.exists(pattern)) ? [pattern] : [];
    const re = globToRegExp(base);
    return (await this.readdir(dir)).filter((n) => re.test(n)).map((n) => path.join(dir, n));
  }

  /**
   * Creates the missing directories of `p` one at a time, never through a link, and adds each one it created to
   * `made` as it goes (outermost first; also returned), so a caller can undo them even after a failure half-way.
   * The last directory gets `opts`; existing ones are left as they are.
   */
  async mkdirp(p: string, opts: WriteOptions = {}, made: string[] = []): Promise<string[]> {
    await this.assertSafeParents(p);
    const chain = this.chain(p);
    for (const dir of chain) {
      const real = this.resolve(dir);
      // Only the last directory gets `opts`; missing ones above it are plain 0755 root directories.
      const meta = dir === chain[chain.length - 1] ? { mode: opts.mode ?? 0o755, uid: opts.uid, gid: opts.gid } : { mode: 0o755 };
      const st = await lstatOrNull(real);
      if (st?.isDirectory()) continue;
      if (st?.isSymbolicLink()) throw await this.linkError(dir, dir);
      if (st) throw new UnsafePathError(`refusing to use ${dir} as a directory: it is not one`);
      this.fault('mkdir', dir);
      await fsp.mkdir(real, { mode: meta.mode });
      made.push(dir);
      await this.setMeta(dir, meta);
    }
    return made;
  }

  /** The directories of `p` (itself included) that do not exist yet, outermost first. */
  async missingDirs(p: string): Promise<string[]> {
    const out: string[] = [];
    for (const dir of this.chain(p)) if (!(await this.exists(dir))) out.push(dir);
    return out;
  }

  /**
   * Reads a file install is about to replace, without following a link at the path and only when every parent
   * directory is safe (see assertSafeParents). Null when it does not exist. Mode and owner come from the open file.
   */
  async inspect(p: string): Promise<{ bytes: Buffer; meta: FileMeta } | null> {
    await this.assertSafeParents(p);
    const real = this.resolve(p);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'ELOOP') throw await this.linkError(p, p);
      throw err;
    }
    try {
      const s = await fh.stat();
      if (!s.isFile()) throw new UnsafePathError(`refusing to write ${p}: it is not a regular file`);
      const bytes = await fh.readFile();
      const meta = {
        mode: s.mode & 0o7777,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        isFile: true,
        isDirectory: false,
        isSymlink: false,
        mtimeMs: s.mtimeMs,
      };
      return { bytes, meta };
    } finally {
      await fh.close();
    }
  }

  /**
   * Atomic replace: write a temp file beside the target, fsync, set mode and owner, rename, fsync the directory.
   * A reader sees the old or the new file, never half of one. The rename replaces the directory entry, so a link
   * at the path is never written through; one is refused all the same, as is an unsafe parent directory.
   */
  async writeAtomic(p: string, data: string | Buffer, opts: WriteOptions = {}): Promise<void> {
    const real = this.resolve(p);
    const dir = path.dirname(real);
    await this.mkdirp(path.dirname(p));
    await this.assertSafeParents(p);
    const st = await lstatOrNull(real);
    if (st?.isSymbolicLink()) throw await this.linkError(p, p);
    if (st && !st.isFile()) throw new UnsafePathError(`refusing to write ${p}: it is not a regular file`);
    const tmp = path.join(dir, `.${path.basename(real)}.${randomBytes(6).toString('hex')}.tmp`);
    this.fault('write', p);
    const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      try {
        await fh.writeFile(data);
        await fh.sync();
        // Mode and owner on the open file: nothing can swap the path in between.
        await fh.chmod(opts.mode ?? 0o644);
        if ((opts.uid !== undefined || opts.gid !== undefined) && this.canChown()) await fh.chown(opts.uid ?? -1, opts.gid ?? -1);
      } finally {
        await fh.close();
      }
      this.fault('rename', p);
      await fsp.rename(tmp, real);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(dir);
  }

  async remove(p: string): Promise<void> {
    await this.assertSafeParents(p);
    if (!(await this.exists(p))) return;
    this.fault('remove', p);
    await fsp.rm(this.resolve(p), { force: true });
  }

  /** Removes a tree; rm does not follow links inside it. */
  async removeTree(p: string): Promise<void> {
    await this.assertSafeParents(p);
    if (!(await this.exists(p))) return;
    this.fault('remove', p);
    await fsp.rm(this.resolve(p), { force: true, recursive: true });
  }

  async chown(p: string, uid: number, gid: number): Promise<void> {
    if (this.canChown()) await this.setMeta(p, { uid, gid });
  }

  async chmod(p: string, mode: number): Promise<void> {
    await this.setMeta(p, { mode });
  }

  /**
   * Refuses a path whose parents someone other than root could have changed: every existing parent must be a real
   * directory (not a link), owned by root (or by us, for test roots), and not writable by others or by a login
   * user's group. A sticky world-writable directory (/tmp, /var/tmp) is accepted when the entry below it is root's.
   * Only the part inside the root is checked: a test root's own parents are the test's business.
   */
  async assertSafeParents(p: string): Promise<void> {
    const dirs = this.chain(path.dirname(p));
    for (let i = 0; i < dirs.length; i++) {
      const st = await lstatOrNull(this.resolve(dirs[i]));
      if (!st) return;
      if (st.isSymbolicLink()) throw await this.linkError(p, dirs[i]);
      if (!st.isDirectory()) throw new UnsafePathError(`refusing to write ${p}: ${dirs[i]} is not a directory`);
      const modeText = (st.mode & 0o7777).toString(8).padStart(4, '0');
      if (!this.isTrustedOwner(st.uid)) throw new UnsafePathError(`refusing to write ${p}: ${dirs[i]} belongs to uid ${st.uid}, not root`);
      const othersWrite = (st.mode & 0o002) !== 0;
      const groupWrite = (st.mode & 0o020) !== 0 && st.gid >= FIRST_LOGIN_GID;
      if (!othersWrite && !groupWrite) continue;
      const next = i + 1 < dirs.length ? dirs[i + 1] : p;
      const below = await lstatOrNull(this.resolve(next));
      const sticky = (st.mode & 0o1000) !== 0;
      if (sticky && (!below || this.isTrustedOwner(below.uid))) continue;
      throw new UnsafePathError(
        `refusing to write ${p}: ${dirs[i]} is writable by ${othersWrite ? 'every user' : `group ${st.gid}`} (mode ${modeText})`,
      );
    }
  }

  private isTrustedOwner(uid: number): boolean {
    return uid === 0 || (typeof process.geteuid === 'function' && uid === process.geteuid());
  }

  /** System paths from the first below the root down to `p`, e.g. /etc, /etc/rsyslog.d. */
  private chain(p: string): string[] {
    const parts = path.normalize(p).split('/').filter(Boolean);
    return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
  }

  private fault(op: FsOp, p: string): void {
    this.faultHook?.(op, p);
  }

  private async linkError(p: string, link: string): Promise<UnsafePathError> {
    const target = (await this.readlink(link)) ?? '?';
    return new UnsafePathError(
      link === p
        ? `refusing to write ${p}: it is a symbolic link to ${target}; install never writes through a link`
        : `refusing to write ${p}: ${link} is a symbolic link to ${target}; install never writes through a link`,
    );
  }

  private canChown(): boolean {
    return typeof process.getuid === 'function' && process.getuid() === 0;
  }

  /** Mode and owner through a descriptor opened without following a link (Linux has no lchmod). */
  private async setMeta(p: string, opts: WriteOptions): Promise<void> {
    const wantOwner = (opts.uid !== undefined || opts.gid !== undefined) && this.canChown();
    if (opts.mode === undefined && !wantOwner) return;
    await this.assertSafeParents(p);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.resolve(p), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw await this.linkError(p, p);
      throw err;
    }
    try {
      if (opts.mode !== undefined) {
        this.fault('chmod', p);
        await fh.chmod(opts.mode);
      }
      if (wantOwner) {
        this.fault('chown', p);
        await fh.chown(opts.uid ?? -1, opts.gid ?? -1);
      }
    } finally {
      await fh.close();
    }
  }
}

async function lstatOrNull(real: string) {
  try {
    return await fsp.lstat(real);
  } catch (err) {
    if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}

export function createFsRoot(root = '/'): FsRoot {
  return new FsRoot(root);
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, constants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  }
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
