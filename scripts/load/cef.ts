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

const K_STREAM = Buffer.from('"DeviceCustomString6":');
const K_SEQ = Buffer.from('"ExtID":');
const K_SENT = Buffer.from('"FieldDeviceCustomNumber3":');
/**
 * The byte of each key that indexOf looks for, one that is rare in these rows; findKey checks the
 * whole key at each hit. A one-byte search is memchr, about 3x faster than Buffer.indexOf with a
 * Buffer needle here (and a string needle would be encoded again on every call).
 */
const A_STREAM = K_STREAM.indexOf('S');
const A_SEQ = K_SEQ.indexOf('E');
const A_SENT = K_SENT.indexOf('F');
const ROW_SEP = Buffer.from('},{"');

/**
 * seqOfRow for a whole Logs Ingestion body without JSON.parse: the load benchmark's mock reads every
 * row's stream, seq and send time with indexOf on the gunzipped bytes, at a fraction of the parse
 * cost (and without decoding the body: only stream names and two rows become strings).
 *
 * Only for the compact form JSON.stringify writes (`[{...},{...}]`, flat rows). Returns undefined
 * when the body is not in that form or holds a backslash: without escapes no string value can
 * contain a quote, so every `"Key":` found is a key, and rows are told apart from a value that ends
 * in `},{` (see nextRow); the caller then parses the body in full. UTF-8 bytes of non-ASCII
 * characters are all >= 0x80, so they never match the ASCII needles. Throws when a row lacks one of
 * the three columns, holds one twice or has a seq that is not a plain integer, or when its first or
 * last row, parsed in full, reads otherwise, so a miscount cannot pass silently. A string is
 * encoded as UTF-8 first (tests).
 */
export function scanSeqRows(body: Buffer | string): ScannedSeqRows | undefined {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const n = buf.length;
  if (n < 4 || buf[0] !== 0x5b || buf[1] !== 0x7b || buf[n - 2] !== 0x7d || buf[n - 1] !== 0x5d) return undefined;
  if (buf.indexOf(0x5c) >= 0) return undefined;
  const out: ScannedSeqRows = { streams: [], seqs: [], sentAts: [] };
  // Each key is searched once through the whole body: its next hit must lie in the current row and
  // the hit after that beyond it (one occurrence per row).
  let kStream = findKey(buf, K_STREAM, A_STREAM, 2);
  let kSeq = findKey(buf, K_SEQ, A_SEQ, 2);
  let kSent = findKey(buf, K_SENT, A_SENT, 2);
  let start = 2;
  let firstEnd = -1;
  // The previous row's stream: rows of one stream come in runs, so most rows reuse its string.
  let lastStream = '';
  let lastAt = -1;
  let lastLen = -1;
  for (let row = 0; ; row++) {
    const sep = nextRow(buf, start, row);
    if (row === 0) firstEnd = sep;
    // Last row: its closing brace is the one before the final bracket.
    const end = sep < 0 ? n - 2 : sep;
    if (kStream < start || kStream >= end) throw scanError(row, start, 'no DeviceCustomString6');
    if (kSeq < start || kSeq >= end) throw scanError(row, start, 'no ExtID');
    if (kSent < start || kSent >= end) throw scanError(row, start, 'no FieldDeviceCustomNumber3');
    const at = kStream + K_STREAM.length + 1;
    const close = stringEnd(buf, at - 1, end);
    if (close < 0) throw scanError(row, start, 'DeviceCustomString6 is not a string');
    if (!sameBytes(buf, at, lastAt, close - at, lastLen)) {
      lastStream = buf.toString('utf8', at, close);
      lastAt = at;
      lastLen = close - at;
    }
    const seq = intAt(buf, kSeq + K_SEQ.length, end);
    if (seq < 0) throw scanError(row, start, 'ExtID is not a plain integer');
    const sentAt = numberAt(buf, kSent + K_SENT.length, end);
    if (sentAt === undefined) throw scanError(row, start, 'FieldDeviceCustomNumber3 is not a number');
    out.streams.push(lastStream);
    out.seqs.push(seq);
    out.sentAts.push(sentAt);
    kStream = findKey(buf, K_STREAM, A_STREAM, kStream + K_STREAM.length);
    kSeq = findKey(buf, K_SEQ, A_SEQ, kSeq + K_SEQ.length);
    kSent = findKey(buf, K_SENT, A_SENT, kSent + K_SENT.length);
    if ((kStream >= 0 && kStream < end) || (kSeq >= 0 && kSeq < end) || (kSent >= 0 && kSent < end)) {
      throw scanError(row, start, 'a sequence column appears twice');
    }
    if (sep < 0) break;
    start = sep + ROW_SEP.length - 1;
  }
  // The first and last rows are parsed in full and must read the same: a body cut short and closed
  // again, or a first row that does not end where the scan thinks, fails here.
  sameAsParsed(out, 0, buf.toString('utf8', 1, firstEnd < 0 ? n - 1 : firstEnd + 1));
  if (out.seqs.length > 1) sameAsParsed(out, out.seqs.length - 1, buf.toString('utf8', start - 1, n - 1));
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
    throw new Error(
      `row ${i}: the scan read ${out.streams[i]}/${out.seqs[i]}/${out.sentAts[i]}, JSON.parse ${f ? `${f.stream}/${f.seq}/${f.sentAt}` : 'no sequence fields'}`,
    );
  }
}

