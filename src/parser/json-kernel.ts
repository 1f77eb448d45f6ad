/**
 * The byte work of the forwarder's hot path — finding an extension's keys, and copying a row's JSON
 * (keys, escaped values) — done by a small WebAssembly kernel (json-kernel.wat): on this class of machine
 * a JavaScript byte loop costs 2–4 ns per byte and a native Buffer call about 100 ns, so a 500-byte event
 * spent ~4 µs in those loops; the kernel's 16-byte SIMD loops with no bounds checks do a row in a fraction
 * of that. No library does this job (write JSON from positions in a line), hence our own.
 *
 * The parser uses it through two calls: findKeys (the extension's pairs, cef-extension.ts) and writeRow
 * (the row's JSON, cef-row-json.ts). Where it is not loaded or turned off, or a line needs more memory
 * than KERNEL_MAX_BYTES, the JavaScript paths do the same work.
 *
 * One source of truth, and what still has to change together:
 * - Memory layout, entry formats and flags, the hash's constants: json-kernel-layout.json only.
 *   scripts/build-wasm.mjs writes them into the .wat and into json-kernel-layout.ts, and refuses a
 *   literal address in the .wat. A stale output fails test/parser/json-direct.test.ts ("is built from
 *   json-kernel.wat and json-kernel-layout.json", which runs `node scripts/build-wasm.mjs --check`);
 *   test/parser/json-kernel-layout.test.ts covers the table and the build's refusals.
 * - Tables filled from TypeScript at load (this constructor): the key character classes (KEY_CHAR),
 *   the CEF key table (tableKeys: slots and keys), the columns' `"Name":` bytes, the JSON escapes.
 * - Rules written twice, in the .wat `keys` function and in cef-extension.ts parseExtension: the
 *   backslash parity before `=`, the key walk back over key characters and its hash (FNV-1a read
 *   backwards), "a key starts with [A-Za-z_]", and the separator before a key (start of the
 *   extension, blank or TAB, rsyslog's `#011`); the table probe (cef-key-table.ts findKey / `$slot`:
 *   linear probing). Also JSON.stringify's output for strings and integers (`$str`, `$int`) against
 *   json-out.ts. Change one side and change the other: test/parser/json-direct.test.ts runs every case
 *   with the kernel and with the JavaScript paths against JSON.stringify of the row path (fixtures,
 *   every byte in every lane, and fast-check lines with escapes, duplicates, TABs, `#011` and missing
 *   separators), so a rule that differs fails there.
 */
import { JSON_KERNEL_WASM } from './json-kernel-wasm.js';
import {
  CEF_TABLE,
  CEF_TABLE_MASK,
  ENTRY_INT,
  ENTRY_JSON,
  HEX_DIGITS,
  KERNEL_DESC,
  KERNEL_FREE,
  KERNEL_TIME,
  KEY_CHARS,
  KEY_ENTRY_BYTES,
  KEY_TABLE,
  ROW_ENTRY_BYTES,
  SHORT_ESCAPES,
  TABLE_ENTRY_BYTES,
} from './json-kernel-layout.js';
import { writeNumber, writeString, type JsonRow, type JsonTarget } from './json-out.js';
import { columnIndex } from './columns.js';
import { KEY_CHAR, tableKeys } from './cef-key-table.js';
import { KEY_JSON } from './cef-row-shapes.js';
import type { CefParseState, KeyFinder } from './cef-parse-state.js';

const SHORT: Record<number, number> = { 8: 98, 9: 116, 10: 110, 12: 102, 13: 114, 34: 34, 92: 92 };
/** At most this many bytes of TimeGenerated's JSON are kept at KERNEL_TIME. */
export const KERNEL_TIME_MAX = 256;
/** Above this the kernel's memory is not grown: the row is written by the JavaScript loops instead. */
export const KERNEL_MAX_BYTES = 16 * 1024 * 1024;
/** Slack past any region: the kernel moves 16 bytes at a time. */
export const KERNEL_SLACK = 32;

const I_TIME = columnIndex('TimeGenerated');

