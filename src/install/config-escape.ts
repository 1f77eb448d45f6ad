import { CONTROL_CHARS as CONTROL } from '../util/control-chars.js';

// Escaping for each format install renders into: the second wall behind the option grammar (options.ts).
// A value that would still change the structure of its file (a newline, a control character) is refused here,
// as a bug, rather than written.

export class UnsafeValueError extends Error {
  constructor(where: string, value: string) {
    super(`refusing to render ${JSON.stringify(value)} into ${where}: it holds a control character or newline`);
    this.name = 'UnsafeValueError';
  }
}

function oneLine(where: string, v: string): string {
  if (CONTROL.test(v)) throw new UnsafeValueError(where, v);
  return v;
}

/** A port number for any format: an integer from 1 to 65535, or an error. */
export function portValue(where: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new UnsafeValueError(where, String(v));
  return v;
}

const PLAIN_WORD = /^[A-Za-z0-9._+@,=/:-]+$/;

/**
 * One word of a systemd Exec*= or space-separated path setting: `%` specifiers and `$` variables doubled, and
 * the word double-quoted with C escapes when it holds anything but plain characters (systemd.service(5),
 * "Command lines"; systemd.unit(5), "Specifiers").
 */
export function systemdWord(where: string, v: string): string {
  oneLine(where, v);
  if (PLAIN_WORD.test(v)) return v;
  const esc = v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return `"${esc}"`;
}

/**
 * The first word of a systemd command line as systemd reads it back: the inverse of systemdWord (quotes and C
 * escapes removed, `%%` and `$$` undoubled), or null when the line is empty.
 */
export function firstSystemdWord(line: string): string | null {
  const m = /^\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(line);
  if (!m) return null;
  const word = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
  return word.replace(/%%/g, '%').replace(/\$\$/g, '$');
}

/** The value of a systemd setting that takes a path list (ReadWritePaths=): words, specifiers escaped. */
export function systemdPath(where: string, v: string): string {
  oneLine(where, v);
  if (PLAIN_WORD.test(v)) return v;
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`;
}

/** The inside of a RainerScript "string": backslash and double quote escaped. */
export function rainerString(where: string, v: string): string {
  return oneLine(where, v).replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/**
 * The inside of a syslog-ng "string": backslash and double quote escaped. Backticks are refused: syslog-ng
 * substitutes `name` from @define even inside strings.
 */
export function syslogNgString(where: string, v: string): string {
  if (v.includes('`')) throw new UnsafeValueError(where, v);
  return oneLine(where, v).replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/** A syslog-ng object name (source, destination), as found in a config we read: an identifier or nothing. */
export function syslogNgIdentifier(where: string, v: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(v)) throw new UnsafeValueError(where, v);
  return v;
}
