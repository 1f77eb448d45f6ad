import type { JsonTarget } from '../parser/json-out.js';

const CHUNK_BYTES = 256 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * Writes rows' JSON back to back into 256 KiB buffers of their own (outside V8's heap, each its own
 * ArrayBuffer so a worker can transfer it). A chunk lives as long as any row written into it.
 */
export class RowWriter implements JsonTarget {
  private chunk: Buffer = EMPTY;
  /** Where the next row goes in the current chunk. */
  at = 0;
  private used: Buffer[] = [];
  /** Chunks handed back after their rows were sent: reused instead of fresh memory (page faults). */
  private spare: Buffer[] = [];

  /** track: remember the chunks for takeChunks (a worker that transfers them). */
  constructor(private readonly track = false) {}

  /** The current chunk, or a new one when fewer than `bytes` are free in it. */
  room(bytes: number): Buffer {
    if (this.at + bytes > this.chunk.length) {
      this.chunk = (bytes <= CHUNK_BYTES ? this.spare.pop() : undefined) ?? Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, bytes));
      this.at = 0;
      if (this.track) this.used.push(this.chunk);
    }
    return this.chunk;
  }

  /** Stores json; returns where it went. */
  write(json: string): { buf: Buffer; start: number; bytes: number } {
    // UTF-16 → UTF-8 is at most 3 bytes per unit; only a row that may not fit pays for an exact count.
    const buf = this.at + json.length * 3 + 1 > this.chunk.length ? this.room(Buffer.byteLength(json, 'utf8') + 1) : this.chunk;
    const start = this.at;
    const bytes = buf.write(json, start, 'utf8');
    buf[start + bytes] = 0x2c; // the separator from the next row (JsonTarget)
    this.at += bytes + 1;
    return { buf, start, bytes };
  }

  /** Takes back chunks whose rows are no longer needed (at most 64 are kept). */
  recycle(chunks: Buffer[]): void {
    for (const c of chunks) if (c.length === CHUNK_BYTES && this.spare.length < 64) this.spare.push(c);
  }

  /** The chunks written since the last call; later rows go to a new chunk (the old ones may be transferred). */
  takeChunks(): Buffer[] {
    const out = this.used;
    this.used = [];
    this.chunk = EMPTY;
    this.at = 0;
    return out;
  }
}

/** Where rows' JSON goes when no writer is given (the main thread's). */
export const defaultWriter = new RowWriter();