export class JsonKernel implements KeyFinder {
  readonly memory: WebAssembly.Memory;
  /** Views of the memory (renewed when it grows): a Buffer for writes, Uint8Array for subarray, i32 for entries. */
  buf!: Buffer;
  u8!: Uint8Array;
  i32!: Int32Array;
  f64!: Float64Array;
  private readonly row: (desc: number, n: number, at: number) => number;
  private readonly keys: (from: number, end: number, out: number) => number;
  /** Where (i32 index) the entries of the last findKeys start. */
  keyEntries = 0;
  /** TimeGenerated's text whose JSON the memory holds at KERNEL_TIME (rows of one socket read share it). */
  private timeText = '';
  private timeBytes = 0;

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
    for (const [c, e] of Object.entries(SHORT)) this.u8[SHORT_ESCAPES + Number(c)] = e;
    this.u8.set(Buffer.from('0123456789abcdef', 'latin1'), HEX_DIGITS);
    if (KERNEL_DESC + keys.length * ROW_ENTRY_BYTES > KERNEL_TIME) throw new Error('column entries do not fit the kernel table');
    const slots = cefKeys.length;
    if ((slots & (slots - 1)) !== 0) throw new Error('the CEF key table size must be a power of two');
    this.i32[CEF_TABLE_MASK >> 2] = slots - 1;
    let keyAt = CEF_TABLE + slots * TABLE_ENTRY_BYTES;
    cefKeys.forEach((k, i) => {
      if (k === undefined) return;
      const b = Buffer.from(k, 'latin1');
      if (keyAt + b.length + KERNEL_SLACK > KERNEL_FREE) throw new Error('CEF keys do not fit the kernel table');
      this.i32[(CEF_TABLE + i * TABLE_ENTRY_BYTES) >> 2] = keyAt;
      this.i32[((CEF_TABLE + i * TABLE_ENTRY_BYTES) >> 2) + 1] = b.length;
      this.u8.set(b, keyAt);
      keyAt += b.length;
    });
    let at = KEY_TABLE + keys.length * TABLE_ENTRY_BYTES;
    if (at + keys.reduce((n, k) => n + k.length, 0) + KERNEL_SLACK > KERNEL_DESC)
      throw new Error('column names do not fit the kernel table');
    keys.forEach((k, c) => {
      this.i32[(KEY_TABLE + c * TABLE_ENTRY_BYTES) >> 2] = at;
      this.i32[((KEY_TABLE + c * TABLE_ENTRY_BYTES) >> 2) + 1] = k.length;
      this.u8.set(k, at);
      at += k.length;
    });
  }

  /**
   * The keys of the extension [from, end) of the parse's line (st.src), which this copies into the
   * memory at KERNEL_FREE (writeRow then reads its spans there): returns how many, their entries
   * (KEY_ENTRY_BYTES each) from i32 index keyEntries; -1 when the memory cannot hold the line (the
   * caller scans in JavaScript).
   */
  findKeys(st: CefParseState, from: number, end: number): number {
    const bytes = st.src!;
    // The line, then room for the entries (one per `=` at most).
    const work = KERNEL_FREE + bytes.length + KERNEL_SLACK + KEY_ENTRY_BYTES + KEY_ENTRY_BYTES * (bytes.length + 1) + KERNEL_SLACK;
    if (!this.reserve(work)) return -1;
    this.u8.set(bytes, KERNEL_FREE);
    st.kernelWork = work;
    const at = (KERNEL_FREE + bytes.length + KERNEL_SLACK + 15) & ~15;
    this.keyEntries = at >> 2;
    return this.keys(KERNEL_FREE + from, KERNEL_FREE + end, at);
  }

  /**
   * The row of the parse's slots, in `order`, as JSON into target, then the slots cleared; undefined
   * (nothing written) when the memory cannot hold it. Values that are not spans of the line go into the
   * memory first; the kernel writes the row there and it is copied to target in one call.
   */
  writeRow(st: CefParseState, order: number[], bound: number, target: JsonTarget): JsonRow | undefined {
    const { src, slots, isSpan, spanA, spanB } = st;
    const line = KERNEL_FREE;
    const copy = st.kernelWork === 0 && src !== null;
    const scratch = st.kernelWork !== 0 ? st.kernelWork : line + (src === null ? 0 : src.length) + KERNEL_SLACK;
    const at = scratch + bound + KERNEL_SLACK;
    if (!this.reserve(at + bound + KERNEL_SLACK)) return undefined;
    const mem = this.buf;
    const ent = this.i32;
    if (copy) this.u8.set(src!, line);
    const num = this.f64;
    let d = KERNEL_DESC >> 2;
    let sp = scratch;
    for (let i = 0; i < order.length; i++, d += ROW_ENTRY_BYTES >> 2) {
      const c = order[i]!;
      if (isSpan[c] === 1) {
        ent[d] = c;
        ent[d + 1] = line + spanA[c];
        ent[d + 2] = line + spanB[c];
        continue;
      }
      const v = slots[c]!;
      if (typeof v === 'number' && Number.isSafeInteger(v)) {
        ent[d] = c | ENTRY_INT;
        num[(d >> 1) + 1] = v;
      } else {
        ent[d] = c | ENTRY_JSON;
        if (c === I_TIME && v === this.timeText) {
          ent[d + 1] = KERNEL_TIME;
          ent[d + 2] = KERNEL_TIME + this.timeBytes;
        } else {
          ent[d + 1] = sp;
          sp = typeof v === 'string' ? writeString(mem, sp, v) : writeNumber(mem, sp, v);
          ent[d + 2] = sp;
          // Rows of one socket read share TimeGenerated: keep its JSON for the next row.
          if (c === I_TIME && sp - ent[d + 1]! <= KERNEL_TIME_MAX) {
            mem.copyWithin(KERNEL_TIME, ent[d + 1]!, sp);
            this.timeText = v as string;
            this.timeBytes = sp - ent[d + 1]!;
          }
        }
      }
    }
    const end = this.row(KERNEL_DESC, order.length, at);
    const bytes = end - at;
    const out = target.room(bytes + 1);
    const start = target.at;
    out.set(this.u8.subarray(at, end), start);
    out[start + bytes] = 44; // the separator from the next row (JsonTarget)
    target.at = start + bytes + 1;
    st.clearSlots();
    return { ok: true, kind: 'json', buf: out, start, bytes };
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
export function makeJsonKernel(
  keys: ReadonlyArray<Uint8Array>,
  keyChars: Uint8Array,
  cefKeys: ReadonlyArray<string | undefined>,
): JsonKernel | undefined {
  try {
    return new JsonKernel(keys, keyChars, cefKeys);
  } catch {
    return undefined;
  }
}

/** Made on the first line parsed for JSON (the CLI's other commands never need it); undefined where it cannot load. */
let kernel: JsonKernel | undefined | null = null;
let useKernel = true;

function loadedKernel(): JsonKernel | undefined {
  if (kernel === null) kernel = makeJsonKernel(KEY_JSON, KEY_CHAR, tableKeys);
  return kernel;
}

/** The kernel when it is loaded and on, else undefined. */
export function jsonKernel(): JsonKernel | undefined {
  return useKernel ? loadedKernel() : undefined;
}

/** Tests and benchmarks: write rows with the JavaScript loops (false) or the kernel (true, the default where it loads). */
export function setJsonKernel(on: boolean): boolean {
  useKernel = on;
  return loadedKernel() !== undefined;
}
