import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { useColour } from '../../src/system/colour.js';

describe('one colour rule (system/colour.ts)', () => {
  it.each([
    ['terminal', true, {}, true],
    ['not a terminal', false, {}, false],
    ['NO_COLOR=1', true, { NO_COLOR: '1' }, false],
    // https://no-color.org: set to the empty string means not set.
    ['NO_COLOR empty', true, { NO_COLOR: '' }, true],
    ['TERM=dumb', true, { TERM: 'dumb' }, false],
  ])('%s', (_name, isTTY, env, expected) => {
    expect(useColour({ isTTY }, env)).toBe(expected);
  });

  it('no command decides colour on its own', () => {
    for (const file of ['src/commands/demo.ts', 'src/commands/troubleshoot.ts', 'src/troubleshoot/render.ts', 'src/system/progress.ts']) {
      const text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
      expect(text, file).not.toMatch(/\.NO_COLOR|'NO_COLOR'/);
    }
  });
});
