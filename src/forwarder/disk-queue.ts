/**
 * Durable FIFO of received messages: append-only segment files of framed records and a persisted
 * read cursor.
 *
 * Record: magic (2 bytes) | payload length (u32 LE) | CRC32 of payload (u32 LE) | payload, where
 * payload = receivedAt ms (f64 LE) | flags (u8) | raw message bytes.
 *
 * Durability policy: append() writes with one write(2) per call (one per socket read), so a record
 * is in the kernel page cache — and survives kill -9 — before it counts as received. A timer
 * fsyncs the active segment every fsyncIntervalMs (0 = fsync on every append) so at most that
 * window is exposed to power loss. The cursor (file `cursor`, two CRC'd slots) only moves after
 * the sink accepted or dead-lettered a batch: at-least-once delivery, duplicates at most batch.inFlight batches.
 * A segment is deleted once the cursor has passed its end. A new segment is started at every open,
 * so recovery never appends behind a torn tail.
 */
import {
  constants as fsConstants,
  closeSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

export const RECORD_HEADER = 10;
const PAYLOAD_PREFIX = 9;
const MAGIC0 = 0x5c;
const MAGIC1 = 0xef;
/** No record is larger than this; a bigger length means corruption. */
const MAX_RECORD = 16 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

export const FLAG_TRUNCATED = 1;
/** The record holds a row as JSON (a dead-letter replay), not a syslog message: it skips the parser. */
export const FLAG_ROW = 2;

export interface QueueRecord {
  receivedAt: number;
  flags: number;
  raw: Buffer;
}

export interface Position {
  segment: number;
  offset: number;
}

export interface QueueBatch {
  /** Number of records. */
  count: number;
  /** Record i's raw bytes are buffer[starts[i], ends[i]) (the buffer also holds the records' headers). */
  starts: Uint32Array;
  ends: Uint32Array;
  receivedAt: Float64Array;
  flags: Uint8Array;
  /** The records as on disk, in a buffer of its own (transferable to a worker). */
  buffer: Buffer;
  /** The records as objects with views into `buffer` (built on first use: a parse worker needs only the arrays). */
  readonly records: QueueRecord[];
  /** Raw bytes of the records (without record headers). */
  bytes: number;
  /** On-disk bytes the batch occupies. */
  diskBytes: number;
  end: Position;
}

export interface CorruptionEvent {
  segment: number;
  offset: number;
  bytes: number;
  kind: 'torn-tail' | 'corrupt-record';
}

export interface DiskQueueOptions {
  dir: string;
  maxBytes: number;
  segmentBytes: number;
  fsyncIntervalMs: number;
  onCorruption?: (e: CorruptionEvent) => void;
  onError?: (err: Error, where: string) => void;
  /** Seam for tests (disk full): defaults to fs.writeSync. */
  writeFn?: (fd: number, buf: Buffer, off: number, len: number) => number;
  /** Seam for tests (a slow group fsync): defaults to fs.fsync. */
  fsyncFn?: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void;
}

const segName = (n: number) => `${String(n).padStart(16, '0')}.seg`;

export class DiskQueue {
  private readonly dir: string;
  private segments: number[] = [];
  private writeSeg = 0;
  private writeFd = -1;
  private writeOff = 0;
  private dirty = false;
  private fsyncTimer: NodeJS.Timeout | null = null;
  private fsyncing = false;
  /** The fd the running group fsync works on. */
  private fsyncFd = -1;
  /** A segment rotated away while its group fsync ran: closed when that fsync returns. */
  private closeAfterFsync = -1;
  private read: Position = { segment: 0, offset: 0 };
  private ack: Position = { segment: 0, offset: 0 };
  private reader: SegmentReader | null = null;
  private _bytes = 0;
  private _records = 0;
  private pendingOldest: number | null = null;
  private closed = false;
  private cursorFd = -1;
  private cursorSeq = 0;
  private readonly cursorBuf = Buffer.alloc(24);
  private scratch = Buffer.alloc(0);
  private scratchView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private readonly prefix = Buffer.alloc(PAYLOAD_PREFIX);
  private batchScratch = Buffer.alloc(0);
  /** readBatch's span of the reader's buffer not yet copied out (file offsets), and the bytes gathered before it. */
  private spanFrom = 0;
  private spanTo = 0;
  private gathered = 0;
  private bStarts = new Uint32Array(0);
  private bEnds = new Uint32Array(0);
  private bRecv = new Float64Array(0);
  private bFlags = new Uint8Array(0);
  private readonly waiters = new Set<() => void>();
  private readonly writeFn: NonNullable<DiskQueueOptions['writeFn']>;

  constructor(private readonly opts: DiskQueueOptions) {
    this.dir = opts.dir;
    this.writeFn = opts.writeFn ?? ((fd, b, o, l) => writeSync(fd, b, o, l));
  }

  /** Unconsumed bytes on disk (records not yet acknowledged). */
  get bytes(): number {
    return this._bytes;
  }
  get records(): number {
    return this._records;
  }
  get maxBytes(): number {
    return this.opts.maxBytes;
  }
  get full(): boolean {
    return this._bytes >= this.opts.maxBytes;
  }

  open(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.segments = readdirSync(this.dir)
      .filter((f) => /^\d{16}\.seg$/.test(f))
      .map((f) => Number(f.slice(0, 16)))
      .sort((a, b) => a - b);
    let cursor = this.readCursor();
    // Segments wholly before the cursor were consumed; finish deleting them.
    if (cursor) {
      for (const s of this.segments.filter((s) => s < cursor!.segment)) this.unlinkSegment(s);
      this.segments = this.segments.filter((s) => s >= cursor!.segment);
      if (this.segments[0] !== cursor.segment) cursor = null;
    }
    this.ack = cursor ?? { segment: this.segments[0] ?? 0, offset: 0 };
    // Count what is queued; trim a torn tail of the last segment (crash mid-write).
    for (let k = 0; k < this.segments.length; k++) {
      const seg = this.segments[k];
      const last = k === this.segments.length - 1;
      const start = seg === this.ack.segment ? this.ack.offset : 0;
      const r = new SegmentReader(join(this.dir, segName(seg)), seg, start, Infinity);
      let validEnd = start;
      try {
        for (;;) {
          const st = r.step();
          if (st === STEP_END) break;
          if (st === STEP_CORRUPT) {
            if (r.badAtEnd && last) break;
            continue;
          }
          this._records++;
          this._bytes += RECORD_HEADER + r.recLen;
          validEnd = r.position;
        }
        const size = r.size;
        if (last && size > validEnd && r.tailCorruptFrom !== null) {
          const fd = openSync(join(this.dir, segName(seg)), 'r+');
          try {
            ftruncateSync(fd, validEnd);
          } finally {
            closeSync(fd);
          }
          this.opts.onCorruption?.({ segment: seg, offset: validEnd, bytes: size - validEnd, kind: 'torn-tail' });
        }
      } finally {
        r.close();
      }
    }
    this.read = { ...this.ack };
    this.writeSeg = (this.segments.at(-1) ?? 0) + 1;
    this.openWriteSegment();
    if (this.segments.length === 1) this.ack = { segment: this.writeSeg, offset: 0 };
    this.read = { ...this.ack };
    // Both cursor slots exist from the start, so an ack rewrites them in place and never needs a new
    // block: on a full disk delivery can still move the cursor and free segments.
    try {
      if (this.cursorFd < 0) this.cursorFd = openSync(join(this.dir, 'cursor'), fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
      if (fstatSync(this.cursorFd).size < 48) {
        this.writeCursor();
        this.writeCursor();
      }
    } catch (err) {
      this.opts.onError?.(err as Error, 'cursor');
    }
    if (this.opts.fsyncIntervalMs > 0) {
      this.fsyncTimer = setInterval(() => this.groupFsync(), this.opts.fsyncIntervalMs);
      this.fsyncTimer.unref();
    }
  }

  private openWriteSegment(): void {
    this.writeFd = openSync(join(this.dir, segName(this.writeSeg)), 'a', 0o600);
    this.writeOff = 0;
    this.segments.push(this.writeSeg);
  }

  private groupFsync(): void {
    if (!this.dirty || this.fsyncing || this.writeFd < 0) return;
    this.dirty = false;
    this.fsyncing = true;
    const fd = this.writeFd;
    this.fsyncFd = fd;
    (this.opts.fsyncFn ?? fsync)(fd, (err) => {
      this.fsyncing = false;
      this.fsyncFd = -1;
      if (err && !this.closed) this.opts.onError?.(err, 'fsync');
      if (this.closeAfterFsync === fd) {
        this.closeAfterFsync = -1;
        closeSync(fd);
      }
    });
  }

  /**
   * Closes a segment's fd, or leaves that to the group fsync running on it: closed under it, the fsync
   * would fail (EBADF) or, the number being reused at once by the next segment, sync the wrong file.
   */
  private closeSegmentFd(fd: number): void {
    if (this.fsyncing && this.fsyncFd === fd) this.closeAfterFsync = fd;
    else closeSync(fd);
  }

  /**
   * Appends messages with one write. Throws (e.g. ENOSPC) with nothing appended: a partial write
   * is truncated away so the caller can keep the messages and retry.
   */
  append(messages: ReadonlyArray<{ data: Buffer; truncated: boolean; row?: boolean }>, receivedAt: number): void {
    if (this.closed) throw new Error('queue closed');
    let total = 0;
    for (const m of messages) total += RECORD_HEADER + PAYLOAD_PREFIX + m.data.length;
    if (total === 0) return;
    if (this.writeOff > 0 && this.writeOff + total > this.opts.segmentBytes) this.rotate();
    // One reusable write buffer: write(2) is synchronous, so it is free again when append returns.
    if (this.scratch.length < total) {
      this.scratch = Buffer.allocUnsafe(Math.max(total, this.scratch.length * 2, 64 * 1024));
      this.scratchView = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.length);
    }
    const out = this.scratch;
    const dv = this.scratchView;
    // The payload prefix differs between records of one call only in its flag: CRC both variants once
    // and chain each message's bytes onto them (crc32(prefix ‖ data) = crc32(data, crc32(prefix))), so
    // no view per record is made.
    const pre = this.prefix;
    pre.writeDoubleLE(receivedAt, 0);
    pre[8] = 0;
    const crcPlain = crc32(pre);
    pre[8] = FLAG_TRUNCATED;
    const crcTruncated = crc32(pre);
    let crcRow = -1;
    let p = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const data = m.data;
      let flag = m.truncated ? FLAG_TRUNCATED : 0;
      let crc = m.truncated ? crcTruncated : crcPlain;
      if (m.row) {
        if (crcRow < 0) {
          pre[8] = FLAG_ROW;
          crcRow = crc32(pre);
        }
        flag = FLAG_ROW;
        crc = crcRow;
      }
      out[p] = MAGIC0;
      out[p + 1] = MAGIC1;
      dv.setUint32(p + 2, PAYLOAD_PREFIX + data.length, true);
      dv.setUint32(p + 6, crc32(data, crc), true);
      dv.setFloat64(p + RECORD_HEADER, receivedAt, true);
      out[p + RECORD_HEADER + 8] = flag;
      // TypedArray set of a whole view: Buffer#copy makes a new view per call.
      out.set(data, p + RECORD_HEADER + PAYLOAD_PREFIX);
      p += RECORD_HEADER + PAYLOAD_PREFIX + data.length;
    }
    let written = 0;
    try {
      while (written < total) written += this.writeFn(this.writeFd, out, written, total - written);
    } catch (err) {
      // Part of the buffer may be on disk even when no count came back: cut back to the last record.
      try {
        ftruncateSync(this.writeFd, this.writeOff);
      } catch {
        // The reader stops at writeOff regardless; the next open trims the tail.
      }
      // A drained queue still holds its active segment's file, and on a full disk that is the space
      // we need: start a fresh segment, drop the consumed one, and try once more (writeOff is then 0).
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOSPC' || code === 'EDQUOT') && this.writeOff > 0 && this.activeDrained()) {
        this.startFreshSegment();
        return this.append(messages, receivedAt);
      }
      throw err;
    }
    this.writeOff += total;
    this._bytes += total;
    this._records += messages.length;
    this.dirty = true;
    if (this.opts.fsyncIntervalMs === 0) {
      fsyncSync(this.writeFd);
      this.dirty = false;
    }
    this.notify();
  }

  /** Wakes everyone in waitForData. */
  notify(): void {
    if (!this.waiters.size) return;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  private rotate(): void {
    const fd = this.writeFd;
    if (this.dirty) {
      try {
        fsyncSync(fd);
      } catch (err) {
        this.opts.onError?.(err as Error, 'fsync');
      }
    }
    this.closeSegmentFd(fd);
    this.dirty = false;
    this.writeSeg++;
    this.openWriteSegment();
  }

  private activeDrained(): boolean {
    const at = (p: Position) => p.segment === this.writeSeg && p.offset === this.writeOff;
    return this._records === 0 && at(this.ack) && at(this.read);
  }

  private startFreshSegment(): void {
    const old = this.writeSeg;
    this.rotate();
    this.reader?.close();
    this.reader = null;
    this.ack = { segment: this.writeSeg, offset: 0 };
    this.read = { ...this.ack };
    this.writeCursor();
    this.unlinkSegment(old);
    this.segments = this.segments.filter((s) => s !== old);
  }

  /** Resolves when records are appended (or after timeoutMs / on close). */
  waitForData(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const done = () => {
        this.waiters.delete(done);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.add(done);
      timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Records appended but not yet handed out by readBatch. */
  get unread(): boolean {
    return this.read.segment < this.writeSeg || this.read.offset < this.writeOff;
  }

  /**
   * Reads up to maxRecords / maxBytes from the read position without acknowledging them. Corrupt
   * records are skipped and reported via onCorruption.
   */
  readBatch(maxRecords: number, maxBytes: number): QueueBatch {
    // Consecutive valid records lie back to back in the reader's buffer: they are copied as one span
    // (headers included), and the batch notes where each record's raw bytes start and end in it. A
    // span is cut by a skipped corrupt stretch, a refill of the read buffer or a new segment.
    this.ensureBatchArrays(Math.min(maxRecords, 1 << 16));
    let count = 0;
    let bytes = 0;
    let diskBytes = 0;
    try {
      while (count < maxRecords && bytes < maxBytes) {
        if (!this.reader || this.reader.segment !== this.read.segment) {
          this.flushSpan();
          this.reader?.close();
          this.reader = null;
          if (this.read.segment > this.writeSeg) break;
          this.reader = new SegmentReader(join(this.dir, segName(this.read.segment)), this.read.segment, this.read.offset, Infinity);
          this.reader.beforeRefill = this.flushSpan;
        }
        const r = this.reader;
        const active = this.read.segment === this.writeSeg;
        r.limit = active ? this.writeOff : Infinity;
        // this.read.offset follows r.position; it is written back when the loop leaves this segment.
        const st = r.step();
        if (st === STEP_END) {
          if (active) break;
          this.read = { segment: this.nextSegmentAfter(this.read.segment), offset: 0 };
          continue;
        }
        if (st === STEP_CORRUPT) {
          this.opts.onCorruption?.({ segment: this.read.segment, offset: r.badOffset, bytes: r.badBytes, kind: r.badAtEnd ? 'torn-tail' : 'corrupt-record' });
          continue;
        }
        const rawLen = r.recLen - PAYLOAD_PREFIX;
        if (count > 0 && bytes + rawLen > maxBytes) {
          r.position = r.recStart;
          break;
        }
        const recEnd = r.recStart + RECORD_HEADER + r.recLen;
        if (this.spanTo !== r.recStart || this.spanTo === this.spanFrom) {
          this.flushSpan();
          this.spanFrom = r.recStart;
        }
        this.spanTo = recEnd;
        if (count === this.bStarts.length) this.ensureBatchArrays(count * 2);
        const at = this.gathered + (r.recStart - this.spanFrom) + RECORD_HEADER + PAYLOAD_PREFIX;
        this.bStarts[count] = at;
        this.bEnds[count] = at + rawLen;
        this.bRecv[count] = r.receivedAt;
        this.bFlags[count] = r.flags;
        count++;
        bytes += rawLen;
        diskBytes += RECORD_HEADER + r.recLen;
      }
      if (this.reader && this.reader.segment === this.read.segment) this.read = { segment: this.read.segment, offset: this.reader.position };
      // The batch gets an exact-size buffer of its own (transferable to a worker): straight from the
      // read buffer when the batch is one span, else from the gathered spans.
      let buffer: Buffer;
      const span = this.spanTo - this.spanFrom;
      if (this.gathered === 0) {
        buffer = Buffer.allocUnsafeSlow(span);
        if (span > 0) {
          const o = this.spanFrom - this.reader!.bufStart;
          buffer.set(new Uint8Array(this.reader!.store.buffer, this.reader!.store.byteOffset + o, span));
        }
      } else {
        this.flushSpan();
        buffer = Buffer.allocUnsafeSlow(this.gathered);
        buffer.set(new Uint8Array(this.batchScratch.buffer, this.batchScratch.byteOffset, this.gathered));
      }
      const starts = this.bStarts.slice(0, count);
      const ends = this.bEnds.slice(0, count);
      const receivedAt = this.bRecv.slice(0, count);
      const flags = this.bFlags.slice(0, count);
      let records: QueueRecord[] | null = null;
      return {
        count,
        starts,
        ends,
        receivedAt,
        flags,
        buffer,
        get records() {
          records ??= Array.from({ length: count }, (_, i) => ({ receivedAt: receivedAt[i]!, flags: flags[i]!, raw: buffer.subarray(starts[i], ends[i]) }));
          return records;
        },
        bytes,
        diskBytes,
        end: { ...this.read },
      };
    } catch (err) {
      // The reader may be past records of the failed batch: the next read starts again at this.read.
      this.reader?.close();
      this.reader = null;
      throw err;
    } finally {
      this.spanFrom = this.spanTo = 0;
      this.gathered = 0;
      // Kept for the next read unless one huge record made it larger than a batch.
      if (this.batchScratch.length > Math.max(maxBytes, 64 * 1024) * 2) this.batchScratch = Buffer.alloc(0);
    }
  }

  /** Copies the pending span out of the reader's buffer into the batch scratch (before a refill or a new reader). */
  private readonly flushSpan = (): void => {
    const n = this.spanTo - this.spanFrom;
    if (n <= 0) return;
    const r = this.reader!;
    if (this.gathered + n > this.batchScratch.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.batchScratch.length * 2, this.gathered + n, 64 * 1024));
      bigger.set(new Uint8Array(this.batchScratch.buffer, this.batchScratch.byteOffset, this.gathered));
      this.batchScratch = bigger;
    }
    this.batchScratch.set(new Uint8Array(r.store.buffer, r.store.byteOffset + this.spanFrom - r.bufStart, n), this.gathered);
    this.gathered += n;
    this.spanFrom = this.spanTo;
  };

  private ensureBatchArrays(n: number): void {
    if (this.bStarts.length >= n) return;
    const grow = <T extends Uint32Array | Float64Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const a = make(n);
      a.set(old);
      return a;
    };
    this.bStarts = grow(this.bStarts, (k) => new Uint32Array(k));
    this.bEnds = grow(this.bEnds, (k) => new Uint32Array(k));
    this.bRecv = grow(this.bRecv, (k) => new Float64Array(k));
    this.bFlags = grow(this.bFlags, (k) => new Uint8Array(k));
  }

  private nextSegmentAfter(seg: number): number {
    for (const s of this.segments) if (s > seg) return s;
    return this.writeSeg;
  }

  /** Marks everything up to `end` consumed; persists the cursor and deletes finished segments. */
  ackTo(end: Position, records: number, diskBytes: number): void {
    this.ack = { ...end };
    this.pendingOldest = null;
    this._records = Math.max(0, this._records - records);
    this._bytes = Math.max(0, this._bytes - diskBytes);
    if (this._records === 0) this._bytes = 0;
    this.writeCursor();
    for (const s of this.segments.filter((s) => s < end.segment)) this.unlinkSegment(s);
    this.segments = this.segments.filter((s) => s >= end.segment);
  }

  /**
   * The cursor file holds two 24-byte slots written alternately in place (one pwrite per ack, no
   * rename): seq u32 | segment f64 | offset f64 | crc32 u32 of the first 20 bytes. Open takes the
   * valid slot with the higher seq, so a torn write falls back to the previous cursor (duplicates,
   * never loss).
   */
  private readCursor(): Position | null {
    let best: { seq: number; pos: Position } | null = null;
    try {
      const b = readFileSync(join(this.dir, 'cursor'));
      for (let slot = 0; slot + 24 <= b.length && slot < 48; slot += 24) {
        if (crc32(b.subarray(slot, slot + 20)) !== b.readUInt32LE(slot + 20)) continue;
        const seq = b.readUInt32LE(slot);
        const pos = { segment: b.readDoubleLE(slot + 4), offset: b.readDoubleLE(slot + 12) };
        if (!Number.isInteger(pos.segment) || !Number.isInteger(pos.offset) || pos.offset < 0) continue;
        if (!best || seq > best.seq) best = { seq, pos };
      }
    } catch {
      return null;
    }
    if (best) this.cursorSeq = best.seq;
    return best?.pos ?? null;
  }

  private writeCursor(): void {
    // Not O_APPEND: the slots are rewritten in place.
    if (this.cursorFd < 0) this.cursorFd = openSync(join(this.dir, 'cursor'), fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
    this.cursorSeq = (this.cursorSeq + 1) >>> 0;
    const b = this.cursorBuf;
    b.writeUInt32LE(this.cursorSeq, 0);
    b.writeDoubleLE(this.ack.segment, 4);
    b.writeDoubleLE(this.ack.offset, 12);
    b.writeUInt32LE(crc32(b.subarray(0, 20)), 20);
    writeSync(this.cursorFd, b, 0, 24, (this.cursorSeq % 2) * 24);
  }

  /** Re-reads from the acknowledged position (after a failed hand-out that was not acknowledged). */
  rewind(): void {
    this.read = { ...this.ack };
    this.reader?.close();
    this.reader = null;
  }

  /** receivedAt of the oldest unacknowledged record, or null when empty. */
  oldestReceivedAt(): number | null {
    if (this._records === 0) return null;
    if (this.pendingOldest !== null) return this.pendingOldest;
    try {
      const r = new SegmentReader(join(this.dir, segName(this.ack.segment)), this.ack.segment, this.ack.offset, this.ack.segment === this.writeSeg ? this.writeOff : Infinity);
      try {
        for (;;) {
          const st = r.step();
          if (st === STEP_END) return null;
          if (st === STEP_RECORD) {
            this.pendingOldest = r.receivedAt;
            return this.pendingOldest;
          }
        }
      } finally {
        r.close();
      }
    } catch {
      return null;
    }
  }

  private unlinkSegment(s: number): void {
    try {
      unlinkSync(join(this.dir, segName(s)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.onError?.(err as Error, 'unlink');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fsyncTimer) clearInterval(this.fsyncTimer);
    if (this.cursorFd >= 0) {
      closeSync(this.cursorFd);
      this.cursorFd = -1;
    }
    this.reader?.close();
    this.reader = null;
    if (this.writeFd >= 0) {
      try {
        fsyncSync(this.writeFd);
      } catch (err) {
        this.opts.onError?.(err as Error, 'fsync');
      }
      this.closeSegmentFd(this.writeFd);
      this.writeFd = -1;
    }
    for (const w of [...this.waiters]) w();
  }
}

/** SegmentReader.step() outcomes. */
const STEP_END = 0;
const STEP_RECORD = 1;
const STEP_CORRUPT = 2;

/**
 * Buffered sequential reader of one segment, validating every record. step() reports through fields,
 * not result objects: readBatch runs it once per record.
 */
class SegmentReader {
  private fd: number;
  /** One read buffer, reused: it holds file bytes [bufStart, bufStart + bufLen). */
  store: Buffer = Buffer.alloc(0);
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  bufStart = 0;
  private bufLen = 0;
  position: number;
  limit: number;
  size = 0;
  tailCorruptFrom: number | null = null;
  /** Called before the read buffer is overwritten: readBatch copies out what it still needs. */
  beforeRefill: (() => void) | null = null;
  /** After STEP_RECORD: the record's file offset, payload length (prefix included), receive time and flags. */
  recStart = 0;
  recLen = 0;
  receivedAt = 0;
  flags = 0;
  /** After STEP_CORRUPT: the skipped stretch. */
  badOffset = 0;
  badBytes = 0;
  badAtEnd = false;

  constructor(path: string, readonly segment: number, start: number, limit: number) {
    this.fd = openSync(path, 'r');
    this.position = start;
    this.limit = limit;
  }

  /** Re-reads the file size only when the cached size is used up (one fstat per refill, not per record). */
  private fileEnd(): number {
    if (this.position >= Math.min(this.size, this.limit) || this.size === 0) this.size = fstatSync(this.fd).size;
    return Math.min(this.size, this.limit);
  }

  /** Ensures the buffer holds [pos, pos+n); false when the file (up to limit) is shorter. */
  private ensure(pos: number, n: number, end: number): boolean {
    if (pos + n > end) return false;
    if (pos >= this.bufStart && pos + n <= this.bufStart + this.bufLen) return true;
    this.beforeRefill?.();
    const len = Math.min(Math.max(n, READ_CHUNK), end - pos);
    if (this.store.length < len) {
      this.store = Buffer.allocUnsafeSlow(Math.max(len, READ_CHUNK));
      this.view = new DataView(this.store.buffer, this.store.byteOffset, this.store.length);
    }
    let got = 0;
    while (got < len) {
      const r = readSync(this.fd, this.store, got, len - got, pos + got);
      if (r === 0) break;
      got += r;
    }
    this.bufLen = got;
    this.bufStart = pos;
    return got >= n;
  }

  private validAt(pos: number, end: number): number {
    if (!this.ensure(pos, RECORD_HEADER, end)) return -1;
    const o = pos - this.bufStart;
    if (this.store[o] !== MAGIC0 || this.store[o + 1] !== MAGIC1) return -1;
    const len = this.view.getUint32(o + 2, true);
    if (len < PAYLOAD_PREFIX || len > MAX_RECORD) return -1;
    const crc = this.view.getUint32(o + 6, true);
    if (!this.ensure(pos, RECORD_HEADER + len, end)) return -1;
    // A plain Uint8Array over the payload: cheaper to make than a Buffer view (subarray).
    const s = this.store;
    if (crc32(new Uint8Array(s.buffer, s.byteOffset + pos - this.bufStart + RECORD_HEADER, len)) !== crc) return -1;
    return len;
  }

  /** Reads the record at position: STEP_RECORD (its bytes are in `store` until the next refill), STEP_END or STEP_CORRUPT. */
  step(): number {
    const end = this.fileEnd();
    const pos = this.position;
    if (pos >= end) return STEP_END;
    const len = this.validAt(pos, end);
    if (len >= 0) {
      const p = pos - this.bufStart + RECORD_HEADER;
      this.recStart = pos;
      this.recLen = len;
      this.receivedAt = this.view.getFloat64(p, true);
      this.flags = this.store[p + 8]!;
      this.position = pos + RECORD_HEADER + len;
      return STEP_RECORD;
    }
    // A header that runs past the end of a still-written segment is not corruption yet.
    if (this.limit !== Infinity && this.headerFitsButIncomplete(pos, end)) return STEP_END;
    // Resynchronise: find the next offset where a valid record starts.
    for (let q = pos + 1; q < end; q++) {
      if (!this.ensure(q, 2, end)) break;
      const o = q - this.bufStart;
      if (this.store[o] === MAGIC0 && this.store[o + 1] === MAGIC1 && this.validAt(q, end) >= 0) {
        this.position = q;
        return this.corrupt(pos, q - pos, false);
      }
    }
    this.position = end;
    this.tailCorruptFrom = pos;
    return this.corrupt(pos, end - pos, true);
  }

  private corrupt(offset: number, bytes: number, atEnd: boolean): number {
    this.badOffset = offset;
    this.badBytes = bytes;
    this.badAtEnd = atEnd;
    return STEP_CORRUPT;
  }

  private headerFitsButIncomplete(pos: number, end: number): boolean {
    if (!this.ensure(pos, Math.min(RECORD_HEADER, end - pos), end)) return true;
    const o = pos - this.bufStart;
    if (end - pos < RECORD_HEADER) return true;
    if (this.store[o] !== MAGIC0 || this.store[o + 1] !== MAGIC1) return false;
    const len = this.view.getUint32(o + 2, true);
    return len <= MAX_RECORD && pos + RECORD_HEADER + len > end;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
