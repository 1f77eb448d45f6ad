/**
 * Regenerate test/fixtures/parser/*.expected.{ndjson,stderr} from the current parser.
 * Only after an intended parser change; review the diff line by line before committing.
 * Run: npx tsx scripts/update-parser-fixtures.ts
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLine } from '../src/parser/index.js';

const FIXTURE_DIR = new URL('../test/fixtures/parser/', import.meta.url).pathname;
const FIXTURE_RECEIVED_AT = new Date('2026-11-22T10:00:30Z');

for (const name of readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.log'))) {
  const base = name.slice(0, -4);
  const bytes = readFileSync(join(FIXTURE_DIR, name));
  const lines = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 10) {
      if (i > start || i < bytes.length) lines.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  let out = '';
  let err = '';
  lines.forEach((line, i) => {
    if (/^[ \t\r]*$/.test(line.toString('latin1'))) return;
    const r = parseLine(line, FIXTURE_RECEIVED_AT);
    if (r.ok) out += `${JSON.stringify(r.row)}\n`;
    else err += `line ${i + 1}: ${r.reason}\n`;
  });
  writeFileSync(join(FIXTURE_DIR, `${base}.expected.ndjson`), out);
  const errFile = join(FIXTURE_DIR, `${base}.expected.stderr`);
  if (err) writeFileSync(errFile, err);
  else rmSync(errFile, { force: true });
  console.log(`${base}: ${out.split('\n').length - 1} rows, ${err.split('\n').length - 1} rejected`);
}
