import { appendFileSync, fstatSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DiskQueue, type CorruptionEvent } from '../../src/forwarder/disk-queue.js';
import { tempDir } from './helpers.js';

/** The queue's segment files, oldest first. */
const segments = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
const firstSegment = (dir: string) => join(dir, segments(dir)[0]!);

const msgs = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({ data: Buffer.from(`message ${from + i}`), truncated: (from + i) % 7 === 0 }));

function open(dir: string, over: Partial<ConstructorParameters<typeof DiskQueue>[0]> = {}, corrupt: CorruptionEvent[] = []) {
  const q = new DiskQueue({
    dir,
    maxBytes: 1 << 30,
    segmentBytes: 4096,
    fsyncIntervalMs: 0,
    onCorruption: (e) => corrupt.push(e),
    ...over,
  });
  q.open();
  return q;
}

function drain(q: DiskQueue): string[] {
  const out: string[] = [];
  for (;;) {
    const b = q.readBatch(50, 1 << 20);
    if (!b.records.length) {
      q.ackTo(b.end, 0, 0);
      return out;
    }
    out.push(...b.records.map((r) => r.raw.toString()));
    q.ackTo(b.end, b.records.length, b.diskBytes);
  }
}

describe('DiskQueue', () => {
  it('keeps a rotated segment open until the group fsync running on it returns', async () => {
    const dir = tempDir();
    const held: Array<{ fd: number; done: (err: NodeJS.ErrnoException | null) => void }> = [];
    const errors: string[] = [];
    const q = open(dir, {
      fsyncIntervalMs: 5,
      fsyncFn: (fd, done) => held.push({ fd, done }),
      onError: (err, where) => errors.push(`${where}: ${err.message}`),
    });
    q.append(msgs(0, 1), 1);
    await expect.poll(() => held.length).toBe(1);
    const fd = held[0]!.fd;
    // Past segmentBytes (4096): the next append rotates while that fsync is still out.
    q.append(msgs(1, 300), 2);
    expect(segments(dir).length).toBeGreaterThan(1);
    // Still open, and not the fd of the new segment (a reused number would send the fsync there).
    expect(fstatSync(fd).size).toBe(statSync(firstSegment(dir)).size);
    held[0]!.done(null);
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
    expect(drain(q)).toHaveLength(301);
    q.close();
    expect(errors).toEqual([]);
  });

  it('returns records in order with receive time and flags, and rotates and deletes segments', () => {
    const dir = tempDir();
    const q = open(dir);
    q.append(msgs(0, 100), 1234);
    q.append(msgs(100, 100), 5678);
    expect(q.records).toBe(200);
    expect(segments(dir).length).toBeGreaterThan(1);
    const b = q.readBatch(10, 1 << 20);
    expect(b.records[0]).toMatchObject({ receivedAt: 1234, flags: 1 });
    expect(b.records[1].flags).toBe(0);
    q.rewind();
    expect(drain(q)).toEqual(msgs(0, 200).map((m) => m.data.toString()));
    expect(q.records).toBe(0);
    expect(q.bytes).toBe(0);
    expect(segments(dir).length).toBe(1);
    q.close();
  });

  it('sizes a batch buffer to what the batch holds, not to maxBytes, when the backlog is large', () => {
    const dir = tempDir();
    const q = open(dir, { segmentBytes: 64 << 20 });
    // 4 MB of backlog, read 10 records at a time with a 2 MB byte cap: each batch pins ~150 bytes, not 2 MB.
    const big = Array.from({ length: 4000 }, (_, i) => ({ data: Buffer.alloc(1000, 97 + (i % 26)), truncated: false }));
    q.append(big, 1);
    const b = q.readBatch(10, 2 << 20);
    expect(b.records.length).toBe(10);
    expect(b.records[0].raw.buffer.byteLength).toBeLessThanOrEqual(2 * b.bytes + 4096);
    expect(b.records.map((r) => r.raw.toString())).toEqual(big.slice(0, 10).map((m) => m.data.toString()));
    q.close();
  });

  it('keeps unacknowledged records across a restart and resumes at the cursor', () => {
    const dir = tempDir();
    let q = open(dir);
    q.append(msgs(0, 30), 1);
    const b = q.readBatch(10, 1 << 20);
    q.ackTo(b.end, b.records.length, b.diskBytes);
    q.readBatch(10, 1 << 20); // handed out but never acknowledged: must come back
    q.close();
    q = open(dir);
    expect(q.records).toBe(20);
    q.append(msgs(30, 5), 2);
    expect(drain(q)).toEqual(msgs(10, 25).map((m) => m.data.toString()));
    q.close();
  });

  it('recovers a torn tail: trims it, counts it, keeps every complete record', () => {
    const dir = tempDir();
    let q = open(dir, { segmentBytes: 1 << 20 });
    q.append(msgs(0, 10), 1);
    q.close();
    const seg = segments(dir)[0];
    const full = readFileSync(join(dir, seg));
    // A record cut in the middle, as a crash mid-write leaves it.
    appendFileSync(join(dir, seg), full.subarray(0, 15));
    const corrupt: CorruptionEvent[] = [];
    q = open(dir, {}, corrupt);
    expect(corrupt).toEqual([expect.objectContaining({ kind: 'torn-tail', bytes: 15 })]);
    expect(statSync(join(dir, seg)).size).toBe(full.length);
    expect(drain(q)).toEqual(msgs(0, 10).map((m) => m.data.toString()));
    q.close();
  });

  it('skips a corrupt record in the middle, reports it, and delivers the rest', () => {
    const dir = tempDir();
    let q = open(dir, { segmentBytes: 1 << 20 });
    q.append(msgs(0, 10), 1);
    q.close();
    const seg = firstSegment(dir);
    const buf = readFileSync(seg);
    const third = buf.indexOf('message 3');
    buf[third + 2] ^= 0xff; // flip a payload byte: CRC mismatch
    writeFileSync(seg, buf);
    const corrupt: CorruptionEvent[] = [];
    q = open(dir, {}, corrupt);
    const got = drain(q);
    expect(got).toEqual(
      msgs(0, 10)
        .map((m) => m.data.toString())
        .filter((m) => m !== 'message 3'),
    );
    expect(corrupt).toEqual([expect.objectContaining({ kind: 'corrupt-record' })]);
    q.close();
  });

  it('reports full at the cap', () => {
    const dir = tempDir();
    const q = open(dir, { maxBytes: 500 });
    q.append(msgs(0, 5), 1);
    expect(q.full).toBe(false);
    q.append(msgs(5, 30), 1);
    expect(q.full).toBe(true);
    drain(q);
    expect(q.full).toBe(false);
    q.close();
  });

  it('leaves nothing behind when a write fails half way (disk full)', () => {
    const dir = tempDir();
    let fail = false;
    const q = open(dir, {
      writeFn: (fd, b, off, len) => {
        if (!fail) return writeSync(fd, b, off, len);
        // Write part of it, then fail as ENOSPC does.
        fail = false;
        writeSync(fd, b, off, Math.floor(len / 2));
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      },
    });
    q.append(msgs(0, 3), 1);
    fail = true;
    expect(() => q.append(msgs(3, 3), 1)).toThrow(/ENOSPC/);
    expect(q.records).toBe(3);
    q.append(msgs(3, 3), 1);
    expect(drain(q)).toEqual(msgs(0, 6).map((m) => m.data.toString()));
    q.close();
  });
});

