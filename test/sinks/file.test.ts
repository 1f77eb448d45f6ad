import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { CslRow } from '../../src/parser/types.js';
import { createSink } from '../../src/sinks/index.js';
import type { PreparedRow, Sink } from '../../src/sinks/types.js';
import { setFaultPlan } from '../../src/util/fsio.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';

let faults: FaultController | null = null;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  faults?.clear();
  faults = null;
  setFaultPlan(null);
});

/** Rows with ids `from`..`to`-1, each about `size` bytes of JSON with escapes and non-ASCII text. */
function rows(from: number, to: number, size = 600): CslRow[] {
  const out: CslRow[] = [];
  for (let i = from; i < to; i++) out.push({ DeviceEventClassID: String(i), Message: `é\\"\n|${'x'.repeat(size)}`, EventCount: i });
  return out;
}

function prepared(sink: Sink, from: number, to: number, size?: number): PreparedRow[] {
  return sink.prepare!(rows(from, to, size));
}

/**
 * The invariants of the output: it ends with a newline, every line is valid JSON, and the ids are
 * exactly `expected` (each once; in that order when `ordered`).
 */
function checkOutput(path: string, expected: number[], ordered: boolean): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  if (text) expect(text.endsWith('\n'), 'file ends with a whole line').toBe(true);
  const lines = text.split('\n').slice(0, -1);
  const bad = lines.filter((l) => {
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
  expect(bad.length, `lines that are not JSON, e.g. ${bad[0]?.slice(0, 80)}`).toBe(0);
  const ids = lines.map((l) => Number((JSON.parse(l) as CslRow).DeviceEventClassID));
  if (ordered) expect(ids).toEqual(expected);
  else expect([...ids].sort((a, b) => a - b)).toEqual([...expected].sort((a, b) => a - b));
}

/** Sends like the delivery loop does: the same rows again after a retryable result, until accepted. */
async function sendUntilAccepted(sink: Sink, batch: PreparedRow[]): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const r = await sink.sendPrepared!(batch);
    if (r.status === 'success') return attempt;
    expect(r.status).toBe('retryable');
    await new Promise((res) => setTimeout(res, 1));
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('file sink', () => {
  it('creates the directory and appends one NDJSON line per row', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    dirs.push(dir);
    const path = join(dir, 'nested', 'deeper', 'out.ndjson');
    const sink = createSink({ type: 'file', path }, { fsync: true });
    expect(await sink.send([{ Activity: 'a', EventCount: 1 }, { Activity: 'b\nc' }])).toEqual({ status: 'success', accepted: 2 });
    expect(await sink.send([{ Activity: 'd' }])).toEqual({ status: 'success', accepted: 1 });
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.slice(0, 3).map((l) => JSON.parse(l).Activity)).toEqual(['a', 'b\nc', 'd']);
    expect(statSync(path).mode & 0o777).toBe(0o640);
  });

  it('ENOSPC → retryable (rows stay queued)', async () => {
    if (!existsSync('/dev/full')) return;
    const sink = createSink({ type: 'file', path: '/dev/full' });
    const r = await sink.send([{ Activity: 'x' }]);
    expect(r.status).toBe('retryable');
    expect((r as { error: string }).error).toMatch(/ENOSPC/);
  });

  it('a path that cannot be a file → retryable with a slow retry and the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    dirs.push(dir);
    const sink = createSink({ type: 'file', path: dir });
    const r = await sink.send([{ Activity: 'x' }]);
    expect(r).toMatchObject({ status: 'retryable', retryAfterMs: 30_000 });
    expect((r as { error: string }).error).toMatch(/EISDIR/);
  });

  it('concurrent batches over 512 KiB: every line whole JSON, every row once, in the order of the calls', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    dirs.push(dir);
    const path = join(dir, 'out.ndjson');
    const sink = createSink({ type: 'file', path });
    const per = 1500; // ~1 MB a batch: the runtime would split each append into several writes
    const batches = range(8).map((k) => prepared(sink, k * per, (k + 1) * per));
    const results = await Promise.all(batches.map((b) => sink.sendPrepared!(b)));
    expect(results.every((r) => r.status === 'success')).toBe(true);
    checkOutput(path, range(8 * per), true);
  });

  it.each([1, 2, 3, 4])(
    'faults at random points under concurrent batches (seed %i): every line whole JSON, every row exactly once',
    async (seed) => {
      const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
      dirs.push(dir);
      const path = join(dir, 'out.ndjson');
      const sink = createSink({ type: 'file', path }, { fsync: true });
      const per = 400;
      const batches = range(16).map((k) => prepared(sink, k * per, (k + 1) * per, 400));
      const onSink = /out\.ndjson$/;
      faults = injectFaults(
        [
          { ops: ['write'], path: onSink, codes: ['SHORT'], probability: 0.3 },
          { ops: ['write'], path: onSink, codes: ['ENOSPC', 'EIO'], probability: 0.15 },
          { ops: ['fsync'], path: onSink, codes: ['EIO'], probability: 0.2 },
          { ops: ['truncate'], path: onSink, codes: ['EIO', 'ENOSPC'], probability: 0.5 },
          { ops: ['close', 'stat'], path: onSink, codes: ['EIO'], probability: 0.1 },
          { ops: ['open'], path: onSink, codes: ['EMFILE', 'ENOSPC'], probability: 0.1 },
        ],
        seed,
      );
      const attempts = await Promise.all(batches.map((b) => sendUntilAccepted(sink, b)));
      faults.clear();
      await sink.close?.();
      const hit = (op: string) => [...faults!.hits].filter(([k]) => k.startsWith(`${op}:`)).reduce((n, [, v]) => n + v, 0);
      expect(hit('write') > 0 && hit('truncate') > 0, JSON.stringify([...faults.hits])).toBe(true);
      expect(
        attempts.some((a) => a > 1),
        'some appends failed',
      ).toBe(true);
      checkOutput(path, range(16 * per), false);
    },
  );

  it('a failed append removes only its own bytes, from the file it wrote to, after a rotation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    dirs.push(dir);
    const path = join(dir, 'out.ndjson');
    const sink = createSink({ type: 'file', path });
    await sendUntilAccepted(sink, prepared(sink, 0, 10));
    const before = readFileSync(path);
    let writes = 0;
    setFaultPlan((op) => {
      if (op !== 'write') return undefined;
      writes++;
      if (writes === 1) return { short: 1000 };
      // logrotate renames the file and a new one appears while the append is half done.
      renameSync(path, `${path}.1`);
      writeFileSync(path, '{"other":1}\n');
      return { code: 'ENOSPC' };
    });
    const r = await sink.sendPrepared!(prepared(sink, 10, 20));
    setFaultPlan(null);
    expect(r).toMatchObject({ status: 'retryable', error: expect.stringMatching(/ENOSPC/) });
    expect(readFileSync(`${path}.1`)).toEqual(before);
    expect(readFileSync(path, 'utf8')).toBe('{"other":1}\n');
  });

  it('when the partial bytes cannot be removed, nothing is appended until they are, and no row is lost or doubled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    dirs.push(dir);
    const path = join(dir, 'out.ndjson');
    const sink = createSink({ type: 'file', path });
    await sendUntilAccepted(sink, prepared(sink, 0, 10));
    let writes = 0;
    let truncates = 0;
    setFaultPlan((op) => {
      if (op === 'write' && ++writes <= 2) return writes === 1 ? { short: 700 } : { code: 'ENOSPC' };
      if (op === 'truncate' && ++truncates <= 2) return { code: 'EIO' };
      return undefined;
    });
    const b = prepared(sink, 10, 20);
    const c = prepared(sink, 20, 30);
    expect((await sink.sendPrepared!(b)).status).toBe('retryable'); // 700 bytes of b stay: truncate failed
    expect(await sink.sendPrepared!(c)).toMatchObject({ status: 'retryable', error: expect.stringMatching(/partial append.*EIO/) });
    expect(await sink.sendPrepared!(c)).toEqual({ status: 'success', accepted: 10 });
    expect(await sink.sendPrepared!(b)).toEqual({ status: 'success', accepted: 10 });
    expect(truncates).toBe(3);
    checkOutput(path, [...range(10), ...range(10).map((i) => 20 + i), ...range(10).map((i) => 10 + i)], true);
  });

  it('write complete but fsync failed: the rows are removed and the retry writes them once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    dirs.push(dir);
    const path = join(dir, 'out.ndjson');
    const sink = createSink({ type: 'file', path }, { fsync: true });
    faults = injectFaults([{ ops: ['fsync'], codes: ['EIO'], times: 1 }]);
    const b = prepared(sink, 0, 10);
    expect(await sink.sendPrepared!(b)).toMatchObject({ status: 'retryable', error: expect.stringMatching(/EIO/) });
    expect(await sink.sendPrepared!(b)).toEqual({ status: 'success', accepted: 10 });
    checkOutput(path, range(10), true);
  });

  it('write complete but close failed: accepted, so the rows are not written twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    dirs.push(dir);
    const path = join(dir, 'out.ndjson');
    const sink = createSink({ type: 'file', path });
    faults = injectFaults([{ ops: ['close'], codes: ['EIO'], times: 1 }]);
    expect(await sink.sendPrepared!(prepared(sink, 0, 10))).toEqual({ status: 'success', accepted: 10 });
    checkOutput(path, range(10), true);
  });

  it.each([10, 100_000])(
    'a line cut by a crash (%i bytes) is removed before the next append, so no row is glued to it',
    async (partial) => {
      const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
      dirs.push(dir);
      const path = join(dir, 'out.ndjson');
      const sink = createSink({ type: 'file', path });
      await sendUntilAccepted(sink, prepared(sink, 0, 10));
      // kill -9 in the middle of an append: part of a row, no newline.
      appendFileSync(path, `{"DeviceEventClassID":"10","Message":"${'y'.repeat(partial)}`);
      await sendUntilAccepted(sink, prepared(sink, 10, 20));
      checkOutput(path, range(20), true);
    },
  );
});
