/**
 * The ledger: the persisted read cursor, file `cursor` in the queue directory.
 *
 * Two 24-byte slots written alternately in place (one pwrite per ack, no rename, no new block):
 *   seq u32 LE | segment f64 LE | offset f64 LE | CRC32 u32 LE of the first 20 bytes
 * Open takes the valid slot with the higher seq, so a torn write falls back to the previous cursor
 * (duplicates, never loss). The sequence only moves once a slot is written: a failed write is
 * retried into the same slot, and the other slot keeps the last good cursor.
 */
import { constants as fsConstants, readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';

// A namespace import: a named one fails at link time on a Node without zlib.crc32, before the version check runs.
const crc32 = zlib.crc32;
import { closeSync, fstatSync, openSync, writeAllSync } from '../../util/fsio.js';

export interface Position {
  segment: number;
  offset: number;
}

const SLOT = 24;

export class Ledger {
  private fd = -1;
  private seq = 0;
  private readonly buf = Buffer.alloc(SLOT);

  constructor(private readonly path: string) {}

  /** The last cursor written, or null when there is none (no file, or both slots torn). */
  read(): Position | null {
    let best: { seq: number; pos: Position } | null = null;
    try {
      const b = readFileSync(this.path);
      for (let slot = 0; slot + SLOT <= b.length && slot < 2 * SLOT; slot += SLOT) {
        if (crc32(b.subarray(slot, slot + 20)) !== b.readUInt32LE(slot + 20)) continue;
        const seq = b.readUInt32LE(slot);
        const pos = { segment: b.readDoubleLE(slot + 4), offset: b.readDoubleLE(slot + 12) };
        if (!Number.isInteger(pos.segment) || !Number.isInteger(pos.offset) || pos.offset < 0) continue;
        if (!best || seq > best.seq) best = { seq, pos };
      }
    } catch {
      return null;
    }
    if (best) this.seq = best.seq;
    return best?.pos ?? null;
  }

  /**
   * Both slots exist from the start, so an ack rewrites them in place and never needs a new block:
   * on a full disk delivery can still move the cursor and free segments.
   */
  init(pos: Position): void {
    this.openFile();
    if (fstatSync(this.fd).size < 2 * SLOT) {
      this.write(pos);
      this.write(pos);
    }
  }

  write(pos: Position): void {
    this.openFile();
    const seq = (this.seq + 1) >>> 0;
    const b = this.buf;
    b.writeUInt32LE(seq, 0);
    b.writeDoubleLE(pos.segment, 4);
    b.writeDoubleLE(pos.offset, 12);
    b.writeUInt32LE(crc32(b.subarray(0, 20)), 20);
    writeAllSync(this.fd, b, (seq % 2) * SLOT);
    this.seq = seq;
  }

  private openFile(): void {
    // Not O_APPEND: the slots are rewritten in place.
    if (this.fd < 0) this.fd = openSync(this.path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
  }

  close(onError?: (err: Error) => void): void {
    const fd = this.fd;
    this.fd = -1;
    if (fd < 0) return;
    try {
      closeSync(fd);
    } catch (err) {
      onError?.(err as Error);
    }
  }
}