/** Messages of `size` bytes whose content says which one they are. */
const sized = (from: number, n: number, size: number) =>
  Array.from({ length: n }, (_, i) => {
    const data = Buffer.alloc(size, 97 + ((from + i) % 26));
    data.write(`m${from + i};`);
    return { data, truncated: (from + i) % 5 === 0 };
  });

/** Every record of a batch through starts/ends/receivedAt/flags (the arrays a parse worker gets). */
function batchRecords(b: ReturnType<DiskQueue['readBatch']>): Array<{ raw: string; receivedAt: number; flags: number }> {
  expect(b.starts.length).toBe(b.count);
  expect(b.ends.length).toBe(b.count);
  // A buffer of its own, exactly its size: it is transferred to a worker.
  expect(b.buffer.byteOffset).toBe(0);
  expect(b.buffer.buffer.byteLength).toBe(b.buffer.length);
  // It holds the batch's records as on disk and nothing else (no skipped corrupt bytes).
  expect(b.buffer.length).toBe(b.diskBytes);
  return Array.from({ length: b.count }, (_, i) => ({
    raw: b.buffer.toString('latin1', b.starts[i], b.ends[i]),
    receivedAt: b.receivedAt[i]!,
    flags: b.flags[i]!,
  }));
}

describe('DiskQueue readBatch', () => {
  it('writes the documented record format: magic, length, CRC32 of receivedAt|flags|raw', () => {
    const dir = tempDir();
    const q = open(dir, { segmentBytes: 1 << 20 });
    const m = sized(0, 3, 40);
    q.append(m, 1700000000123);
    q.close();
    const buf = readFileSync(firstSegment(dir));
    let p = 0;
    for (const { data, truncated } of m) {
      expect([buf[p], buf[p + 1]]).toEqual([0x5c, 0xef]);
      const len = buf.readUInt32LE(p + 2);
      expect(len).toBe(9 + data.length);
      const payload = buf.subarray(p + 10, p + 10 + len);
      expect(buf.readUInt32LE(p + 6)).toBe(crc32(payload));
      expect(payload.readDoubleLE(0)).toBe(1700000000123);
      expect(payload[8]).toBe(truncated ? 1 : 0);
      expect(payload.subarray(9).equals(data)).toBe(true);
      p += 10 + len;
    }
    expect(p).toBe(buf.length);
  });

  it('skips corrupt records inside a run of valid ones and keeps every other record, flag and time', () => {
    const dir = tempDir();
    let q = open(dir, { segmentBytes: 1 << 20 });
    q.append(sized(0, 10, 60), 111);
    q.append(sized(10, 10, 60), 222);
    q.close();
    const seg = firstSegment(dir);
    const buf = readFileSync(seg);
    buf[buf.indexOf('m4;') + 10] ^= 0xff; // payload byte: CRC mismatch
    buf[buf.indexOf('m5;') - 19 + 3] ^= 0xff; // length field of the next record
    buf[buf.indexOf('m13;') + 1] ^= 0xff;
    writeFileSync(seg, buf);
    const corrupt: CorruptionEvent[] = [];
    q = open(dir, {}, corrupt);
    const b = q.readBatch(1000, 1 << 20);
    const want = sized(0, 20, 60).map((m, i) => ({
      raw: m.data.toString('latin1'),
      receivedAt: i < 10 ? 111 : 222,
      flags: m.truncated ? 1 : 0,
    }));
    const expected = want.filter((_, i) => i !== 4 && i !== 5 && i !== 13);
    expect(batchRecords(b)).toEqual(expected);
    expect(b.records.map((r) => r.raw.toString('latin1'))).toEqual(expected.map((e) => e.raw));
    expect(b.diskBytes).toBe(17 * (19 + 60));
    expect(corrupt.map((c) => [c.kind, c.offset, c.bytes])).toEqual([
      ['corrupt-record', 4 * 79, 2 * 79],
      ['corrupt-record', 13 * 79, 79],
    ]);
    q.ackTo(b.end, b.count, b.diskBytes);
    expect(q.records).toBe(0);
    q.close();
  });

  it('reads records split across read-buffer refills, in batches cut by count and by bytes mid-buffer', () => {
    const dir = tempDir();
    const q = open(dir, { segmentBytes: 8 << 20 });
    // Sizes that do not divide the 1 MiB read buffer: records straddle every refill.
    const all = [...sized(0, 40, 70_001), ...sized(40, 300, 333), ...sized(340, 20, 150_007)];
    q.append(all.slice(0, 40), 1);
    q.append(all.slice(40, 340), 2);
    q.append(all.slice(340), 3);
    const got: string[] = [];
    const limits: Array<[number, number]> = [
      [7, 1 << 30],
      [1000, 300_000],
      [3, 1 << 30],
      [1000, 1_000_000],
      [50, 5000],
    ];
    for (let k = 0; ; k++) {
      const [n, bytes] = limits[k % limits.length]!;
      const b = q.readBatch(n, bytes);
      if (b.count === 0) break;
      expect(b.count).toBeLessThanOrEqual(n);
      // Over the byte cap only when one record alone is larger.
      if (b.count > 1) expect(b.bytes).toBeLessThanOrEqual(bytes);
      const recs = batchRecords(b);
      expect(b.bytes).toBe(recs.reduce((s, r) => s + r.raw.length, 0));
      got.push(...recs.map((r) => r.raw));
      q.ackTo(b.end, b.count, b.diskBytes);
    }
    expect(got).toEqual(all.map((m) => m.data.toString('latin1')));
    expect(q.records).toBe(0);
    expect(q.bytes).toBe(0);
    q.close();
  });

  it('skips a corrupt record next to a read-buffer refill inside one batch', () => {
    const dir = tempDir();
    let q = open(dir, { segmentBytes: 8 << 20 });
    const all = sized(0, 40, 70_001);
    q.append(all, 1);
    q.close();
    const seg = firstSegment(dir);
    const buf = readFileSync(seg);
    // Record 14 straddles the first 1 MiB refill (14 * 70,020 < 1 MiB < 15 * 70,020); 15 is the next one.
    buf[buf.indexOf('m14;') + 50_000] ^= 0xff;
    buf[buf.indexOf('m15;') + 5] ^= 0xff;
    writeFileSync(seg, buf);
    const corrupt: CorruptionEvent[] = [];
    q = open(dir, {}, corrupt);
    const b = q.readBatch(1000, 1 << 30);
    expect(batchRecords(b).map((r) => r.raw)).toEqual(all.filter((_, i) => i !== 14 && i !== 15).map((m) => m.data.toString('latin1')));
    expect(corrupt.map((c) => [c.offset, c.bytes])).toEqual([[14 * 70_020, 2 * 70_020]]);
    q.close();
  });

  it('gathers one batch across segments', () => {
    const dir = tempDir();
    const q = open(dir, { segmentBytes: 1024 });
    for (let k = 0; k < 20; k++) q.append(sized(k * 10, 10, 90), k);
    const b = q.readBatch(1000, 1 << 20);
    expect(batchRecords(b).map((r) => [r.raw, r.receivedAt])).toEqual(
      sized(0, 200, 90).map((m, i) => [m.data.toString('latin1'), Math.floor(i / 10)]),
    );
    q.ackTo(b.end, b.count, b.diskBytes);
    expect(segments(dir).length).toBe(1);
    q.close();
  });
});

describe('DiskQueue cursor', () => {
  it('falls back to the previous cursor slot when the last cursor write is torn', () => {
    const dir = tempDir();
    let q = open(dir);
    q.append(msgs(0, 30), 1);
    for (let k = 0; k < 3; k++) {
      const b = q.readBatch(10, 1 << 20);
      q.ackTo(b.end, b.records.length, b.diskBytes);
    }
    q.close();
    expect(statSync(join(dir, 'cursor')).size).toBe(48);
    // Third ack went to slot 1 (seq 3); tear it: the cursor of the second ack (slot 0) must win.
    const c = readFileSync(join(dir, 'cursor'));
    c[24 + 5] ^= 0xff;
    writeFileSync(join(dir, 'cursor'), c);
    q = open(dir);
    expect(drain(q)).toEqual(msgs(20, 10).map((m) => m.data.toString()));
    q.close();
  });

  it('reports the oldest record also when the cursor sits in an empty segment left by a restart', () => {
    const dir = tempDir();
    open(dir).close();
    const q = open(dir);
    q.append(msgs(0, 2), 1234);
    expect(q.oldestReceivedAt()).toBe(1234);
    q.close();
  });
});
