/**
 * Model-based test of the disk queue (as Vector's disk_v2 `tests/model`): random sequences of
 * operations run against the real queue and against a plain array, and every step is compared.
 *
 * The model is the list of unacknowledged records in append order, how many of them readBatch has
 * handed out since the last ack/rewind/reopen, and the batches handed out but not yet acknowledged
 * (acknowledged oldest first, as the delivery loop does). What it allows:
 * - An append that returned is queued; an append that threw (an injected fault) queued nothing.
 * - readBatch returns exactly the next unread records: same bytes, flags, receive time, in order,
 *   within maxRecords/maxBytes (one oversized record alone is allowed), and stops only at a limit or
 *   at the end. An acknowledged record never comes back.
 * - A torn tail (a crash while the last segment was being written: it is cut at a random byte while
 *   the queue is closed) loses exactly the records of that segment that end past the cut, and
 *   nothing else; the queue may report the cut as one 'torn-tail' corruption. With the real queue
 *   such records were never fsynced (fsync makes a record whole on disk), so this is the only loss
 *   the model allows. Any other corruption report is a failure.
 * - records, bytes and oldestReceivedAt equal the model's after every step; the queue never lists a
 *   segment without a file, never reports EBADF, and leaves no fd open after close.
 */
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskQueue, type CorruptionEvent, type QueueBatch } from '../../src/forwarder/disk-queue.js';
import { injectFaults, type FaultRule } from '../helpers/faults.js';
import { setFaultPlan } from '../../src/util/fsio.js';

const SEGMENT_BYTES = 2048;
/** On-disk bytes of a record: header (10) + receive time and flags (9) + raw bytes. */
const OVERHEAD = 19;

interface Rec {
  data: Buffer;
  truncated: boolean;
  receivedAt: number;
}

interface Model {
  unacked: Rec[];
  /** Records of `unacked` handed out by readBatch since the last ack/rewind/reopen. */
  handed: number;
  /** Batches handed out and not acknowledged, oldest first. */
  pending: Array<{ batch: QueueBatch; count: number }>;
}

interface Real {
  dir: string;
  fsyncIntervalMs: number;
  q: DiskQueue;
  corruption: CorruptionEvent[];
  errors: Array<{ where: string; code?: string }>;
}

const dirs: string[] = [];
afterEach(() => {
  setFaultPlan(null);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function openQueue(r: Pick<Real, 'dir' | 'fsyncIntervalMs' | 'corruption' | 'errors'>): DiskQueue {
  const q = new DiskQueue({
    dir: r.dir,
    maxBytes: 1 << 30,
    segmentBytes: SEGMENT_BYTES,
    fsyncIntervalMs: r.fsyncIntervalMs,
    onCorruption: (e) => r.corruption.push(e),
    onError: (err, where) => r.errors.push({ where, code: (err as NodeJS.ErrnoException).code }),
  });
  q.open();
  return q;
}

const diskBytes = (recs: Rec[]) => recs.reduce((n, r) => n + OVERHEAD + r.data.length, 0);

function checkInvariants(m: Model, r: Real): void {
  expect(r.q.records).toBe(m.unacked.length);
  expect(r.q.bytes).toBe(diskBytes(m.unacked));
  expect(r.q.oldestReceivedAt()).toBe(m.unacked[0]?.receivedAt ?? null);
  if (m.handed < m.unacked.length) expect(r.q.unread).toBe(true);
  const files = new Set(readdirSync(r.dir));
  for (const s of (r.q as unknown as { segments: number[] }).segments) {
    expect(files.has(`${String(s).padStart(16, '0')}.seg`), `listed segment ${s} has no file`).toBe(true);
  }
  expect(r.errors.filter((e) => e.code === 'EBADF')).toEqual([]);
  expect(r.corruption).toEqual([]);
}

/** Appends; an injected fault may refuse it, and then nothing may be queued. */
function tryAppend(m: Model, r: Real, recs: Rec[], receivedAt: number, faulty: boolean): void {
  try {
    r.q.append(recs, receivedAt);
  } catch (err) {
    if (!faulty) throw err;
    expect((err as Error).message).toMatch(/injected fault/);
    return;
  }
  m.unacked.push(...recs.map((x) => ({ ...x, receivedAt })));
}

class AppendCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly recs: Rec[],
    readonly receivedAt: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    tryAppend(m, r, this.recs, this.receivedAt, false);
    checkInvariants(m, r);
  }
  toString = () => `append(${this.recs.map((x) => x.data.length).join(',')})`;
}

