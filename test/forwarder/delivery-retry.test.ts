import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthHold } from '../../src/forwarder/delivery/auth-hold.js';
import { BatchProcessor } from '../../src/forwarder/delivery/batch-processor.js';
import { sendRows, type DeliveryEffects, type RowOutcome } from '../../src/forwarder/delivery/send.js';
import type { CslRow } from '../../src/parser/types.js';
import type { SendResult } from '../../src/sinks/types.js';
import { FakeSink, cef, fakeClock, silent } from './helpers.js';

const effects: DeliveryEffects = {
  retried() {},
  lastDelivery() {},
  backgroundError() {},
  sinkDuration() {},
  probeFailed() {},
  probeDeadLettered() {},
};

function processor(sink: FakeSink, over: Partial<ConstructorParameters<typeof BatchProcessor>[0]> = {}) {
  const written: unknown[] = [];
  const p = new BatchProcessor({
    sink,
    deadLetter: { write: (e: unknown[]) => written.push(...e) } as never,
    logger: silent,
    effects,
    parallelSends: 1,
    retry: { initialMs: 10, maxMs: 100 },
    maxMessageBytes: 65536,
    random: () => 0.5,
    ...over,
  });
  return { p, written };
}

const records = (n: number) => Array.from({ length: n }, (_, i) => ({ receivedAt: Date.now(), flags: 0, raw: Buffer.from(cef(i)) }));

afterEach(() => {
  vi.useRealTimers();
});

describe('delivery retries on fake timers', () => {
  it('resends a retryable batch exactly when Retry-After has passed, not a millisecond before', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const sink = new FakeSink();
    sink.script = [() => ({ status: 'retryable', error: 'HTTP 429', httpStatus: 429, retryAfterMs: 300 })];
    const { p } = processor(sink);
    const prepared = await p.prepare(records(3));
    const done = p.deliver(prepared, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(sink.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(299);
    expect(sink.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sink.sent).toHaveLength(2);
    expect((await done).deliveredAt).toHaveLength(3);
  });

  it('backs off exponentially up to retry.maxMs (full jitter, never below half the step)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const sink = new FakeSink();
    sink.script = Array.from({ length: 6 }, () => () => ({ status: 'retryable' as const, error: 'socket hang up' }));
    const { p } = processor(sink);
    const done = p.deliver(await p.prepare(records(1)), new AbortController().signal);
    // random 0.5: three quarters of min(maxMs, initialMs * 2^attempt).
    const gaps = [8, 15, 30, 60, 75, 75];
    await vi.advanceTimersByTimeAsync(0);
    for (const [k, gap] of gaps.entries()) {
      await vi.advanceTimersByTimeAsync(gap - 1);
      expect(sink.sent).toHaveLength(k + 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(sink.sent).toHaveLength(k + 2);
    }
    expect((await done).deliveredAt).toHaveLength(1);
  });

  it('waits on the injected sleep, not on timers', async () => {
    const clock = fakeClock();
    const sink = new FakeSink();
    sink.script = [
      () => ({ status: 'retryable', error: 'HTTP 503', httpStatus: 503, retryAfterMs: 60_000 }),
      () => ({ status: 'retryable', error: 'down' }),
    ];
    const { p } = processor(sink, { sleep: clock.sleep });
    const t0 = Date.now();
    const report = await p.deliver(await p.prepare(records(2)), new AbortController().signal);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(clock.waits).toEqual([60_000, 15]);
    expect(report.deliveredAt).toHaveLength(2);
  });

  it('holds rows refused authorization for authFailureMaxMs of the monotonic clock, then dead-letters them once each', async () => {
    const clock = fakeClock();
    const sink = new FakeSink();
    sink.script = Array.from({ length: 1000 }, () => () => ({
      status: 'retryable' as const,
      error: 'HTTP 403',
      httpStatus: 403,
      auth: { hint: 'role missing' },
    }));
    const { p, written } = processor(sink, { sleep: clock.sleep, monotonic: clock.now, authFailureMaxMs: 1000 });
    const report = await p.deliver(await p.prepare(records(4)), new AbortController().signal);
    expect(clock.now()).toBeGreaterThanOrEqual(1000);
    expect(clock.now() - clock.waits.at(-1)!).toBeLessThan(1000);
    expect(report.deliveredAt).toHaveLength(0);
    expect(report.deadReasons).toEqual([['auth_failure', 4]]);
    expect(written).toHaveLength(4);
  });
});

/** Small seeded PRNG (mulberry32): the random cases repeat run to run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('sendRows: per-row outcome', () => {
  it('over random sink answers, every row ends exactly once: accepted by the sink, or refused and named', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(seed);
      const rows: CslRow[] = Array.from({ length: 1 + Math.floor(rnd() * 12) }, (_, i) => ({ DeviceEventClassID: String(i) }) as CslRow);
      const acceptedBy = new Map<CslRow, number>();
      const accept = (r: CslRow) => acceptedBy.set(r, (acceptedBy.get(r) ?? 0) + 1);
      let calls = 0;
      const send = async (pending: CslRow[]): Promise<SendResult> => {
        const pick = () => pending.filter(() => rnd() < 0.3);
        const roll = calls++ > 8 ? 0 : rnd();
        if (roll < 0.3) {
          pending.forEach(accept);
          return { status: 'success', accepted: pending.length, truncated: pick().map((row) => ({ row, reason: 'cut' })) };
        }
        if (roll < 0.5) {
          const rejected = pick();
          pending.filter((r) => !rejected.includes(r)).forEach(accept);
          return {
            status: 'partial',
            accepted: pending.length - rejected.length,
            rejected: rejected.map((row) => ({ row, reason: 'bad' })),
          };
        }
        if (roll < 0.6) return { status: 'failure', error: 'HTTP 400', httpStatus: 400 };
        if (roll < 0.8) {
          // Part settled before the error: some accepted, some refused, the rest pending.
          const done = pick();
          const rejected = done.filter(() => rnd() < 0.5);
          done.filter((r) => !rejected.includes(r)).forEach(accept);
          return {
            status: 'retryable',
            error: 'HTTP 500',
            progress: {
              accepted: done.length - rejected.length,
              rejected: rejected.map((row) => ({ row, reason: 'bad' })),
              pending: pending.filter((r) => !done.includes(r)),
            },
          };
        }
        return { status: 'retryable', error: 'socket hang up' };
      };
      const auth = new AuthHold({ sink: 'fake', logger: silent, maxMs: 60_000, now: () => 0 });
      const clock = fakeClock();
      const out: RowOutcome<CslRow>[] = await sendRows(rows, {
        sinkName: 'fake',
        send,
        effects,
        logger: silent,
        auth,
        backoff: () => 1,
        sleep: clock.sleep,
        signal: new AbortController().signal,
      });
      const refused = out.filter((o) => o.refused);
      for (const r of rows) {
        const times = (acceptedBy.get(r) ?? 0) + refused.filter((o) => o.row === r).length;
        expect(times, `seed ${seed}, row ${r.DeviceEventClassID}`).toBe(1);
      }
      // Truncation notes only for rows the sink accepted.
      for (const o of out.filter((x) => !x.refused)) expect(acceptedBy.get(o.row)).toBe(1);
    }
  });
});
