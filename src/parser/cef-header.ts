/**
 * The CEF header: finding `CEF:<version>|` in a syslog line, the six pipe-separated fields after it, and
 * the severity band.
 */
import { parseInteger } from './values.js';
import { isEscaped, unescapeHeader, PIPE } from './cef-escapes.js';
import type { CefParseState } from './cef-parse-state.js';

const SPACE = 32;
const TAB = 9;

/** The next `|` at or after `from` that is not escaped, or -1. */
export function nextPipe(s: string, from: number): number {
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

/** A header field s[a, b) into column `col`: kept as a span when it needs no unescaping (see CefParseState.src). */
export function setHeader(st: CefParseState, s: string, col: number, a: number, b: number): void {
  if (a >= b) return;
  if (!st.escapedIn(a, b)) {
    if (st.src !== null) st.putSpan(col, a, b);
    else st.put(col, s.slice(a, b));
  } else st.put(col, unescapeHeader(s.slice(a, b)));
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
