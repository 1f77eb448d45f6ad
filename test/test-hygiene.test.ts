import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// Patterns that pass alone and fail in CI, where test files run side by side on a loaded machine.
const repo = path.resolve(import.meta.dirname, '..');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' || e.name === 'node_modules' ? [] : files(p);
    return /\.(ts|mjs)$/.test(e.name) ? [p] : [];
  });
}

const sources = [...files(path.join(repo, 'test')), ...files(path.join(repo, 'scripts'))].filter(
  (f) => f !== path.join(repo, 'test/test-hygiene.test.ts'),
);

// Where a port must be chosen before it is bound, each picks again on EADDRINUSE (startFakeDaemon holds its TCP
// port while it binds UDP on the same number).
const PICKS_PORTS = ['test/helpers/ports.ts', 'test/troubleshoot/helpers.ts', 'scripts/load/harness.ts', 'scripts/bench-forward.ts'];

describe('test hygiene', () => {
  it('no test picks a "free" port and binds it later (bind port 0 and pass the bound port along: test/helpers/ports.ts)', () => {
    const offenders = sources
      .map((f) => path.relative(repo, f))
      .filter((rel) => !PICKS_PORTS.includes(rel))
      .filter((rel) => {
        const code = readFileSync(path.join(repo, rel), 'utf8');
        return (
          // listen on port 0, read the port, close the server: the port is free only until someone else takes it.
          /\.listen\(0\b(?:(?!after(?:All|Each))[\s\S]){0,200}?\.address\(\)(?:(?!after(?:All|Each))[\s\S]){0,200}?\.close\(/.test(code) ||
          /\bfunction (get|find)?[fF]reePort\b/.test(code) ||
          /port\w* = \d+ \+ Math\.floor\(Math\.random\(\)/.test(code)
        );
      });
    expect(offenders).toEqual([]);
  });
});
