import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KEY_RULES, lineJsonParser, parseLine, type JsonOptions, type ParseResult, type JsonRow } from '../../src/parser/index.js';
import { RowWriter } from '../../src/sinks/row-writer.js';
import { KERNEL_MAX_BYTES, setJsonKernel } from '../../src/parser/json-kernel.js';
import { cefLine } from '../../scripts/load/cef.js';

const at = new Date('2026-11-22T10:00:30Z');
const FIXTURES = new URL('../fixtures/parser/', import.meta.url).pathname;
const LIMITS: JsonOptions = { maxFieldBytes: 64 * 1024, maxColumns: 500 };

/**
 * The direct path must give, byte for byte, what the row path gives: JSON.stringify of parseLine's row.
 * Returns what the direct parser did with the line ('json', 'row' or 'fail').
 */
function same(line: Buffer, o: JsonOptions = LIMITS, writer = new RowWriter()): 'json' | 'row' | 'fail' {
  const parse = lineJsonParser(o);
  const expected: ParseResult = parseLine(line, at);
  const got = parse(line, at, writer);
  if (!got.ok) {
    expect(expected).toEqual(got);
    return 'fail';
  }
  expect(expected.ok).toBe(true);
  if (!expected.ok) return 'fail';
  if (got.kind === 'json') {
    const j = got as JsonRow;
    expect(j.buf.toString('utf8', j.start, j.start + j.bytes)).toBe(JSON.stringify(expected.row));
    return 'json';
  }
  expect(got).toEqual(expected);
  return 'row';
}

