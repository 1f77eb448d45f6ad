/**
 * The one seam through which the forwarder touches the files it writes: queue segments and cursor,
 * dead-letter file, file sink and its log. Production calls go straight to node:fs. Tests install a
 * fault plan (`setFaultPlan`) that fails chosen calls with an errno (EACCES, ENOSPC, EMFILE, EIO, …)
 * or shortens writes, so a fault test is one line instead of a full disk or a mount.
 *
 * Every call that takes an fd reports the path it was opened with, so a plan can aim at one file.
 */
import * as fs from 'node:fs';

export type FsOp = 'open' | 'write' | 'read' | 'fsync' | 'close' | 'truncate' | 'rename' | 'unlink' | 'mkdir' | 'stat';

/** What a plan decides for one call: fail with `code`, or (writes only) write at most `short` bytes. */
export interface FaultDecision {
  code?: string;
  short?: number;
}

export type FaultPlan = (op: FsOp, path: string) => FaultDecision | undefined | null;

let plan: FaultPlan | null = null;
/** Paths of fds opened through this module (for plans and error messages). */
const fdPaths = new Map<number, string>();

/** Installs (or with null removes) the fault plan. Tests only. */
export function setFaultPlan(p: FaultPlan | null): void {
  plan = p;
}

export function pathOfFd(fd: number): string {
  return fdPaths.get(fd) ?? `fd ${fd}`;
}

const ERRNO: Record<string, number> = {
  EACCES: -13,
  ENOSPC: -28,
  EMFILE: -24,
  EIO: -5,
  EROFS: -30,
  EDQUOT: -122,
  EPERM: -1,
  ENOENT: -2,
  EBADF: -9,
};

