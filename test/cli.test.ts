import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { VERSION } from '../src/version.js';

import type { Command } from 'commander';

const bin = new URL('../bin/sentinel-cef', import.meta.url).pathname;

/** The addHelpText('after') text, which helpInformation() leaves out: emitted on the afterHelp event. */
function captureAfterHelp(c: Command): string {
  let text = '';
  const ctx = { error: false, command: c, write: (s: string) => (text += s) };
  (c as unknown as { emit(event: string, context: unknown): boolean }).emit('afterHelp', ctx);
  return text;
}
const env = { CI: 'true', NO_COLOR: '1' };

describe('sentinel-cef CLI', () => {
  it('keeps VERSION in step with package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(VERSION).toBe(pkg.version);
  });

  it('prints help with every command', async () => {
    const r = await execa(bin, ['--help'], { env, reject: false });
    expect(r.exitCode).toBe(0);
    for (const c of ['parse', 'forward', 'send-test', 'demo', 'dcr', 'install', 'uninstall', 'troubleshoot', 'dead-letters']) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
    }
  });

  it('gives every command the same kind of description, an example and no test-only option in --help', async () => {
    const { buildProgram } = await import('../src/program.js');
    const walk = (c: Command): Command[] => [c, ...c.commands.flatMap(walk)];
    const commands = walk(buildProgram()).slice(1);
    expect(commands.length).toBeGreaterThanOrEqual(11);
    for (const c of commands) {
      const name = c.name();
      // A capitalised verb, no full stop at the end.
      expect(c.description(), name).toMatch(/^[A-Z][a-z]+ .*[^.]$/);
      const help = c.helpInformation() + captureAfterHelp(c);
      expect(help, name).toMatch(/\nExamples:\n {2}.*sentinel-cef /);
      expect(help, name).not.toContain('--root');
    }
  });

  it('dcr without --output prints only the rule file JSON on stdout, the az commands on stderr', async () => {
    const r = await execa(bin, ['dcr', '--location', 'westeurope'], { env, reject: false });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ location: 'westeurope', properties: expect.any(Object) });
    expect(r.stderr).toContain('az monitor data-collection rule create');
  });

  it('answers a bad flag with exit 2 and one line on stderr', async () => {
    const r = await execa(bin, ['--no-such-flag'], { env, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("unknown option '--no-such-flag'");
    expect(r.stdout).toBe('');
  });

  it('packs the CLI, the self-contained forwarder bundle and every template', async () => {
    const r = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: new URL('..', import.meta.url).pathname,
      env,
    });
    const files = (JSON.parse(r.stdout)[0].files as Array<{ path: string }>).map((f) => f.path);
    for (const f of [
      'bin/sentinel-cef',
      'dist/cli.js',
      'dist/forwarder.mjs',
      'templates/rsyslog/sentinel-cef.conf',
      'templates/syslog-ng/sentinel-cef.conf',
      'templates/systemd/sentinel-cef-forwarder.service',
      'templates/dcr/commonsecuritylog-dcr.json',
    ]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
  });
});
