/**
 * The CEF extension (`key=value key=value …` after the seventh pipe): where each pair starts, and what
 * each pair means for the row (typed columns, duplicates, escapes, unmapped keys kept in
 * AdditionalExtensions). Pairs are found by the JavaScript scan here or, for a line in the JSON kernel's
 * memory, by the kernel under the same rules (json-kernel.ts); what they mean is decided here either way.
 */
import { columnIndex, type KeyRule } from './columns.js';
import { isInt32, parseInt32, parseInteger, parseReal } from './values.js';
import { parseCefTimestamp, toIsoUtc } from './time.js';
import { BACKSLASH, isEscaped, unescapeValue } from './cef-escapes.js';
import {
  FAST_COL,
  FAST_EXTID,
  FAST_INT,
  FAST_KIND,
  FAST_NONE,
  KEY_CHAR,
  finishHash,
  findKey,
  hashRange,
  tableKeys,
  tableRules,
} from './cef-key-table.js';
import { FNV_OFFSET, FNV_PRIME, KERNEL_FREE } from './json-kernel-layout.js';
import type { CefParseState } from './cef-parse-state.js';

/**
 * AdditionalExtensions entry that holds extension text with no `key=` in front of it (garbage before the
 * first key, or an extension with no key at all), so nothing the sender wrote is lost.
 */
export const UNPARSED_KEY = 'unparsedExtension';

const SPACE = 32;
const TAB = 9;

const I_EXTID = columnIndex('ExtID');
const I_EXTERNALID = columnIndex('ExternalID');
const I_DIRECTION = columnIndex('CommunicationDirection');
const I_START = columnIndex('StartTime');
const I_END = columnIndex('EndTime');
const I_DTZ = columnIndex('DeviceTimeZone');

const DIRECTIONS: Record<string, string> = { '0': 'Inbound', '1': 'Outbound' };

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}

function trimmed(s: string, a: number, b: number): string {
  while (a < b && isBlank(s.charCodeAt(a))) a++;
  while (b > a && isBlank(s.charCodeAt(b - 1))) b--;
  return a === b ? '' : s.slice(a, b);
}

/**
 * Store a CEF timestamp as ISO 8601 UTC. A timestamp without a zone is read in the device's zone (`dtz`,
 * as ArcSight does) when that is a known IANA zone, otherwise as UTC. Unreadable ones stay as sent.
 */
export function putTime(st: CefParseState, col: number, key: string, value: string): void {
  const dtz = st.isSpan[I_DTZ] === 1 ? st.line.slice(st.spanA[I_DTZ], st.spanB[I_DTZ]) : st.slots[I_DTZ];
  const iso = toIsoUtc(parseCefTimestamp(value, st.reference, typeof dtz === 'string' ? dtz : undefined));
  if (iso !== undefined) st.put(col, iso);
  else st.addExtra(key, value);
}

/** The start/end values held back during the scan, now that `dtz` is known. */
export function putPendingTimes(st: CefParseState): void {
  if (st.pendingStart !== undefined) putTime(st, I_START, st.pendingStartKey, st.pendingStart);
  if (st.pendingEnd !== undefined) putTime(st, I_END, st.pendingEndKey, st.pendingEnd);
}

function store(st: CefParseState, slot: number, value: string): void {
  const rule = tableRules[slot] as KeyRule;
  if (value === '') return;
  const slots = st.slots;
  switch (rule.kind) {
    case 'plain': {
      const col = rule.index;
      if (slots[col] !== undefined) break;
      switch (rule.type) {
        case 'string':
          st.put(col, value);
          return;
        case 'int': {
          const n = parseInt32(value);
          if (n === n) {
            st.put(col, n);
            return;
          }
          break;
        }
        case 'long': {
          const n = parseInteger(value);
          if (n === n) {
            st.put(col, n);
            return;
          }
          break;
        }
        case 'real': {
          const n = parseReal(value);
          if (n === n) {
            st.put(col, n);
            return;
          }
          break;
        }
        case 'datetime': {
          // Converted after the scan: `dtz` (the device's zone) may come later in the extension.
          if (col === I_START ? st.pendingStart !== undefined : st.pendingEnd !== undefined) break;
          if (col === I_START) {
            st.pendingStart = value;
            st.pendingStartKey = tableKeys[slot] as string;
          } else {
            st.pendingEnd = value;
            st.pendingEndKey = tableKeys[slot] as string;
          }
          return;
        }
      }
      break;
    }
    case 'customNumber': {
      if (slots[rule.longIndex] !== undefined) break;
      const n = parseInteger(value);
      if (n !== n) break;
      if (isInt32(n)) st.put(rule.intIndex, n);
      st.put(rule.longIndex, n);
      return;
    }
    case 'externalId': {
      if (slots[I_EXTID] !== undefined) break;
      st.put(I_EXTID, value);
      const n = parseInt32(value);
      if (n === n) st.put(I_EXTERNALID, n);
      return;
    }
    case 'direction': {
      if (slots[I_DIRECTION] !== undefined) break;
      st.put(I_DIRECTION, DIRECTIONS[value] ?? value);
      return;
    }
  }
  // Duplicate key, or a value its column's type cannot hold: keep it, as sent, with its own key name.
  st.addExtra(tableKeys[slot] as string, value);
}