// Every case runs twice: rows written by the WebAssembly kernel (the default) and by the JavaScript loops.
describe.each([
  ['kernel', true],
  ['JavaScript loops', false],
])('direct JSON output (lineJsonParser, %s)', (_name, kernel) => {
  beforeAll(() => {
    expect(setJsonKernel(kernel)).toBe(true);
  });
  afterAll(() => {
    setJsonKernel(true);
  });

  it('writes every fixture line exactly as JSON.stringify of its row', () => {
    const kinds = new Map<string, number>();
    for (const f of readdirSync(FIXTURES).filter((n) => n.endsWith('.log'))) {
      for (const l of readFileSync(join(FIXTURES, f), 'utf8').split('\n')) {
        if (!l.trim()) continue;
        const k = same(Buffer.from(l, 'utf8'));
        kinds.set(k, (kinds.get(k) ?? 0) + 1);
      }
    }
    // CEF fixtures go the direct way, Cisco lines as rows, malformed ones fail alike.
    expect(kinds.get('json')).toBeGreaterThan(20);
    expect(kinds.get('row')).toBeGreaterThan(0);
    expect(kinds.get('fail')).toBeGreaterThan(0);
  });

  it('writes load-generator lines directly', () => {
    for (let i = 0; i < 200; i++) expect(same(Buffer.from(cefLine('s', i * 7919, 1_700_000_000_000 + i, 200 + i * 20)))).toBe('json');
  });

  it('escapes quotes, backslashes, control characters and non-ASCII as JSON.stringify does', () => {
    const lines = [
      'CEF:0|V"q|P\\\\x|1|id|na"me|5|msg=say "hi" \\\\ there cs1=tab\there request=http://x/?a="b"',
      'CEF:0|V|P|1|id|n|5|msg=ctl \u0001\u001f\u007f end suser=Jürgen dhost=東京',
      'CEF:0|V|P|1|id|n|5|msg=lone \ud800 surrogate',
      '<13>Nov 22 10:00:00 höst CEF:0|V|P|1|id|n|5|src=10.0.0.1 msg=ok',
      'CEF:0|V|P|1|id|n|5|msg=escaped \\= and \\n newline \\r cr cs2=a\\\\b',
      'CEF:0|V|P|1|id|n|5|cs1=dup cs1=second unknownKey="quoted" cn1=-0 cn2=9007199254740993 cfp1=1e21 cfp2=-0.0 in=-2147483648',
    ];
    for (const l of lines) expect(same(Buffer.from(l, 'utf8'))).toBe('json');
    // Invalid UTF-8 (read as Latin-1).
    expect(same(Buffer.concat([Buffer.from('CEF:0|V|P|1|id|n|5|msg=bad '), Buffer.from([0xff, 0xfe, 0x22]), Buffer.from(' cs1=x')]))).toBe(
      'json',
    );
  });

  it('leaves rows over the sink limits, and rows it is told to, as objects', () => {
    const long = `CEF:0|V|P|1|id|n|5|msg=${'x'.repeat(100)} src=10.0.0.1`;
    expect(same(Buffer.from(long), { maxFieldBytes: 100, maxColumns: 500 })).toBe('json');
    expect(same(Buffer.from(long), { maxFieldBytes: 99, maxColumns: 500 })).toBe('row');
    // A multi-byte value: 40 × 3 bytes over a 100-byte limit, although only 40 characters.
    expect(same(Buffer.from(`CEF:0|V|P|1|id|n|5|msg=${'€'.repeat(40)}`), { maxFieldBytes: 100, maxColumns: 500 })).toBe('row');
    expect(same(Buffer.from(`CEF:0|V|P|1|id|n|5|src=10.0.0.1 dst=10.0.0.2`), { maxFieldBytes: 100, maxColumns: 8 })).toBe('row');
    expect(same(Buffer.from(`CEF:0|V|P|1|id|n|5|src=10.0.0.1 dst=10.0.0.2`), { maxFieldBytes: 100, maxColumns: 9 })).toBe('json');
    const probe = Buffer.from('CEF:0|Microsoft|TestCommonEventFormat|1|id|n|5|cs2Label=ProbeId cs2=abc');
    expect(same(probe, { ...LIMITS, rowWhen: { column: 'DeviceCustomString2Label', value: 'ProbeId' } })).toBe('row');
    expect(same(probe, { ...LIMITS, rowWhen: { column: 'DeviceCustomString2Label', value: 'Other' } })).toBe('json');
  });

  it('reads a span-held device time zone when converting start/end', () => {
    expect(same(Buffer.from('CEF:0|V|P|1|id|n|5|start=Nov 22 2026 10:00:00 end=Nov 22 2026 11:00:00 dtz=Europe/Berlin'))).toBe('json');
    const j = lineJsonParser(LIMITS)(
      Buffer.from('CEF:0|V|P|1|id|n|5|dtz=America/New_York start=Nov 22 2026 10:00:00'),
      at,
      new RowWriter(),
    ) as JsonRow;
    expect(JSON.parse(j.buf.toString('utf8', j.start, j.start + j.bytes)).StartTime).toBe('2026-11-22T15:00:00.000Z');
  });

  it('starts a new chunk when a row does not fit, and rows never overlap', () => {
    const w = new RowWriter(true);
    const parse = lineJsonParser(LIMITS);
    const rows: JsonRow[] = [];
    for (let i = 0; i < 2000; i++) rows.push(parse(Buffer.from(cefLine('s', i, 1, 500)), at, w) as JsonRow);
    expect(w.takeChunks().length).toBeGreaterThan(1);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      expect(JSON.parse(r.buf.toString('utf8', r.start, r.start + r.bytes)).ExtID).toBe(String(i));
    }
  });

  it('agrees with the row path on generated CEF lines (escapes, duplicates, typed keys, any text)', () => {
    const keys = [...KEY_RULES.keys()];
    const key = fc.oneof(
      fc.constantFrom(...keys),
      fc.constantFrom('customKey', 'x_y', 'ad.field', 'k-1', '1src', '.-x', '_'),
      fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/),
    );
    const text = fc.string({
      unit: fc.oneof(
        fc.constantFrom(
          '=',
          '|',
          '\\',
          '"',
          '\n',
          '\r',
          ' ',
          '\t',
          'a',
          '1',
          '-',
          '.',
          ':',
          '_',
          '#',
          '#011',
          '\u0000',
          '\u007f',
          'é',
          '€',
          '😀',
          '\ud800',
        ),
        fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
      ),
      maxLength: 40,
    });
    const pair = fc.tuple(
      key,
      fc.oneof(
        text,
        fc.integer().map(String),
        fc.maxSafeInteger().map(String),
        fc.constantFrom('Nov 22 2026 10:00:00', '1700000000000', '0', '1', 'Europe/Berlin', '1.5e3'),
      ),
    );
    const header = fc.tuple(text, text, text, text, text, text);
    const prefix = fc.constantFrom('', '<134>Nov 22 08:00:00 host1 ', '<134>1 2026-11-22T10:00:00Z host2 CEF - - - ', 'Nov 22 08:00:00 h ');
    fc.assert(
      fc.property(
        prefix,
        header,
        fc.array(fc.tuple(pair, fc.constantFrom(' ', ' ', '  ', '\t', '#011', '')), { maxLength: 12 }),
        fc.boolean(),
        (pre, h, pairs, latin1) => {
          // Separators as senders write them: a blank, several, a TAB, rsyslog's #011, or none at all.
          const ext = pairs.map(([[k, v], sep]) => `${sep}${k}=${v}`).join('');
          const l = `${pre}CEF:0|${h.join('|')}|${ext}`;
          same(Buffer.from(l, latin1 ? 'latin1' : 'utf8'));
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('JSON kernel', () => {
  beforeAll(() => {
    expect(setJsonKernel(true)).toBe(true);
  });

  it('writes rows of lines that grow its memory, and of lines beyond its cap', () => {
    // ~3 MB of value, with escapes at the 16-byte boundaries the kernel steps over.
    const big = `CEF:0|V|P|1|id|n|5|msg=${'a"b\\\\c\t'.repeat(400_000)} src=10.0.0.1`;
    expect(same(Buffer.from(big), { maxFieldBytes: 1 << 30, maxColumns: 500 })).toBe('json');
    const huge = Buffer.from(`CEF:0|V|P|1|id|n|5|msg=${'x'.repeat(Math.ceil(KERNEL_MAX_BYTES / 12))}`);
    expect(same(huge, { maxFieldBytes: 1 << 30, maxColumns: 500 })).toBe('json');
  });

  it('writes every escape for every byte value at every position of its 16-byte steps', () => {
    for (let c = 0; c < 128; c++) {
      for (let at = 0; at < 34; at++) {
        // The byte in every lane of two 16-byte steps, then in the tail.
        const v = 'y'.repeat(at) + String.fromCharCode(c) + 'y'.repeat(33 - at);
        // `=`, `\\`, `|` and line ends change the CEF meaning, not the JSON: the row path decides what the value is.
        expect(same(Buffer.from(`CEF:0|V|P|1|id|${v}|5|cs1=${v} cs2=${v}${v}`, 'latin1'))).toBe('json');
      }
    }
  });

  it('reuses TimeGenerated from row to row only while it is the same', () => {
    const parse = lineJsonParser(LIMITS);
    const w = new RowWriter();
    const times = [at, at, new Date('2026-11-22T10:00:31Z'), at, new Date(0), new Date(0), at];
    for (const t of times) {
      const line = Buffer.from('CEF:0|V|P|1|id|n|5|src=10.0.0.1 msg=hello');
      const j = parse(line, t, w) as JsonRow;
      expect(j.kind).toBe('json');
      expect(j.buf.toString('utf8', j.start, j.start + j.bytes)).toBe(JSON.stringify((parseLine(line, t) as { row: unknown }).row));
    }
  });

  it('keeps writing JSON once the compiled column sets reach their cap', () => {
    // Column sets are told apart by write order: 2,500 orders of seven keys exceed MAX_SHAPES (2,000).
    const keys = ['cs1', 'cs2', 'cs3', 'cs4', 'cn1', 'cn2', 'src'];
    const orders: string[][] = [];
    const permute = (left: string[], done: string[]) => {
      if (orders.length >= 2500) return;
      if (!left.length) orders.push(done);
      for (const k of left)
        permute(
          left.filter((x) => x !== k),
          [...done, k],
        );
    };
    permute(keys, []);
    for (const o of orders)
      expect(same(Buffer.from(`CEF:0|V|P|1|id|n|5|${o.map((k, i) => `${k}=${k === 'src' ? '10.0.0.1' : i}`).join(' ')}`))).toBe('json');
  });

  it('is built from json-kernel.wat and json-kernel-layout.json (the committed outputs are not stale)', () => {
    execFileSync(process.execPath, ['scripts/build-wasm.mjs', '--check'], { stdio: 'pipe' });
  });
});