type FaultKind = 'rotation' | 'write' | 'short-write' | 'fsync' | 'enospc';
const faultRules: Record<FaultKind, FaultRule[]> = {
  rotation: [{ ops: ['open'], path: /\.seg$/, codes: ['EACCES', 'EMFILE', 'ENOSPC'] }],
  write: [{ ops: ['write'], path: /\.seg$/, codes: ['EIO'], times: 1 }],
  'short-write': [
    { ops: ['write'], path: /\.seg$/, codes: ['SHORT'], times: 1 },
    { ops: ['write'], path: /\.seg$/, codes: ['EIO'], times: 1 },
  ],
  fsync: [{ ops: ['fsync'], path: /\.seg$/, codes: ['EIO'], times: 1 }],
  enospc: [{ ops: ['write'], path: /\.seg$/, codes: ['ENOSPC'], times: 1 }],
};

class FaultyAppendCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly kind: FaultKind,
    readonly recs: Rec[],
    readonly receivedAt: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    // A rotation is forced by a record that does not fit in what is left of the segment.
    const recs =
      this.kind === 'rotation' ? [...this.recs, { data: Buffer.alloc(SEGMENT_BYTES, 7), truncated: false, receivedAt: 0 }] : this.recs;
    const faults = injectFaults(faultRules[this.kind], this.receivedAt);
    try {
      tryAppend(m, r, recs, this.receivedAt, true);
    } finally {
      faults.clear();
    }
    // A group fsync that failed is reported, not thrown.
    r.errors = r.errors.filter((e) => !(e.where === 'fsync' && e.code === 'EIO'));
    checkInvariants(m, r);
  }
  toString = () => `faultyAppend(${this.kind}, ${this.recs.map((x) => x.data.length).join(',')})`;
}

class ReadBatchCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly maxRecords: number,
    readonly maxBytes: number,
    readonly faulty: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    let b: QueueBatch;
    const faults = this.faulty
      ? injectFaults([{ ops: ['read', 'stat', 'open'], path: /\.seg$/, codes: ['EIO', 'EMFILE'] }], this.maxRecords)
      : null;
    try {
      b = r.q.readBatch(this.maxRecords, this.maxBytes);
    } catch (err) {
      expect(this.faulty).toBe(true);
      expect((err as Error).message).toMatch(/injected fault/);
      checkInvariants(m, r);
      return;
    } finally {
      faults?.clear();
    }
    const want = m.unacked.slice(m.handed, m.handed + b.count);
    expect(b.count).toBe(want.length);
    expect(b.count).toBeLessThanOrEqual(this.maxRecords);
    const got = b.records.map((x) => ({ data: Buffer.from(x.raw), truncated: x.flags === 1, receivedAt: x.receivedAt }));
    expect(got).toEqual(want);
    const bytes = want.reduce((n, x) => n + x.data.length, 0);
    expect(b.bytes).toBe(bytes);
    expect(b.diskBytes).toBe(diskBytes(want));
    if (b.count > 1) expect(bytes).toBeLessThanOrEqual(this.maxBytes);
    const next = m.unacked[m.handed + b.count];
    // It stops early only at a limit.
    if (next && b.count < this.maxRecords)
      expect(b.count > 0 && (bytes >= this.maxBytes || bytes + next.data.length > this.maxBytes)).toBe(true);
    m.handed += b.count;
    m.pending.push({ batch: b, count: b.count });
    checkInvariants(m, r);
  }
  toString = () => `readBatch(${this.maxRecords}, ${this.maxBytes}${this.faulty ? ', faulty' : ''})`;
}

class AckCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly faulty: boolean) {}
  check = (m: Readonly<Model>) => m.pending.length > 0;
  async run(m: Model, r: Real) {
    const { batch, count } = m.pending[0]!;
    if (this.faulty) {
      const faults = injectFaults([{ ops: ['write', 'open'], path: /cursor$/, codes: ['EIO', 'SHORT'] }], count + 1);
      let threw = false;
      try {
        r.q.ackTo(batch.end, batch.count, batch.diskBytes);
      } catch {
        threw = true;
      } finally {
        faults.clear();
      }
      if (threw) {
        checkInvariants(m, r);
        return;
      }
    } else {
      r.q.ackTo(batch.end, batch.count, batch.diskBytes);
    }
    m.pending.shift();
    m.unacked.splice(0, count);
    m.handed -= count;
    checkInvariants(m, r);
  }
  toString = () => `ack(${this.faulty ? 'faulty' : ''})`;
}

class RewindCmd implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    r.q.rewind();
    m.handed = 0;
    m.pending = [];
    checkInvariants(m, r);
  }
  toString = () => 'rewind';
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
}

