/**
 * The disk queue under failing file calls (issue 13 defect 3): a rotation whose new segment cannot be
 * opened (EACCES on a `chmod 500` directory, EMFILE, ENOSPC), and failed writes, fsyncs, truncates,
 * cursor writes, unlinks, reads and closes. The driver behaves like the forwarder: intake keeps a
 * refused append and retries it first (as Intake.hold/retryDisk do), delivery rewinds after a failed
 * read and retries a failed acknowledgement (as DeliveryLoop/mustSucceed do). Invariants: no call but
 * append/readBatch/ackTo throws, every accepted message is delivered exactly once and in order, the
 * counters match, no fd is closed twice (EBADF) or left open, and the queue never names a segment
 * file that does not exist.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskQueue } from '../../src/forwarder/disk-queue.js';
import { injectFaults, prng, type FaultController, type FaultRule } from '../helpers/faults.js';

let faults: FaultController | null = null;
const dirs: string[] = [];
afterEach(() => {
  faults?.clear();
  faults = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** On tmpfs where there is one: the faults are injected, and a real fsync per append only makes the test slow. */
function tempDir(): string {
  const d = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'q-faults-'));
  dirs.push(d);
  return d;
}

/** fds of this process open on files under dir. */
function openFdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + '/')) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Segment numbers the queue believes exist. */
const queueSegments = (q: DiskQueue): number[] => (q as unknown as { segments: number[] }).segments;
const segmentFile = (n: number) => `${String(n).padStart(16, '0')}.seg`;

interface Run {
  accepted: string[];
  delivered: string[];
  errors: Array<{ where: string; code?: string }>;
  appendFailures: number;
}

/** Runs intake and delivery against the queue for `steps` rounds while `faults` is active, then heals and drains. */
async function drive(q: DiskQueue, dir: string, steps: number, seed: number, errors: Run['errors']): Promise<Run> {
  const rand = prng(seed);
  const accepted: string[] = [];
  const delivered: string[] = [];
  const held: Array<Array<{ data: Buffer; truncated: boolean }>> = [];
  let n = 0;
  let appendFailures = 0;
  const intake = () => {
    while (held.length) {
      try {
        q.append(held[0]!, 1_700_000_000_000 + n);
      } catch {
        appendFailures++;
        return;
      }
      for (const m of held.shift()!) accepted.push(m.data.toString());
    }
  };
  const deliver = (): boolean => {
    let b;
    try {
      b = q.readBatch(1 + Math.floor(rand() * 40), 1 << 20);
    } catch {
      q.rewind();
      return false;
    }
    if (rand() < 0.15) {
      // The sink failed: the batch is read again from the cursor.
      q.rewind();
      return false;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        q.ackTo(b.end, b.count, b.diskBytes);
        break;
      } catch (err) {
        if (attempt > 200) throw err;
      }
    }
    for (const r of b.records) delivered.push(`${r.raw.toString()}|${r.flags}`);
    return b.count > 0;
  };
  const check = () => {
    expect(q.records).toBe(accepted.length - delivered.length);
    const files = new Set(readdirSync(dir));
    for (const s of queueSegments(q)) expect(files.has(segmentFile(s)), `segment ${s} is listed but has no file`).toBe(true);
  };
  for (let step = 0; step < steps; step++) {
    const batch = Array.from({ length: 1 + Math.floor(rand() * 20) }, () => {
      const i = n++;
      return { data: Buffer.from(`msg ${i} ${'x'.repeat(Math.floor(rand() * 300))}`), truncated: i % 5 === 0 };
    });
    held.push(batch);
    intake();
    if (rand() < 0.6) deliver();
    check();
    if (step % 25 === 0) await new Promise((r) => setTimeout(r, 2));
  }
  faults?.pause();
  intake();
  expect(held).toEqual([]);
  while (q.unread) deliver();
  deliver();
  check();
  expect(q.records).toBe(0);
  expect(q.bytes).toBe(0);
  return { accepted, delivered, errors, appendFailures };
}

function openQueue(dir: string, errors: Run['errors'], fsyncIntervalMs: number) {
  const q = new DiskQueue({
    dir,
    maxBytes: 1 << 30,
    segmentBytes: 4096,
    fsyncIntervalMs,
    onError: (err, where) => errors.push({ where, code: (err as NodeJS.ErrnoException).code }),
    onCorruption: (e) => errors.push({ where: `corruption ${e.kind}` }),
  });
  q.open();
  return q;
}

