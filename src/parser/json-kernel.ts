/**
 * The byte copying of a row's JSON (keys, escaped values) done by a small WebAssembly kernel
 * (json-kernel.wat): on this class of machine a JavaScript byte loop costs 2–4 ns per byte and a
 * native Buffer call about 100 ns, so a 500-byte event spent ~4 µs in those loops; the kernel's
 * 16-byte SIMD loop with no bounds checks does a row in a fraction of that. No library does this
 * job (write JSON from positions in a line), hence our own.
 */
import { JSON_KERNEL_WASM } from './json-kernel-wasm.js';

const SHORT: Record<number, number> = { 8: 98, 9: 116, 10: 110, 12: 102, 13: 114, 34: 34, 92: 92 };
const KEY_CHARS = 256;
const CEF_TABLE_MASK = 512;
const KEY_TABLE = 1024;
const CEF_TABLE = 32768;
/** Entries describing the row being written (three i32 per column). */
export const KERNEL_DESC = 16384;
/** A value kept from one row to the next (TimeGenerated), at most KERNEL_TIME_MAX bytes. */
export const KERNEL_TIME = 28672;
export const KERNEL_TIME_MAX = 256;
/** Where the line's bytes, then the values written by JavaScript, then the row go. */
export const KERNEL_FREE = 65536;
/** Above this the kernel's memory is not grown: the row is written by the JavaScript loops instead. */
export const KERNEL_MAX_BYTES = 16 * 1024 * 1024;
/** Slack past any region: the kernel moves 16 bytes at a time. */
export const KERNEL_SLACK = 32;

export class JsonKernel {
  readonly memory: WebAssembly.Memory;
  /** Views of the memory (renewed when it grows): a Buffer for writes, Uint8Array for subarray, i32 for entries. */
  buf!: Buffer;
  u8!: Uint8Array;
  i32!: Int32Array;
  f64!: Float64Array;
  readonly row: (desc: number, n: number, at: number) => number;
  readonly keys: (from: number, end: number, out: number) => number;

  /**
   * keys: each column's `"Name":` bytes; keyChars: the CEF key character classes (128 entries);
   * cefKeys: the CEF key hash table (a power of two of slots, undefined where empty).
   */
  constructor(keys: ReadonlyArray<Uint8Array>, keyChars: Uint8Array, cefKeys: ReadonlyArray<string | undefined>) {
    const bytes = Buffer.from(JSON_KERNEL_WASM, 'base64');
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    const exp = instance.exports as { memory: WebAssembly.Memory; row: JsonKernel['row']; keys: JsonKernel['keys'] };
    this.memory = exp.memory;
    this.row = exp.row;
    this.keys = exp.keys;
    this.views();
    if (keyChars.length !== 128) throw new Error('key character table must have 128 entries');
    this.u8.set(keyChars, KEY_CHARS);
    for (const [c, e] of Object.entries(SHORT)) this.u8[Number(c)] = e;
    this.u8.set(Buffer.from('0123456789abcdef', 'latin1'), 128);
    if (KERNEL_DESC + keys.length * 16 > KERNEL_TIME) throw new Error('column entries do not fit the kernel table');
    const slots = cefKeys.length;
    if ((slots & (slots - 1)) !== 0) throw new Error('the CEF key table size must be a power of two');
    this.i32[CEF_TABLE_MASK >> 2] = slots - 1;
    let keyAt = CEF_TABLE + slots * 8;
    cefKeys.forEach((k, i) => {
      if (k === undefined) return;
      const b = Buffer.from(k, 'latin1');
      if (keyAt + b.length + KERNEL_SLACK > KERNEL_FREE) throw new Error('CEF keys do not fit the kernel table');
      this.i32[(CEF_TABLE >> 2) + i * 2] = keyAt;
      this.i32[(CEF_TABLE >> 2) + i * 2 + 1] = b.length;
      this.u8.set(b, keyAt);
      keyAt += b.length;
    });
    let at = KEY_TABLE + keys.length * 8;
    if (at + keys.reduce((n, k) => n + k.length, 0) + KERNEL_SLACK > KERNEL_DESC) throw new Error('column names do not fit the kernel table');
    keys.forEach((k, c) => {
      this.i32[(KEY_TABLE >> 2) + c * 2] = at;
      this.i32[(KEY_TABLE >> 2) + c * 2 + 1] = k.length;
      this.u8.set(k, at);
      at += k.length;
    });
  }

  /** Makes the memory at least `bytes` long; false (the caller uses its JavaScript path) when it cannot. */
  reserve(bytes: number): boolean {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return true;
    if (bytes > KERNEL_MAX_BYTES) return false;
    try {
      this.memory.grow(Math.ceil((bytes - have) / 65536));
    } catch {
      // Out of memory for the growth: not the line's fault, so not a parse failure.
      return false;
    }
    this.views();
    return true;
  }

  private views(): void {
    const ab = this.memory.buffer;
    this.buf = Buffer.from(ab);
    this.u8 = new Uint8Array(ab);
    this.i32 = new Int32Array(ab);
    this.f64 = new Float64Array(ab);
  }
}

/** The kernel, or undefined where WebAssembly is unavailable (e.g. node --jitless): rows then use the loops. */
export function makeJsonKernel(keys: ReadonlyArray<Uint8Array>, keyChars: Uint8Array, cefKeys: ReadonlyArray<string | undefined>): JsonKernel | undefined {
  try {
    return new JsonKernel(keys, keyChars, cefKeys);
  } catch {
    return undefined;
  }
}
