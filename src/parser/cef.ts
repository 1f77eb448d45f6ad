/**
 * CEF header and extension → CommonSecurityLog columns. A single left-to-right pass with indexOf and
 * charCodeAt: this runs once per event on the forwarder's hot path.
 */
import type { CslRow } from './types.js';
import { CSL_COLUMNS, KEY_RULES, columnIndex, type KeyRule } from './columns.js';
import { isInt32, parseInt32, parseInteger, parseReal } from './values.js';
import { parseCefTimestamp, toIsoUtc } from './time.js';
import { MAX_JSON_BYTES_PER_UNIT, writeAsciiSpan, writeNumber, writeString, type JsonRow, type JsonTarget, type RowLimits } from './json-out.js';
import { KERNEL_DESC, KERNEL_FREE, KERNEL_SLACK, KERNEL_TIME, KERNEL_TIME_MAX, makeJsonKernel, type JsonKernel } from './json-kernel.js';

/**
 * AdditionalExtensions entry that holds extension text with no `key=` in front of it (garbage before the
 * first key, or an extension with no key at all), so nothing the sender wrote is lost.
 */
export const UNPARSED_KEY = 'unparsedExtension';

const BACKSLASH = 92;
const PIPE = 124;
const SPACE = 32;
const TAB = 9;

/** True when the character at `idx` is escaped by an odd run of backslashes (not looking before `lo`). */
function isEscaped(s: string, idx: number, lo: number): boolean {
  let n = 0;
  for (let i = idx - 1; i >= lo && s.charCodeAt(i) === BACKSLASH; i--) n++;
  return (n & 1) === 1;
}

function nextPipe(s: string, from: number): number {
  let p = s.indexOf('|', from);
  while (p !== -1 && isEscaped(s, p, from)) p = s.indexOf('|', p + 1);
  return p;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Where the CEF version field starts if a CEF version (`\d+(\.\d+)*` then `|`) begins at `p` after optional
 * spaces/tabs; -1 otherwise.
 */
function versionAt(s: string, p: number): number {
  const len = s.length;
  while (p < len) {
    const c = s.charCodeAt(p);
    if (c !== SPACE && c !== TAB) break;
    p++;
  }
  const start = p;
  if (p >= len || !isDigit(s.charCodeAt(p))) return -1;
  const limit = Math.min(len, p + 16);
  while (p < limit) {
    const c = s.charCodeAt(p);
    if (isDigit(c) || c === 46) p++;
    else break;
  }
  while (p < limit && s.charCodeAt(p) === SPACE) p++;
  return p < len && s.charCodeAt(p) === PIPE ? start : -1;
}

/**
 * Finds the CEF version field in `s` at or after `from`. Accepts `CEF:0|`, `CEF: 0|` and the shapes
 * `logger -t CEF:` produces, where `CEF:` is the syslog tag: `CEF:: 0|`, `CEF:[pid]: 0|`, `CEF[pid]: 0|`.
 * Returns the index of the version field, or -1.
 */
export function findCefVersion(s: string, from: number): number {
  let p = s.indexOf('CEF', from);
  const len = s.length;
  while (p !== -1) {
    let q = p + 3;
    let colons = 0;
    while (q < len && s.charCodeAt(q) === 58) {
      q++;
      colons++;
    }
    if (q < len && s.charCodeAt(q) === 91 /* [ */) {
      const close = s.indexOf(']', q);
      if (close !== -1 && close - q <= 12) {
        q = close + 1;
        while (q < len && s.charCodeAt(q) === 58) {
          q++;
          colons++;
        }
      }
    }
    if (colons > 0) {
      const v = versionAt(s, q);
      if (v !== -1) return v;
    }
    p = s.indexOf('CEF', p + 3);
  }
  return -1;
}

/** Version start when `s` from `p` is a CEF body without the `CEF:` marker (skips `:` and blanks first). */
export function bareVersionAt(s: string, p: number): number {
  const len = s.length;
  while (p < len) {
    const c = s.charCodeAt(p);
    if (c !== 58 && c !== SPACE && c !== TAB) break;
    p++;
  }
  return versionAt(s, p);
}

function unescapeHeader(f: string): string {
  if (f.indexOf('\\') === -1) return f;
  let out = '';
  let last = 0;
  for (let i = 0; i < f.length; i++) {
    if (f.charCodeAt(i) !== BACKSLASH || i + 1 >= f.length) continue;
    const n = f.charCodeAt(i + 1);
    if (n === BACKSLASH || n === PIPE) {
      out += f.slice(last, i);
      last = i + 1;
      i++;
    }
  }
  return out + f.slice(last);
}

/** Undo extension-value escapes: `\=` `\\` `\n` `\r`, and leniently `\|`; any other backslash stays. */
export function unescapeValue(v: string): string {
  if (v.indexOf('\\') === -1) return v;
  let out = '';
  let last = 0;
  for (let i = 0; i < v.length; i++) {
    if (v.charCodeAt(i) !== BACKSLASH || i + 1 >= v.length) continue;
    const n = v.charCodeAt(i + 1);
    let rep: string | undefined;
    if (n === BACKSLASH) rep = '\\';
    else if (n === 61) rep = '=';
    else if (n === 110) rep = '\n';
    else if (n === 114) rep = '\r';
    else if (n === PIPE) rep = '|';
    if (rep !== undefined) {
      out += v.slice(last, i) + rep;
      last = i + 2;
      i++;
    }
  }
  return out + v.slice(last);
}

/** The inverse, for senders and tests: escape a value so parsing gives it back unchanged. */
export function escapeValue(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const ch = v[i];
    if (ch === '\\') out += '\\\\';
    else if (ch === '=') out += '\\=';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else out += ch;
  }
  return out;
}

