import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const src = path.resolve(import.meta.dirname, '../src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('source layout (issue 20 item 5)', () => {
  it('no module only re-exports others (barrels hide where code lives)', () => {
    const barrels = tsFiles(src).filter((f) => {
      const code = readFileSync(f, 'utf8')
        .replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '')
        .trim();
      return (
        code !== '' &&
        code
          .split('\n')
          .every((l) => /^\s*(export \* from|export \{[^}]*\} from|import .* from)\s*'[^']+';?\s*$/.test(l) || l.trim() === '')
      );
    });
    expect(barrels.map((f) => path.relative(src, f))).toEqual([]);
  });

  // ESLint's import-x/no-cycle skips `import type`; a type-only cycle still ties two files together.
  it('no import cycle, counting type-only imports', () => {
    const files = tsFiles(src);
    const deps = new Map(
      files.map((f) => {
        const code = readFileSync(f, 'utf8');
        const targets = [...code.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*'(\.[^']+)'/gm)].map((m) =>
          path.resolve(path.dirname(f), m[1].replace(/\.js$/, '.ts')),
        );
        return [f, targets.filter((t) => t !== f)];
      }),
    );
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const walk = (f: string, trail: string[]): void => {
      state.set(f, 'open');
      for (const t of deps.get(f) ?? []) {
        if (state.get(t) === 'open') cycles.push([...trail.slice(trail.indexOf(t)), t].map((x) => path.relative(src, x)).join(' → '));
        else if (!state.has(t)) walk(t, [...trail, t]);
      }
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) walk(f, [f]);
    expect(cycles).toEqual([]);
  });

  // Issue 20 item 4: one process runner. It refuses secrets in argv and strips them from the environment, so a
  // program started anywhere else would bypass both.
  it('only src/system/exec.ts starts programs (imports execa or node:child_process)', () => {
    const starters = tsFiles(src).filter((f) =>
      /(?:from\s*|import\s*\(\s*|require\s*\(\s*)['"](?:execa|(?:node:)?child_process)['"]/.test(readFileSync(f, 'utf8')),
    );
    expect(starters.map((f) => path.relative(src, f))).toEqual(['system/exec.ts']);
  });

  it.each(readdirSync(path.join(src, 'commands')).filter((f) => f.endsWith('.ts')))(
    'src/commands/%s defines its own command',
    async (file) => {
      const name = file.replace(/\.ts$/, '');
      expect(readFileSync(path.join(src, 'commands', file), 'utf8')).toContain(`new Command('${name}')`);
    },
  );
});
