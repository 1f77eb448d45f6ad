/**
 * The segment writer: the active segment's fd, its size, rotation to the next segment and fsync
 * (on every append, or a group fsync on a timer).
 *
 * Invariants: the fd, segment number and size change together and only once the new segment file
 * is open, so a failed open (EACCES, EMFILE, ENOSPC) leaves the writer as it was; every fd is
 * closed exactly once (close(2) releases it even when it reports an error); a failed write is cut
 * back to the last whole record before it throws, so the caller can retry the same messages.
 */
import { join } from 'node:path';
import { closeSync, fsync, fsyncSync, ftruncateSync, openSync, writeSync } from '../../util/fsio.js';

export const segmentName = (n: number) => `${String(n).padStart(16, '0')}.seg`;
export const SEGMENT_FILE = /^\d{16}\.seg$/;

export interface SegmentWriterOptions {
  segmentBytes: number;
  fsyncIntervalMs: number;
  onError?: (err: Error, where: string) => void;
  /** Seam for tests (disk full): defaults to fsio.writeSync. */
  writeFn?: (fd: number, buf: Buffer, off: number, len: number) => number;
  /** Seam for tests (a slow group fsync): defaults to fsio.fsync. */
  fsyncFn?: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void;
}

export class SegmentWriter {
  /** The active segment, its fd, and the end of its last whole record. */
  segment = 0;
  private fd = -1;
  offset = 0;
  /**
   * Segments whose file holds bytes past its last record (a failed append whose truncate failed
   * too): segment -> end of its records. Readers stop there, and the next append starts a new
   * segment, since O_APPEND would write behind those bytes.
   */
  readonly sealedEnds = new Map<number, number>();
  private dirty = false;
  private fsyncTimer: NodeJS.Timeout | null = null;
  private fsyncing = false;
  /** The fd the running group fsync works on. */
  private fsyncFd = -1;
  /** A segment rotated away while its group fsync ran: closed when that fsync returns. */
  private closeAfterFsync = -1;
  private closed = false;
  private readonly writeFn: NonNullable<SegmentWriterOptions['writeFn']>;

  constructor(
    private readonly dir: string,
    private readonly opts: SegmentWriterOptions,
  ) {
    this.writeFn = opts.writeFn ?? ((fd, b, o, l) => writeSync(fd, b, o, l));
  }

  /** Opens segment n as the active segment (a new file at every queue open) and starts the group fsync. */
  start(n: number): void {
    this.fd = openSync(join(this.dir, segmentName(n)), 'a', 0o600);
    this.segment = n;
    this.offset = 0;
    if (this.opts.fsyncIntervalMs > 0) {
      this.fsyncTimer = setInterval(() => this.groupFsync(), this.opts.fsyncIntervalMs);
      this.fsyncTimer.unref();
    }
  }

  /** Whether `total` more bytes must go to a new segment. */
  needsRotation(total: number): boolean {
    return (this.offset > 0 && this.offset + total > this.opts.segmentBytes) || this.sealedEnds.has(this.segment);
  }

  /**
   * Starts the next segment. The new file is opened before anything changes: when that fails
   * (EACCES on a read-only directory, EMFILE, ENOSPC) the writer is as it was and the caller's
   * append throws, to be retried.
   */
  rotate(): void {
    const next = this.segment + 1;
    const newFd = openSync(join(this.dir, segmentName(next)), 'a', 0o600);
    const fd = this.fd;
    const sealedEnd = this.sealedEnds.get(this.segment);
    if (this.dirty) {
      try {
        fsyncSync(fd);
      } catch (err) {
        this.opts.onError?.(err as Error, 'fsync');
      }
    }
    if (sealedEnd !== undefined) {
      try {
        ftruncateSync(fd, sealedEnd);
        this.sealedEnds.delete(this.segment);
      } catch {
        // Readers keep stopping at sealedEnd; the next open reads past it (duplicates, not loss).
      }
    }
    this.closeSegmentFd(fd);
    this.dirty = false;
    this.fd = newFd;
    this.segment = next;
    this.offset = 0;
  }

  /**
   * Writes buf[0, total) to the active segment (looping over short writes). Throws with nothing
   * appended: a partial write is truncated away.
   */
  write(buf: Buffer, total: number): void {
    let written = 0;
    try {
      while (written < total) written += this.writeFn(this.fd, buf, written, total - written);
    } catch (err) {
      // Part of the buffer may be on disk even when no count came back: cut back to the last record.
      this.cutBack();
      throw err;
    }
    if (this.opts.fsyncIntervalMs === 0) {
      // Received means synced here: a failed fsync takes the records back, and the caller retries them.
      try {
        fsyncSync(this.fd);
      } catch (err) {
        this.cutBack();
        throw err;
      }
    } else {
      this.dirty = true;
    }
    this.offset += total;
  }

  /** Truncates the active segment back to its last whole record after a failed append. */
  private cutBack(): void {
    try {
      ftruncateSync(this.fd, this.offset);
    } catch (err) {
      this.opts.onError?.(err as Error, 'truncate');
      this.sealedEnds.set(this.segment, this.offset);
    }
  }

  private groupFsync(): void {
    if (!this.dirty || this.fsyncing || this.fd < 0) return;
    this.dirty = false;
    this.fsyncing = true;
    const fd = this.fd;
    this.fsyncFd = fd;
    (this.opts.fsyncFn ?? fsync)(fd, (err) => {
      this.fsyncing = false;
      this.fsyncFd = -1;
      if (err && !this.closed) this.opts.onError?.(err, 'fsync');
      if (this.closeAfterFsync === fd) {
        this.closeAfterFsync = -1;
        this.closeQuietly(fd);
      }
    });
  }

  /**
   * Closes a segment's fd, or leaves that to the group fsync running on it: closed under it, the fsync
   * would fail (EBADF) or, the number being reused at once by the next segment, sync the wrong file.
   */
  private closeSegmentFd(fd: number): void {
    if (this.fsyncing && this.fsyncFd === fd) this.closeAfterFsync = fd;
    else this.closeQuietly(fd);
  }

  /** close(2) releases the fd even when it reports an error: report it, never close the number again. */
  private closeQuietly(fd: number): void {
    try {
      closeSync(fd);
    } catch (err) {
      this.opts.onError?.(err as Error, 'close');
    }
  }

  /** Fsyncs and closes the active segment. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fsyncTimer) clearInterval(this.fsyncTimer);
    if (this.fd < 0) return;
    try {
      fsyncSync(this.fd);
    } catch (err) {
      this.opts.onError?.(err as Error, 'fsync');
    }
    this.closeSegmentFd(this.fd);
    this.fd = -1;
  }
}
