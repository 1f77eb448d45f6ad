import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { sendSyslog } from '../../src/forwarder/send-test.js';
import type { CslRow } from '../../src/parser/types.js';
import type { SendResult } from '../../src/sinks/types.js';
import { FakeSink, cef, makeConfig, silent, tempDir, waitFor } from './helpers.js';

let fwd: RunningForwarder | null = null;
let dir = '';
afterEach(async () => {
  await fwd?.shutdown();
  fwd = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A sink that declares `ordered` (as the file sink does) and records how many sends overlap. */
class OrderedSink extends FakeSink {
  readonly ordered = true;
  active = 0;
  maxActive = 0;
  override async send(rows: CslRow[]): Promise<SendResult> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      await new Promise((r) => setTimeout(r, 2));
      return await super.send(rows);
    } finally {
      this.active--;
    }
  }
}

describe('an ordered sink', () => {
  it('gets whole batches one at a time in queue order, a retried batch before every later one', async () => {
    const sink = new OrderedSink();
    // The first batch fails twice (later batches are parsed and waiting meanwhile), one later batch once.
    sink.script = [
      () => ({ status: 'retryable', error: 'ENOSPC', retryAfterMs: 50 }),
      () => ({ status: 'retryable', error: 'EIO' }),
      ...Array.from({ length: 3 }, () => (rows: CslRow[]) => ({ status: 'success', accepted: rows.length }) as SendResult),
      () => ({ status: 'retryable', error: 'EIO' }),
    ];
    dir = tempDir('ordered-sink-');
    const config = makeConfig(dir, {
      listen: ['tcp://127.0.0.1:0'],
      admin: false,
      batch: { maxRecords: 300, flushMs: 10, inFlight: 8, parallelSends: 4 },
      retry: { initialMs: 5, maxMs: 20 },
    });
    fwd = await startForwarder(config, { logger: silent, sink, random: () => 0.5 });
    await sendSyslog(
      Array.from({ length: 3000 }, (_, i) => cef(i)),
      { host: '127.0.0.1', port: fwd.addresses[0].port, protocol: 'tcp' },
    );
    await waitFor(() => sink.accepted.length >= 3000, 10_000, 'delivery');
    expect(sink.accepted.map((r) => Number(r.DeviceEventClassID))).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    // One send at a time: no two batches, and no batch split into parallel slices (parallelSends 4).
    expect(sink.maxActive).toBe(1);
  });
});