/** Decimal int32 in s[a..b) without slicing, or NaN. */
function int32At(s: string, a: number, b: number): number {
  const neg = s.charCodeAt(a) === 45;
  let i = neg ? a + 1 : a;
  if (i === b || b - i > 10) return NaN;
  let n = 0;
  for (; i < b; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  if (neg) n = -n;
  return isInt32(n) ? n : NaN;
}

function valueAt(st: CefParseState, s: string, a: number, b: number): string {
  if (a === b) return '';
  const raw = s.slice(a, b);
  return st.escapedIn(a, b) ? unescapeValue(raw) : raw;
}

function emit(st: CefParseState, s: string, ks: number, ke: number, hash: number, a: number, b: number): void {
  emitSlot(st, s, findKey(s, ks, ke, hash), ks, ke, a, b);
}

/** The pair key s[ks, ke) (`slot` in the key table, -1 for none) = value s[a, b). */
function emitSlot(st: CefParseState, s: string, slot: number, ks: number, ke: number, a: number, b: number): void {
  while (a < b && isBlank(s.charCodeAt(a))) a++;
  while (b > a && isBlank(s.charCodeAt(b - 1))) b--;
  if (slot === -1) {
    st.addExtra(s.slice(ks, ke), valueAt(st, s, a, b));
    return;
  }
  // Ports, counts and ids are most of the typed values: convert them in place, no string made.
  const kind = FAST_KIND[slot]!;
  if (kind !== FAST_NONE && a < b) {
    const col = FAST_COL[slot]!;
    if (st.slots[col] === undefined) {
      if (kind === FAST_INT) {
        const n = int32At(s, a, b);
        if (n === n) {
          st.put(col, n);
          return;
        }
      } else if (st.src !== null && !st.escapedIn(a, b)) {
        st.putSpan(col, a, b);
        if (kind === FAST_EXTID) {
          const n = int32At(s, a, b);
          if (n === n) st.put(I_EXTERNALID, n);
          else {
            const m = parseInt32(s.slice(a, b));
            if (m === m) st.put(I_EXTERNALID, m);
          }
        }
        return;
      }
    }
  }
  store(st, slot, valueAt(st, s, a, b));
}

/** Parse the extension `s[from..)` into the slots and `extra`. */
export function parseExtension(st: CefParseState, s: string, from: number): void {
  const k = st.kernel;
  if (k !== undefined) {
    const n = k.findKeys(st, from, s.length);
    if (n >= 0) return takeKernelKeys(st, s, from, n, k.i32, k.keyEntries);
  }
  const end = s.length;
  // Imported bindings read per character cost a module-cell load each; locals keep the walk as fast as it was.
  const keyChar = KEY_CHAR;
  const prime = FNV_PRIME;
  st.nextBackslash = s.indexOf('\\', from);
  let ks0 = -1;
  let ke0 = -1;
  let kh0 = 0;
  let valStart = from;
  let eq = s.indexOf('=', from);
  while (eq !== -1) {
    if (s.charCodeAt(eq - 1) !== BACKSLASH || !isEscaped(s, eq, from)) {
      // Look back from the `=` over key characters; it starts a new pair only when a blank (or the start
      // of the extension) precedes the key. Otherwise the `=` belongs to the value (URLs, base64).
      let ks = eq;
      let h = FNV_OFFSET;
      while (ks > from) {
        const c = s.charCodeAt(ks - 1);
        if (c < 128 && keyChar[c] !== 0) {
          ks--;
          h = Math.imul(h ^ c, prime);
        } else break;
      }
      // A key starts with a letter or `_`; `a=1 2=3` keeps `2=3` in the value of a.
      const walked = ks;
      while (ks < eq && keyChar[s.charCodeAt(ks)] !== 2) ks++;
      if (ks < eq) {
        let sepStart = -1;
        if (ks === from) sepStart = ks;
        else if (isBlank(s.charCodeAt(ks - 1))) sepStart = ks - 1;
        else if (ks - 4 >= from && s.charCodeAt(ks - 4) === 35 && s.startsWith('011', ks - 3)) {
          // rsyslog's default escapeControlCharactersOnReceive turns a TAB separator into `#011`.
          sepStart = ks - 4;
        }
        if (sepStart !== -1) {
          if (ks0 !== -1) emit(st, s, ks0, ke0, kh0, valStart, sepStart);
          else {
            const lead = trimmed(s, from, sepStart);
            if (lead !== '') st.addExtra(UNPARSED_KEY, lead);
          }
          ks0 = ks;
          ke0 = eq;
          kh0 = ks === walked ? finishHash(h) : hashRange(s, ks, eq);
          valStart = eq + 1;
        }
      }
    }
    eq = s.indexOf('=', eq + 1);
  }
  if (ks0 !== -1) emit(st, s, ks0, ke0, kh0, valStart, end);
  else {
    const rest = trimmed(s, from, end);
    if (rest !== '') st.addExtra(UNPARSED_KEY, rest);
  }
}

/**
 * The pairs the kernel found (JsonKernel.findKeys: per key, i32 key start, key end, slot, separator
 * start, offsets in its memory at `q`), each taken by emitSlot as the scan above would.
 */
function takeKernelKeys(st: CefParseState, s: string, from: number, n: number, e: Int32Array, q: number): void {
  const end = s.length;
  st.nextBackslash = s.indexOf('\\', from);
  const base = KERNEL_FREE;
  const lead = trimmed(s, from, n === 0 ? end : e[q + 3]! - base);
  if (lead !== '') st.addExtra(UNPARSED_KEY, lead);
  for (let i = 0; i < n; i++, q += 4) {
    const ke = e[q + 1]! - base;
    emitSlot(st, s, e[q + 2]!, e[q]! - base, ke, ke + 1, i + 1 < n ? e[q + 7]! - base : end);
  }
}