const withFlags = (accepted: string[]) => accepted.map((m) => `${m}|${Number(m.split(' ')[1]) % 5 === 0 ? 1 : 0}`);

const queueDir = /q-faults-/;
const cases: Array<{ name: string; rules: FaultRule[]; fsyncIntervalMs: number; seed: number }> = [
  {
    name: 'rotation: the new segment cannot be created (EACCES, as on a chmod 500 directory)',
    rules: [{ ops: ['open'], path: /\.seg$/, codes: ['EACCES'], probability: 0.7 }],
    fsyncIntervalMs: 0,
    seed: 1,
  },
  {
    name: 'rotation: EMFILE / ENOSPC on open, group fsync on',
    rules: [{ ops: ['open'], path: /\.seg$/, codes: ['EMFILE', 'ENOSPC'], probability: 0.5 }],
    fsyncIntervalMs: 1,
    seed: 2,
  },
  {
    name: 'fsync on every append fails (EIO)',
    rules: [{ ops: ['fsync'], path: queueDir, codes: ['EIO'], probability: 0.2 }],
    fsyncIntervalMs: 0,
    seed: 3,
  },
  {
    name: 'cursor writes fail (EIO, short)',
    rules: [{ ops: ['write', 'open'], path: /cursor$/, codes: ['EIO', 'SHORT', 'EMFILE'], probability: 0.3 }],
    fsyncIntervalMs: 0,
    seed: 4,
  },
  {
    name: 'reads fail (EIO, EMFILE on the reader open)',
    rules: [
      { ops: ['read', 'stat'], path: queueDir, codes: ['EIO'], probability: 0.1 },
      { ops: ['open'], path: /\.seg$/, codes: ['EMFILE'], probability: 0.2 },
    ],
    fsyncIntervalMs: 0,
    seed: 5,
  },
  {
    name: 'unlink and close fail',
    rules: [{ ops: ['unlink', 'close'], path: queueDir, codes: ['EIO', 'EACCES'], probability: 0.4 }],
    fsyncIntervalMs: 0,
    seed: 6,
  },
  {
    name: 'every call may fail (writes also short, truncates too)',
    rules: [
      {
        ops: ['open', 'write', 'fsync', 'truncate', 'close', 'read', 'stat', 'unlink'],
        path: queueDir,
        codes: ['EIO', 'ENOSPC', 'EACCES', 'EMFILE', 'SHORT'],
        probability: 0.08,
      },
    ],
    fsyncIntervalMs: 0,
    seed: 7,
  },
  {
    name: 'every call may fail, group fsync on',
    rules: [
      {
        ops: ['open', 'write', 'fsync', 'truncate', 'close', 'read', 'stat', 'unlink'],
        path: queueDir,
        codes: ['EIO', 'ENOSPC', 'EACCES', 'EMFILE', 'SHORT'],
        probability: 0.08,
      },
    ],
    fsyncIntervalMs: 1,
    seed: 8,
  },
];

