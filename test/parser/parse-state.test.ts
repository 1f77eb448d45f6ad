import { describe, expect, it } from 'vitest';
import { lineJsonParser, parseLine, type JsonRow, type ParseResult } from '../../src/parser/index.js';
import { RowWriter } from '../../src/sinks/row-writer.js';

const at = new Date('2026-11-22T10:00:30Z');
const LIMITS = { maxFieldBytes: 64 * 1024, maxColumns: 500 };
// `start` without a year: the parser asks the receive time for it after the extension is scanned.
const OUTER = 'CEF:0|Outer|P|1|id|n|5|src=10.0.0.1 spt=1234 cs1=outer msg=kept start=Nov 22 10:00:00 unmapped=x';
const INNER = 'CEF:0|Inner|Q|2|id2|m|7|dst=10.9.9.9 cs2=inner externalId=77';

/** A receive time that parses another line while the parser is asking it for the year. */
class ReenteringDate extends Date {
  inner: Array<ParseResult | JsonRow> = [];
  constructor(private readonly reenter: () => ParseResult | JsonRow) {
    super(at.getTime());
  }
  override getUTCFullYear(): number {
    this.inner.push(this.reenter());
    return super.getUTCFullYear();
  }
}

function json(r: ParseResult | JsonRow): string {
  expect(r.ok && r.kind).toBe('json');
  const j = r as JsonRow;
  return j.buf.toString('utf8', j.start, j.start + j.bytes);
}

// The parse state is one object per thread (cef-parse-state.ts): a parse that starts while another is under
// way must be refused, not write its values into the other's row.
describe('CEF parse state', () => {
  it('refuses a parse begun inside another, and the outer row comes out whole (row path)', () => {
    const expected = parseLine(OUTER, at);
    const when = new ReenteringDate(() => parseLine(INNER, at));
    expect(parseLine(OUTER, when)).toEqual(expected);
    expect(when.inner.length).toBeGreaterThan(0);
    for (const r of when.inner) expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/re-entered/) });
    // Nothing left behind: the next lines parse as usual.
    expect(parseLine(INNER, at)).toMatchObject({ ok: true, row: { DeviceVendor: 'Inner', ExtID: '77' } });
  });

  it('refuses a parse begun inside another, and the outer row comes out whole (JSON path, kernel line)', () => {
    const parse = lineJsonParser(LIMITS);
    const expected = json(parse(Buffer.from(OUTER), at, new RowWriter()));
    const when = new ReenteringDate(() => parse(Buffer.from(INNER), at, new RowWriter()));
    expect(json(parse(Buffer.from(OUTER), when, new RowWriter()))).toBe(expected);
    expect(when.inner.length).toBeGreaterThan(0);
    for (const r of when.inner) expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/re-entered/) });
    expect(JSON.parse(json(parse(Buffer.from(INNER), at, new RowWriter())))).toMatchObject({ DeviceVendor: 'Inner', ExtID: '77' });
  });
});
