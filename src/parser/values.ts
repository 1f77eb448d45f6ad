/** Strict number conversions for typed CommonSecurityLog columns; NaN means "does not fit". */

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** A decimal integer (optional leading minus), or NaN. Only exact (safe) integers are returned. */
export function parseInteger(s: string): number {
  const len = s.length;
  if (len === 0 || len > 20) return NaN;
  const neg = s.charCodeAt(0) === 45;
  let i = neg ? 1 : 0;
  if (i === len) return NaN;
  let n = 0;
  for (; i < len; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  // Beyond 2^53 a JSON number would silently change the value; such values stay text.
  if (n > Number.MAX_SAFE_INTEGER) return NaN;
  return neg ? -n : n;
}

export function isInt32(n: number): boolean {
  return n >= INT32_MIN && n <= INT32_MAX;
}

/** An int column value, or NaN. */
export function parseInt32(s: string): number {
  const n = parseInteger(s);
  return isInt32(n) ? n : NaN;
}

const REAL = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

/** A real column value, or NaN. Rejects hex, Infinity and the other things Number() would accept. */
export function parseReal(s: string): number {
  if (s.length === 0 || s.length > 64 || !REAL.test(s)) return NaN;
  const n = Number(s);
  return Number.isFinite(n) ? n : NaN;
}
