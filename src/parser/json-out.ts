/**
 * Writing a row's JSON straight into bytes, exactly as JSON.stringify would write it (same escapes, same
 * number text), so the forwarder need not build a row object and stringify it for every event.
 */

/**
 * Where lineJsonParser writes a row: `room(n)` returns a buffer with at least n bytes free at `at`.
 * Each row is followed by a `,` (not counted in its bytes), so a call body copies a run of adjacent
 * rows at once (bodyOf).
 */
export interface JsonTarget {
  room(bytes: number): Buffer;
  at: number;
}

/** A sink's per-row limits: a row over one is not written as JSON here but handed back as an object. */
export interface RowLimits {
  /** Per value, in UTF-8 bytes. */
  maxFieldBytes: number;
  maxColumns: number;
}

/** A row written as JSON: its bytes are `buf[start, start + bytes)`. */
export interface JsonRow {
  ok: true;
  kind: 'json';
  buf: Buffer;
  start: number;
  bytes: number;
}

/** 0: byte goes out as is; 1: short escape; 2: \u00XX. Only ASCII is looked up. */
const ESCAPE = new Uint8Array(128);
for (let c = 0; c < 32; c++) ESCAPE[c] = 2;
for (const c of [8, 9, 10, 12, 13, 34, 92]) ESCAPE[c] = 1;
const SHORT: Record<number, number> = { 8: 98, 9: 116, 10: 110, 12: 102, 13: 114, 34: 34, 92: 92 };
const SHORT_OF = new Uint8Array(128);
for (const [c, e] of Object.entries(SHORT)) SHORT_OF[Number(c)] = e;
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** Most bytes one source unit can take in JSON (\u00XX, or \uDXXX for a lone surrogate). */
export const MAX_JSON_BYTES_PER_UNIT = 6;

function escapeAscii(out: Uint8Array, p: number, c: number): number {
  out[p++] = 92;
  if (ESCAPE[c] === 1) {
    out[p++] = SHORT_OF[c]!;
    return p;
  }
  out[p++] = 117; // u
  out[p++] = 48;
  out[p++] = 48;
  out[p++] = HEX[c >> 4]!;
  out[p++] = HEX[c & 15]!;
  return p;
}

/**
 * Up to this many units a string is written by a loop here; a longer one by JSON.stringify and one
 * native write. (Measured: a native call costs about what a loop over ~250 bytes does.)
 */
const LOOP_MAX = 256;

/** `"…"` from ASCII bytes src[a, b). */
export function writeAsciiSpan(out: Uint8Array, p: number, src: Uint8Array, a: number, b: number): number {
  out[p++] = 34;
  for (let i = a; i < b; i++) {
    const c = src[i]!;
    if (ESCAPE[c] === 0) out[p++] = c;
    else p = escapeAscii(out, p, c);
  }
  out[p++] = 34;
  return p;
}

/** `"…"` for any string: ASCII by hand, anything else through JSON.stringify (lone surrogates, UTF-8). */
export function writeString(out: Buffer, p: number, s: string): number {
  const n = s.length;
  if (n > LOOP_MAX) return p + out.write(JSON.stringify(s), p, 'utf8');
  const start = p;
  out[p++] = 34;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128) return start + out.write(JSON.stringify(s), start, 'utf8');
    if (ESCAPE[c] === 0) out[p++] = c;
    else p = escapeAscii(out, p, c);
  }
  out[p++] = 34;
  return p;
}

/** A number as JSON.stringify writes it (non-finite → null). */
export function writeNumber(out: Uint8Array, p: number, v: number): number {
  if ((v | 0) === v && !Object.is(v, -0)) {
    if (v < 0) {
      out[p++] = 45;
      v = -v;
    }
    if (v < 10) {
      out[p++] = 48 + v;
      return p;
    }
    let digits = 0;
    for (let t = v; t > 0; t = Math.floor(t / 10)) digits++;
    for (let i = p + digits - 1; i >= p; i--) {
      out[i] = 48 + (v % 10);
      v = Math.floor(v / 10);
    }
    return p + digits;
  }
  const s = Number.isFinite(v) ? String(v) : 'null';
  for (let i = 0; i < s.length; i++) out[p++] = s.charCodeAt(i);
  return p;
}
