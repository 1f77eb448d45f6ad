/**
 * CEF's backslash escapes: in header fields `\\` and `\|`; in extension values `\\`, `\=`, `\n`, `\r`
 * (and leniently `\|`). Parsing undoes them; the escape functions are for senders and tests.
 */

export const BACKSLASH = 92;
export const PIPE = 124;

/** True when the character at `idx` is escaped by an odd run of backslashes (not looking before `lo`). */
export function isEscaped(s: string, idx: number, lo: number): boolean {
  let n = 0;
  for (let i = idx - 1; i >= lo && s.charCodeAt(i) === BACKSLASH; i--) n++;
  return (n & 1) === 1;
}

export function unescapeHeader(f: string): string {
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
