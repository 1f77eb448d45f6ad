import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo } from './sandbox-env.js';

// The scenarios copy the file sink's rows out of the sandbox with copy_rows (lib.sh) while the forwarder may be
// appending: what the test then parses must be complete rows only.
const dir = mkdtempSync(path.join(tmpdir(), 'scef-sbx-lib-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** copy_rows F F.copy for each file, in one shell. */
const copyRows = (files: string[]) =>
  execa('bash', ['-c', `. "$0/test/sandbox/lib.sh" && for f in "$@"; do copy_rows "$f" "$f.copy"; done`, repo, ...files]);

describe('copy_rows', () => {
  it('copies complete lines only: every line of the copy parses, a row being appended is left out', async () => {
    const rows = ['{"Activity":"udp event"}', '{"Activity":"tcp event"}'];
    writeFileSync(path.join(dir, 'appending'), `${rows.join('\n')}\n{"Activity":"tc`);
    writeFileSync(path.join(dir, 'whole'), `${rows.join('\n')}\n`);
    writeFileSync(path.join(dir, 'first'), '{"Activ');
    await copyRows(['appending', 'whole', 'first', 'missing'].map((f) => path.join(dir, f)));
    const parsed = (f: string) =>
      readFileSync(path.join(dir, `${f}.copy`), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as unknown);
    expect(parsed('appending')).toEqual(rows.map((r) => JSON.parse(r) as unknown));
    expect(readFileSync(path.join(dir, 'whole.copy'), 'utf8')).toBe(`${rows.join('\n')}\n`);
    expect(readFileSync(path.join(dir, 'first.copy'), 'utf8')).toBe('');
    expect(readFileSync(path.join(dir, 'missing.copy'), 'utf8')).toBe('');
  });
});