export function faultError(code: string, op: FsOp, path: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: injected fault, ${op} '${path}'`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = ERRNO[code] ?? -5;
  err.syscall = op;
  err.path = path;
  return err;
}

/** Throws the planned error for this call, or returns the write limit (Infinity when none). */
function decide(op: FsOp, path: string): number {
  const d = plan!(op, path);
  if (!d) return Infinity;
  if (d.code) throw faultError(d.code, op, path);
  return d.short ?? Infinity;
}

const pathOf = (p: fs.PathLike): string => (typeof p === 'string' ? p : p.toString());

// ---- synchronous calls (the disk queue, the dead-letter file) ----

export function openSync(path: fs.PathLike, flags: fs.OpenMode, mode?: fs.Mode): number {
  if (plan) decide('open', pathOf(path));
  const fd = fs.openSync(path, flags, mode);
  fdPaths.set(fd, pathOf(path));
  return fd;
}

/** close(2): as on Linux, the fd is released even when close reports an error (a planned fault too). */
export function closeSync(fd: number): void {
  const path = pathOfFd(fd);
  fdPaths.delete(fd);
  if (plan) {
    try {
      decide('close', path);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }
  fs.closeSync(fd);
}

/** write(2): may write fewer bytes than asked; callers loop. */
export function writeSync(fd: number, buf: NodeJS.ArrayBufferView, off: number, len: number, position?: number | null): number {
  if (plan) {
    const limit = decide('write', pathOfFd(fd));
    if (limit < len) len = Math.max(0, Math.floor(limit));
    if (len === 0) throw faultError('EIO', 'write', pathOfFd(fd));
  }
  return fs.writeSync(fd, buf, off, len, position);
}

/** Writes all of buf (looping over short writes). */
export function writeAllSync(fd: number, buf: Uint8Array, position?: number): void {
  let done = 0;
  while (done < buf.length) {
    done += writeSync(fd, buf, done, buf.length - done, position === undefined ? null : position + done);
  }
}

export function readSync(fd: number, buf: NodeJS.ArrayBufferView, off: number, len: number, position: number | null): number {
  if (plan) decide('read', pathOfFd(fd));
  return fs.readSync(fd, buf, off, len, position);
}

export function fsyncSync(fd: number): void {
  if (plan) decide('fsync', pathOfFd(fd));
  fs.fsyncSync(fd);
}

export function fdatasyncSync(fd: number): void {
  if (plan) decide('fsync', pathOfFd(fd));
  fs.fdatasyncSync(fd);
}

export function ftruncateSync(fd: number, len: number): void {
  if (plan) decide('truncate', pathOfFd(fd));
  fs.ftruncateSync(fd, len);
}

export function fstatSync(fd: number): fs.Stats {
  if (plan) decide('stat', pathOfFd(fd));
  return fs.fstatSync(fd);
}

export function renameSync(from: string, to: string): void {
  if (plan) decide('rename', to);
  fs.renameSync(from, to);
}

export function unlinkSync(path: string): void {
  if (plan) decide('unlink', path);
  fs.unlinkSync(path);
}

/** stat(2) by path; undefined when the path does not exist. */
export function statSync(path: string): fs.Stats | undefined {
  if (plan) decide('stat', path);
  return fs.statSync(path, { throwIfNoEntry: false });
}

export function mkdirSync(path: string, opts: fs.MakeDirectoryOptions & { recursive: true }): string | undefined {
  if (plan) decide('mkdir', path);
  return fs.mkdirSync(path, opts);
}

// ---- asynchronous calls (the file sink, group fsync, the log writer) ----

export function fsync(fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void {
  if (plan) {
    try {
      decide('fsync', pathOfFd(fd));
    } catch (err) {
      process.nextTick(cb, err as NodeJS.ErrnoException);
      return;
    }
  }
  fs.fsync(fd, cb);
}

function promised<T>(op: FsOp, path: string, run: (cb: (err: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (plan) {
      try {
        decide(op, path);
      } catch (err) {
        reject(err as Error);
        return;
      }
    }
    run((err, v) => (err ? reject(err) : resolve(v as T)));
  });
}

export function open(path: string, flags: fs.OpenMode, mode?: fs.Mode): Promise<number> {
  return promised<number>('open', path, (cb) => fs.open(path, flags, mode, cb)).then((fd) => {
    fdPaths.set(fd, path);
    return fd;
  });
}

/** close(2): the fd is released even when close reports an error (a planned fault too). */
export function close(fd: number): Promise<void> {
  const path = pathOfFd(fd);
  fdPaths.delete(fd);
  return new Promise<void>((resolve, reject) => {
    let planned: Error | null = null;
    if (plan) {
      try {
        decide('close', path);
      } catch (err) {
        planned = err as Error;
      }
    }
    fs.close(fd, (err) => ((planned ?? err) ? reject(planned ?? err) : resolve()));
  });
}

/** write(2): resolves with the bytes written, which may be fewer than asked. */
export function write(fd: number, buf: Uint8Array, off: number, len: number, position: number | null = null): Promise<number> {
  const path = pathOfFd(fd);
  return new Promise<number>((resolve, reject) => {
    if (plan) {
      try {
        const limit = decide('write', path);
        if (limit < len) len = Math.max(0, Math.floor(limit));
        if (len === 0) throw faultError('EIO', 'write', path);
      } catch (err) {
        reject(err as Error);
        return;
      }
    }
    fs.write(fd, buf, off, len, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Writes all of buf, looping over short writes; returns the bytes written before a failure in `err.written`. */
export async function writeAll(fd: number, buf: Uint8Array, position: number | null = null): Promise<void> {
  let done = 0;
  try {
    while (done < buf.length) done += await write(fd, buf, done, buf.length - done, position === null ? null : position + done);
  } catch (err) {
    (err as { written?: number }).written = done;
    throw err;
  }
}

export function fdatasync(fd: number): Promise<void> {
  return promised<void>('fsync', pathOfFd(fd), (cb) => fs.fdatasync(fd, cb));
}

export function ftruncate(fd: number, len: number): Promise<void> {
  return promised<void>('truncate', pathOfFd(fd), (cb) => fs.ftruncate(fd, len, cb));
}

export function fstat(fd: number): Promise<fs.Stats> {
  return promised<fs.Stats>('stat', pathOfFd(fd), (cb) => fs.fstat(fd, cb));
}

export function mkdir(path: string, opts: fs.MakeDirectoryOptions & { recursive: true }): Promise<void> {
  return promised<void>('mkdir', path, (cb) => fs.mkdir(path, opts, (err) => cb(err)));
}
