import { readFileSync, statSync } from 'node:fs';
import { CliError } from '../errors.js';

/**
 * Secrets come from a 0600 file (preferred: never in argv, never in the config file) or from the
 * environment (containers, systemd credentials). Values are never logged; use redact() on any text
 * that might echo one.
 */
export interface SecretSource {
  /** Path of a file that holds only the secret. Refused when group/other can read or write it. */
  file?: string;
  /** Name of the environment variable to fall back on when no file is given. */
  env?: string;
  /** What the secret is, for error messages ("workspace shared key"). */
  label?: string;
}

export class SecretError extends CliError {
  constructor(message: string, suggestion?: string) {
    super(message, { code: 'ERR_SECRET', suggestion });
    this.name = 'SecretError';
  }
}

/** Throws unless `path` is a regular file that only its owner can read (mode & 0o077 == 0). */
export function assertPrivateFile(path: string, label = 'secret'): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecretError(
      `cannot read the ${label} file ${path}: ${code === 'ENOENT' ? 'it does not exist' : code}`,
      code === 'EACCES' ? `run as a user that can read ${path}` : `create it with mode 600`,
    );
  }
  if (!st.isFile()) throw new SecretError(`the ${label} file ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    throw new SecretError(`refusing to use the ${label} file ${path}: mode ${mode} lets other users read it`, `run: chmod 600 ${path}`);
  }
}

/**
 * Reads a secret from `file` (must be 0600 or stricter) or else from `env`. Trims whitespace.
 * Throws a SecretError naming where it looked (never the value) when neither yields a value.
 */
export function readSecret(source: SecretSource, environment: NodeJS.ProcessEnv = process.env): string {
  const label = source.label ?? 'secret';
  if (source.file) {
    assertPrivateFile(source.file, label);
    let text: string;
    try {
      text = readFileSync(source.file, 'utf8');
    } catch (err) {
      throw new SecretError(`cannot read the ${label} file ${source.file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    const value = text.trim();
    if (!value) throw new SecretError(`the ${label} file ${source.file} is empty`);
    return value;
  }
  if (source.env) {
    const value = environment[source.env]?.trim();
    if (value) return value;
    throw new SecretError(`no ${label}: set the environment variable ${source.env} or configure a 0600 file that holds it`);
  }
  throw new SecretError(`no ${label} configured`);
}

/** A workspace shared key is base64 of 64 bytes; anything that does not decode cleanly is a paste error. */
export function validateSharedKey(key: string): Buffer {
  const compact = key.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact) || compact.length % 4 !== 0) {
    throw new SecretError(
      'the workspace shared key is not valid base64',
      'copy the primary or secondary key from the workspace (Agents > Log Analytics agent instructions)',
    );
  }
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.length === 0) throw new SecretError('the workspace shared key is empty');
  return bytes;
}

const MIN_REDACT_LENGTH = 4;

/** Replaces every occurrence of each secret (and its URL-encoded form) with `[REDACTED]`. */
export function redact(text: string, secrets: ReadonlyArray<string | undefined | null>): string {
  let out = text;
  const needles = new Set<string>();
  for (const s of secrets) {
    if (!s || s.length < MIN_REDACT_LENGTH) continue;
    needles.add(s);
    const encoded = encodeURIComponent(s);
    if (encoded !== s) needles.add(encoded);
  }
  // Longest first so a secret that contains another is replaced whole.
  for (const n of [...needles].sort((a, b) => b.length - a.length)) out = out.split(n).join('[REDACTED]');
  return out;
}
