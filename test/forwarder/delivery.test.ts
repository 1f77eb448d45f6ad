import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder, type ForwarderDeps, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { truncatedMarker } from '../../src/forwarder/delivery/prepare.js';
import { sendSyslog } from '../../src/forwarder/send-test.js';
import { FakeSink, PreparingFakeSink, cef, fakeClock, makeConfig, readNdjson, silent, tempDir, waitFor } from './helpers.js';

let fwd: RunningForwarder | null = null;
afterEach(async () => {
  await fwd?.shutdown();
  fwd = null;
});

async function start(sink: FakeSink, over: Record<string, unknown> = {}, deps: ForwarderDeps = {}) {
  const dir = tempDir();
  const config = makeConfig(dir, { listen: ['tcp://127.0.0.1:0'], admin: false, ...over });
  fwd = await startForwarder(config, { logger: silent, sink, random: () => 0.5, ...deps });
  const port = fwd.addresses[0].port;
  const send = (lines: string[]) => sendSyslog(lines, { host: '127.0.0.1', port, protocol: 'tcp' });
  return { dir, config, send, f: fwd };
}

const seqOf = (row: Record<string, unknown>) => Number(row.DeviceEventClassID);

describe('delivery loop', () => {
  it('retries a retryable batch, never before retryAfterMs, then delivers every row once', async () => {
    const sink = new FakeSink();
    sink.script = [
      () => ({ status: 'retryable', error: 'HTTP 503', httpStatus: 503, retryAfterMs: 300 }),
      () => ({ status: 'retryable', error: 'socket hang up' }),
    ];
    // On the fake clock: the waits are the delays delivery chose, not real time.
    const clock = fakeClock();
    const sendAt: number[] = [];
    const sendFn = sink.send.bind(sink);
    sink.send = (rows) => {
      sendAt.push(clock.now());
      return sendFn(rows);
    };
    const { send, f } = await start(sink, {}, { sleep: clock.sleep, monotonic: clock.now });
    await send(Array.from({ length: 20 }, (_, i) => cef(i)));
    await waitFor(() => sink.accepted.length === 20, 5000, 'delivery');
    expect(sink.sent.length).toBe(3);
    expect(sink.sent[1]).toEqual(sink.sent[0]);
    // Retry-After 300 ms outweighs the 8 ms backoff; then the backoff of the second attempt (15 ms at random 0.5).
    expect(clock.waits).toEqual([300, 15]);
    expect(sendAt).toEqual([0, 300, 315]);
    const h = f.health();
    expect(h.counters).toMatchObject({ received: 20, delivered: 20, retried: 2, deadLettered: 0 });
    expect(h.lastDelivery?.ok).toBe(true);
    const metrics = await f.metrics.registry.metrics();
    expect(metrics).toMatch(/sentinel_cef_retried_total\{reason="503"\} 1/);
    expect(metrics).toMatch(/sentinel_cef_sink_request_duration_seconds_count\{sink="fake",result="retryable"\} 2/);
  });

  it('dead-letters the rows a partial result refuses and delivers the rest', async () => {
    const sink = new FakeSink();
    sink.script = [
      (rows) => ({
        status: 'partial',
        accepted: rows.length - 2,
        rejected: rows.slice(0, 2).map((row) => ({ row, reason: 'row too large' })),
      }),
    ];
    const { send, f } = await start(sink);
    await send(Array.from({ length: 10 }, (_, i) => cef(i)));
    await waitFor(() => f.health().counters.delivered + f.health().counters.deadLettered === 10, 5000);
    const dl = readNdjson(f.deadLetterFile);
    expect(dl).toHaveLength(2);
    expect(dl[0]).toMatchObject({ reason: 'row too large', row: { DeviceVendor: 'Acme' } });
    expect(typeof dl[0].time).toBe('string');
    expect(sink.accepted).toHaveLength(8);
  });

  it('dead-letters a whole batch on failure with the reason and HTTP status, and moves on', async () => {
    const sink = new FakeSink();
    sink.script = [() => ({ status: 'failure', error: 'HTTP 403: forbidden', httpStatus: 403 })];
    const { send, f } = await start(sink);
    await send([cef(1), cef(2)]);
    await waitFor(() => f.health().counters.deadLettered === 2, 5000);
    await send([cef(3)]);
    await waitFor(() => sink.accepted.length === 1, 5000);
    expect(readNdjson(f.deadLetterFile).map((e) => [e.reason, e.httpStatus, seqOf(e.row as Record<string, unknown>)])).toEqual([
      ['HTTP 403: forbidden', 403, 1],
      ['HTTP 403: forbidden', 403, 2],
    ]);
    expect(f.health().lastDelivery).toMatchObject({ ok: true });
  });

  it('resends only the pending rows after a retryable result with progress; keeps truncated originals', async () => {
    const sink = new FakeSink();
    sink.script = [
      (rows) => ({
        status: 'retryable',
        error: 'HTTP 503 on call 2 of 2',
        httpStatus: 503,
        progress: {
          accepted: 5,
          rejected: [{ row: rows[5], reason: 'field type' }],
          pending: rows.slice(6),
          truncated: [{ row: rows[0], reason: 'Message:32766' }],
        },
      }),
    ];
    const { send, f } = await start(sink);
    await send(Array.from({ length: 10 }, (_, i) => cef(i)));
    await waitFor(() => f.health().counters.delivered === 9, 5000);
    expect(sink.sent.map((b) => b.length)).toEqual([10, 4]);
    expect(sink.sent[1].map(seqOf)).toEqual([6, 7, 8, 9]);
    const dl = readNdjson(f.deadLetterFile);
    expect(dl.map((e) => [e.reason, e.accepted ?? false, seqOf(e.row as Record<string, unknown>)])).toEqual([
      ['field type', false, 5],
      ['accepted truncated: Message:32766', true, 0],
    ]);
    expect(f.health().counters.deadLettered).toBe(1);
    expect(await f.metrics.registry.metrics()).toMatch(/sentinel_cef_sink_truncated_total 1/);
  });

  it('with a preparing sink keeps only serialized rows, sends the truncated JSON, dead-letters full rows read back from it, resends only pending rows', async () => {
    // A 40-byte field limit truncates the long Message of row 0.
    const sink = new PreparingFakeSink(40);
    sink.script = [
      (rows) => ({
        status: 'retryable',
        error: 'HTTP 503 on call 2 of 2',
        httpStatus: 503,
        progress: { accepted: 5, rejected: [{ row: rows[5], reason: 'field type' }], pending: rows.slice(6) },
      }),
    ];
    const { send, f } = await start(sink);
    await send(Array.from({ length: 10 }, (_, i) => cef(i, i === 0 ? `msg=${'m'.repeat(60)}` : '')));
    await waitFor(() => f.health().counters.delivered === 9, 5000);
    expect(sink.preparedSends).toBe(2);
    expect(sink.sent.map((b) => b.length)).toEqual([10, 4]);
    expect(sink.sent[1].map(seqOf)).toEqual([6, 7, 8, 9]);
    // What went out for row 0 is the truncated JSON; the dead-letter file keeps the parsed row in full.
    expect(String(sink.sent[0][0].Message)).toHaveLength(40);
    const dl = readNdjson(f.deadLetterFile);
    expect(dl.map((e) => [e.reason, seqOf(e.row as Record<string, unknown>)])).toEqual([['field type', 5]]);
    expect(dl[0].row).toMatchObject({ DeviceVendor: 'Acme', DeviceEventClassID: '5' });
  });

  it('with a preparing sink reports probes accepted and dead-lettered by position', async () => {
    const sink = new PreparingFakeSink();
    sink.script = [
      (rows) => ({
        status: 'partial',
        accepted: rows.length - 1,
        rejected: [{ row: rows.find((r) => r.DeviceCustomString2 === 'p-bad')!, reason: 'poison' }],
      }),
    ];
    const { send, f } = await start(sink);
    const probe = (id: string) =>
      `<134>Nov 22 08:00:00 fw1 CEF:0|TestCommonEventFormat|sentinel-cef|1.0|probe|probe|3|cs2Label=ProbeId cs2=${id}`;
    await send([cef(1), probe('p-ok'), cef(2), probe('p-bad')]);
    await waitFor(() => f.health().counters.delivered === 3, 5000);
    expect(f.probe('p-ok')).toMatchObject({ received: true, accepted: true });
    expect(f.probe('p-bad')).toMatchObject({ received: true, accepted: false, deadLettered: true });
    expect(f.probe('p-bad').error).toContain('poison');
  });

  it('sends one batch as parallel slices; a failing slice is retried alone', async () => {
    const sink = new FakeSink();
    let inFlight = 0;
    let maxInFlight = 0;
    let failedOnce = false;
    const send = sink.send.bind(sink);
    sink.send = async (rows) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      if (!failedOnce && rows.some((r) => r.DeviceEventClassID === '900')) {
        failedOnce = true;
        sink.script.unshift(() => ({ status: 'retryable', error: 'HTTP 500', httpStatus: 500 }));
      }
      return send(rows);
    };
    const { send: sendLines, f } = await start(sink, { batch: { maxRecords: 1000, parallelSends: 4, inFlight: 1, flushMs: 200 } });
    await sendLines(Array.from({ length: 1000 }, (_, i) => cef(i)));
    await waitFor(() => f.health().counters.delivered === 1000, 5000);
    expect(maxInFlight).toBe(4);
    expect(sink.accepted.map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(f.health().counters.retried).toBe(1);
  });

  it('with two batches in flight, moves the cursor over them only in order', async () => {
    const sink = new FakeSink();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const send = sink.send.bind(sink);
    // The first batch (rows 0..9) is held at the sink; the second is accepted at once.
    sink.send = async (rows) => {
      if (rows.some((r) => seqOf(r) === 0)) await held;
      return send(rows);
    };
    const { send: sendLines, f } = await start(sink, { batch: { maxRecords: 10, maxBytes: 1 << 20, flushMs: 10, inFlight: 2 } });
    await sendLines(Array.from({ length: 10 }, (_, i) => cef(i)));
    await waitFor(() => sink.sent.length === 0 && f.health().queue.records === 10, 5000, 'first batch held');
    await sendLines(Array.from({ length: 10 }, (_, i) => cef(10 + i)));
    await waitFor(() => sink.accepted.length === 10, 5000, 'second batch accepted by the sink');
    // Accepted, but not counted and still queued: the cursor cannot pass the held first batch.
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.accepted.map(seqOf)).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));
    expect(f.health().counters.delivered).toBe(0);
    expect(f.health().queue.records).toBe(20);
    release();
    await waitFor(() => f.health().counters.delivered === 20 && f.health().queue.records === 0, 5000, 'both acknowledged');
  });

  it('treats a sink that throws as retryable and counts it', async () => {
    const sink = new FakeSink();
    sink.script = [
      () => {
        throw new Error('boom');
      },
    ];
    const { send, f } = await start(sink);
    await send([cef(1)]);
    await waitFor(() => sink.accepted.length === 1, 5000);
    expect(f.health().counters.retried).toBe(1);
  });

  it('keeps unparseable lines in the dead-letter file with the raw text', async () => {
    const sink = new FakeSink();
    const { send, f } = await start(sink);
    await send(['<13>Nov 22 08:00:00 host sshd[1]: not a CEF line', cef(1)]);
    await waitFor(() => sink.accepted.length === 1 && f.health().counters.parseFailures === 1, 5000);
    const dl = readNdjson(f.deadLetterFile);
    expect(dl).toEqual([
      expect.objectContaining({ reason: expect.stringMatching(/^parse failure/), raw: '<13>Nov 22 08:00:00 host sshd[1]: not a CEF line' }),
    ]);
  });

  it('batches by record count', async () => {
    const sink = new FakeSink();
    const { send } = await start(sink, { batch: { maxRecords: 7, maxBytes: 1 << 20, flushMs: 10 } });
    await send(Array.from({ length: 30 }, (_, i) => cef(i)));
    await waitFor(() => sink.accepted.length === 30, 5000);
    expect(Math.max(...sink.sent.map((b) => b.length))).toBeLessThanOrEqual(7);
    expect(sink.accepted.map((r) => Number(r.DeviceEventClassID))).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('flags truncated messages in AdditionalExtensions', async () => {
    const sink = new FakeSink();
    const { send, f } = await start(sink, { limits: { maxMessageBytes: 200 } });
    await send([cef(1, `msg=${'z'.repeat(500)}`)]);
    await waitFor(() => sink.accepted.length === 1, 5000);
    expect(String(sink.accepted[0].AdditionalExtensions)).toContain(truncatedMarker(200));
    expect(f.metrics.totals.truncated).toBe(1);
  });

  it('on shutdown leaves undelivered events queued for the next start', async () => {
    const sink = new FakeSink();
    sink.script = Array.from({ length: 1000 }, () => () => ({ status: 'retryable' as const, error: 'down' }));
    const { send, f, config } = await start(sink, { drainTimeoutSec: 0.2 });
    await send([cef(1), cef(2)]);
    await waitFor(() => sink.sent.length > 0, 5000);
    await f.shutdown();
    await f.shutdown(); // idempotent
    fwd = null;
    const sink2 = new FakeSink();
    fwd = await startForwarder(config, { logger: silent, sink: sink2 });
    await waitFor(() => sink2.accepted.length === 2, 5000);
    expect(join(config.queue.dir)).toBeTruthy();
  });
});

