import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodyOf, packRows, prepareRow, truncateUtf8 } from '../../src/sinks/batch.js';

describe('truncateUtf8', () => {
  it('never exceeds the limit, never splits a character, and keeps a prefix', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.integer({ min: 0, max: 400 }), (s, max) => {
        const t = truncateUtf8(s, max);
        expect(Buffer.byteLength(t)).toBeLessThanOrEqual(Math.max(max, 0));
        expect(s.startsWith(t)).toBe(true);
        expect(t).not.toContain('\uFFFD');
        if (Buffer.byteLength(s) <= max) expect(t).toBe(s);
        else expect(Buffer.byteLength(t)).toBeGreaterThan(max - 4);
      }),
    );
  });
});

describe('prepareRow', () => {
  it('leaves short rows alone and reuses the object', () => {
    const r = { Message: 'short', EventCount: 3 };
    const p = prepareRow(r, 100);
    expect(p.original).toBe(r);
    expect(p.json).toBe(JSON.stringify(r));
    expect(p.truncated).toBeUndefined();
  });

  it('truncates every long field, keeps the original untouched, flags in AdditionalExtensions', () => {
    const r = { Message: 'a'.repeat(150), RequestURL: 'b'.repeat(120), AdditionalExtensions: 'k=v' };
    const p = prepareRow(r, 100);
    const sent = JSON.parse(p.json);
    expect(r.Message).toHaveLength(150);
    expect(sent.Message).toHaveLength(100);
    expect(sent.RequestURL).toHaveLength(100);
    expect(sent.AdditionalExtensions).toBe('k=v;sentinelCefTruncated=Message:150,RequestURL:120');
    expect(p.truncated).toBe('Message:150, RequestURL:120');
  });

  it('keeps AdditionalExtensions itself within the limit when it is the long one', () => {
    const p = prepareRow({ AdditionalExtensions: 'x'.repeat(500) }, 100);
    const ae = JSON.parse(p.json).AdditionalExtensions as string;
    expect(Buffer.byteLength(ae)).toBeLessThanOrEqual(100);
    expect(ae.endsWith(';sentinelCefTruncated=AdditionalExtensions:500')).toBe(true);
  });
});

describe('packRows', () => {
  it('packs greedily into arrays no larger than the limit, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 60 }), { maxLength: 60 }), fc.integer({ min: 30, max: 300 }), (msgs, max) => {
        const prepared = msgs.map((m) => prepareRow({ Message: m }, 10_000));
        const { groups, oversize } = packRows(prepared, max);
        for (const g of groups) {
          expect(g.length).toBeGreaterThan(0);
          expect(Buffer.byteLength(bodyOf(g))).toBeLessThanOrEqual(max);
        }
        for (const o of oversize) expect(o.bytes + 2).toBeGreaterThan(max);
        expect([...groups.flat(), ...oversize]).toHaveLength(prepared.length);
        expect(groups.flat().map((p) => p.original)).toEqual(prepared.filter((p) => !oversize.includes(p)).map((p) => p.original));
      }),
    );
  });
});
