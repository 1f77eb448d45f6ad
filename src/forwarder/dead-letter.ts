import { dirname } from 'node:path';
import type { CslRow } from '../parser/types.js';
import * as fsio from '../util/fsio.js';

export interface DeadLetterEntry {
  reason: string;
  httpStatus?: number;
  /** Set when the row was accepted (e.g. with a value cut to the field limit) and is kept for reference. */
  accepted?: boolean;
  row?: CslRow;
  /** The original message when it could not be parsed. */
  raw?: string;
  receivedAt?: string;
}

export interface DeadLetterLimits {
  /** Cap on the live file and its rotated files together. */
  maxBytes: number;
  /** Rotated files kept beside the live one: `<path>.1` (newest) … `<path>.<files>` (oldest). */
  files: number;
}

export const DEFAULT_DEAD_LETTER_LIMITS: DeadLetterLimits = { maxBytes: 256 * 1024 * 1024, files: 4 };

export interface DeadLetterOptions extends Partial<DeadLetterLimits> {
  /**
   * Called after the oldest rotated file was deleted, with the entries it held: at the cap, or to make
   * room on a full disk (for the queue or for this file).
   */
  onDropped?: (entries: number, file: string, why: 'cap' | 'disk_full') => void;
}

/** `<path>.k`, the k-th rotated file (1 = newest). */
export const rotatedPath = (path: string, k: number): string => `${path}.${k}`;

/** Bytes each file may reach before the live file rotates, so live + rotated stay within maxBytes. */
export const rotateBytes = (l: DeadLetterLimits): number => Math.max(1, Math.floor(l.maxBytes / (l.files + 1)));

/**
 * NDJSON file of events the forwarder could not deliver for good: `{time, reason, httpStatus?, row}`
 * for rows the sink refused, `{time, reason, raw, receivedAt}` for messages that did not parse.
 * Written synchronously before the queue cursor moves, so an entry is never lost between the two;
 * a failed write throws with nothing appended (a partial tail is cut off) so the caller can retry it.
 *
 * Bounded: when the live file would pass maxBytes / (files + 1) it becomes `<path>.1`, the others
 * shift up, and `<path>.<files>` (the oldest) is deleted and its entries counted. A flood of
 * malformed input so costs old dead letters, never disk space the queue needs for valid events.
 * On ENOSPC the oldest rotated file goes early (counted) and the write is tried once more; a write
 * that still fails throws, and the caller retries with backoff before the queue cursor moves.
 */
export class DeadLetterFile {
  readonly limits: DeadLetterLimits;
  /** Entries deleted with rotated files since start. */
  droppedEntries = 0;
  private fd = -1;
  private size = 0;
  /** Sizes of <path>.1 … <path>.files (0 when missing). */
  private rotated: number[] = [];
  /** Entries per file, for files this process saw from empty: dropping them needs no read. */
  private readonly counts = new Map<string, number>();
  private readonly onDropped?: DeadLetterOptions['onDropped'];
  /** A failed append left bytes past `size` that could not be cut off: nothing goes behind them. */
  private torn = false;

  constructor(
    readonly path: string,
    o: DeadLetterOptions = {},
  ) {
    this.limits = { maxBytes: o.maxBytes ?? DEFAULT_DEAD_LETTER_LIMITS.maxBytes, files: o.files ?? DEFAULT_DEAD_LETTER_LIMITS.files };
    this.onDropped = o.onDropped;
  }

  /** Bytes in the live file and its rotated files (as last seen; measured on first use). */
  get bytes(): number {
    if (this.fd < 0) this.measure();
    let n = this.size;
    for (const b of this.rotated) n += b;
    return n;
  }

  write(entries: DeadLetterEntry[]): void {
    if (!entries.length) return;
    const time = new Date().toISOString();
    let text = '';
    for (const e of entries) text += JSON.stringify({ time, ...e }) + '\n';
    const buf = Buffer.from(text);
    if (this.fd < 0) this.open();
    this.cutTorn();
    if (this.size > 0 && this.size + buf.length > rotateBytes(this.limits)) {
      this.rotate();
      this.open();
    }
    try {
      this.append(buf, entries.length);
    } catch (err) {
      // A full disk: old dead letters give way to new ones (counted) rather than stall delivery.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOSPC' && code !== 'EDQUOT') || !this.reclaim()) throw err;
      this.append(buf, entries.length);
    }
  }