/** Escape a header field (`\` and `|`). */
export function escapeHeader(v: string): string {
  return v.replace(/[\\|]/g, (c) => `\\${c}`);
}

// [A-Za-z0-9_.-]: ArcSight keys are alphanumeric; vendors add `_`, `.` (ad.* fields) and `-`.
const KEY_CHAR = new Uint8Array(128);
for (let c = 48; c <= 57; c++) KEY_CHAR[c] = 1;
for (let c = 65; c <= 90; c++) KEY_CHAR[c] = 2;
for (let c = 97; c <= 122; c++) KEY_CHAR[c] = 2;
KEY_CHAR[95] = 2; // _
KEY_CHAR[46] = 1; // .
KEY_CHAR[45] = 1; // -

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}

function trimmed(s: string, a: number, b: number): string {
  while (a < b && isBlank(s.charCodeAt(a))) a++;
  while (b > a && isBlank(s.charCodeAt(b - 1))) b--;
  return a === b ? '' : s.slice(a, b);
}

/**
 * Per-parse state. Parsing is synchronous, so one set serves every call: values go into slots by column
 * position and the row object is built once at the end, always in CSL_COLUMNS order. Objects built with
 * the same key order share V8 hidden classes, which keeps the hot path fast.
 */
const NCOLS = CSL_COLUMNS.length;
const slots: Array<string | number | undefined> = new Array(NCOLS).fill(undefined);
const NAMES: string[] = CSL_COLUMNS.map(([n]) => n);
const I_TIME = columnIndex('TimeGenerated');
const I_COMPUTER = columnIndex('Computer');
const I_VENDOR = columnIndex('DeviceVendor');
const I_PRODUCT = columnIndex('DeviceProduct');
const I_VERSION = columnIndex('DeviceVersion');
const I_CLASS = columnIndex('DeviceEventClassID');
const I_ACTIVITY = columnIndex('Activity');
const I_SEVERITY = columnIndex('LogSeverity');
const I_EXTRA = columnIndex('AdditionalExtensions');
const I_EXTID = columnIndex('ExtID');
const I_EXTERNALID = columnIndex('ExternalID');
const I_DIRECTION = columnIndex('CommunicationDirection');

let extra = '';
let reference = new Date(0);
/** The line being parsed (for span values read back during the parse). */
let line = '';
/** Columns written for the current line, in write order, and a running hash of that order. */
const touched: number[] = [];
let nTouched = 0;
let shapeHash = 0;