/** Where the next `key` (quotes and colon included) starts at or after `from`, or -1. */
function findKey(buf: Buffer, key: Buffer, anchor: number, from: number): number {
  const b = key[anchor]!;
  for (let at = buf.indexOf(b, from + anchor); at >= 0; at = buf.indexOf(b, at + 1)) {
    if (startsWith(buf, at - anchor, key)) return at - anchor;
  }
  return -1;
}

function startsWith(buf: Buffer, at: number, key: Buffer): boolean {
  for (let i = 0; i < key.length; i++) if (buf[at + i] !== key[i]) return false;
  return true;
}

/**
 * The next `},{"` that separates rows. A string value ending in `},{` also makes one, but there the
 * quote closes the value and `,` or `}` follows; between rows a column name follows, which for
 * CommonSecurityLog starts with a letter. Anything else is left to JSON.parse.
 */
function nextRow(buf: Buffer, from: number, row: number): number {
  for (let at = buf.indexOf(0x7d, from); at >= 0; at = buf.indexOf(0x7d, at + 1)) {
    if (!startsWith(buf, at, ROW_SEP)) continue;
    const c = (buf[at + ROW_SEP.length] ?? 0) | 0x20;
    if (c >= 0x61 && c <= 0x7a) return at;
    if (c !== 0x2c && c !== 0x7d) throw scanError(row, from, 'a row starts with a column name that is not a plain identifier');
  }
  return -1;
}

function scanError(row: number, offset: number, problem: string): Error {
  return new Error(`row ${row} (offset ${offset}): ${problem}`);
}

/** The closing quote of a JSON string value (no escapes: checked by the caller) starting at `at`, or -1. */
function stringEnd(buf: Buffer, at: number, end: number): number {
  if (buf[at] !== 0x22) return -1;
  // A JS loop: stream names are short, shorter than a native indexOf call costs.
  for (let i = at + 1; i < end; i++) if (buf[i] === 0x22) return i;
  return -1;
}

/** Whether buf[a, a + len) equals buf[b, b + lenB) (a JS loop: short, cheaper than a native call). */
function sameBytes(buf: Buffer, a: number, b: number, len: number, lenB: number): boolean {
  if (len !== lenB) return false;
  for (let i = 0; i < len; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

/** The end of a value: a `,` before the row's closing brace, or that brace. */
function endsValue(buf: Buffer, i: number, end: number): boolean {
  return i === end || (i < end && buf[i] === 0x2c);
}

/** A non-negative integer of at most 10 digits, bare or quoted, starting at `at`; -1 otherwise. */
function intAt(buf: Buffer, at: number, end: number): number {
  let i = at;
  const quoted = buf[i] === 0x22;
  if (quoted) i++;
  let v = 0;
  const first = i;
  // buf[i] past the end is undefined: the comparison is false and the loop stops.
  for (let c = buf[i]!; c >= 0x30 && c <= 0x39; c = buf[++i]!) v = v * 10 + (c - 0x30);
  if (i === first || i - first > 10) return -1;
  if (quoted && buf[i++] !== 0x22) return -1;
  return endsValue(buf, i, end) ? v : -1;
}

/** A bare JSON number starting at `at`, or undefined. */
function numberAt(buf: Buffer, at: number, end: number): number | undefined {
  let i = at;
  let v = 0;
  // The common case, a millisecond timestamp: digits only, summed here without a slice.
  for (let c = buf[i]!; c >= 0x30 && c <= 0x39; c = buf[++i]!) v = v * 10 + (c - 0x30);
  if (i > at && i - at <= 15 && endsValue(buf, i, end)) return v;
  // Sign, decimal point, exponent: the other characters of a JSON number.
  for (let c = buf[i]!; (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45; c = buf[++i]!);
  if (i === at || !endsValue(buf, i, end)) return undefined;
  const n = Number(buf.toString('latin1', at, i));
  return Number.isFinite(n) ? n : undefined;
}
