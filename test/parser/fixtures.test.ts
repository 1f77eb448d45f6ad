import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseLine } from '../../src/parser/index.js';

const dir = new URL('../fixtures/parser/', import.meta.url).pathname;
const receivedAt = new Date('2026-11-22T10:00:30Z');
const sources = readdirSync(dir)
  .filter((f) => f.endsWith('.log'))
  .map((f) => f.slice(0, -4));

function splitLines(bytes: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 10) {
      lines.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length) lines.push(bytes.subarray(start));
  return lines;
}

describe('parser fixtures', () => {
  it('covers every vendor the brief names', () => {
    for (const v of [
      'darktrace',
      'delinea-secret-server',
      'paloalto',
      'trendmicro',
      'checkpoint',
      'fortinet',
      'cisco-asa',
      'microsoft-mock',
    ]) {
      expect(sources).toContain(v);
    }
  });

  it.each(sources)('%s.log parses to its .expected.ndjson rows', (source) => {
    const lines = splitLines(readFileSync(join(dir, `${source}.log`)));
    const expectedRows = readFileSync(join(dir, `${source}.expected.ndjson`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const errFile = join(dir, `${source}.expected.stderr`);
    const expectedErr = existsSync(errFile) ? readFileSync(errFile, 'utf8').split('\n').filter(Boolean) : [];
    const rows: unknown[] = [];
    const errors: string[] = [];
    lines.forEach((line, i) => {
      if (/^[ \t\r]*$/.test(line.toString('latin1'))) return;
      const r = parseLine(line, receivedAt);
      if (r.ok) rows.push(r.row);
      else errors.push(`line ${i + 1}: ${r.reason}`);
    });
    expect(errors).toEqual(expectedErr);
    expect(rows).toHaveLength(expectedRows.length);
    rows.forEach((row, i) => expect(row, `${source}.log row ${i + 1}`).toStrictEqual(expectedRows[i]));
    // Same key order too: the CLI output is compared byte for byte.
    expect(rows.map((r) => JSON.stringify(r))).toEqual(expectedRows.map((r) => JSON.stringify(r)));
  });
});
