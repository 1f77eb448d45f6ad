/** An error meant for the operator: one line that says what went wrong and what to do. */
export class CliError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly suggestion?: string;

  constructor(
    message: string,
    opts: { code?: string; exitCode?: number; suggestion?: string; cause?: unknown } = {},
  ) {
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
