/**
 * Syslog framing around CEF and Cisco messages: RFC 5424, RFC 3164 (with the Cisco ASA year and trailing
 * colon variants), the `timestamp host` prefix of rsyslog files, and no header at all.
 * Lenient by design: whatever cannot be recognised as header stays part of the message.
 */

export interface SyslogHeader {
  format: 'rfc5424' | 'rfc3164' | 'none';
  /** HOSTNAME, when the header carries one. */
  host: string | undefined;
  /** RFC 5424 APP-NAME (undefined when nil or not RFC 5424). */
  appName: string | undefined;
  /** Where MSG starts (after the BOM in RFC 5424). */
  msgStart: number;
  /** Where the text after HOSTNAME starts (for fallback searches). */
  afterHost: number;
}

const SPACE = 32;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function tokenEnd(s: string, p: number): number {
  const i = s.indexOf(' ', p);
  return i === -1 ? s.length : i;
}

const MONTH_ABBR = new Set(['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']);
const TS_ZONES = new Set(['UTC', 'GMT', 'Z', 'CET', 'CEST', 'EST', 'EDT', 'PST', 'PDT', 'CST', 'CDT', 'MST', 'MDT']);
const LONGEST_ZONE = Math.max(...[...TS_ZONES].map((z) => z.length));

// Months as three character codes in one number: looked up per line without slicing a string.
const code3 = (c0: number, c1: number, c2: number) => (c0 << 16) | (c1 << 8) | c2;
const MONTH_CODES = new Set([...MONTH_ABBR].map((m) => code3(m.charCodeAt(0), m.charCodeAt(1), m.charCodeAt(2))));

function monthAt(s: string, p: number): boolean {
  const c0 = s.charCodeAt(p);
  const c1 = s.charCodeAt(p + 1);
  const c2 = s.charCodeAt(p + 2);
  return c0 < 128 && c1 < 128 && c2 < 128 && MONTH_CODES.has(code3(c0, c1, c2));
}

/** `hh:mm:ss` (optionally `.fraction`) at p; returns the end or -1. */
function timeAt(s: string, p: number): number {
  if (!(
    isDigit(s.charCodeAt(p)) &&
    isDigit(s.charCodeAt(p + 1)) &&
    s.charCodeAt(p + 2) === 58 &&
    isDigit(s.charCodeAt(p + 3)) &&
    isDigit(s.charCodeAt(p + 4)) &&
    s.charCodeAt(p + 5) === 58 &&
    isDigit(s.charCodeAt(p + 6)) &&
    isDigit(s.charCodeAt(p + 7))
  )) {
    return -1;
  }
  let q = p + 8;
  if (s.charCodeAt(q) === 46 && isDigit(s.charCodeAt(q + 1))) {
    q++;
    while (isDigit(s.charCodeAt(q))) q++;
  }
  return q;
}

/**
 * A BSD timestamp at p: `Mmm dd hh:mm:ss`, `Mmm  d hh:mm:ss`, Cisco `Mmm dd yyyy hh:mm:ss`, each optionally
 * followed by a zone word and/or a colon (ASA `logging timestamp`). Or an RFC 3339 timestamp, as rsyslog
 * writes to files and FTD sends. Returns the end (before the separating space) or -1.
 */
function bsdTimestampAt(s: string, p: number): number {
  const c = s.charCodeAt(p);
  if (isDigit(c)) {
    // RFC 3339: yyyy-mm-ddThh:mm:ss...
    if (s.charCodeAt(p + 4) === 45 && s.charCodeAt(p + 7) === 45 && (s.charCodeAt(p + 10) === 84 || s.charCodeAt(p + 10) === 116)) {
      let q = tokenEnd(s, p);
      if (s.charCodeAt(q - 1) === 58) q--; // `2026-…Z:` (ASA with rfc5424 timestamps)
      return timeAt(s, p + 11) === -1 ? -1 : q;
    }
    return -1;
  }
  if (!monthAt(s, p) || s.charCodeAt(p + 3) !== SPACE) return -1;
  let q = p + 4;
  if (s.charCodeAt(q) === SPACE) q++;
  if (!isDigit(s.charCodeAt(q))) return -1;
  q++;
  if (isDigit(s.charCodeAt(q))) q++;
  if (s.charCodeAt(q) !== SPACE) return -1;
  q++;
  // Cisco puts the year between day and time.
  if (isDigit(s.charCodeAt(q)) && isDigit(s.charCodeAt(q + 3)) && s.charCodeAt(q + 4) === SPACE && s.charCodeAt(q + 2) !== 58) q += 5;
  const t = timeAt(s, q);
  if (t === -1) return -1;
  q = t;
  if (s.charCodeAt(q) === SPACE) {
    const ze = tokenEnd(s, q + 1);
    // Most often the hostname follows: too long to be a zone, no need to look it up.
    const colon = s.charCodeAt(ze - 1) === 58;
    const word = ze - q - 1 > LONGEST_ZONE + 1 ? '' : s.slice(q + 1, colon ? ze - 1 : ze);
    if (TS_ZONES.has(word)) q = colon ? ze - 1 : ze;
  }
  if (s.charCodeAt(q) === 58) q++;
  return q;
}

