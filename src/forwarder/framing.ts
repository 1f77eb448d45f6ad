/**
 * Syslog TCP framing (RFC 6587): newline-terminated ("non-transparent") and octet-counted
 * (`LEN SP MSG`) frames, detected per frame: a frame that starts with a digit run (no leading 0)
 * and a space is octet-counted. Frames longer than maxBytes are cut to maxBytes and flagged; the
 * rest of such a frame is skipped so the next frame is found again.
 */
export interface Frame {
  data: Buffer;
  truncated: boolean;
}

const LF = 10;
const CR = 13;
const SP = 32;
const NUL = 0;
// Longest octet count we read: 10 digits covers any length we would accept.
const MAX_COUNT_DIGITS = 10;

export class SyslogFramer {
  private leftover: Buffer | null = null;
  private skipOctets = 0;
  private skipToNewline = false;

  constructor(private readonly maxBytes: number) {}

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.leftover?.length ?? 0;
  }

  /** Splits a chunk into frames; returned buffers are views into the input (copy before keeping). */
  push(chunk: Buffer, out: Frame[] = []): Frame[] {
    const lo = this.leftover;
    if (!lo) return this.scan(chunk, 0, out);
    this.leftover = null;
    // A newline-framed message waiting for its end (the leftover holds no LF): join it with the chunk
    // only up to the first LF, not the whole chunk (a fresh buffer of a socket read's size per read).
    if (!(lo[0]! >= 0x31 && lo[0]! <= 0x39)) {
      const j = chunk.indexOf(LF);
      if (j >= 0) {
        this.scan(Buffer.concat([lo, chunk.subarray(0, j + 1)]), 0, out);
        return this.scan(chunk, j + 1, out);
      }
    }
    return this.scan(Buffer.concat([lo, chunk]), 0, out);
  }

  private scan(buf: Buffer, i: number, out: Frame[]): Frame[] {
    const max = this.maxBytes;
    const len = buf.length;
    while (i < len) {
      if (this.skipOctets > 0) {
        const n = Math.min(this.skipOctets, len - i);
        i += n;
        this.skipOctets -= n;
        continue;
      }
      if (this.skipToNewline) {
        const j = buf.indexOf(LF, i);
        if (j < 0) return out;
        i = j + 1;
        this.skipToNewline = false;
        continue;
      }
      const c = buf[i];
      if (c === LF || c === CR || c === NUL || c === SP) {
        i++;
        continue;
      }
      if (c >= 0x31 && c <= 0x39) {
        let j = i + 1;
        while (j < len && j - i < MAX_COUNT_DIGITS && buf[j] >= 0x30 && buf[j] <= 0x39) j++;
        if (j === len && j - i < MAX_COUNT_DIGITS) {
          // Cannot tell the framing yet: wait for more bytes.
          this.leftover = buf.subarray(i);
          return out;
        }
        if (buf[j] === SP) {
          const count = Number(buf.toString('latin1', i, j));
          const start = j + 1;
          const avail = len - start;
          if (avail >= count) {
            if (count > max) out.push({ data: trimEnd(buf.subarray(start, start + max)), truncated: true });
            else if (count > 0) out.push({ data: trimEnd(buf.subarray(start, start + count)), truncated: false });
            i = start + count;
            continue;
          }
          if (count > max && avail >= max) {
            out.push({ data: trimEnd(buf.subarray(start, start + max)), truncated: true });
            this.skipOctets = count - max;
            i = start + max;
            continue;
          }
          this.leftover = buf.subarray(i);
          return out;
        }
      }
      const j = buf.indexOf(LF, i);
      if (j < 0) {
        if (len - i > max) {
          out.push({ data: buf.subarray(i, i + max), truncated: true });
          this.skipToNewline = true;
          i += max;
          continue;
        }
        this.leftover = buf.subarray(i);
        return out;
      }
      const frame = trimEnd(buf.subarray(i, j));
      if (frame.length > max) out.push({ data: frame.subarray(0, max), truncated: true });
      else if (frame.length > 0) out.push({ data: frame, truncated: false });
      i = j + 1;
    }
    return out;
  }

  /**
   * At connection close (peer FIN, error, idle close, shutdown): what is held becomes a frame. A last
   * newline-framed message without its newline is whole as far as anyone can tell; an octet-counted
   * frame shorter than its count is kept as a truncated message, without its length prefix.
   */
  end(out: Frame[] = []): Frame[] {
    const rest = this.leftover;
    this.leftover = null;
    if (rest && !this.skipToNewline && this.skipOctets === 0) {
      const body = octetCountedBody(rest);
      const frame = trimEnd(body ?? rest);
      if (frame.length > this.maxBytes) out.push({ data: frame.subarray(0, this.maxBytes), truncated: true });
      else if (frame.length > 0) out.push({ data: frame, truncated: body !== null });
    }
    return out;
  }
}

/** The bytes after `LEN SP` when a held frame is octet-counted (scan holds only incomplete ones), else null. */
function octetCountedBody(b: Buffer): Buffer | null {
  if (!(b[0]! >= 0x31 && b[0]! <= 0x39)) return null;
  let j = 1;
  while (j < b.length && j < MAX_COUNT_DIGITS && b[j]! >= 0x30 && b[j]! <= 0x39) j++;
  return b[j] === SP ? b.subarray(j + 1) : null;
}

/** Drops trailing CR/LF/NUL that senders put inside frames or datagrams. */
export function trimEnd(b: Buffer): Buffer {
  let e = b.length;
  while (e > 0 && (b[e - 1] === LF || b[e - 1] === CR || b[e - 1] === NUL)) e--;
  return e === b.length ? b : b.subarray(0, e);
}