  /** Appends whole or not at all. */
  private append(buf: Buffer, entries: number): void {
    if (this.fd < 0) this.open();
    this.cutTorn();
    try {
      fsio.writeAllSync(this.fd, buf);
    } catch (err) {
      // Cut a partial line off, so a retry appends whole lines only. If even that fails, keep the fd
      // and its size: the next write cuts first, and appends nothing until that works.
      try {
        fsio.ftruncateSync(this.fd, this.size);
      } catch {
        this.torn = true;
      }
      throw err;
    }
    this.size += buf.length;
    const known = this.counts.get(this.path);
    if (known !== undefined) this.counts.set(this.path, known + entries);
  }

  /**
   * Frees disk space by deleting the oldest rotated file there is (its entries counted); false when
   * there is none. The queue calls it on ENOSPC before it pauses intake: valid events come first.
   */
  reclaim(): boolean {
    for (let k = this.limits.files; k >= 1; k--) {
      const p = rotatedPath(this.path, k);
      try {
        if (!fsio.statSync(p)) continue;
        this.drop(p, 'disk_full');
      } catch {
        return false;
      }
      this.rotated[k - 1] = 0;
      return true;
    }
    return false;
  }

  /** Cuts off what a failed append left (throws while that still fails). */
  private cutTorn(): void {
    if (!this.torn) return;
    fsio.ftruncateSync(this.fd, this.size);
    this.torn = false;
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      this.cutTorn();
    } catch {
      // Left for the next start, which appends behind it.
    }
    this.torn = false;
    const fd = this.fd;
    this.fd = -1;
    try {
      fsio.closeSync(fd);
    } catch {
      // Nothing buffered in user space: every write was complete or cut back.
    }
  }

  private open(): void {
    fsio.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    this.fd = fsio.openSync(this.path, 'a', 0o600);
    try {
      this.size = fsio.fstatSync(this.fd).size;
      if (this.size === 0) this.counts.set(this.path, 0);
      this.measure();
      // Files beyond the configured count (the count was lowered) are the oldest of all.
      for (let k = this.limits.files + 1; fsio.statSync(rotatedPath(this.path, k)); k++) this.drop(rotatedPath(this.path, k), 'cap');
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private measure(): void {
    if (this.fd < 0) this.size = safeSize(this.path);
    this.rotated = [];
    for (let k = 1; k <= this.limits.files; k++) this.rotated.push(safeSize(rotatedPath(this.path, k)));
  }

  /** live -> .1 -> .2 … ; the oldest goes. A failure leaves files in place; the next open re-measures. */
  private rotate(): void {
    this.close();
    const n = this.limits.files;
    try {
      if (fsio.statSync(rotatedPath(this.path, n))) this.drop(rotatedPath(this.path, n), 'cap');
      for (let k = n - 1; k >= 1; k--) {
        if (fsio.statSync(rotatedPath(this.path, k))) fsio.renameSync(rotatedPath(this.path, k), rotatedPath(this.path, k + 1));
        this.moveCount(rotatedPath(this.path, k), rotatedPath(this.path, k + 1));
      }
      fsio.renameSync(this.path, rotatedPath(this.path, 1));
      this.moveCount(this.path, rotatedPath(this.path, 1));
    } catch (err) {
      // Which file holds what is uncertain now: count by reading from here on.
      this.counts.clear();
      throw err;
    }
  }

  private moveCount(from: string, to: string): void {
    const c = this.counts.get(from);
    this.counts.delete(from);
    if (c === undefined) this.counts.delete(to);
    else this.counts.set(to, c);
  }

  private drop(file: string, why: 'cap' | 'disk_full'): void {
    const entries = this.counts.get(file) ?? countLines(file);
    fsio.unlinkSync(file);
    this.counts.delete(file);
    this.droppedEntries += entries;
    this.onDropped?.(entries, file, why);
  }
}

function safeSize(file: string): number {
  try {
    return fsio.statSync(file)?.size ?? 0;
  } catch {
    return 0;
  }
}

/**
 * Entries (lines) in a file; read in 1 MiB chunks. Throws when the file cannot be read: a file about
 * to be deleted must not be counted as empty.
 */
function countLines(file: string): number {
  const fd = fsio.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let lines = 0;
  try {
    for (;;) {
      const n = fsio.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      for (let i = buf.indexOf(10); i !== -1 && i < n; i = buf.indexOf(10, i + 1)) lines++;
    }
  } finally {
    try {
      fsio.closeSync(fd);
    } catch {
      /* read-only fd */
    }
  }
  return lines;
}
