import http from 'node:http';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseLine } from '../../src/parser/index.js';
import type { CslRow } from '../../src/parser/types.js';
import { bodyOf, prepareRow } from '../../src/sinks/batch.js';
import { jsonOf } from '../../src/sinks/types.js';
import { cefLine, scanSeqRows, seqOfRow, type ScannedSeqRows } from '../../scripts/load/cef.js';
import { SeqChecker } from '../../scripts/load/chkseq.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';

// The load benchmark's mock reads rows with scanSeqRows instead of JSON.parse: it must read exactly
// what JSON.parse + seqOfRow read, and refuse (or decline) anything else.

const SENT = 1_795_355_353_067;

/** A row exactly as the forwarder produces it: the real parser, then the sink's serialisation. */
function row(stream: string, seq: number, sentAt = SENT + seq): CslRow {
  const r = parseLine(cefLine(stream, seq, sentAt).trimEnd(), new Date(sentAt));
  if (!r.ok) throw new Error('parse failed');
  return r.row;
}

function body(rows: CslRow[]): string {
  return bodyOf(rows.map((r) => prepareRow(r, 64 * 1024))).toString('utf8');
}

/** One row's JSON as the sink writes it. */
function json(r: CslRow): string {
  return jsonOf(prepareRow(r, 64 * 1024));
}

/** The reference: JSON.parse + seqOfRow, as the mock's full path and chkseq do. */
function reference(text: string): ScannedSeqRows {
  const out: ScannedSeqRows = { streams: [], seqs: [], sentAts: [] };
  for (const r of JSON.parse(text) as Record<string, unknown>[]) {
    const f = seqOfRow(r);
    if (!f) throw new Error('row without sequence fields');
    out.streams.push(f.stream);
    out.seqs.push(f.seq);
    out.sentAts.push(f.sentAt!);
  }
  return out;
}

