import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { escapeHeader, escapeValue, KEY_RULES, parseLine } from '../../src/parser/index.js';

const at = new Date('2026-11-22T10:00:30Z');
const RUNS = 2000;

// Values as senders write them: any text, including = | \ newlines and key-like words, but without blanks at
// the ends (the parser trims those) and without text that would itself look like ` key=` once escaped.
const value = fc
  .string({
    unit: fc.oneof(
      fc.constantFrom('=', '|', '\\', '\n', '\r', ' ', '\t', 'a', 'k', '.', ';'),
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    ),
    maxLength: 60,
  })
  // Trailing NULs are stripped with the line ending (framing), so a value may not end in one either.
  .map((s) => s.replace(/^[ \t]+|[ \t\0]+$/g, ''))
  .filter((s) => s.length > 0);

describe('parser properties', () => {
  it('never throws and always answers with a row or a reason, for any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
        const r = parseLine(s, at);
        expect(typeof r.ok).toBe('boolean');
        if (!r.ok) expect(r.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws on random bytes (invalid UTF-8 included)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const r = parseLine(Buffer.from(bytes), at);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws on CEF-shaped noise', () => {
    const piece = fc.constantFrom(
      'CEF:',
      '0',
      '|',
      '\\',
      '=',
      ' ',
      'src',
      'cn1',
      'start',
      'msg',
      'Nov 22 2026 10:00:00',
      '<134>',
      '1 ',
      '-',
      '[',
      ']',
      '"',
      '%ASA-6-302013:',
      'x',
      '\t',
      '\r',
      '\uFEFF',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), (parts) => {
        const r = parseLine(parts.join(''), at);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: RUNS },
    );
  });

  it('round-trips an escaped value through an extension (mapped string column)', () => {
    fc.assert(
      fc.property(value, value, (a, b) => {
        const r = parseLine(`CEF:0|V|P|1|id|n|5|msg=${escapeValue(a)} cs1=${escapeValue(b)} dpt=1`, at);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.row.Message).toBe(a);
        expect(r.row.DeviceCustomString1).toBe(b);
        expect(r.row.DestinationPort).toBe(1);
      }),
      { numRuns: RUNS },
    );
  });

  it('round-trips an escaped value of an unmapped key into AdditionalExtensions', () => {
    fc.assert(
      fc.property(value, (a) => {
        const r = parseLine(`CEF:0|V|P|1|id|n|5|customKey=${escapeValue(a)}`, at);
        expect(r.ok && r.row.AdditionalExtensions).toBe(`customKey=${a}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('round-trips escaped header fields', () => {
    const field = fc.string({ maxLength: 30 }).filter((s) => s.length > 0);
    fc.assert(
      fc.property(field, field, field, (vendor, product, name) => {
        const r = parseLine(`CEF:0|${escapeHeader(vendor)}|${escapeHeader(product)}|1|id|${escapeHeader(name)}|5|`, at);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.row.DeviceVendor).toBe(vendor);
        expect(r.row.DeviceProduct).toBe(product);
        expect(r.row.Activity).toBe(name);
      }),
      { numRuns: RUNS },
    );
  });

  it('loses nothing: first of each mapped key in its column, everything else verbatim in AdditionalExtensions', () => {
    const stringKeys: Record<string, string> = {
      msg: 'Message',
      cs1: 'DeviceCustomString1',
      suser: 'SourceUserName',
      act: 'DeviceAction',
      sourceUserName: 'SourceUserName',
    };
    const key = fc.oneof(
      fc.constantFrom(...Object.keys(stringKeys)),
      fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_.]{0,12}$/).filter((k) => !KEY_RULES.has(k)),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 12 }), (pairs) => {
        const ext = pairs.map(([k, v]) => `${k}=${escapeValue(v)}`).join(' ');
        const r = parseLine(`CEF:0|V|P|1|id|n|5|${ext}`, at);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        const expectedExtra: string[] = [];
        const expectedCols: Record<string, string> = {};
        for (const [k, v] of pairs) {
          const col = stringKeys[k];
          if (col !== undefined && expectedCols[col] === undefined) expectedCols[col] = v;
          else expectedExtra.push(`${k}=${v}`);
        }
        expect(r.row).toMatchObject(expectedCols);
        expect(r.row.AdditionalExtensions).toBe(expectedExtra.length ? expectedExtra.join(';') : undefined);
      }),
      { numRuns: RUNS },
    );
  });
});
