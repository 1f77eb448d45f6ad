/**
 * A parsed CEF line's row written as JSON straight into the sink's buffer (byte for byte what
 * JSON.stringify gives for the row object), through the WebAssembly kernel where it is loaded and on,
 * else by the JavaScript loops here.
 */
import {
  MAX_JSON_BYTES_PER_UNIT,
  writeAsciiSpan,
  writeNumber,
  writeString,
  type JsonRow,
  type JsonTarget,
  type RowLimits,
} from './json-out.js';
import { KEY_JSON, orderOnly, shapeOf } from './cef-row-shapes.js';
import { jsonKernel } from './json-kernel.js';
import type { CefParseState } from './cef-parse-state.js';

/** When parseCefJson writes JSON, and when it returns a row object instead. */
export interface CefJsonOptions extends RowLimits {
  /** A row whose column `index` holds exactly `value` is returned as an object (e.g. probes, which the caller inspects). */
  rowWhen?: { index: number; value: string };
}

/** The row's JSON into target, then the slots cleared; undefined (slots kept) when the row is over a limit. */
export function writeJson(st: CefParseState, s: string, target: JsonTarget, o: CefJsonOptions): JsonRow | undefined {
  const n = st.nTouched;
  if (n > o.maxColumns) return undefined;
  const { slots, isSpan, spanA, spanB, touched } = st;
  // Past MAX_SHAPES (a cap on compiled factories) the order is worked out for this row alone.
  const shape = shapeOf(st) ?? orderOnly(touched.slice(0, n));
  const order = shape.order;
  const max = o.maxFieldBytes;
  let bound = shape.keyBytes;
  for (let i = 0; i < n; i++) {
    const c = touched[i]!;
    const v = slots[c];
    if (isSpan[c] === 1) {
      const len = spanB[c] - spanA[c];
      if (len > max) return undefined;
      bound += len * MAX_JSON_BYTES_PER_UNIT + 2;
    } else if (typeof v === 'string') {
      if (v.length * 3 > max && Buffer.byteLength(v, 'utf8') > max) return undefined;
      bound += v.length * MAX_JSON_BYTES_PER_UNIT + 2;
    } else {
      bound += 24;
    }
  }
  const when = o.rowWhen;
  if (when !== undefined && slots[when.index] !== undefined) {
    const c = when.index;
    const v = isSpan[c] === 1 ? s.slice(spanA[c], spanB[c]) : slots[c];
    if (v === when.value) return undefined;
  }
  const k = jsonKernel();
  if (k !== undefined) {
    const row = k.writeRow(st, order, bound, target);
    if (row !== undefined) return row;
  }
  const src = st.src;
  const out = target.room(bound + 1);
  const start = target.at;
  let p = start;
  out[p++] = 123; // {
  for (let k = 0; k < order.length; k++) {
    const c = order[k]!;
    if (k > 0) out[p++] = 44; // ,
    const key = KEY_JSON[c]!;
    for (let j = 0; j < key.length; j++) out[p++] = key[j]!;
    if (isSpan[c] === 1) p = writeAsciiSpan(out, p, src!, spanA[c], spanB[c]);
    else {
      const v = slots[c]!;
      p = typeof v === 'string' ? writeString(out, p, v) : writeNumber(out, p, v);
    }
  }
  out[p++] = 125; // }
  out[p] = 44; // the separator from the next row (JsonTarget)
  target.at = p + 1;
  st.clearSlots();
  return { ok: true, kind: 'json', buf: out, start, bytes: p - start };
}
