/**
 * CEF and Cisco ASA/FTD syslog lines → CommonSecurityLog rows.
 *
 * Never throws. Every line yields a row or `{ok:false, reason}`. Nothing the sender wrote in the event is
 * dropped: unmapped keys, duplicate keys, values that do not fit their column's type, and extension text
 * with no key all go to AdditionalExtensions (`key=value` joined by `;`, values unescaped, as sent).
 * The syslog header itself (PRI, timestamp, tag) is transport, not event data: HOSTNAME becomes Computer,
 * the rest is not kept in the row.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import type { CslRow, ParseResult } from './types.js';
import { bareVersionAt, findCefVersion, parseCefAt, parseCefJson, type CefJsonOptions } from './cef.js';
import type { JsonRow, JsonTarget, RowLimits } from './json-out.js';
import { findAsa, fillAsaRow } from './asa.js';
import { parseSyslogHeader, type SyslogHeader } from './syslog.js';
import { CSL_COLUMNS, columnIndex } from './columns.js';

export type { CslRow, ParseResult } from './types.js';
export type { JsonRow, JsonTarget, RowLimits } from './json-out.js';
export { CSL_COLUMNS, COLUMN_TYPES, KEY_RULES, type ColumnType } from './columns.js';
export { escapeValue, escapeHeader, unescapeValue, severityBand, UNPARSED_KEY } from './cef.js';
export { parseCefTimestamp } from './time.js';

const header: SyslogHeader = { format: 'none', host: undefined, appName: undefined, msgStart: 0, afterHost: 0 };

/**
 * Decode a received line. Valid UTF-8 is read as UTF-8; anything else is read as Latin-1 so every byte
 * survives as one character (such senders almost always mean Windows-1252/Latin-1) instead of U+FFFD.
 */
export function decodeLine(line: Buffer, ascii = isAscii(line)): string {
  // Pure ASCII (nearly all CEF) takes the cheapest decoder; the result is the same.
  if (ascii) return line.toString('latin1');
  return isUtf8(line) ? line.toString('utf8') : line.toString('latin1');
}

function stripEnd(s: string): string {
  let e = s.length;
  while (e > 0) {
    const c = s.charCodeAt(e - 1);
    if (c === 10 || c === 13 || c === 0) e--;
    else break;
  }
  return e === s.length ? s : s.slice(0, e);
}

/** True when the RFC 5424 APP-NAME is the `CEF:` tag (`CEF`, `CEF:`, `CEF::`) rather than a program. */
function isCefTag(app: string | undefined): boolean {
  if (app === undefined || app.length < 3 || !app.startsWith('CEF')) return false;
  for (let i = 3; i < app.length; i++) if (app.charCodeAt(i) !== 58) return false;
  return true;
}

/**
 * Parse one syslog line (or bare CEF/ASA text). `receivedAt` becomes TimeGenerated and completes
 * timestamps sent without a year.
 */
export function parseLine(line: string | Buffer, receivedAt: Date = new Date()): ParseResult {
  try {
    return parseText(stripEnd(typeof line === 'string' ? line : decodeLine(line)), receivedAt, undefined) as ParseResult;
  } catch (err) {
    return parserError(err);
  }
}

// Defence in depth: a parser bug must cost one line, never the forwarder.
function parserError(err: unknown): ParseResult {
  return { ok: false, reason: `parser error: ${err instanceof Error ? err.message : String(err)}` };
}

/** When lineJsonParser writes JSON; a column is named here and looked up once. */
export interface JsonOptions extends RowLimits {
  /** A row whose column holds exactly this value comes back as an object (the caller looks into it). */
  rowWhen?: { column: string; value: string };
}

interface JsonContext {
  target: JsonTarget;
  bytes: Uint8Array | null;
  o: CefJsonOptions;
}

/**
 * parseLine for the forwarder: a CEF row within the sink's limits is written straight into `target` as
 * the JSON that JSON.stringify(parseLine(line).row) gives, without building the row. Other lines (Cisco
 * ASA, rows over a limit, `rowWhen` matches, failures) come back as parseLine returns them.
 */
export function lineJsonParser(o: JsonOptions): (line: Buffer, receivedAt: Date, target: JsonTarget) => ParseResult | JsonRow {
  const resolved: CefJsonOptions = {
    maxFieldBytes: o.maxFieldBytes,
    maxColumns: o.maxColumns,
    ...(o.rowWhen ? { rowWhen: { index: columnIndex(o.rowWhen.column), value: o.rowWhen.value } } : {}),
  };
  return (line, receivedAt, target) => {
    try {
      // An ASCII line's string indexes are its byte offsets: values are copied from the bytes.
      const ascii = isAscii(line);
      return parseText(stripEnd(decodeLine(line, ascii)), receivedAt, { target, bytes: ascii ? line : null, o: resolved });
    } catch (err) {
      return parserError(err);
    }
  };
}

