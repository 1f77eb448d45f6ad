/**
 * Sequence-numbered CEF events for load and chaos runs (in the manner of rsyslog's tcpflood).
 *
 * Every event carries its stream and position: `cs6=<stream>` (stream = run id + connection +
 * segment, see gen.ts), `externalId=<seq>` and the send time in ms as `cn3`. After parsing they are
 * the CommonSecurityLog columns DeviceCustomString6, ExtID and FieldDeviceCustomNumber3, which is
 * what chkseq.ts reads back from the sink. The message is padded with `msg=` to the requested size.
 */
export const STREAM_LABEL = 'LoadStream';

/** Smallest line the fixed fields fit in. */
export const MIN_LINE = 200;
export const MAX_LINE = 8 * 1024;

const HEAD = '<134>Nov 22 08:00:00 loadgen-host CEF:0|Bench|LoadGen|1.0|';

/** One event line of exactly `size` bytes including the trailing newline (ASCII only). */
export function cefLine(stream: string, seq: number, sentAt: number, size = 500): string {
  const s = seq;
  const head = `${HEAD}${100 + (s % 50)}|Connection allowed|3|`;
  const ext =
    `externalId=${s} cs6=${stream} cs6Label=${STREAM_LABEL} cn3=${sentAt} cn3Label=sentAtMs ` +
    `src=10.1.${s & 255}.${(s >> 8) & 255} dst=203.0.113.${s % 250} spt=${1024 + (s % 60000)} dpt=443 proto=TCP act=allow ` +
    `suser=user${s % 1000}@example.com msg=`;
  const pad = size - 1 - head.length - ext.length;
  return head + ext + (pad > 0 ? 'x'.repeat(pad) : '') + '\n';
}

/** The fields chkseq needs, from a CommonSecurityLog row (ours) or a flat JSON object (peers). */
export interface SeqFields {
  stream: string;
  seq: number;
  sentAt?: number;
}

export function seqOfRow(row: Record<string, unknown>): SeqFields | null {
  const stream = row.DeviceCustomString6 ?? row.cs6 ?? row['.cef.cs6'];
  const seq = row.ExtID ?? row.ExternalID ?? row.externalId ?? row['.cef.externalId'];
  if (stream === undefined || seq === undefined) return null;
  const sent = row.FieldDeviceCustomNumber3 ?? row.DeviceCustomNumber3 ?? row.cn3 ?? row['.cef.cn3'];
  const n = Number(seq);
  if (!Number.isInteger(n)) return null;
  return { stream: String(stream), seq: n, ...(sent !== undefined ? { sentAt: Number(sent) } : {}) };
}

/** What scanSeqRows read from one call body: one entry per row, in order. */
export interface ScannedSeqRows {
  streams: string[];
  seqs: number[];
  sentAts: number[];
}

const K_STREAM = '"DeviceCustomString6":';
const K_SEQ = '"ExtID":';
const K_SENT = '"FieldDeviceCustomNumber3":';
/**
 * What indexOf looks for: the end of each key, from a character that is rare in these rows. A
 * pattern that starts with `"` makes indexOf stop at every quote (5x slower); findKey checks the
 * rest of the key at each hit.
 */
const F_STREAM = 'String6":';
const F_SEQ = 'ExtID":';
const F_SENT = 'FieldDeviceCustomNumber3":';
const ROW_SEP = '},{"';

/**
 * seqOfRow for a whole Logs Ingestion body without JSON.parse: the load benchmark's mock reads every
 * row's stream, seq and send time with indexOf, at a fraction of the parse cost.
 *
 * Only for the compact form JSON.stringify writes (`[{...},{...}]`, flat rows). Returns undefined
 * when the text is not in that form or holds a backslash: without escapes no string value can
 * contain a quote, so every `"Key":` found is a key, and rows are told apart from a value that ends
 * in `},{` (see nextRow); the caller then parses the body in full. Throws when a row lacks one of the three columns, holds one twice or
 * has a seq that is not a plain integer, or when its first or last row, parsed in full, reads
 * otherwise, so a miscount cannot pass silently.
 */