/** A HOSTNAME token: no tag punctuation, not the start of the message itself. */
function looksLikeHost(s: string, a: number, b: number): boolean {
  if (b <= a || b - a > 255) return false;
  if (s.charCodeAt(b - 1) === 58) return false; // `tag:` — sender without HOSTNAME
  for (let i = a; i < b; i++) {
    const c = s.charCodeAt(i);
    // [ | % = and quotes never occur in host names; a tag or the message starts here.
    if (c === 91 || c === 124 || c === 37 || c === 61 || c === 34 || c < 33) return false;
  }
  return true;
}

/**
 * Split `s` into syslog header fields and MSG. Never fails: text without a header is all MSG.
 * `out` is reused across calls to keep the hot path allocation-free.
 */
export function parseSyslogHeader(s: string, out: SyslogHeader): SyslogHeader {
  out.format = 'none';
  out.host = undefined;
  out.appName = undefined;
  out.msgStart = 0;
  out.afterHost = 0;
  let p = 0;
  const len = s.length;
  // Leading blanks, and a BOM where a file starts with one.
  while (p < len && (s.charCodeAt(p) === SPACE || s.charCodeAt(p) === 9 || s.charCodeAt(p) === 0xfeff)) p++;
  let hadPri = false;
  if (s.charCodeAt(p) === 60 /* < */) {
    let q = p + 1;
    let pri = 0;
    while (q < len && q - p <= 4 && isDigit(s.charCodeAt(q))) pri = pri * 10 + s.charCodeAt(q++) - 48;
    if (q > p + 1 && s.charCodeAt(q) === 62 /* > */ && pri <= 191) {
      p = q + 1;
      hadPri = true;
    }
  }
  if (
    hadPri &&
    isDigit(s.charCodeAt(p)) &&
    (s.charCodeAt(p + 1) === SPACE || (isDigit(s.charCodeAt(p + 1)) && s.charCodeAt(p + 2) === SPACE))
  ) {
    if (parse5424(s, s.charCodeAt(p + 1) === SPACE ? p + 2 : p + 3, out)) return out;
  }
  // ASA `logging timestamp` variants may put a colon before the timestamp.
  const tsStart = s.charCodeAt(p) === 58 ? p + 1 : p;
  const ts = bsdTimestampAt(s, tsStart);
  if (ts === -1) {
    out.msgStart = p;
    out.afterHost = p;
    out.format = hadPri ? 'rfc3164' : 'none';
    return out;
  }
  out.format = 'rfc3164';
  p = ts;
  while (p < len && s.charCodeAt(p) === SPACE) p++;
  const he = tokenEnd(s, p);
  if (he < len && looksLikeHost(s, p, he)) {
    out.host = s.slice(p, he);
    p = he + 1;
  }
  out.msgStart = p;
  out.afterHost = p;
  return out;
}

function parse5424(s: string, p: number, out: SyslogHeader): boolean {
  const len = s.length;
  // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
  const te = tokenEnd(s, p);
  if (te >= len) return false;
  const he = tokenEnd(s, te + 1);
  if (he >= len || he === te + 1) return false;
  const ae = tokenEnd(s, he + 1);
  if (ae >= len || ae === he + 1) return false;
  const pe = tokenEnd(s, ae + 1);
  if (pe >= len || pe === ae + 1) return false;
  const me = tokenEnd(s, pe + 1);
  if (me === pe + 1) return false;
  let q = me + 1;
  if (q >= len) {
    q = len;
  } else if (s.charCodeAt(q) === 45 /* - */) {
    q++;
  } else if (s.charCodeAt(q) === 91 /* [ */) {
    // SD-ELEMENTs; inside quoted PARAM-VALUEs `\"`, `\\` and `\]` are escapes.
    while (q < len && s.charCodeAt(q) === 91) {
      q++;
      let inQuote = false;
      while (q < len) {
        const c = s.charCodeAt(q);
        if (inQuote) {
          if (c === 92) q++;
          else if (c === 34) inQuote = false;
        } else if (c === 34) inQuote = true;
        else if (c === 93) break;
        q++;
      }
      if (q >= len) return false;
      q++;
    }
  } else {
    return false;
  }
  if (q < len && s.charCodeAt(q) === SPACE) q++;
  if (s.charCodeAt(q) === 0xfeff) q++;
  out.format = 'rfc5424';
  const host = s.slice(te + 1, he);
  out.host = host === '-' ? undefined : host;
  const app = s.slice(he + 1, ae);
  out.appName = app === '-' ? undefined : app;
  out.afterHost = he + 1;
  out.msgStart = q;
  return true;
}