describe('disk queue under failing file calls', () => {
  it.each(cases)(
    '$name: every accepted message exactly once, in order; no fd closed twice or leaked',
    async ({ rules, fsyncIntervalMs, seed }) => {
      const dir = tempDir();
      const errors: Run['errors'] = [];
      const q = openQueue(dir, errors, fsyncIntervalMs);
      faults = injectFaults(rules, seed);
      const run = await drive(q, dir, 400, seed, errors);
      expect(faults.total).toBeGreaterThan(0);
      expect(run.delivered).toEqual(withFlags(run.accepted));
      expect(run.accepted.length).toBeGreaterThan(1000);
      expect(errors.filter((e) => e.code === 'EBADF')).toEqual([]);
      expect(errors.filter((e) => e.where.startsWith('corruption'))).toEqual([]);
      q.close();
      faults.clear();
      await expect.poll(() => openFdsUnder(dir), { timeout: 5000 }).toEqual([]);
      // Nothing delivered comes back after a restart.
      const again = openQueue(dir, errors, 0);
      expect(again.records).toBe(0);
      expect(again.readBatch(100, 1 << 20).count).toBe(0);
      again.close();
    },
  );

  it('a rotation refused by the directory leaves the queue as it was, and the retried append succeeds once it is writable', () => {
    const dir = tempDir();
    const errors: Run['errors'] = [];
    const q = openQueue(dir, errors, 0);
    const big = (i: number) => [{ data: Buffer.alloc(3000, 48 + (i % 10)), truncated: false }];
    q.append(big(0), 1);
    const before = readdirSync(dir).sort();
    faults = injectFaults([{ ops: ['open'], path: /\.seg$/, codes: ['EACCES'] }]);
    for (let i = 0; i < 3; i++) expect(() => q.append(big(1), 2)).toThrow(/EACCES/);
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(q.records).toBe(1);
    // Delivery keeps reading what is queued (the directory refuses new files, not reads).
    faults.pause();
    const b = q.readBatch(10, 1 << 20);
    faults.resume();
    expect(b.count).toBe(1);
    q.rewind();
    expect(() => q.append(big(1), 2)).toThrow(/EACCES/);
    faults.clear();
    q.append(big(1), 2);
    const all = q.readBatch(10, 1 << 20);
    expect(all.records.map((r) => r.raw[0])).toEqual([48, 49]);
    q.ackTo(all.end, all.count, all.diskBytes);
    q.close();
    expect(errors).toEqual([]);
    expect(openFdsUnder(dir)).toEqual([]);
  });
});

/**
 * The same as the brief's trial, for real: the queue directory made `chmod 500` under load. Root
 * ignores directory permissions, so the scenario runs as `nobody` (via setpriv) in a child process.
 */
const canDropPrivileges = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');
describe.skipIf(!canDropPrivileges)('disk queue in a directory that is chmod 500 for a while (as nobody)', () => {
  it('pauses appends while the directory refuses new segments and loses nothing', () => {
    const root = tempDir();
    chownSync(root, 65534, 65534);
    const dir = join(root, 'queue');
    const script = join(root, 'scenario.ts');
    const queueModule = resolve('src/forwarder/disk-queue.ts');
    writeFileSync(
      script,
      `
import { chmodSync } from 'node:fs';
import { DiskQueue } from ${JSON.stringify(queueModule)};
const dir = ${JSON.stringify(dir)};
const errors = [];
const q = new DiskQueue({ dir, maxBytes: 1 << 30, segmentBytes: 4096, fsyncIntervalMs: 0, onError: (e, w) => errors.push(w + ': ' + e.code) });
q.open();
const accepted = [], delivered = [], held = [];
let n = 0, refused = 0;
const intake = () => { while (held.length) { try { q.append(held[0], 1); } catch (e) { refused++; if (e.code !== 'EACCES') throw e; return; } accepted.push(...held.shift()); } };
const deliver = () => { let b; try { b = q.readBatch(25, 1 << 20); } catch { q.rewind(); return; } q.ackTo(b.end, b.count, b.diskBytes); for (const r of b.records) delivered.push(r.raw.toString()); };
for (let step = 0; step < 300; step++) {
  if (step === 100) chmodSync(dir, 0o500);
  if (step === 200) chmodSync(dir, 0o700);
  held.push(Array.from({ length: 5 }, () => ({ data: Buffer.from('m' + n++ + ' ' + 'x'.repeat(100)), truncated: false })));
  intake();
  // The sink is down while the directory is read-only; nothing is acknowledged then.
  if (step < 90 || step >= 200) deliver(); else if (step % 7 === 0) { try { q.readBatch(25, 1 << 20); } catch {} q.rewind(); }
}
intake();
while (q.unread) deliver();
q.close();
console.log(JSON.stringify({ accepted: accepted.map((m) => m.data.toString()), delivered, refused, held: held.length, errors, records: q.records }));
`,
    );
    chownSync(script, 65534, 65534);
    const tsx = resolve('node_modules/.bin/tsx');
    const out = execFileSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', tsx, script], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, TMPDIR: root },
    });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      accepted: string[];
      delivered: string[];
      refused: number;
      held: number;
      errors: string[];
      records: number;
    };
    expect(r.refused).toBeGreaterThan(0);
    expect(r.held).toBe(0);
    expect(r.accepted).toHaveLength(1500);
    expect(r.delivered).toEqual(r.accepted);
    expect(r.errors.filter((e) => e.includes('EBADF'))).toEqual([]);
    expect(r.records).toBe(0);
  });
});
