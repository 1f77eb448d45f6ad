/**
 * Row shapes: the set of columns a line wrote, its canonical order, and a compiled factory that builds
 * the row object. Building the row key by key cost a third of the parse (megamorphic keyed stores).
 * Events of one product share a handful of column sets, so each set gets a compiled object-literal
 * factory, which V8 instantiates from a boilerplate. Column names come from our own table, never from input.
 */
import type { CslRow } from './types.js';
import { CSL_COLUMNS, columnIndex } from './columns.js';
import type { CefParseState } from './cef-parse-state.js';

const NAMES: string[] = CSL_COLUMNS.map(([n]) => n);
const I_EXTRA = columnIndex('AdditionalExtensions');

/** Bytes of `"Name":` per column (the comma between values is written apart). */
export const KEY_JSON: Uint8Array[] = NAMES.map((n) => new Uint8Array(Buffer.from(`${JSON.stringify(n)}:`, 'latin1')));

type Factory = (v: ReadonlyArray<string | number | undefined>) => CslRow;
interface Shape {
  cols: number[];
  /** Canonical column order of the row (AdditionalExtensions last). */
  order: number[];
  make: Factory;
  /** Bytes of the row's JSON that are not values: braces, keys, colons, commas. */
  keyBytes: number;
}
/** A cache shared by every parse state: a shape, once made, never changes. */
const shapes = new Map<number, Shape[]>();
let shapeCount = 0;
const MAX_SHAPES = 2000;

/** Canonical column order, AdditionalExtensions last so people reading the NDJSON see mapped columns first. */
function canonical(cols: number[]): number[] {
  const order = cols.filter((c) => c !== I_EXTRA).sort((x, y) => x - y);
  if (order.length !== cols.length) order.push(I_EXTRA);
  return order;
}

function compileShape(order: number[]): Factory {
  const body = order.map((c) => `${JSON.stringify(NAMES[c])}: v[${c}]`).join(', ');
  try {
    return new Function('v', `return { ${body} };`) as Factory;
  } catch {
    // Code generation disabled (--disallow-code-generation-from-strings): same rows, built key by key.
    return (v) => {
      const row: CslRow = {};
      for (const c of order) row[NAMES[c]] = v[c] as string | number;
      return row;
    };
  }
}

function sameCols(a: number[], touched: number[], n: number): boolean {
  if (a.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== touched[i]) return false;
  return true;
}

/** A column set's canonical order and the bytes of its keys' JSON. */
export function orderOnly(cols: number[]): { order: number[]; keyBytes: number } {
  const order = canonical(cols);
  let keyBytes = 2 + Math.max(0, order.length - 1);
  for (const c of order) keyBytes += KEY_JSON[c]!.length;
  return { order, keyBytes };
}

/** The shape of the columns written for this line (made on first sight); undefined past MAX_SHAPES. */
export function shapeOf(st: CefParseState): Shape | undefined {
  const n = st.nTouched;
  const bucket = shapes.get(st.shapeHash);
  if (bucket !== undefined) {
    for (let k = 0; k < bucket.length; k++) if (sameCols(bucket[k].cols, st.touched, n)) return bucket[k];
  }
  if (shapeCount >= MAX_SHAPES) return undefined;
  const cols = st.touched.slice(0, n);
  const { order, keyBytes } = orderOnly(cols);
  const shape: Shape = { cols, order, make: compileShape(order), keyBytes };
  shapeCount++;
  if (bucket === undefined) shapes.set(st.shapeHash, [shape]);
  else bucket.push(shape);
  return shape;
}

/** Build the row from the slots written for this line (keyed by write order), then clear those slots. */
export function buildRow(st: CefParseState): CslRow {
  const shape = shapeOf(st);
  let row: CslRow;
  if (shape !== undefined) row = shape.make(st.slots);
  else {
    row = {};
    for (const c of canonical(st.touched.slice(0, st.nTouched))) row[NAMES[c]] = st.slots[c] as string | number;
  }
  st.clearSlots();
  return row;
}