describe('scanSeqRows', () => {
  it('reads the same stream/seq/sentAt list as JSON.parse + seqOfRow from forwarder-serialised rows', () => {
    const rows: CslRow[] = [];
    for (let c = 0; c < 4; c++) for (let i = 0; i < 250; i++) rows.push(row(`bf-${c}-0`, i * 7 + c, SENT + i));
    const text = body(rows);
    expect(text.startsWith('[{"TimeGenerated":')).toBe(true);
    const scanned = scanSeqRows(text);
    expect(scanned).toEqual(reference(text));
    expect(scanned!.seqs).toHaveLength(1000);
    expect(body([row('s', 0)]).length).toBeGreaterThan(500);
    expect(scanSeqRows(body([row('s', 0)]))).toEqual({ streams: ['s'], seqs: [0], sentAts: [SENT] });
  });

  it('agrees with JSON.parse whatever the other columns hold, or declines (escapes)', () => {
    // Pieces that look like structure: inside a string value they must not split or count a row.
    const piece = fc.oneof(
      fc.constantFrom('},{', '},{"', '}]', '[{', '"ExtID":"9"', 'ExtID', '":', ',', '\\', '"', 'é', '\n', '{', '}'),
      fc.string({ unit: 'binary', maxLength: 8 }),
    );
    const value = fc.array(piece, { maxLength: 6 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(1e6), value, value), { minLength: 1, maxLength: 6 }), (specs) => {
        const rows = specs.map(([seq, msg, act], i) => ({ ...row(`st${i % 2}`, seq), Message: msg, Activity: act }));
        const text = body(rows);
        const scanned = scanSeqRows(text);
        if (text.includes('\\')) expect(scanned).toBeUndefined();
        else expect(scanned).toEqual(reference(text));
      }),
      { numRuns: 300 },
    );
  });

  it('tells a value ending in },{ from a row boundary', () => {
    const rows = [{ ...row('a', 1), Activity: 'x},{' }, { ...row('a', 2), DeviceCustomString6Label: '},{' }, row('b', 3)];
    const text = body(rows);
    expect(text).toContain('"x},{",');
    expect(text).toContain('"},{"},{"');
    expect(scanSeqRows(text)).toEqual(reference(text));
  });

  it('reads a seq written as a JSON number and columns in any order', () => {
    const text = JSON.stringify([
      { ExtID: 5, FieldDeviceCustomNumber3: 12.5, DeviceCustomString6: 'a' },
      { DeviceCustomString6: 'b', Message: 'x', FieldDeviceCustomNumber3: 1e3, ExtID: '6' },
    ]);
    expect(scanSeqRows(text)).toEqual(reference(text));
  });

  it('never reads a body cut short: every cut, also closed again with }], is declined or refused unless it is valid JSON', () => {
    const text = body([row('a', 1), row('a', 2), row('b', 3)]);
    let accepted = 0;
    for (let k = 2; k < text.length; k++) {
      for (const cut of [text.slice(0, k), `${text.slice(0, k)}}]`]) {
        let valid = true;
        try {
          JSON.parse(cut);
        } catch {
          valid = false;
        }
        let scanned: ScannedSeqRows | undefined;
        try {
          scanned = scanSeqRows(cut);
        } catch {
          scanned = undefined;
        }
        if (scanned) {
          expect(valid, `cut at ${k}`).toBe(true);
          expect(scanned).toEqual(reference(cut));
          accepted++;
        }
      }
    }
    // Valid cuts: a row cut right after one of its last two values and closed again (a shorter row
    // JSON.parse reads the same way), twice per row.
    expect(accepted).toBe(6);
  });

  it('fails loudly on a row without a sequence column, a column twice, a bad seq, or rows it cannot tell apart', () => {
    const [a, b] = [json(row('a', 1)), json(row('a', 2))];
    const noSeq = a.replace(/"ExtID":"1",/, '');
    expect(() => scanSeqRows(`[${noSeq},${b}]`)).toThrow(/row 0 .*no ExtID/);
    expect(() => scanSeqRows(`[${a},${b.replace(/"DeviceCustomString6":"a",?/, '')}]`)).toThrow(/row 1 .*no DeviceCustomString6/);
    expect(() => scanSeqRows(`[${a},{}]`)).toThrow(/not valid JSON/);
    // Two rows not separated by },{" read as one row holding every column twice.
    expect(() => scanSeqRows(`[${a}, ${b}]`)).toThrow(/twice/);
    expect(() => scanSeqRows(`[${a.replace('"ExtID":"1"', '"ExtID":"1x"')}]`)).toThrow(/not a plain integer/);
    expect(() => scanSeqRows(`[${a.replace('"ExtID":"1"', '"ExtID":""')}]`)).toThrow(/not a plain integer/);
    expect(() => scanSeqRows(`[${a.replace(/"FieldDeviceCustomNumber3":\d+/, '"FieldDeviceCustomNumber3":"x"')}]`)).toThrow(/not a number/);
    // Not the compact array form: left to JSON.parse.
    expect(scanSeqRows('[]')).toBeUndefined();
    expect(scanSeqRows(` [${a}]`)).toBeUndefined();
    expect(scanSeqRows(`${a}`)).toBeUndefined();
  });
});

// The mock hands scanSeqRows the gunzipped bytes: offsets are bytes, and only the small pieces are decoded.
describe('scanSeqRows on bytes', () => {
  it('decodes multi-byte UTF-8 stream names, also when the previous row has the same byte length', () => {
    // é and è are both 2 bytes: a stream reused from the previous row by length alone would read é twice.
    const streams = ['é', 'è', 'è', 'strøm-😀-0', 'strøm-😀-0', 'a', 'é'];
    const text = body(streams.map((st, i) => ({ ...row('x', i), DeviceCustomString6: st })));
    const scanned = scanSeqRows(Buffer.from(text));
    expect(scanned).toEqual(reference(text));
    expect(scanned!.streams).toEqual(streams);
  });

  it('reads a body full of non-ASCII text as JSON.parse does', () => {
    const rows = Array.from({ length: 20 }, (_, i) => ({
      ...row(`s${i % 3}`, i),
      Message: 'é€😀 ÿ\u0080 ',
      Activity: `ünïcödé},{${i}`,
      DeviceCustomString6Label: '中文 ExtID: String6',
    }));
    const text = body(rows);
    const buf = Buffer.from(text);
    expect(buf.length).toBeGreaterThan(text.length);
    expect(text).not.toContain('\\');
    expect(scanSeqRows(buf)).toEqual(reference(text));
  });

  it('reads only its own view of a larger buffer', () => {
    // Rows before and after the body in the same memory: a search or index past the view would count them.
    const text = body([row('a', 1), row('a', 2)]);
    const around = json(row('a', 3));
    const whole = Buffer.from(`[${around},${text.slice(1, -1)},${around}]`);
    const start = around.length + 2;
    const view = whole.subarray(start - 1, start + text.length - 1);
    view[0] = 0x5b;
    view[view.length - 1] = 0x5d;
    expect(view.toString()).toBe(text);
    expect(scanSeqRows(view)).toEqual(reference(text));
  });

  it('stops at the end of the bytes when a key or value runs to it', () => {
    const a = json(row('a', 1));
    // Keys and values cut at the very end, closed again with }] in different ways: never read beyond.
    for (const tail of ['"ExtID":', '"ExtID":"', '"ExtID":"7', '"FieldDeviceCustomNumber3":', '"DeviceCustomString6":"b']) {
      const cut = Buffer.from(`[${a.slice(0, -1)},${tail}}]`);
      expect(() => scanSeqRows(cut), tail).toThrow(/twice|not a|not valid JSON/);
    }
    // The closing brace as the last byte before ]: a },{" check there reads past the end.
    expect(scanSeqRows(Buffer.from(`[${a}]`))).toEqual(reference(`[${a}]`));
  });
});

