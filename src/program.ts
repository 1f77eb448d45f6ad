import { Command, CommanderError } from 'commander';
import { CliError, formatError, showValue } from './errors.js';
import { VERSION } from './version.js';
import { CONTROL_CHARS_G } from './util/control-chars.js';
import { parseCommand } from './commands/parse.js';
import { forwardCommand } from './commands/forward.js';
import { sendTestCommand } from './commands/send-test.js';
import { demoCommand } from './commands/demo.js';
import { dcrCommand } from './commands/dcr.js';
import { installCommand } from './commands/install.js';
import { uninstallCommand } from './commands/uninstall.js';
import { troubleshootCommand } from './commands/troubleshoot.js';
import { deadLettersCommand } from './commands/dead-letters.js';
import { completionCommand } from './commands/completion.js';

export function buildProgram(): Command {
  const program = new Command('sentinel-cef')
    .description('CEF log forwarder for Microsoft Sentinel: install, forward, troubleshoot.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(oneLineError(str, 'sentinel-cef', program)) });
  for (const cmd of [
    parseCommand(),
    forwardCommand(),
    sendTestCommand(),
    demoCommand(),
    dcrCommand(),
    installCommand(),
    uninstallCommand(),
    troubleshootCommand(),
    deadLettersCommand(),
    completionCommand(),
  ]) {
    program.addCommand(cmd);
    oneLineErrors(cmd, `sentinel-cef ${cmd.name()}`);
  }
  return program;
}

/** Every level, nested commands (dead-letters list) too. */
function oneLineErrors(cmd: Command, where: string): void {
  cmd.exitOverride().configureOutput({ outputError: (str, write) => write(oneLineError(str, where, cmd)) });
  for (const sub of cmd.commands) oneLineErrors(sub, `${where} ${sub.name()}`);
}

/**
 * Commander's usage errors in the same one-line shape as ours, at every level: `sentinel-cef: unknown option
 * '--x' (did you mean --y?) — see \`sentinel-cef install --help\``. It quotes a bad value as typed: a newline
 * in it must not split the error over lines.
 */
export function oneLineError(str: string, where: string, cmd?: Command): string {
  const text = str
    .trimEnd()
    .replace(/^error: /, '')
    // `--json=yes`: commander reads a value given to a switch as an unknown option; say what it is.
    .replace(/^unknown option '(--[^=' ]+)=(.*)'(?:\n\(Did you mean .*\?\))?$/s, (m: string, flag: string, v: string) =>
      cmd?.options.some((o) => o.long === flag && !o.required && !o.optional)
        ? `${flag} is a switch and takes no value, got ${showValue(`${flag}=${v}`)} (write ${flag} alone)`
        : m,
    )
    .replace(/\n\(Did you mean (.*)\?\)$/, ' (did you mean $1?)')
    .replace(
      /^option '(-[^ ',]+(?:, --[^ ']+)?)[^']*' argument '(.*)' is invalid\. Allowed choices are (.*)\.$/s,
      (_m, flag: string, v: string, choices: string) => `${flag.split(', ').pop()} must be one of ${choices}, got ${showValue(v)}`,
    )
    .replace(
      /^command-argument value '(.*)' is invalid for argument '([^']+)'\. Allowed choices are (.*)\.$/s,
      (_m, v: string, arg: string, choices: string) => `<${arg}> must be one of ${choices}, got ${showValue(v)}`,
    )
    .replace(CONTROL_CHARS_G, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `sentinel-cef: ${text} — see \`${where} --help\`\n`;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; bad flags are usage errors.
      return err.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`sentinel-cef: ${formatError(err)}\n`);
    if (process.env.SENTINEL_CEF_DEBUG && err instanceof Error && err.stack) {
      process.stderr.write(`${err.stack}\n`);
    }
    return err instanceof CliError ? err.exitCode : 1;
  }
}