export function scanSeqRows(text: string): ScannedSeqRows | undefined {
  const n = text.length;
  if (n < 4 || text.charCodeAt(0) !== 0x5b || text.charCodeAt(1) !== 0x7b || text.charCodeAt(n - 2) !== 0x7d || text.charCodeAt(n - 1) !== 0x5d) {
    return undefined;
  }
  if (text.indexOf('\\') >= 0) return undefined;
  const out: ScannedSeqRows = { streams: [], seqs: [], sentAts: [] };
  // Each key is searched once through the whole text: its next hit must lie in the current row and
  // the hit after that beyond it (one occurrence per row).
  let kStream = findKey(text, K_STREAM, F_STREAM, 2);
  let kSeq = findKey(text, K_SEQ, F_SEQ, 2);
  let kSent = findKey(text, K_SENT, F_SENT, 2);
  let start = 2;
  let firstEnd = -1;
  for (let row = 0; ; row++) {
    const sep = nextRow(text, start, row);
    if (row === 0) firstEnd = sep;
    // Last row: its closing brace is the one before the final bracket.
    const end = sep < 0 ? n - 2 : sep;
    if (kStream < start || kStream >= end) throw scanError(row, start, 'no DeviceCustomString6');
    if (kSeq < start || kSeq >= end) throw scanError(row, start, 'no ExtID');
    if (kSent < start || kSent >= end) throw scanError(row, start, 'no FieldDeviceCustomNumber3');
    const stream = stringAt(text, kStream + K_STREAM.length, end);
    if (stream === undefined) throw scanError(row, start, 'DeviceCustomString6 is not a string');
    const seq = intAt(text, kSeq + K_SEQ.length, end);
    if (seq < 0) throw scanError(row, start, 'ExtID is not a plain integer');
    const sentAt = numberAt(text, kSent + K_SENT.length, end);
    if (sentAt === undefined) throw scanError(row, start, 'FieldDeviceCustomNumber3 is not a number');
    out.streams.push(stream);
    out.seqs.push(seq);
    out.sentAts.push(sentAt);
    kStream = findKey(text, K_STREAM, F_STREAM, kStream + K_STREAM.length);
    kSeq = findKey(text, K_SEQ, F_SEQ, kSeq + K_SEQ.length);
    kSent = findKey(text, K_SENT, F_SENT, kSent + K_SENT.length);
    if ((kStream >= 0 && kStream < end) || (kSeq >= 0 && kSeq < end) || (kSent >= 0 && kSent < end)) {
      throw scanError(row, start, 'a sequence column appears twice');
    }
    if (sep < 0) break;
    start = sep + ROW_SEP.length - 1;
  }
  // The first and last rows are parsed in full and must read the same: a body cut short and closed
  // again, or a first row that does not end where the scan thinks, fails here.
  sameAsParsed(out, 0, text.slice(1, firstEnd < 0 ? n - 1 : firstEnd + 1));
  if (out.seqs.length > 1) sameAsParsed(out, out.seqs.length - 1, text.slice(start - 1, n - 1));
  return out;
}

function sameAsParsed(out: ScannedSeqRows, i: number, rowText: string): void {
  let row: unknown;
  try {
    row = JSON.parse(rowText);
  } catch {
    throw new Error(`row ${i} is not valid JSON`);
  }
  const f = row && typeof row === 'object' && !Array.isArray(row) ? seqOfRow(row as Record<string, unknown>) : null;
  if (!f || f.stream !== out.streams[i] || f.seq !== out.seqs[i] || f.sentAt !== out.sentAts[i]) {
    throw new Error(`row ${i}: the scan read ${out.streams[i]}/${out.seqs[i]}/${out.sentAts[i]}, JSON.parse ${f ? `${f.stream}/${f.seq}/${f.sentAt}` : 'no sequence fields'}`);
  }
}

/** Where the next `key` (quotes and colon included) starts at or after `from`, or -1. */
function findKey(text: string, key: string, tail: string, from: number): number {
  const back = key.length - tail.length;
  for (let at = text.indexOf(tail, from + back); at >= 0; at = text.indexOf(tail, at + 1)) {
    if (text.startsWith(key, at - back)) return at - back;
  }
  return -1;
}

/**
 * The next `},{"` that separates rows. A string value ending in `},{` also makes one, but there the
 * quote closes the value and `,` or `}` follows; between rows a column name follows, which for
 * CommonSecurityLog starts with a letter. Anything else is left to JSON.parse.
 */
function nextRow(text: string, from: number, row: number): number {
  for (let at = text.indexOf(ROW_SEP, from); at >= 0; at = text.indexOf(ROW_SEP, at + 1)) {
    const c = text.charCodeAt(at + ROW_SEP.length) | 0x20;
    if (c >= 0x61 && c <= 0x7a) return at;
    if (c !== 0x2c && c !== 0x7d) throw scanError(row, from, 'a row starts with a column name that is not a plain identifier');
  }
  return -1;
}

function scanError(row: number, offset: number, problem: string): Error {
  return new Error(`row ${row} (offset ${offset}): ${problem}`);
}

/** A JSON string value (no escapes: checked by the caller) starting at `at`, or undefined. */
function stringAt(text: string, at: number, end: number): string | undefined {
  if (text.charCodeAt(at) !== 0x22) return undefined;
  const close = text.indexOf('"', at + 1);
  return close < 0 || close >= end ? undefined : text.slice(at + 1, close);
}

/** The end of a value: a `,` before the row's closing brace, or that brace. */
function endsValue(text: string, i: number, end: number): boolean {
  return i === end || (i < end && text.charCodeAt(i) === 0x2c);
}

/** A non-negative integer of at most 10 digits, bare or quoted, starting at `at`; -1 otherwise. */
function intAt(text: string, at: number, end: number): number {
  let i = at;
  const quoted = text.charCodeAt(i) === 0x22;
  if (quoted) i++;
  let v = 0;
  const first = i;
  for (let c = text.charCodeAt(i); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i)) v = v * 10 + (c - 0x30);
  if (i === first || i - first > 10) return -1;
  if (quoted && text.charCodeAt(i++) !== 0x22) return -1;
  return endsValue(text, i, end) ? v : -1;
}

/** A bare JSON number starting at `at`, or undefined. */
function numberAt(text: string, at: number, end: number): number | undefined {
  let i = at;
  let v = 0;
  // The common case, a millisecond timestamp: digits only, summed here without a slice.
  for (let c = text.charCodeAt(i); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i)) v = v * 10 + (c - 0x30);
  if (i > at && i - at <= 15 && endsValue(text, i, end)) return v;
  // Sign, decimal point, exponent: the other characters of a JSON number.
  for (let c = text.charCodeAt(i); (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45; c = text.charCodeAt(++i));
  if (i === at || !endsValue(text, i, end)) return undefined;
  const n = Number(text.slice(at, i));
  return Number.isFinite(n) ? n : undefined;
}
