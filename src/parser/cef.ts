/**
 * A CEF line → a CommonSecurityLog row (an object, or its JSON written straight into the sink's buffer).
 * A single left-to-right pass with indexOf and charCodeAt: this runs once per event on the forwarder's
 * hot path. Where each part lives:
 * - cef-header.ts: finding `CEF:<version>|` and the header fields; the severity band.
 * - cef-extension.ts: the `key=value` pairs and what each means for the row (cef-key-table.ts: which
 *   keys map to which columns; cef-escapes.ts: backslash escapes).
 * - cef-parse-state.ts: everything one parse writes (one object per thread; not re-entrant).
 * - cef-row-shapes.ts: the row object; cef-row-json.ts: its JSON (json-kernel.ts: the WebAssembly
 *   kernel that does the byte work of both keys and JSON).
 */
import type { CslRow } from './types.js';
import { columnIndex } from './columns.js';
import type { JsonRow, JsonTarget } from './json-out.js';
import { CefParseState } from './cef-parse-state.js';
import { nextPipe, setHeader } from './cef-header.js';
import { parseExtension, putPendingTimes } from './cef-extension.js';
import { buildRow } from './cef-row-shapes.js';
import { writeJson, type CefJsonOptions } from './cef-row-json.js';
import { jsonKernel } from './json-kernel.js';

export { UNPARSED_KEY } from './cef-extension.js';
export { escapeValue, escapeHeader, unescapeValue } from './cef-escapes.js';
export { findCefVersion, bareVersionAt, severityBand } from './cef-header.js';
export { setJsonKernel } from './json-kernel.js';
export type { CefJsonOptions } from './cef-row-json.js';

const I_TIME = columnIndex('TimeGenerated');
const I_COMPUTER = columnIndex('Computer');
const I_VENDOR = columnIndex('DeviceVendor');
const I_PRODUCT = columnIndex('DeviceProduct');
const I_VERSION = columnIndex('DeviceVersion');
const I_CLASS = columnIndex('DeviceEventClassID');
const I_ACTIVITY = columnIndex('Activity');
const I_SEVERITY = columnIndex('LogSeverity');
const I_EXTRA = columnIndex('AdditionalExtensions');

/** This thread's parse state: every parse here uses it, one at a time (see cef-parse-state.ts). */
const shared = new CefParseState();

/** Fills the slots from the CEF text whose version field starts at `start`; returns why it is not CEF, if so. */
function fillCef(
  st: CefParseState,
  s: string,
  start: number,
  timeGenerated: string,
  host: string | undefined,
  receivedAt: Date,
): string | undefined {
  st.line = s;
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
  st.clearSlots();
  st.shapeHash = 0;
  st.put(I_TIME, timeGenerated);
  if (host !== undefined && host !== '') st.put(I_COMPUTER, host);
  st.nextBackslash = s.indexOf('\\', p0);
  setHeader(st, s, I_VENDOR, p0 + 1, p1);
  setHeader(st, s, I_PRODUCT, p1 + 1, p2);
  setHeader(st, s, I_VERSION, p2 + 1, p3);
  setHeader(st, s, I_CLASS, p3 + 1, p4);
  setHeader(st, s, I_ACTIVITY, p4 + 1, p5);
  // No seventh pipe: the sender put the severity last and no extension at all.
  setHeader(st, s, I_SEVERITY, p5 + 1, p6 === -1 ? s.length : p6);
  st.extra = '';
  st.reference = receivedAt;
  st.pendingStart = undefined;
  st.pendingEnd = undefined;
  if (p6 !== -1) parseExtension(st, s, p6 + 1);
  putPendingTimes(st);
  if (st.extra !== '') st.put(I_EXTRA, st.extra);
  st.extra = '';
  return undefined;
}

/**
 * Parse the CEF text whose version field starts at `start`; returns the row, or the reason it is not one.
 * `timeGenerated` (ISO) and `host` (syslog HOSTNAME) fill TimeGenerated and Computer; `receivedAt`
 * completes timestamps sent without a year.
 */
export function parseCefAt(s: string, start: number, timeGenerated: string, host: string | undefined, receivedAt: Date): CslRow | string {
  const st = shared;
  st.enter();
  try {
    return fillCef(st, s, start, timeGenerated, host, receivedAt) ?? buildRow(st);
  } finally {
    st.leave();
  }
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
  const st = shared;
  st.enter();
  try {
    st.src = bytes;
    // The kernel finds the extension's keys only in an ASCII line (byte offsets = string indexes).
    st.kernel = bytes === null ? undefined : jsonKernel();
    const reason = fillCef(st, s, start, timeGenerated, host, receivedAt);
    if (reason !== undefined) return reason;
    return writeJson(st, s, target, o) ?? (st.materializeSpans(), buildRow(st));
  } finally {
    st.leave();
  }
}