describe('mock Logs Ingestion with scanBody', () => {
  let mock: MockAzure;
  let checker: SeqChecker;
  let tok: string;
  const parsedCalls: number[] = [];

  function post(headers: Record<string, string>, payload: Buffer): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const path = `/dataCollectionRules/${mock.dcrImmutableId}/streams/Custom-CommonSecurityLog?api-version=2023-01-01`;
      const req = http.request(`${mock.url}${path}`, { method: 'POST', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }
  const send = (text: string, token = tok) =>
    post({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, gzipSync(Buffer.from(text)));

  beforeAll(async () => {
    mock = await startMockAzure({
      https: false,
      keepRows: false,
      validateEvery: 3,
      onRows: (rows) => {
        parsedCalls.push(rows.length);
        for (const r of rows) checker.addRow(r.row, r.at);
      },
      scanBody: (text) => {
        const s = scanSeqRows(text);
        return s && { rows: s.seqs.length, accept: (at) => checker.addScanned(s, at) };
      },
    });
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: mock.clientId,
      client_secret: mock.clientSecret,
      scope: 'https://monitor.azure.com//.default',
    });
    const r = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        `${mock.url}/${mock.tenantId}/oauth2/v2.0/token`,
        { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
        (res) => {
          let b = '';
          res.on('data', (c) => (b += c));
          res.on('end', () => resolve(b));
        },
      );
      req.on('error', reject);
      req.end(form.toString());
    });
    tok = JSON.parse(r).access_token;
  });
  afterAll(async () => mock.close());
  beforeEach(() => {
    checker = new SeqChecker();
    parsedCalls.length = 0;
    mock.reset();
  });

  it('refuses keepRows with scanBody', async () => {
    await expect(startMockAzure({ https: false, scanBody: () => undefined })).rejects.toThrow(/keepRows: false/);
  });

  it('sequence-checks every row of every call; parses every 3rd call in full', async () => {
    for (let c = 0; c < 6; c++) {
      const r = await send(body(Array.from({ length: 50 }, (_, i) => row('s', c * 50 + i))));
      expect(r.status).toBe(204);
    }
    checker.expect('s', 300);
    const rep = checker.report();
    expect(rep).toMatchObject({ received: 300, lost: 0, duplicates: 0, unknown: 0 });
    expect(rep.latencyMs!.samples).toBe(300);
    const st = mock.stats();
    expect(st.rowsAccepted['logs-ingestion']).toBe(300);
    expect(st.scannedCalls).toBe(4);
    expect(parsedCalls).toEqual([50, 50]);
    expect(st).toMatchObject({ scanFallbacks: 0, scanErrors: 0, scanMismatches: 0 });
    expect(mock.requests.filter((q) => q.api === 'logs-ingestion').map((q) => q.rows)).toEqual([50, 50, 50, 50, 50, 50]);
    expect(mock.requests[0]!.firstRow).toMatchObject({ ExtID: '0', DeviceCustomString6: 's' });
  });

  it('still checks the token, and answers a cut-short body with 400', async () => {
    const text = body([row('s', 0), row('s', 1)]);
    expect((await send(text, 'not-a-token')).status).toBe(401);
    expect((await send(text.slice(0, -20))).status).toBe(400);
    expect((await send(`${text.slice(0, -20)}}]`)).status).toBe(400);
    expect(mock.stats().rowsAccepted['logs-ingestion']).toBe(0);
    expect(checker.received).toBe(0);
  });

  it('a body the scan refuses is parsed in full: the rows without sequence fields are counted as unknown', async () => {
    const a = json(row('s', 0));
    const r = await send(`[${a},${a.replace(/"ExternalID":0,"ExtID":"0",/, '')}]`);
    expect(r.status).toBe(204);
    const st = mock.stats();
    expect(st).toMatchObject({ scannedCalls: 0, scanErrors: 1, scanFallbacks: 1 });
    expect(st.scanErrorSamples[0]).toMatch(/row 1 .*no ExtID/);
    expect(parsedCalls).toEqual([2]);
    checker.expect('s', 1);
    expect(checker.report()).toMatchObject({ received: 1, unknown: 1 });
  });

  it('scans a first row whose value ends in },{ and takes firstRow from its bytes', async () => {
    // Three calls: two are scanned, whichever one of them is column-checked (validateEvery 3).
    for (let c = 0; c < 3; c++) {
      const text = body([
        { ...row('s', 2 * c), Activity: 'x},{', DeviceCustomString6: 'strøm' },
        { ...row('s', 2 * c + 1), DeviceCustomString6: 'strøm' },
      ]);
      expect(text).toContain('"x},{",');
      expect((await send(text)).status).toBe(204);
    }
    expect(mock.stats()).toMatchObject({ scannedCalls: 2, scanErrors: 0, scanFallbacks: 0 });
    expect(mock.requests.map((q) => q.firstRow)).toMatchObject(
      [0, 2, 4].map((seq) => ({ ExtID: String(seq), Activity: 'x},{', DeviceCustomString6: 'strøm' })),
    );
    checker.expect('strøm', 6);
    expect(checker.report()).toMatchObject({ received: 6, lost: 0, unknown: 0 });
  });

  it('a body with escapes is parsed in full', async () => {
    const r = await send(body([{ ...row('s', 0), Message: 'say "hi"' }]));
    expect(r.status).toBe(204);
    expect(mock.stats()).toMatchObject({ scannedCalls: 0, scanErrors: 0, scanFallbacks: 1 });
    expect(parsedCalls).toEqual([1]);
  });

  it('a poison rule sees every row (full parse)', async () => {
    mock.fail({ api: 'logs-ingestion', poison: { field: 'ExtID', equals: '1' }, count: 1 });
    expect((await send(body([row('s', 0), row('s', 1)]))).status).toBe(400);
    mock.clearFailures();
    expect(mock.stats().scannedCalls).toBe(0);
  });
});