function put(col: number, v: string | number): void {
  if (slots[col] === undefined) {
    touched[nTouched++] = col;
    shapeHash = (Math.imul(shapeHash, 31) + col + 1) | 0;
  }
  slots[col] = v;
}

/**
 * Direct JSON output (parseCefJson): when the line is ASCII, a string value that needs no unescaping is
 * kept as its position in the line (`src` holds the line's bytes) instead of a sliced string.
 */
let src: Uint8Array | null = null;
const isSpan = new Uint8Array(NCOLS);
const spanA = new Int32Array(NCOLS);
const spanB = new Int32Array(NCOLS);

function putSpan(col: number, a: number, b: number): void {
  put(col, '');
  isSpan[col] = 1;
  spanA[col] = a;
  spanB[col] = b;
}

/** Forget the current line's values (slots are shared by every parse). */
function clearSlots(): void {
  for (let i = 0; i < nTouched; i++) {
    const c = touched[i]!;
    slots[c] = undefined;
    isSpan[c] = 0;
  }
  nTouched = 0;
}

/**
 * Open-addressing table over KEY_RULES, probed with the key's characters in place: mapped keys are
 * found without slicing a key string or hashing a new one (both showed in profiles).
 */
const TABLE_BITS = 11;
const TABLE_MASK = (1 << TABLE_BITS) - 1;
const tableKeys: Array<string | undefined> = new Array(1 << TABLE_BITS).fill(undefined);
const tableRules: Array<KeyRule | undefined> = new Array(1 << TABLE_BITS).fill(undefined);

// FNV-1a over the key read backwards: the extension scanner walks keys backwards from their `=`, so it
// computes this hash on the way at no extra cost.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
function finishHash(h: number): number {
  return (h ^ (h >>> 15)) & TABLE_MASK;
}
function hashRange(s: string, a: number, b: number): number {
  let h = FNV_OFFSET;
  for (let i = b - 1; i >= a; i--) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return finishHash(h);
}

for (const [key, rule] of KEY_RULES) {
  let i = hashRange(key, 0, key.length);
  while (tableKeys[i] !== undefined) i = (i + 1) & TABLE_MASK;
  tableKeys[i] = key;
  tableRules[i] = rule;
}

/**
 * Per slot, the cases emitSlot handles without a value string, as typed arrays (reading `kind` off the
 * rule objects, which have four shapes, was a megamorphic load per pair): an int column, a string
 * column, or externalId (ExtID as text, ExternalID as int).
 */
const FAST_NONE = 0;
const FAST_INT = 1;
const FAST_STRING = 2;
const FAST_EXTID = 3;
const FAST_KIND = new Uint8Array(1 << TABLE_BITS);
const FAST_COL = new Int16Array(1 << TABLE_BITS);
tableRules.forEach((rule, slot) => {
  if (rule?.kind === 'plain' && (rule.type === 'int' || rule.type === 'string')) {
    FAST_KIND[slot] = rule.type === 'int' ? FAST_INT : FAST_STRING;
    FAST_COL[slot] = rule.index;
  } else if (rule?.kind === 'externalId') {
    FAST_KIND[slot] = FAST_EXTID;
    FAST_COL[slot] = I_EXTID;
  }
});

/** Slot of the key `s[a..b)` in the table, or -1 when the key has no column. */
function findKey(s: string, a: number, b: number, hash: number): number {
  const len = b - a;
  let i = hash;
  for (;;) {
    const k = tableKeys[i];
    if (k === undefined) return -1;
    if (k.length === len && s.startsWith(k, a)) return i;
    i = (i + 1) & TABLE_MASK;
  }
}

function addExtra(key: string, value: string): void {
  extra = extra === '' ? `${key}=${value}` : `${extra};${key}=${value}`;
}

const DIRECTIONS: Record<string, string> = { '0': 'Inbound', '1': 'Outbound' };