/** Records of a segment file whose end lies past `cut`. */
function recordsEndingAfter(file: string, cut: number): number {
  const b = readFileSync(file);
  let n = 0;
  for (let p = 0; p + 10 <= b.length;) {
    const end = p + 10 + b.readUInt32LE(p + 2);
    if (end > cut) n++;
    p = end;
  }
  return n;
}

class ReopenCmd implements fc.AsyncCommand<Model, Real> {
  /** tear: cut the last segment at this fraction of its size while closed (a crash mid-write). */
  constructor(readonly tear: number | null) {}
  check = () => true;
  async run(m: Model, r: Real) {
    r.q.close();
    if (this.tear !== null) {
      const last = segmentFiles(r.dir).at(-1);
      if (last) {
        const file = join(r.dir, last);
        const size = readFileSync(file).length;
        const cut = Math.floor(size * this.tear);
        const lost = Math.min(recordsEndingAfter(file, cut), m.unacked.length);
        const fd = openSync(file, 'r+');
        ftruncateSync(fd, cut);
        closeSync(fd);
        m.unacked.splice(m.unacked.length - lost, lost);
      }
    }
    r.q = openQueue(r);
    expect(r.corruption.length).toBeLessThanOrEqual(this.tear === null ? 0 : 1);
    for (const e of r.corruption.splice(0)) expect(e.kind).toBe('torn-tail');
    m.handed = 0;
    m.pending = [];
    checkInvariants(m, r);
  }
  toString = () => (this.tear === null ? 'reopen' : `tornTail(${this.tear.toFixed(3)})`);
}

class TickCmd implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    // Lets the group fsync timer run (and finish) between operations.
    await new Promise((res) => setTimeout(res, 3));
    checkInvariants(m, r);
  }
  toString = () => 'tick';
}

const recArb: fc.Arbitrary<Rec> = fc.record({
  data: fc
    .oneof(
      { weight: 8, arbitrary: fc.uint8Array({ maxLength: 200 }) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1500, maxLength: 3000 }) },
    )
    .map((a) => Buffer.from(a)),
  truncated: fc.boolean(),
  receivedAt: fc.constant(0),
});
const recsArb = fc.array(recArb, { minLength: 1, maxLength: 8 });
const timeArb = fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 });

const commands = [
  fc.tuple(recsArb, timeArb).map(([recs, t]) => new AppendCmd(recs, t)),
  fc.tuple(recsArb, timeArb).map(([recs, t]) => new AppendCmd(recs, t)),
  fc
    .tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 8000 }), fc.boolean())
    .map(([n, b, f]) => new ReadBatchCmd(n, b, f && n % 3 === 0)),
  fc.tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 8000 })).map(([n, b]) => new ReadBatchCmd(n, b, false)),
  fc.boolean().map((f) => new AckCmd(f)),
  fc.constant(new AckCmd(false)),
  fc.constant(new RewindCmd()),
  fc.constant(new ReopenCmd(null)),
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }).map((t) => new ReopenCmd(t)),
  fc
    .tuple(fc.constantFrom<FaultKind>('rotation', 'write', 'short-write', 'fsync', 'enospc'), recsArb, timeArb)
    .map(([k, recs, t]) => new FaultyAppendCmd(k, recs, t)),
  fc.constant(new TickCmd()),
];

function openFdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const t = readlinkSync(`/proc/self/fd/${fd}`);
      if (t.startsWith(dir + '/')) out.push(t);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

describe('disk queue against a model', () => {
  it('matches the model over random operation sequences with faults, reopens and torn tails', async () => {
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0, 1), fc.commands(commands, { maxCommands: 60, size: 'max' }), async (fsyncIntervalMs, cmds) => {
        const dir = mkdtempSync(join(base, 'q-model-'));
        dirs.push(dir);
        const real: Real = { dir, fsyncIntervalMs, q: null as unknown as DiskQueue, corruption: [], errors: [] };
        real.q = openQueue(real);
        try {
          await fc.asyncModelRun(() => ({ model: { unacked: [], handed: 0, pending: [] }, real }), cmds);
        } finally {
          setFaultPlan(null);
          real.q.close();
        }
        // A group fsync still out closes its fd when it returns.
        for (let i = 0; i < 100 && openFdsUnder(dir).length; i++) await new Promise((res) => setTimeout(res, 5));
        expect(openFdsUnder(dir)).toEqual([]);
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: Number(process.env.QUEUE_MODEL_RUNS ?? 120) },
    );
  }, 60_000);
});
