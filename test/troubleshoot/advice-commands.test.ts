import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { parseCommand } from '../../src/commands/parse.js';
import { forwardCommand } from '../../src/commands/forward.js';
import { sendTestCommand } from '../../src/commands/send-test.js';
import { demoCommand } from '../../src/commands/demo.js';
import { dcrCommand, dcrOptionsSchema, INSTALL_WITH_DCR } from '../../src/commands/dcr.js';
import { installCommand } from '../../src/commands/install.js';
import { uninstallCommand } from '../../src/commands/uninstall.js';
import { troubleshootCommand, parseTroubleshootFlags } from '../../src/commands/troubleshoot.js';
import { deadLettersCommand } from '../../src/commands/dead-letters.js';
import { INSTALL_ARGUMENTS, installOptionsSchema, uninstallOptionsSchema } from '../../src/install/options.js';
import { formatOptionError } from '../../src/errors.js';
import { switchCommand } from '../../src/install/legacy-notice.js';
import { DESTINATION_CHOICES } from '../../src/install/run-install.js';

/**
 * Every `sentinel-cef …` command that troubleshoot (or install's legacy notice) can print must parse as the CLI
 * parses it: the operator copies it, and a refused command is worse than none.
 */
const src = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/**
 * Backquoted commands in string and template literals: '`sentinel-cef x`' and `\`sentinel-cef ${y}\``. A backtick
 * right after `[`, `(`, `,` or `=` opens a template literal of code (a version string), not advice.
 */
function adviceCommands(files: string[]): Array<{ file: string; cmd: string }> {
  const out: Array<{ file: string; cmd: string }> = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?<![[(,=]\s*)\\?`(sentinel-cef [^`]*?)\\?`/g)) out.push({ file: path.relative(src, f), cmd: m[1] });
  }
  return out;
}

// Placeholders the advice uses, each with a value of the kind the operator would type.
const EXPRESSIONS: Record<string, string> = {
  'ctx.opts.workspaceId': '11111111-2222-3333-4444-555555555555',
  'o.workspaceId': '11111111-2222-3333-4444-555555555555',
  'c.path': '/etc/sentinel-cef/forwarder.json',
  'ctx.opts.configPath': '/etc/sentinel-cef/forwarder.json',
  'sink.workspaceId': '11111111-2222-3333-4444-555555555555',
  'longerTimeout(timeoutSec)': '600',
};
const PLACEHOLDERS: Record<string, string> = {
  N: '6514',
  '<endpoint>': 'https://sentinel-cef-dcr-a1b2.eastus-1.ingest.monitor.azure.com',
  '<dcrImmutableId>': `dcr-${'0123456789abcdef'.repeat(2)}`,
};

function fill(cmd: string): string[] {
  const expanded = cmd.replace(/\$\{([^}]+)\}/g, (_, e: string) => {
    if (!(e in EXPRESSIONS)) throw new Error(`no sample value for \${${e}} in "${cmd}": add one to EXPRESSIONS`);
    return EXPRESSIONS[e];
  });
  return expanded
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => PLACEHOLDERS[w] ?? w);
}

/** The CLI's commands with their actions swapped for the same option checks the real actions start with. */
function parsingProgram(): Command {
  const check = (name: string, args: unknown[], flags: Record<string, unknown>) => {
    if (name === 'install') {
      const r = installOptionsSchema.safeParse({ ...flags, workspaceId: args[0], primaryKey: args[1] });
      if (!r.success) throw new Error(formatOptionError(r.error, INSTALL_ARGUMENTS));
      const o = r.data;
      const modes = [o.sink, (o.dce && !o.workspace) || o.dcr, o.workspaceId, o.workspace].filter(Boolean);
      if (modes.length > 1) throw new Error('more than one destination');
      if (Boolean(o.dce) !== Boolean(o.dcr)) throw new Error('--dce and --dcr go together');
    } else if (name === 'uninstall') {
      const r = uninstallOptionsSchema.safeParse(flags);
      if (!r.success) throw new Error(formatOptionError(r.error, INSTALL_ARGUMENTS));
    } else if (name === 'troubleshoot') {
      parseTroubleshootFlags(args[0] as string | undefined, flags as unknown as Parameters<typeof parseTroubleshootFlags>[1]);
    } else if (name === 'dcr') {
      const r = dcrOptionsSchema.safeParse(flags);
      if (!r.success) throw new Error(r.error.issues[0].message);
    }
  };
  const program = new Command('sentinel-cef').exitOverride();
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
  ]) {
    const errors: string[] = [];
    cmd.exitOverride().configureOutput({ writeErr: (s) => errors.push(s), writeOut: () => {} });
    if (cmd.commands.length === 0) {
      cmd.action((...a: unknown[]) => {
        const self = a[a.length - 1] as Command;
        check(self.name(), a.slice(0, self.registeredArguments.length), self.opts());
      });
    }
    program.addCommand(cmd);
  }
  return program;
}

async function parses(argv: string[]): Promise<string | null> {
  try {
    await parsingProgram().parseAsync(argv, { from: 'user' });
    return null;
  } catch (err) {
    return err instanceof CommanderError ? err.message : (err as Error).message;
  }
}

const found = adviceCommands(sourceFiles(path.join(src, 'troubleshoot')));
const extra = [
  { file: 'install/legacy-notice.ts', cmd: switchCommand('11111111-2222-3333-4444-555555555555') },
  { file: 'commands/dcr.ts', cmd: INSTALL_WITH_DCR },
  ...DESTINATION_CHOICES.flatMap((c) =>
    [...`${c.name} ${c.disabled ?? ''}`.matchAll(/`(sentinel-cef [^`]*)`/g)].map((m) => ({ file: 'install/run-install.ts', cmd: m[1] })),
  ),
];
const all = [...found, ...extra];

