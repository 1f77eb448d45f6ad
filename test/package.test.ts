import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/program.js';
import { VERSION } from '../src/version.js';
import { renderBashCompletion, renderZshCompletion } from '../src/commands/completion.js';
import { renderManPage } from '../scripts/gen-man.mjs';

const root = new URL('..', import.meta.url).pathname;
const env = { CI: 'true', NO_COLOR: '1' };

// What a person installs. Budgets with room for growth, not for another 5 MB of source maps.
const MAX_UNPACKED_BYTES = 4_500_000;
const MAX_TARBALL_BYTES = 1_000_000;

describe('the package', () => {
  it('stays within its size budget, without source maps, with a LICENSE that matches package.json', { timeout: 60_000 }, async () => {
    const r = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, env });
    const pack = JSON.parse(r.stdout)[0] as { size: number; unpackedSize: number; files: Array<{ path: string }> };
    const files = pack.files.map((f) => f.path);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(pack.unpackedSize).toBeLessThan(MAX_UNPACKED_BYTES);
    expect(pack.size).toBeLessThan(MAX_TARBALL_BYTES);
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'man/sentinel-cef.1']));
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(new URL('../LICENSE', import.meta.url), 'utf8')).toMatch(/^MIT License\n/);
    expect(pkg.keywords.length).toBeGreaterThan(3);
    expect(pkg.author).toBeTruthy();
  });

  it('ships a man page generated from the current commands (run `npm run man` when this fails)', () => {
    const onDisk = readFileSync(new URL('../man/sentinel-cef.1', import.meta.url), 'utf8');
    expect(onDisk).toBe(renderManPage(buildProgram(), VERSION));
  });
});

describe('shell completion', () => {
  const program = buildProgram();
  const script = renderBashCompletion(program);
  const complete = async (line: string) => {
    const r = await execa(
      'bash',
      [
        '-c',
        `${script}\nread -ra COMP_WORDS <<<"$LINE"; [[ $LINE == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _sentinel_cef; echo "\${COMPREPLY[*]}"`,
      ],
      { env: { LINE: line } },
    );
    return r.stdout.split(' ').filter(Boolean);
  };

  it('completes every command, and each command its visible options but not the hidden --root', async () => {
    const top = await complete('sentinel-cef ');
    for (const c of program.commands) expect(top).toContain(c.name());
    for (const c of program.commands) {
      const words = await complete(`sentinel-cef ${c.name()} --`);
      for (const o of c.options) {
        if (o.hidden) expect(words, c.name()).not.toContain(o.long);
        else expect(words, c.name()).toContain(o.long);
      }
    }
    expect(await complete('sentinel-cef install --ro')).toEqual([]);
    expect(await complete('sentinel-cef dead-letters list --li')).toEqual(['--limit']);
  });

  it('gives zsh the same words through bashcompinit', () => {
    expect(renderZshCompletion(program)).toContain(script);
    expect(renderZshCompletion(program)).toMatch(/^#compdef sentinel-cef\n/);
  });
});
