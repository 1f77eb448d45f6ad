import { CliError, UsageError } from '../errors.js';

/** Ctrl-C at a prompt: one word and the shell's exit code for SIGINT, not inquirer's "User force closed…". */
export async function cancelledOnExit<T>(answer: Promise<T>): Promise<T> {
  try {
    return await answer;
  } catch (err) {
    if ((err as Error | undefined)?.name === 'ExitPromptError') throw new CliError('cancelled', { code: 'ERR_CANCELLED', exitCode: 130 });
    throw err;
  }
}

/**
 * Questions to the operator. Precedence everywhere: explicit flag, then the --yes default, then a prompt —
 * and a prompt only on a TTY outside CI; otherwise a missing value is a one-line usage error.
 */
export interface Prompter {
  readonly interactive: boolean;
  confirm(message: string, opts: { default: boolean; yes?: boolean; flag?: string }): Promise<boolean>;
  input(message: string, opts: { flag: string; validate?: (v: string) => true | string }): Promise<string>;
  password(message: string, opts: { flag: string }): Promise<string>;
}

export function isInteractive(): boolean {
  const ci = process.env.CI;
  return Boolean(process.stdin.isTTY && process.stderr.isTTY) && !(ci && ci !== 'false' && ci !== '0');
}

export function createPrompter(interactive = isInteractive()): Prompter {
  return {
    interactive,
    async confirm(message, opts) {
      if (opts.yes) return true;
      if (!interactive) {
        throw new UsageError(`${message} — no TTY to ask`, {
          suggestion: `pass ${opts.flag ?? '--yes'} to accept`,
        });
      }
      const { confirm } = await import('@inquirer/prompts');
      return cancelledOnExit(confirm({ message, default: opts.default }, { output: process.stderr }));
    },
    async input(message, opts) {
      if (!interactive) throw new UsageError(`missing ${opts.flag}`, { suggestion: `pass ${opts.flag} (no TTY to ask)` });
      const { input } = await import('@inquirer/prompts');
      return cancelledOnExit(input({ message, validate: opts.validate }, { output: process.stderr }));
    },
    async password(message, opts) {
      if (!interactive) throw new UsageError(`missing ${opts.flag}`, { suggestion: `pass ${opts.flag} (no TTY to ask)` });
      const { password } = await import('@inquirer/prompts');
      return cancelledOnExit(password({ message, mask: false }, { output: process.stderr }));
    },
  };
}

/** A scripted prompter for tests: answers are consumed in order; anything unexpected fails the test. */
export function createScriptedPrompter(answers: Array<string | boolean>): Prompter & { asked: string[] } {
  const asked: string[] = [];
  const next = (message: string) => {
    asked.push(message);
    if (answers.length === 0) throw new Error(`unexpected prompt: ${message}`);
    return answers.shift()!;
  };
  return {
    interactive: true,
    asked,
    async confirm(message, opts) {
      if (opts.yes) return true;
      return Boolean(next(message));
    },
    async input(message) {
      return String(next(message));
    },
    async password(message) {
      return String(next(message));
    },
  };
}
