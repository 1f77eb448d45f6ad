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
  /** One choice from a list, shown in the order given; a disabled choice is shown with its reason and cannot be picked. */
  select<T extends string>(message: string, choices: readonly Choice<T>[], opts: { flag: string }): Promise<T>;
}

export interface Choice<T extends string> {
  value: T;
  name: string;
  description?: string;
  /** Why it cannot be chosen (shown beside it). */
  disabled?: string;
}

/** CI set to anything but false or 0: no prompts, no spinners. */
export function inCi(env: Record<string, string | undefined> = process.env): boolean {
  return Boolean(env.CI && env.CI !== 'false' && env.CI !== '0');
}

/** Why there is no prompt, in the words a user can act on: a terminal that is there is not "no TTY". */
function whyNoPrompt(): string {
  return process.stdin.isTTY && process.stderr.isTTY && inCi() ? 'CI is set' : 'no terminal';
}

/** The one interactivity rule: a terminal on stdin and stderr, outside CI. */
export function isInteractive(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY) && !inCi();
}

export function createPrompter(interactive = isInteractive()): Prompter {
  return {
    interactive,
    async confirm(message, opts) {
      if (opts.yes) return true;
      if (!interactive) {
        throw new UsageError(`${message} — cannot ask (${whyNoPrompt()})`, {
          suggestion: `pass ${opts.flag ?? '--yes'} to accept`,
        });
      }
      const { confirm } = await import('@inquirer/prompts');
      return cancelledOnExit(confirm({ message, default: opts.default }, { output: process.stderr }));
    },
    async input(message, opts) {
      if (!interactive) throw new UsageError(`missing ${opts.flag}`, { suggestion: `pass ${opts.flag} (cannot ask: ${whyNoPrompt()})` });
      const { input } = await import('@inquirer/prompts');
      return cancelledOnExit(input({ message, validate: opts.validate }, { output: process.stderr }));
    },
    async password(message, opts) {
      if (!interactive) throw new UsageError(`missing ${opts.flag}`, { suggestion: `pass ${opts.flag} (cannot ask: ${whyNoPrompt()})` });
      const { password } = await import('@inquirer/prompts');
      return cancelledOnExit(password({ message, mask: false }, { output: process.stderr }));
    },
    async select(message, choices, opts) {
      if (!interactive) throw new UsageError(`missing ${opts.flag}`, { suggestion: `pass ${opts.flag} (cannot ask: ${whyNoPrompt()})` });
      const { select } = await import('@inquirer/prompts');
      return cancelledOnExit(
        select({ message, choices: choices.map((c) => ({ ...c, disabled: c.disabled ?? false })) }, { output: process.stderr }),
      );
    },
  };
}

/** A scripted prompter for tests: answers are consumed in order; anything unexpected fails the test. */
export function createScriptedPrompter(
  answers: Array<string | boolean>,
): Prompter & { asked: string[]; menus: Array<Array<Choice<string>>>; refused: string[] } {
  const asked: string[] = [];
  const menus: Array<Array<Choice<string>>> = [];
  // What a validator said to an answer, which (as at a terminal) is then asked again.
  const refused: string[] = [];
  const next = (message: string) => {
    asked.push(message);
    if (answers.length === 0) throw new Error(`unexpected prompt: ${message}`);
    return answers.shift()!;
  };
  return {
    interactive: true,
    asked,
    menus,
    refused,
    async confirm(message, opts) {
      if (opts.yes) return true;
      return Boolean(next(message));
    },
    async input(message, opts) {
      for (;;) {
        const v = String(next(message));
        const ok = opts.validate ? opts.validate(v) : true;
        if (ok === true) return v;
        refused.push(ok);
      }
    },
    async password(message) {
      return String(next(message));
    },
    async select<T extends string>(message: string, choices: readonly Choice<T>[]) {
      menus.push([...choices]);
      const v = String(next(message));
      const c = choices.find((x) => x.value === v);
      if (!c || c.disabled) throw new Error(`not a choice that can be picked: ${v}`);
      return c.value;
    },
  };
}
