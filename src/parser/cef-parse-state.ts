/**
 * Everything one CEF parse writes as it goes, in one object. Values go into slots by column position and
 * the row (object or JSON) is made once at the end, always in canonical column order.
 *
 * Not re-entrant: the forwarder parses one line at a time per thread, so each thread uses one state
 * (cef.ts `shared`) for every line instead of allocating per event. A parse begun while another is under
 * way on the same state is refused (enter()), never interleaved: the slots, and the line in the JSON
 * kernel's memory, would be the other parse's. Worker threads have their own module instance, so their
 * own state and kernel.
 */
import { CSL_COLUMNS } from './columns.js';

export const NCOLS = CSL_COLUMNS.length;

/** What a parse uses of the JSON kernel (json-kernel.ts): declared here so the two files do not import each other. */
export interface KeyFinder {
  /** Finds the extension's keys of the line in the kernel's memory; the count, or -1 when the JavaScript scan must do it. */
  findKeys(st: CefParseState, from: number, end: number): number;
  readonly i32: Int32Array;
  /** Where (i32 index) the entries of the last findKeys start. */
  readonly keyEntries: number;
}

export class CefParseState {
  /** The line being parsed (span values are read back from it). */
  line = '';
  /** The line's bytes when it is ASCII and the row goes out as JSON, else null: then values are spans of it. */
  src: Uint8Array | null = null;
  /** The JSON kernel when the row goes out as JSON through it (see json-kernel.ts). */
  kernel: KeyFinder | undefined = undefined;
  /** Where free kernel memory starts past the line and its key entries when the line is in the kernel's memory, else 0. */
  kernelWork = 0;
  /** Receive time: completes timestamps sent without a year. */
  reference = new Date(0);

  readonly slots: Array<string | number | undefined> = new Array(NCOLS).fill(undefined);
  /** Columns written for the current line, in write order, and a running hash of that order. */
  readonly touched: number[] = [];
  nTouched = 0;
  shapeHash = 0;
  /** Per column: 1 when the value is the span [spanA, spanB) of the line (`src`), not a string in slots. */
  readonly isSpan = new Uint8Array(NCOLS);
  readonly spanA = new Int32Array(NCOLS);
  readonly spanB = new Int32Array(NCOLS);

  /** AdditionalExtensions so far (`key=value` joined by `;`). */
  extra = '';
  /** start/end values, converted after the scan (`dtz` may come later in the extension). */
  pendingStart: string | undefined = undefined;
  pendingStartKey = '';
  pendingEnd: string | undefined = undefined;
  pendingEndKey = '';
  /**
   * Position of the next backslash at or after the current value, or -1 when the rest of the line has
   * none (most lines): values then need no unescaping and no per-value scan.
   */
  nextBackslash = -1;

  private busy = false;

  /** Marks a parse as under way; throws when one already is (see the header). */
  enter(): void {
    if (this.busy) throw new Error('CEF parser re-entered while parsing another line (one parse at a time per state)');
    this.busy = true;
  }

  /** Ends the parse: the state is ready for the next line. */
  leave(): void {
    this.src = null;
    this.kernel = undefined;
    this.kernelWork = 0;
    this.busy = false;
  }

  put(col: number, v: string | number): void {
    if (this.slots[col] === undefined) {
      this.touched[this.nTouched++] = col;
      this.shapeHash = (Math.imul(this.shapeHash, 31) + col + 1) | 0;
    }
    this.slots[col] = v;
  }

  /** The value of `col` is the line's s[a, b) (needs no unescaping; `src` is set). */
  putSpan(col: number, a: number, b: number): void {
    this.put(col, '');
    this.isSpan[col] = 1;
    this.spanA[col] = a;
    this.spanB[col] = b;
  }

  addExtra(key: string, value: string): void {
    this.extra = this.extra === '' ? `${key}=${value}` : `${this.extra};${key}=${value}`;
  }

  /** True when the line's [a, b) holds a backslash; `a` only grows within one line. */
  escapedIn(a: number, b: number): boolean {
    if (this.nextBackslash !== -1 && this.nextBackslash < a) this.nextBackslash = this.line.indexOf('\\', a);
    return this.nextBackslash !== -1 && this.nextBackslash < b;
  }

  /** Forget the current line's values. */
  clearSlots(): void {
    const touched = this.touched;
    for (let i = 0; i < this.nTouched; i++) {
      const c = touched[i]!;
      this.slots[c] = undefined;
      this.isSpan[c] = 0;
    }
    this.nTouched = 0;
  }

  /** Span values as strings (the row goes out as an object after all). */
  materializeSpans(): void {
    for (let i = 0; i < this.nTouched; i++) {
      const c = this.touched[i]!;
      if (this.isSpan[c] === 1) {
        this.slots[c] = this.line.slice(this.spanA[c], this.spanB[c]);
        this.isSpan[c] = 0;
      }
    }
  }
}
