import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expandWat, readLayout } from '../../scripts/build-wasm.mjs';
import * as layout from '../../src/parser/json-kernel-layout.js';

const WAT = readFileSync('src/parser/json-kernel.wat', 'utf8');
const TABLE = JSON.parse(readFileSync('src/parser/json-kernel-layout.json', 'utf8'));

// The kernel's layout has one source, json-kernel-layout.json; json-direct.test.ts's "is built from
// json-kernel.wat and json-kernel-layout.json" fails when the committed outputs are not the build of it.
describe('JSON kernel layout', () => {
  it('gives TypeScript the table’s numbers', () => {
    for (const r of TABLE.regions) expect((layout as Record<string, number>)[r.name], r.name).toBe(r.at);
    for (const c of TABLE.constants) expect((layout as Record<string, number>)[c.name], c.name).toBe(Number(c.value));
  });

  it('has regions that do not overlap, and refuses a table where they do', () => {
    expect(() => readLayout(TABLE)).not.toThrow();
    const bad = structuredClone(TABLE);
    const i = bad.regions.findIndex((r: { name: string }) => r.name === 'KERNEL_TIME');
    bad.regions[i].bytes = bad.regions[i + 1].at - bad.regions[i].at + 1;
    expect(() => readLayout(bad)).toThrow(/inside the region before it/);
  });

  it('refuses a .wat that writes an address as a number, or names one the table lacks', () => {
    expect(() => expandWat(WAT)).not.toThrow();
    expect(expandWat(WAT).replace(/;;.*$/gm, '')).not.toContain('{{');
    expect(() => expandWat(WAT.replace('(i32.const {{CEF_TABLE}})', `(i32.const ${layout.CEF_TABLE})`))).toThrow(/literal layout address/);
    expect(() => expandWat(WAT.replace('offset={{KEY_CHARS}}', `offset=${layout.KEY_CHARS}`))).toThrow(/literal layout address/);
    expect(() => expandWat(WAT.replace('{{CEF_TABLE}}', '{{CEF_TABEL}}'))).toThrow(/not in/);
  });
});