function skipColonsAndBlanks(s: string, p: number): number {
  while (p < s.length) {
    const c = s.charCodeAt(p);
    if (c !== 58 && c !== 32 && c !== 9) break;
    p++;
  }
  return p;
}

// Consecutive lines usually share the receive time (or the millisecond); format it once.
let lastTime = NaN;
let lastIso = '';
function isoOf(receivedAt: Date): string | undefined {
  const t = receivedAt.getTime();
  if (t === lastTime) return lastIso;
  if (!Number.isFinite(t)) return undefined;
  lastIso = receivedAt.toISOString();
  lastTime = t;
  return lastIso;
}

/** Same key order as CEF rows (CommonSecurityLog column order, AdditionalExtensions last). */
function canonicalOrder(row: CslRow): CslRow {
  const out: CslRow = {};
  for (const [name] of CSL_COLUMNS) {
    if (name !== 'AdditionalExtensions' && row[name] !== undefined) out[name] = row[name];
  }
  if (row.AdditionalExtensions !== undefined) out.AdditionalExtensions = row.AdditionalExtensions;
  return out;
}

function isBlankText(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13 && c !== 0) return false;
  }
  return true;
}

function parseText(s: string, receivedAt: Date, json: JsonContext | undefined): ParseResult | JsonRow {
  if (isBlankText(s)) return { ok: false, reason: 'empty line' };
  const h = parseSyslogHeader(s, header);
  const host = h.host;
  let v = -1;
  if (h.format === 'rfc5424') {
    // `logger -t CEF:` and rsyslog's RFC 5424 forwarding carry `CEF:` as APP-NAME and `0|…` as MSG.
    if (isCefTag(h.appName)) v = bareVersionAt(s, h.msgStart);
    if (v === -1) v = findCefVersion(s, h.msgStart);
  } else {
    v = findCefVersion(s, h.msgStart);
  }
  if (v === -1 && h.afterHost < h.msgStart) v = findCefVersion(s, h.afterHost);
  if (v !== -1) {
    const iso = isoOf(receivedAt);
    if (iso === undefined) return { ok: false, reason: 'receivedAt is not a valid date' };
    const r = json ? parseCefJson(s, v, iso, host, receivedAt, json.bytes, json.target, json.o) : parseCefAt(s, v, iso, host, receivedAt);
    if (typeof r === 'string') return { ok: false, reason: r };
    return r.kind === 'json' ? (r as JsonRow) : { ok: true, kind: 'cef', row: r as CslRow };
  }
  let asa = undefined;
  if (h.format === 'rfc5424') {
    // rsyslog's RFC 5424 forwarding turns the ASA tag `%ASA-6-302013:` into APP-NAME `%ASA-6-302013`.
    const tag = h.appName === undefined ? undefined : findAsa(h.appName, 0);
    if (tag !== undefined) asa = { ...tag, textStart: skipColonsAndBlanks(s, h.msgStart) };
    else asa = findAsa(s, h.msgStart);
  }
  // Anywhere else in the line, e.g. where a relay mistook the tag for HOSTNAME.
  asa ??= findAsa(s, 0);
  if (asa !== undefined) {
    const iso = isoOf(receivedAt);
    if (iso === undefined) return { ok: false, reason: 'receivedAt is not a valid date' };
    const row: CslRow = { TimeGenerated: iso };
    if (host !== undefined && host !== '' && !host.startsWith('%')) row.Computer = host;
    fillAsaRow(row, s, asa);
    return { ok: true, kind: 'asa', row: canonicalOrder(row) };
  }
  if (s.indexOf('CEF:') !== -1) return { ok: false, reason: 'has "CEF:" but no CEF header (expected CEF:<version>|vendor|product|…)' };
  return { ok: false, reason: 'not a CEF or Cisco ASA/FTD message' };
}

/** Parse bare CEF text (`CEF:0|…`, no syslog header). */
export function parseCef(text: string, receivedAt: Date = new Date()): ParseResult {
  try {
    const s = stripEnd(text);
    const v = findCefVersion(s, 0);
    if (v === -1) return { ok: false, reason: 'no CEF header (expected CEF:<version>|vendor|product|…)' };
    const iso = isoOf(receivedAt);
    if (iso === undefined) return { ok: false, reason: 'receivedAt is not a valid date' };
    const r = parseCefAt(s, v, iso, undefined, receivedAt);
    return typeof r === 'string' ? { ok: false, reason: r } : { ok: true, kind: 'cef', row: r };
  } catch (err) {
    return { ok: false, reason: `parser error: ${err instanceof Error ? err.message : String(err)}` };
  }
}
