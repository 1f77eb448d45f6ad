import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

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

export class FsRoot {
  readonly root: string;

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

  async mkdirp(p: string, opts: WriteOptions = {}): Promise<void> {
    const real = this.resolve(p);
    const existed = await this.exists(p);
    await fsp.mkdir(real, { recursive: true, mode: opts.mode });
    if (!existed) await this.applyMeta(real, opts);
  }

  /**
   * Atomic replace: write a temp file beside the target, fsync, set mode and owner, rename, fsync the directory.
   * A reader sees the old or the new file, never half of one.
   */
  async writeAtomic(p: string, data: string | Buffer, opts: WriteOptions = {}): Promise<void> {
    const real = this.resolve(p);
    const dir = path.dirname(real);
    await fsp.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.${path.basename(real)}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await this.applyMeta(tmp, { mode: opts.mode ?? 0o644, uid: opts.uid, gid: opts.gid });
      await fsp.rename(tmp, real);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(dir);
  }

  async remove(p: string): Promise<void> {
    await fsp.rm(this.resolve(p), { force: true });
  }

  async removeTree(p: string): Promise<void> {
    await fsp.rm(this.resolve(p), { force: true, recursive: true });
  }

  async chown(p: string, uid: number, gid: number): Promise<void> {
    if (this.canChown()) await fsp.chown(this.resolve(p), uid, gid);
  }

  async chmod(p: string, mode: number): Promise<void> {
    await fsp.chmod(this.resolve(p), mode);
  }

  private canChown(): boolean {
    return typeof process.getuid === 'function' && process.getuid() === 0;
  }

  private async applyMeta(real: string, opts: WriteOptions): Promise<void> {
    if (opts.mode !== undefined) await fsp.chmod(real, opts.mode);
    if ((opts.uid !== undefined || opts.gid !== undefined) && this.canChown()) {
      await fsp.chown(real, opts.uid ?? -1, opts.gid ?? -1);
    }
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