describe('commands printed as advice parse with the CLI', () => {
  it('finds the advice (the scan is not empty)', () => {
    expect(found.length).toBeGreaterThan(20);
    expect(found.some((f) => f.cmd.startsWith('sentinel-cef install'))).toBe(true);
  });

  it('the checker refuses what the CLI refuses (it is not a rubber stamp)', async () => {
    expect(await parses(['install', '--sink', 'logs-ingestion'])).toMatch(/--sink must be file:/);
    expect(await parses(['install', '--dce', PLACEHOLDERS['<endpoint>']])).toMatch(/go together/);
    expect(await parses(['troubleshoot', '--nope'])).toMatch(/unknown option/);
    expect(
      await parses(['install', '--dce', PLACEHOLDERS['<endpoint>'], '--dcr', PLACEHOLDERS['<dcrImmutableId>'], '--managed-identity']),
    ).toBeNull();
    expect(await parses(['install', '--workspace', 'not-a-workspace'])).toMatch(/--workspace must be/);
  });

  it.each(all.map((a) => [a.cmd, a.file] as const))('%s (%s)', async (cmd) => {
    const argv = fill(cmd);
    expect(argv[0]).toBe('sentinel-cef');
    expect(await parses(argv.slice(1)), `${cmd} → ${argv.join(' ')}`).toBeNull();
  });
});

describe('install --help', () => {
  it('leads with --workspace, calls the positional workspace id the legacy form, and its examples parse', async () => {
    let help = '';
    installCommand()
      .configureOutput({ writeOut: (s) => void (help += s) })
      .outputHelp();
    expect(help).toMatch(/workspaceId\s+legacy form/);
    const examples = help
      .slice(help.indexOf('Examples:'))
      .split('\n')
      .filter((l) => l.startsWith('  sentinel-cef install'))
      .map((l) => l.split('#')[0].trim());
    expect(examples[0]).toMatch(/^sentinel-cef install --workspace /);
    // Whole-line examples without placeholders (UPPER_CASE words) run as printed.
    const literal = examples.filter((e) => !e.endsWith('\\') && !/\b[A-Z][A-Z_]+\b/.test(e.replace(/^\S+=\S+ /, '')));
    expect(literal.length).toBeGreaterThanOrEqual(2);
    for (const e of literal) expect(await parses(e.split(/\s+/).slice(1)), e).toBeNull();
  });
});
