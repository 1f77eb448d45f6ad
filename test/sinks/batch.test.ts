import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyPool, bodyOf, deliver, packRows, prepareRow, sendRows, truncateUtf8 } from '../../src/sinks/batch.js';
import { RowWriter } from '../../src/sinks/row-writer.js';
import { jsonOf, rowOf, type PreparedRow, type SendResult } from '../../src/sinks/types.js';
import type { CslRow } from '../../src/parser/types.js';

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
  it('keeps only the JSON of a row with nothing to truncate; rowOf gives the row back', () => {
    const r = { Message: 'short', EventCount: 3 };
    const p = prepareRow(r, 100);
    expect(p.original).toBeUndefined();
    expect(jsonOf(p)).toBe(JSON.stringify(r));
    expect(p.bytes).toBe(Buffer.byteLength(jsonOf(p)));
    expect(p.truncated).toBeUndefined();
    expect(rowOf(p)).toEqual(r);
  });

  it('truncates every long field, keeps the original untouched, flags in AdditionalExtensions', () => {
    const r = { Message: 'a'.repeat(150), RequestURL: 'b'.repeat(120), AdditionalExtensions: 'k=v' };
    const p = prepareRow(r, 100);
    const sent = JSON.parse(jsonOf(p));
    expect(r.Message).toHaveLength(150);
    expect(sent.Message).toHaveLength(100);
    expect(sent.RequestURL).toHaveLength(100);
    expect(sent.AdditionalExtensions).toBe('k=v;sentinelCefTruncated=Message:150,RequestURL:120');
    expect(p.truncated).toBe('Message:150, RequestURL:120');
    // The untruncated row stays for the dead-letter file.
    expect(p.original).toBe(r);
    expect(rowOf(p)).toBe(r);
  });

  it('keeps AdditionalExtensions itself within the limit when it is the long one', () => {
    const p = prepareRow({ AdditionalExtensions: 'x'.repeat(500) }, 100);
    const ae = JSON.parse(jsonOf(p)).AdditionalExtensions as string;
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
        expect(groups.flat().map(jsonOf)).toEqual(prepared.filter((p) => !oversize.includes(p)).map(jsonOf));
        // The body of a group is exactly its rows as a JSON array.
        for (const g of groups) expect(JSON.parse(bodyOf(g).toString('utf8'))).toEqual(g.map((p) => JSON.parse(jsonOf(p))));
      }),
    );
  });
});

describe('sendRows', () => {
  const rows: CslRow[] = [{ Message: 'a' }, { Message: 'b' }, { Message: 'c'.repeat(50) }, { Message: 'd' }];
  const prep = (rs: CslRow[]) => rs.map((r) => prepareRow(r, 20));

  it("maps every note of a prepared send back to the caller's row objects", async () => {
    const res = await sendRows(rows, prep, async (p): Promise<SendResult<PreparedRow>> => ({
      status: 'partial',
      accepted: 2,
      rejected: [{ row: p[1]!, reason: 'bad' }],
      truncated: [{ row: p[2]!, reason: 'cut' }],
    }));
    expect(res.status).toBe('partial');
    if (res.status !== 'partial') return;
    expect(res.rejected[0]!.row).toBe(rows[1]);
    expect(res.truncated![0]!.row).toBe(rows[2]);
  });

  it("maps progress of a retryable send: pending rows are the caller's objects", async () => {
    const res = await sendRows(rows, prep, async (p) => ({
      status: 'retryable',
      error: '503',
      progress: { accepted: 1, rejected: [{ row: p[1]!, reason: 'bad' }], pending: [p[2]!, p[3]!] },
    }));
    expect(res.status).toBe('retryable');
    if (res.status !== 'retryable') return;
    expect(res.progress!.pending[0]).toBe(rows[2]);
    expect(res.progress!.pending[1]).toBe(rows[3]);
    expect(res.progress!.rejected[0]!.row).toBe(rows[1]);
  });
});