const I_START = columnIndex('StartTime');
const I_END = columnIndex('EndTime');
const I_DTZ = columnIndex('DeviceTimeZone');
let pendingStart: string | undefined;
let pendingStartKey = '';
let pendingEnd: string | undefined;
let pendingEndKey = '';

/**
 * Store a CEF timestamp as ISO 8601 UTC. A timestamp without a zone is read in the device's zone (`dtz`,
 * as ArcSight does) when that is a known IANA zone, otherwise as UTC. Unreadable ones stay as sent.
 */
function putTime(col: number, key: string, value: string): void {
  const dtz = isSpan[I_DTZ] === 1 ? line.slice(spanA[I_DTZ], spanB[I_DTZ]) : slots[I_DTZ];
  const iso = toIsoUtc(parseCefTimestamp(value, reference, typeof dtz === 'string' ? dtz : undefined));
  if (iso !== undefined) put(col, iso);
  else addExtra(key, value);
}

function store(slot: number, value: string): void {
  const rule = tableRules[slot] as KeyRule;
  if (value === '') return;
  switch (rule.kind) {
    case 'plain': {
      const col = rule.index;
      if (slots[col] !== undefined) break;
      switch (rule.type) {
        case 'string':
          put(col, value);
          return;
        case 'int': {
          const n = parseInt32(value);
          if (n === n) {
            put(col, n);
            return;
          }
          break;
        }
        case 'long': {
          const n = parseInteger(value);
          if (n === n) {
            put(col, n);
            return;
          }
          break;
        }
        case 'real': {
          const n = parseReal(value);
          if (n === n) {
            put(col, n);
            return;
          }
          break;
        }
        case 'datetime': {
          // Converted after the scan: `dtz` (the device's zone) may come later in the extension.
          if (col === I_START ? pendingStart !== undefined : pendingEnd !== undefined) break;
          if (col === I_START) {
            pendingStart = value;
            pendingStartKey = tableKeys[slot] as string;
          } else {
            pendingEnd = value;
            pendingEndKey = tableKeys[slot] as string;
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
      if (isInt32(n)) put(rule.intIndex, n);
      put(rule.longIndex, n);
      return;
    }
    case 'externalId': {
      if (slots[I_EXTID] !== undefined) break;
      put(I_EXTID, value);
      const n = parseInt32(value);
      if (n === n) put(I_EXTERNALID, n);
      return;
    }
    case 'direction': {
      if (slots[I_DIRECTION] !== undefined) break;
      put(I_DIRECTION, DIRECTIONS[value] ?? value);
      return;
    }
  }
  // Duplicate key, or a value its column's type cannot hold: keep it, as sent, with its own key name.
  addExtra(tableKeys[slot] as string, value);
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

/**
 * Position of the next backslash at or after the current value, or -1 when the rest of the extension has
 * none (most lines): values then need no unescaping and no per-value scan.
 */
let nextBackslash = -1;

/** True when s[a, b) holds a backslash; `a` only grows within one line. */
function escapedIn(s: string, a: number, b: number): boolean {
  if (nextBackslash !== -1 && nextBackslash < a) nextBackslash = s.indexOf('\\', a);
  return nextBackslash !== -1 && nextBackslash < b;
}

function valueAt(s: string, a: number, b: number): string {
  if (a === b) return '';
  const raw = s.slice(a, b);
  return escapedIn(s, a, b) ? unescapeValue(raw) : raw;
}

function emit(s: string, ks: number, ke: number, hash: number, a: number, b: number): void {
  emitSlot(s, findKey(s, ks, ke, hash), ks, ke, a, b);
}

/** The pair key s[ks, ke) (`slot` in the key table, -1 for none) = value s[a, b). */
function emitSlot(s: string, slot: number, ks: number, ke: number, a: number, b: number): void {
  while (a < b && isBlank(s.charCodeAt(a))) a++;
  while (b > a && isBlank(s.charCodeAt(b - 1))) b--;
  if (slot === -1) {
    addExtra(s.slice(ks, ke), valueAt(s, a, b));
    return;
  }
  // Ports, counts and ids are most of the typed values: convert them in place, no string made.
  const kind = FAST_KIND[slot]!;
  if (kind !== FAST_NONE && a < b) {
    const col = FAST_COL[slot]!;
    if (slots[col] === undefined) {
      if (kind === FAST_INT) {
        const n = int32At(s, a, b);
        if (n === n) {
          put(col, n);
          return;
        }
      } else if (src !== null && !escapedIn(s, a, b)) {
        putSpan(col, a, b);
        if (kind === FAST_EXTID) {
          const n = int32At(s, a, b);
          if (n === n) put(I_EXTERNALID, n);
          else {
            const m = parseInt32(s.slice(a, b));
            if (m === m) put(I_EXTERNALID, m);
          }
        }
        return;
      }
    }
  }
  store(slot, valueAt(s, a, b));
}

/** Parse the extension `s[from..)` into the slots and `extra`. */
function parseExtension(s: string, from: number): void {
  if (lineInKernel) return kernelExtension(kernel as JsonKernel, s, from);
  const end = s.length;
  nextBackslash = s.indexOf('\\', from);
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
        if (c < 128 && KEY_CHAR[c] !== 0) {
          ks--;
          h = Math.imul(h ^ c, FNV_PRIME);
        } else break;
      }
      // A key starts with a letter or `_`; `a=1 2=3` keeps `2=3` in the value of a.
      const walked = ks;
      while (ks < eq && KEY_CHAR[s.charCodeAt(ks)] !== 2) ks++;
      if (ks < eq) {
        let sepStart = -1;
        if (ks === from) sepStart = ks;
        else if (isBlank(s.charCodeAt(ks - 1))) sepStart = ks - 1;
        else if (ks - 4 >= from && s.charCodeAt(ks - 4) === 35 && s.startsWith('011', ks - 3)) {
          // rsyslog's default escapeControlCharactersOnReceive turns a TAB separator into `#011`.
          sepStart = ks - 4;
        }
        if (sepStart !== -1) {
          if (ks0 !== -1) emit(s, ks0, ke0, kh0, valStart, sepStart);
          else {
            const lead = trimmed(s, from, sepStart);
            if (lead !== '') addExtra(UNPARSED_KEY, lead);
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
  if (ks0 !== -1) emit(s, ks0, ke0, kh0, valStart, end);
  else {
    const rest = trimmed(s, from, end);
    if (rest !== '') addExtra(UNPARSED_KEY, rest);
  }
}


/** Fills the slots from the CEF text whose version field starts at `start`; returns why it is not CEF, if so. */
function fillCef(s: string, start: number, timeGenerated: string, host: string | undefined, receivedAt: Date): string | undefined {
  line = s;
  const p0 = nextPipe(s, start);
  if (p0 === -1) return 'CEF header has no fields after the version';
  const p1 = nextPipe(s, p0 + 1);
  const p2 = p1 === -1 ? -1 : nextPipe(s, p1 + 1);
  const p3 = p2 === -1 ? -1 : nextPipe(s, p2 + 1);
  const p4 = p3 === -1 ? -1 : nextPipe(s, p3 + 1);
  const p5 = p4 === -1 ? -1 : nextPipe(s, p4 + 1);
  if (p5 === -1) {
    const found = [p1, p2, p3, p4].filter((p) => p !== -1).length + 2;
    return `truncated CEF header: ${found} of 7 fields (version|vendor|product|version|id|name|severity)`;
  }
  const p6 = nextPipe(s, p5 + 1);
  // Normally already clean; after an exception mid-parse it is not, and stale values must not leak.
  clearSlots();
  shapeHash = 0;
  put(I_TIME, timeGenerated);
  if (host !== undefined && host !== '') put(I_COMPUTER, host);
  nextBackslash = s.indexOf('\\', p0);
  setHeader(s, I_VENDOR, p0 + 1, p1);
  setHeader(s, I_PRODUCT, p1 + 1, p2);
  setHeader(s, I_VERSION, p2 + 1, p3);
  setHeader(s, I_CLASS, p3 + 1, p4);
  setHeader(s, I_ACTIVITY, p4 + 1, p5);
  // No seventh pipe: the sender put the severity last and no extension at all.
  setHeader(s, I_SEVERITY, p5 + 1, p6 === -1 ? s.length : p6);
  extra = '';
  reference = receivedAt;
  pendingStart = undefined;
  pendingEnd = undefined;
  if (p6 !== -1) parseExtension(s, p6 + 1);
  if (pendingStart !== undefined) putTime(I_START, pendingStartKey, pendingStart);
  if (pendingEnd !== undefined) putTime(I_END, pendingEndKey, pendingEnd);
  if (extra !== '') put(I_EXTRA, extra);
  extra = '';
  return undefined;
}

/**
 * Parse the CEF text whose version field starts at `start`; returns the row, or the reason it is not one.
 * `timeGenerated` (ISO) and `host` (syslog HOSTNAME) fill TimeGenerated and Computer; `receivedAt`
 * completes timestamps sent without a year.
 */
export function parseCefAt(
  s: string,
  start: number,
  timeGenerated: string,
  host: string | undefined,
  receivedAt: Date,
): CslRow | string {
  src = null;
  return fillCef(s, start, timeGenerated, host, receivedAt) ?? buildRow();
}

/** When parseCefJson writes JSON, and when it returns a row object instead. */
export interface CefJsonOptions extends RowLimits {
  /** A row whose column `index` holds exactly `value` is returned as an object (e.g. probes, which the caller inspects). */
  rowWhen?: { index: number; value: string };
}

/**
 * parseCefAt, but a row within `o`'s limits is written as JSON into `target` (byte for byte what
 * JSON.stringify gives for the row parseCefAt returns). `bytes`: the line's bytes when it is ASCII (so
 * string index = byte index), else null.
 */
export function parseCefJson(
  s: string,
  start: number,
  timeGenerated: string,
  host: string | undefined,
  receivedAt: Date,
  bytes: Uint8Array | null,
  target: JsonTarget,
  o: CefJsonOptions,
): CslRow | string | JsonRow {
  src = bytes;
  try {
    const k = bytes === null ? undefined : jsonKernel();
    if (k !== undefined) lineToKernel(k, bytes!);
    const reason = fillCef(s, start, timeGenerated, host, receivedAt);
    if (reason !== undefined) return reason;
    return writeJson(s, target, o) ?? (materializeSpans(s), buildRow());
  } finally {
    src = null;
    lineInKernel = false;
  }
}

function materializeSpans(s: string): void {
  for (let i = 0; i < nTouched; i++) {
    const c = touched[i]!;
    if (isSpan[c] === 1) {
      slots[c] = s.slice(spanA[c], spanB[c]);
      isSpan[c] = 0;
    }
  }
}

/** Bytes of `"Name":` per column (the comma between values is written apart). */
const KEY_JSON: Uint8Array[] = NAMES.map((n) => new Uint8Array(Buffer.from(`${JSON.stringify(n)}:`, 'latin1')));

/** The row's JSON into target, then the slots cleared; undefined (slots kept) when the row is over a limit. */
function writeJson(s: string, target: JsonTarget, o: CefJsonOptions): JsonRow | undefined {
  const n = nTouched;
  if (n > o.maxColumns) return undefined;
  // Past MAX_SHAPES (a cap on compiled factories) the order is worked out for this row alone.
  const shape = shapeOf() ?? orderOnly(touched.slice(0, n));
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
    const row = kernelJson(k, order, bound, target);
    if (row !== undefined) return row;
  }
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
  clearSlots();
  return { ok: true, kind: 'json', buf: out, start, bytes: p - start };
}

/** Made on the first line parsed for JSON (the CLI's other commands never need it); undefined where it cannot load. */
let kernel: JsonKernel | undefined | null = null;
let useKernel = true;

function loadedKernel(): JsonKernel | undefined {
  if (kernel === null) kernel = makeJsonKernel(KEY_JSON, KEY_CHAR, tableKeys);
  return kernel;
}

function jsonKernel(): JsonKernel | undefined {
  return useKernel ? loadedKernel() : undefined;
}

/** Tests: write rows with the JavaScript loops (false) or the kernel (true, the default where it loads). */
export function setJsonKernel(on: boolean): boolean {
  useKernel = on;
  return loadedKernel() !== undefined;
}

/**
 * Whether the line being parsed (src) is also in the kernel's memory at KERNEL_FREE: its extension's
 * keys are then found by the kernel, and its values copied from there. `kernelWork`: free memory after it.
 */
let lineInKernel = false;
let kernelWork = 0;

function lineToKernel(k: JsonKernel, bytes: Uint8Array): void {
  // The line, then room for the kernel's key entries (16 bytes per `=` at most).
  const work = KERNEL_FREE + bytes.length + KERNEL_SLACK + 16 + 16 * (bytes.length + 1) + KERNEL_SLACK;
  if (!k.reserve(work)) return;
  k.u8.set(bytes, KERNEL_FREE);
  lineInKernel = true;
  kernelWork = work;
}

/** parseExtension for a line in the kernel's memory: the kernel finds the keys and their slots, emitSlot() takes each pair. */
function kernelExtension(k: JsonKernel, s: string, from: number): void {
  const end = s.length;
  nextBackslash = s.indexOf('\\', from);
  const base = KERNEL_FREE;
  const at = (base + src!.length + KERNEL_SLACK + 15) & ~15;
  const n = k.keys(base + from, base + end, at);
  const e = k.i32;
  let q = at >> 2;
  const lead = trimmed(s, from, n === 0 ? end : e[q + 3]! - base);
  if (lead !== '') addExtra(UNPARSED_KEY, lead);
  for (let i = 0; i < n; i++, q += 4) {
    const ke = e[q + 1]! - base;
    emitSlot(s, e[q + 2]!, e[q]! - base, ke, ke + 1, i + 1 < n ? e[q + 7]! - base : end);
  }
}

/** TimeGenerated's text whose JSON the kernel's memory holds at KERNEL_TIME. */
let timeText = '';
let timeBytes = 0;

/**
 * writeJson's output through the kernel: values that are not spans of the line (which is there
 * already, or copied now) go into its memory, it writes the row there, and the row is copied to target in one call.
 */
function kernelJson(k: JsonKernel, order: number[], bound: number, target: JsonTarget): JsonRow | undefined {
  const line = KERNEL_FREE;
  const copy = !lineInKernel && src !== null;
  const scratch = lineInKernel ? kernelWork : line + (src === null ? 0 : src.length) + KERNEL_SLACK;
  const at = scratch + bound + KERNEL_SLACK;
  if (!k.reserve(at + bound + KERNEL_SLACK)) return undefined;
  const mem = k.buf;
  const ent = k.i32;
  if (copy) k.u8.set(src!, line);
  const num = k.f64;
  let d = KERNEL_DESC >> 2;
  let sp = scratch;
  for (let i = 0; i < order.length; i++, d += 4) {
    const c = order[i]!;
    if (isSpan[c] === 1) {
      ent[d] = c;
      ent[d + 1] = line + spanA[c];
      ent[d + 2] = line + spanB[c];
      continue;
    }
    const v = slots[c]!;
    if (typeof v === 'number' && Number.isSafeInteger(v)) {
      ent[d] = c | 0x40000000;
      num[(d >> 1) + 1] = v;
    } else {
      ent[d] = c | 0x80000000;
      if (c === I_TIME && v === timeText) {
        ent[d + 1] = KERNEL_TIME;
        ent[d + 2] = KERNEL_TIME + timeBytes;
      } else {
        ent[d + 1] = sp;
        sp = typeof v === 'string' ? writeString(mem, sp, v) : writeNumber(mem, sp, v);
        ent[d + 2] = sp;
        // Rows of one socket read share TimeGenerated: keep its JSON for the next row.
        if (c === I_TIME && sp - ent[d + 1]! <= KERNEL_TIME_MAX) {
          mem.copyWithin(KERNEL_TIME, ent[d + 1]!, sp);
          timeText = v as string;
          timeBytes = sp - ent[d + 1]!;
        }
      }
    }
  }
  const end = k.row(KERNEL_DESC, order.length, at);
  const bytes = end - at;
  const out = target.room(bytes + 1);
  const start = target.at;
  out.set(k.u8.subarray(at, end), start);
  out[start + bytes] = 44; // the separator from the next row (JsonTarget)
  target.at = start + bytes + 1;
  clearSlots();
  return { ok: true, kind: 'json', buf: out, start, bytes };
}

/**
 * Building the row key by key costs a third of the parse (megamorphic keyed stores). Events of one
 * product share a handful of column sets, so each set gets a compiled object-literal factory, which V8
 * instantiates from a boilerplate. Column names come from our own table, never from input.
 */
type Factory = (v: ReadonlyArray<string | number | undefined>) => CslRow;
interface Shape {
  cols: number[];
  /** Canonical column order of the row (AdditionalExtensions last). */
  order: number[];
  make: Factory;
  /** Bytes of the row's JSON that are not values: braces, keys, colons, commas. */
  keyBytes: number;
}
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

function sameCols(a: number[], n: number): boolean {
  if (a.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== touched[i]) return false;
  return true;
}

/** A column set's canonical order and the bytes of its keys' JSON. */
function orderOnly(cols: number[]): { order: number[]; keyBytes: number } {
  const order = canonical(cols);
  let keyBytes = 2 + Math.max(0, order.length - 1);
  for (const c of order) keyBytes += KEY_JSON[c]!.length;
  return { order, keyBytes };
}

/** The shape of the columns written for this line (made on first sight); undefined past MAX_SHAPES. */
function shapeOf(): Shape | undefined {
  const n = nTouched;
  const bucket = shapes.get(shapeHash);
  if (bucket !== undefined) {
    for (let k = 0; k < bucket.length; k++) if (sameCols(bucket[k].cols, n)) return bucket[k];
  }
  if (shapeCount >= MAX_SHAPES) return undefined;
  const cols = touched.slice(0, n);
  const { order, keyBytes } = orderOnly(cols);
  const shape: Shape = { cols, order, make: compileShape(order), keyBytes };
  shapeCount++;
  if (bucket === undefined) shapes.set(shapeHash, [shape]);
  else bucket.push(shape);
  return shape;
}

/** Build the row from the slots written for this line (keyed by write order), then clear those slots. */
function buildRow(): CslRow {
  const shape = shapeOf();
  let row: CslRow;
  if (shape !== undefined) row = shape.make(slots);
  else {
    row = {};
    for (const c of canonical(touched.slice(0, nTouched))) row[NAMES[c]] = slots[c] as string | number;
  }
  clearSlots();
  return row;
}

/** A header field s[a, b): kept as a span when it needs no unescaping (see `src`). */
function setHeader(s: string, col: number, a: number, b: number): void {
  if (a >= b) return;
  if (!escapedIn(s, a, b)) {
    if (src !== null) putSpan(col, a, b);
    else put(col, s.slice(a, b));
  } else put(col, unescapeHeader(s.slice(a, b)));
}

const WORD_SEVERITY: Record<string, string> = {
  unknown: 'Unknown',
  low: 'Low',
  medium: 'Medium',
  high: 'High',
  'very-high': 'Very-High',
  'very high': 'Very-High',
};

/**
 * The CEF severity band (Unknown, Low, Medium, High, Very-High) for a header severity: 0–3 Low,
 * 4–6 Medium, 7–8 High, 9–10 Very-High, or the word as sent. LogSeverity itself keeps the text as sent.
 */
export function severityBand(severity: string): string {
  const s = severity.trim();
  const n = parseInteger(s);
  if (n === n) {
    if (n < 0 || n > 10) return 'Unknown';
    if (n <= 3) return 'Low';
    if (n <= 6) return 'Medium';
    if (n <= 8) return 'High';
    return 'Very-High';
  }
  return WORD_SEVERITY[s.toLowerCase()] ?? 'Unknown';
}
