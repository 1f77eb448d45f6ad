import { CONTROL_CHARS_G as CONTROL_G } from './util/control-chars.js';

/** An error meant for the operator: one line that says what went wrong and what to do. */
export class CliError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly suggestion?: string;

  constructor(message: string, opts: { code?: string; exitCode?: number; suggestion?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CliError';
    this.code = opts.code ?? 'ERR_CLI';
    this.exitCode = opts.exitCode ?? 1;
    this.suggestion = opts.suggestion;
  }
}

/** Bad flags, arguments or config: exit code 2. */
export class UsageError extends CliError {
  constructor(message: string, opts: { code?: string; suggestion?: string; cause?: unknown } = {}) {
    super(message, { ...opts, code: opts.code ?? 'ERR_USAGE', exitCode: 2 });
    this.name = 'UsageError';
  }
}

export function formatError(err: unknown): string {
  if (err instanceof CliError) {
    return err.suggestion ? `${err.message} — ${err.suggestion}` : err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/** C0, DEL, C1 and the Unicode line and paragraph separators: never printed raw in a one-line error. */

/** A value as it may be shown in a one-line error: escaped, quoted, shortened. */
export function showValue(v: unknown): string {
  const s = String(v)
    .replace(/[\\']/g, '\\$&')
    .replace(/\n/g, '\\n')
    .replace(CONTROL_G, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `'${s.length > 60 ? `${s.slice(0, 60)}…` : s}'`;
}

/** `workspaceResourceId` → `--workspace-resource-id`. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** The part of a zod issue the formatter reads (structural, so this module needs no zod import). */
export interface OptionIssue {
  path: ReadonlyArray<PropertyKey>;
  message: string;
  input?: unknown;
}

/**
 * The one formatter for option errors, used by every command: the first issue as one line naming the flag,
 * `--port must be an integer from 1 to 65535, got 'abc'`. A message that already names its flag (`--x …`,
 * `<arg> …`) is kept; a `must …` message gets the flag and the offending value (parse with `reportInput: true`).
 * `names` maps option keys whose flag is not the kebab-case of the key (positional arguments).
 */
export function formatOptionError(err: { issues: ReadonlyArray<OptionIssue> }, names: Record<string, string> = {}): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid options';
  const message = issue.message.replace(CONTROL_G, ' ');
  if (/^(--|<)/.test(message)) return message;
  const key = issue.path.length ? String(issue.path[0]) : '';
  const flag = key ? (names[key] ?? flagName(key)) : 'options';
  const rest = issue.path.length > 1 ? `.${issue.path.slice(1).map(String).join('.')}` : '';
  if (/^must /.test(message)) {
    const got =
      issue.input !== undefined && typeof issue.input !== 'object' && !/, got /.test(message) ? `, got ${showValue(issue.input)}` : '';
    return `${flag}${rest} ${message}${got}`;
  }
  return `${flag}${rest}: ${message}`;
}

/** A UsageError (exit 2) for a failed options parse. */
export function optionError(err: { issues: ReadonlyArray<OptionIssue> }, names?: Record<string, string>): UsageError {
  return new UsageError(formatOptionError(err, names));
}

/** One config-file issue as `field.path: message` (config files name fields, not flags). */
export function formatConfigIssue(issue: OptionIssue): string {
  return `${issue.path.length ? issue.path.map(String).join('.') : '(root)'}: ${issue.message.replace(CONTROL_G, ' ')}`;
}
