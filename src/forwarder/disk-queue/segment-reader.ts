/**
 * The segment reader: a buffered sequential reader of one segment file that validates every record
 * (magic, length bound, CRC) and resynchronises past a corrupt stretch at the next valid record.
 * readBatch copies record bytes straight out of its read buffer, so it exposes the buffer.
 */
import { closeSync, fstatSync, openSync, readSync } from '../../util/fsio.js';
import * as zlib from 'node:zlib';

// A namespace import: a named one fails at link time on a Node without zlib.crc32, before the version check runs.
const crc32 = zlib.crc32;
import { MAGIC0, MAGIC1, MAX_RECORD, PAYLOAD_PREFIX, RECORD_HEADER } from './record.js';

const READ_CHUNK = 1024 * 1024;

/** SegmentReader.step() outcomes. */
export const STEP_END = 0;
export const STEP_RECORD = 1;
export const STEP_CORRUPT = 2;

/**
 * Buffered sequential reader of one segment, validating every record. step() reports through fields,
 * not result objects: readBatch runs it once per record.
 */
export class SegmentReader {
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
  /** End of the records of a segment that has bytes after them (see DiskQueue.sealedEnds). */
  sealedEnd = Infinity;
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

  constructor(
    path: string,
    readonly segment: number,
    start: number,
    limit: number,
  ) {
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
    const fd = this.fd;
    this.fd = -1;
    if (fd < 0) return;
    try {
      closeSync(fd);
    } catch {
      // Read-only fd, released by close(2) regardless.
    }
  }
}