describe('RowWriter', () => {
  it('stores rows back to back in chunks of their own; a row larger than a chunk gets its own', () => {
    const w = new RowWriter(true);
    const small = Array.from({ length: 400 }, (_, i) => ({ Message: `m${i} ${'é'.repeat(i % 7)}`.repeat(100) }));
    const big = { Message: 'ß'.repeat(300_000) };
    const rows = [...small.slice(0, 200), big, ...small.slice(200)];
    const prepared = rows.map((r) => prepareRow(r, 1_000_000, w));
    const chunks = w.takeChunks();
    expect(chunks.length).toBeGreaterThan(2);
    // Each chunk is its own ArrayBuffer (transferable to another thread).
    for (const c of chunks) expect(c.byteOffset === 0 && c.buffer.byteLength === c.length).toBe(true);
    expect(new Set(prepared.map((p) => p.buf)).size).toBe(chunks.length);
    prepared.forEach((p, i) => expect(rowOf(p)).toEqual(rows[i]));
    expect(prepared[200]!.bytes).toBe(Buffer.byteLength(JSON.stringify(big)));
    // After takeChunks nothing more is written into the taken chunks.
    const next = prepareRow({ Message: 'after' }, 100, w);
    expect(chunks).not.toContain(next.buf);
    expect(w.takeChunks()).toEqual([next.buf]);
  });

  it('writes into chunks handed back (recycle) before taking fresh memory', () => {
    const w = new RowWriter(true);
    const rows = Array.from({ length: 300 }, (_, i) => ({ Message: `row ${i} `.repeat(200) }));
    const first = rows.map((r) => prepareRow(r, 1_000_000, w));
    const chunks = w.takeChunks();
    w.recycle(chunks);
    const again = rows.map((r) => prepareRow(r, 1_000_000, w));
    const used = w.takeChunks();
    expect(used.every((c) => chunks.includes(c))).toBe(true);
    again.forEach((p, i) => expect(rowOf(p)).toEqual(rows[i]));
    expect(first).toHaveLength(300);
  });
});

describe('bodyOf', () => {
  it('copies runs of adjacent rows at once and is the JSON array of any rows, adjacent or not', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ Message: fc.string({ maxLength: 30 }), EventCount: fc.integer() }), { maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        (rows, picks) => {
          // Rows from two writers, some written on their own (no neighbour), then in a shuffled order:
          // runs break at a buffer change, a gap, or a row not followed by its comma.
          const a = new RowWriter();
          const b = new RowWriter();
          // Rows of one buffer that touch but have no comma between them: `{…}]{…}]`.
          const other = Buffer.from(rows.map((r) => `${JSON.stringify(r)}]`).join(''));
          let at = 0;
          const prepared = rows.map((r, i) => {
            const bytes = Buffer.byteLength(JSON.stringify(r));
            const start = at;
            at += bytes + 1;
            if (i % 7 === 3 || i % 7 === 4) return { buf: other, start, bytes } as PreparedRow;
            return prepareRow(r, 1000, i % 3 === 0 ? b : a);
          });
          const order = prepared.map((_, i) => i);
          for (let k = 0; k < picks.length && order.length > 1; k++) {
            const i = picks[k]! % order.length;
            const j = (i + 1) % order.length;
            if (picks[k]! % 3 === 0) [order[i], order[j]] = [order[j]!, order[i]!];
          }
          const body = bodyOf(order.map((i) => prepared[i]!)).toString('utf8');
          expect(body).toBe(JSON.stringify(order.map((i) => rows[i])));
        },
      ),
    );
  });
});

describe('deliver with a BodyPool', () => {
  it('reuses a body buffer only after its post settled, never for two calls in flight; every body is the JSON of its rows', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => prepareRow({ Message: `row ${i} `.repeat(20) }, 10_000));
    const bodies = new BodyPool(4096, 4);
    const seen: Array<{ text: string; ab: ArrayBufferLike; rows: PreparedRow[] }> = [];
    const inFlight = new Set<ArrayBufferLike>();
    const res = await deliver(rows, {
      maxCallBytes: 1000,
      concurrency: 2,
      bodies,
      post: async (body, group) => {
        expect(inFlight.has(body.buffer)).toBe(false);
        inFlight.add(body.buffer);
        const text = body.toString();
        await new Promise((r) => setTimeout(r, 1));
        // Nobody wrote into the body while this post held it.
        expect(body.toString()).toBe(text);
        inFlight.delete(body.buffer);
        seen.push({ text, ab: body.buffer, rows: group });
        return { kind: 'ok' };
      },
    });
    expect(res).toMatchObject({ status: 'success', accepted: 40 });
    expect(seen.length).toBeGreaterThan(2);
    for (const c of seen) expect(c.text).toBe(bodyOf(c.rows).toString());
    const buffers = new Set(seen.map((c) => c.ab));
    expect(buffers.size).toBe(2);
    expect(bodies.size).toBe(2);
  });

  it('takes a body back when its post throws', async () => {
    const bodies = new BodyPool(4096);
    const post = async () => {
      throw new Error('boom');
    };
    await expect(deliver([prepareRow({ Message: 'a' }, 100)], { maxCallBytes: 1000, bodies, post })).rejects.toThrow('boom');
    expect(bodies.size).toBe(1);
  });

  it('hands out a view of exactly the size asked, from a buffer given back when it is large enough', () => {
    const pool = new BodyPool(100, 1);
    const a = pool.take(50);
    expect(a.length).toBe(50);
    pool.give(a);
    const b = pool.take(80);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(80);
    const c = pool.take(10);
    expect(c.buffer).not.toBe(a.buffer);
    pool.give(b);
    pool.give(c); // over max: dropped
    expect(pool.size).toBe(1);
    expect(pool.take(200).buffer).not.toBe(a.buffer);
  });
});