describe('mock Logs Ingestion with scanBody and validateEvery 1', () => {
  it('parses and column-checks every call; the scan only cross-checks the row count', async () => {
    const parsed: number[] = [];
    const m = await startMockAzure({
      https: false,
      keepRows: false,
      validateEvery: 1,
      onRows: (rows) => parsed.push(rows.length),
      scanBody: (text) => {
        const s = scanSeqRows(text);
        return s && { rows: s.seqs.length, accept: () => expect.unreachable('accept on a column-checked call') };
      },
    });
    try {
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: m.clientId,
        client_secret: m.clientSecret,
        scope: 'https://monitor.azure.com//.default',
      });
      const tokRes = await fetch(`${m.url}/${m.tenantId}/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
      });
      const { access_token: t } = (await tokRes.json()) as { access_token: string };
      for (let c = 0; c < 3; c++) {
        const res = await fetch(
          `${m.url}/dataCollectionRules/${m.dcrImmutableId}/streams/Custom-CommonSecurityLog?api-version=2023-01-01`,
          {
            method: 'POST',
            headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
            body: gzipSync(Buffer.from(body([row('s', 2 * c), row('s', 2 * c + 1)]))),
          },
        );
        expect(res.status).toBe(204);
      }
      expect(parsed).toEqual([2, 2, 2]);
      expect(m.stats()).toMatchObject({ validatedCalls: 3, scannedCalls: 0, scanFallbacks: 0, scanMismatches: 0, typeMismatches: [] });
    } finally {
      await m.close();
    }
  });
});
