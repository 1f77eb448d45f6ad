import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadForwarderConfig } from '../../src/config/load.js';
import { forwarderConfigSchema, sinkSchema } from '../../src/config/schema.js';
import { BatchProcessor } from '../../src/forwarder/delivery/batch-processor.js';
import type { DeliveryEffects } from '../../src/forwarder/delivery/send.js';
import { startForwarder, type ForwarderDeps, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { sendSyslog } from '../../src/forwarder/send-test.js';
import { createSink } from '../../src/sinks/index.js';
import type { SendResult, Sink } from '../../src/sinks/types.js';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';
import { FakeSink, cef, fakeClock, makeConfig, readNdjson, tempDir, waitFor } from './helpers.js';

/** A pino logger that keeps its lines (objects) for assertions. */
function capture(level = 'debug'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

let mock: MockAzure;
let fwd: RunningForwarder | null = null;
const sinks: Sink[] = [];

beforeAll(async () => {
  mock = await startMockAzure();
});
afterAll(async () => {
  for (const s of sinks) await s.close?.();
  await mock.close();
});
afterEach(async () => {
  await fwd?.shutdown();
  fwd = null;
  mock.setClockOffset(0);
  mock.clearFailures();
  mock.reset();
});

async function startWithDataCollector(retry: Record<string, number>, deps: ForwarderDeps = {}) {
  const dir = tempDir('auth-');
  const sinkConfig = sinkSchema.parse({
    type: 'log-analytics',
    workspaceId: mock.workspaceId,
    endpoint: mock.url,
    sharedKeyFile: writeSecretFile(dir, 'key', mock.sharedKey),
  });
  const config = makeConfig(dir, { listen: ['tcp://127.0.0.1:0'], admin: false, sink: sinkConfig, retry });
  const { logger, lines } = capture();
  const sink = createSink(config.sink, { ca: mock.caPem, timeoutMs: 5000, logger: { info() {}, warn() {} } });
  sinks.push(sink);
  fwd = await startForwarder(config, { logger, sink, random: () => 0.5, ...deps });
  const port = fwd.addresses[0].port;
  const send = (lines: string[]) => sendSyslog(lines, { host: '127.0.0.1', port, protocol: 'tcp' });
  return { f: fwd, send, lines };
}

const refusals = () => mock.requests.filter((r) => r.api === 'log-analytics' && r.status === 403).length;
const N = 60;
const events = () => Array.from({ length: N }, (_, i) => cef(i));

describe('authorization failures that heal (issue 13 defect 9)', () => {
  it('Data Collector 403 from a clock 30 min off: rows stay queued, then are delivered once each after the clock is fixed', async () => {
    mock.setClockOffset(30 * 60_000);
    const { f, send, lines } = await startWithDataCollector({ initialMs: 20, maxMs: 100 });
    await send(events());
    await waitFor(() => refusals() >= 5 || f.health().counters.deadLettered > 0, 10_000, 'several refused sends');
    // Held, not dead-lettered.
    expect(readNdjson(f.deadLetterFile)).toEqual([]);
    expect(f.health().counters.deadLettered).toBe(0);
    expect(f.health().queue.records).toBe(N);
    expect(mock.rows).toHaveLength(0);

    mock.setClockOffset(0);
    await waitFor(() => f.health().counters.delivered === N, 10_000, 'delivery after the clock is fixed');
    // Every row exactly once, nothing dead-lettered.
    const ids = mock.rows.map((r) => Number(r.row.DeviceEventClassID)).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(readNdjson(f.deadLetterFile)).toEqual([]);

    // One line per state change, saying the likely cause and how far off the clock is.
    const refused = lines.filter((l) => /^authorization refused/.test(String(l.msg)));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ level: 40, httpStatus: 403, holdSec: 3600 });
    expect(Math.abs(Number(refused[0].clockSkewSec) + 1800)).toBeLessThanOrEqual(2);
    expect(String(refused[0].msg)).toMatch(/clock is 1[78]\d\d s off \(behind the service's Date header\).*time sync.*up to 60 min/);
    expect(lines.filter((l) => /^authorization works again/.test(String(l.msg)))).toHaveLength(1);
    // No warning per attempt for them.
    expect(lines.filter((l) => l.msg === 'delivery failed, will retry the same rows' && Number(l.level) >= 40)).toEqual([]);
  });

  it('past retry.authFailureMaxSec the rows are dead-lettered, each once, with the reason and status', async () => {
    mock.setClockOffset(-40 * 60_000);
    // The hold is timed on the fake clock (monotonic and the waits between retries), not in real time.
    const clock = fakeClock();
    const { f, send, lines } = await startWithDataCollector(
      { initialMs: 20, maxMs: 100, authFailureMaxSec: 1 },
      { sleep: clock.sleep, monotonic: clock.now },
    );
    await send(events());
    await waitFor(() => f.health().counters.deadLettered === N, 10_000, 'dead-lettering after the bound');
    expect(clock.now()).toBeGreaterThanOrEqual(1000);
    expect(clock.waits.length).toBeGreaterThan(5);
    const dl = readNdjson(f.deadLetterFile);
    expect(dl.map((e) => Number((e.row as Record<string, unknown>).DeviceEventClassID)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: N }, (_, i) => i),
    );
    for (const e of dl) {
      expect(e).toMatchObject({ httpStatus: 403 });
      expect(String(e.reason)).toMatch(
        /HTTP 403.*clock is \d+ s off \(ahead of.*authorization refused for longer than 1 s \(retry\.authFailureMaxSec\)/,
      );
    }
    expect(mock.rows).toHaveLength(0);
    expect(await f.metrics.registry.metrics()).toMatch(/sentinel_cef_dead_lettered_total\{reason="auth_failure"\} 60/);
    // One error line for the state change, not one per batch.
    expect(lines.filter((l) => Number(l.level) >= 50).map((l) => String(l.msg).replace(/ for \d+ s \(.*/, ''))).toEqual([
      'authorization refused',
    ]);
  });
});

describe('BatchProcessor auth bound (monotonic clock)', () => {
  const effects: DeliveryEffects = {
    retried() {},
    lastDelivery() {},
    backgroundError() {},
    sinkDuration() {},
    probeFailed() {},
    probeDeadLettered() {},
  };
  it('logs once per state change plus a reminder every 5 min (monotonic clock, not the wall clock being fixed)', async () => {
    let mono = 0;
    const sink = new FakeSink();
    const auth: SendResult = { status: 'retryable', error: 'HTTP 403', httpStatus: 403, auth: { hint: 'role missing' } };
    const { logger, lines } = capture('info');
    const written: unknown[] = [];
    const p = new BatchProcessor({
      sink,
      deadLetter: { write: (e: unknown[]) => written.push(...e) } as never,
      logger,
      effects,
      parallelSends: 1,
      retry: { initialMs: 1, maxMs: 1 },
      maxMessageBytes: 65536,
      authFailureMaxMs: 20 * 60_000,
      monotonic: () => mono,
    });
    const records = [{ receivedAt: Date.now(), flags: 0, raw: Buffer.from(cef(1)) }];
    // 12 refusals a minute apart (monotonic), then success.
    let calls = 0;
    sink.send = async function (rows) {
      this.sent.push(rows);
      calls++;
      mono += 60_000;
      if (calls <= 12) return auth;
      this.accepted.push(...rows);
      return { status: 'success', accepted: rows.length };
    };
    const report = await p.deliver(await p.prepare(records), new AbortController().signal);
    expect(report.deliveredAt.length).toBe(1);
    expect(written).toEqual([]);
    const msgs = lines.map((l) => String(l.msg).replace(/\(.*\)/, '(…)'));
    expect(msgs).toEqual([
      'authorization refused (…); rows stay queued and are retried for up to 20 min before they are dead-lettered',
      'authorization still refused after 5 min (…); rows stay queued, dead-lettered in 15 min',
      'authorization still refused after 10 min (…); rows stay queued, dead-lettered in 10 min',
      'authorization works again after 12 min of refusals; delivering the queued rows',
    ]);
  });
});

describe('retry.authFailureMaxSec', () => {
  const base = { sink: { type: 'file', path: '/tmp/x.ndjson' } };
  it('defaults to one hour; 0 is allowed (dead-letter at the first refusal)', () => {
    expect(forwarderConfigSchema.parse(base).retry.authFailureMaxSec).toBe(3600);
    expect(forwarderConfigSchema.parse({ ...base, retry: { authFailureMaxSec: 0 } }).retry.authFailureMaxSec).toBe(0);
  });
  it.each([-1, 1.5, 'an hour', 8 * 24 * 3600])('%j is refused with one line naming the field', (v) => {
    const dir = tempDir('auth-cfg-');
    const file = join(dir, 'forwarder.json');
    writeFileSync(file, JSON.stringify({ ...base, queue: { dir: join(dir, 'q') }, retry: { authFailureMaxSec: v } }));
    expect(() => loadForwarderConfig({ config: file })).toThrow(/retry\.authFailureMaxSec/);
  });
});