describe('delivery loop supervision', () => {
  it('restarts after an unexpected error and keeps delivering', async () => {
    const sink = new FakeSink();
    const dir = tempDir();
    const f = await startForwarder(makeConfig(dir, { listen: ['tcp://127.0.0.1:0'], admin: false }), { logger: silent, sink });
    try {
      // A bug after the cursor moved: the loop must survive it.
      const observe = f.metrics.batchSize.observe.bind(f.metrics.batchSize);
      let thrown = false;
      f.metrics.batchSize.observe = ((v: number) => {
        if (!thrown) {
          thrown = true;
          throw new Error('unexpected');
        }
        observe(v);
      }) as typeof f.metrics.batchSize.observe;
      const port = f.addresses[0].port;
      await sendSyslog([cef(1)], { host: '127.0.0.1', port, protocol: 'tcp' });
      await waitFor(() => thrown, 5000);
      await sendSyslog([cef(2)], { host: '127.0.0.1', port, protocol: 'tcp' });
      await waitFor(() => sink.accepted.length === 2, 5000);
      expect(await f.metrics.registry.metrics()).toMatch(/sentinel_cef_background_errors_total\{where="delivery_loop"\} 1/);
      expect(f.health().status).toBe('ok');
    } finally {
      await f.shutdown();
    }
  });
});
