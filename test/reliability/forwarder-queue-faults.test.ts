/**
 * Issue 13 defect 3 through the whole forwarder: the queue directory refuses new segment files
 * (EACCES, as after `chmod 500`) while events flow and the sink is down. Intake must pause and retry
 * (TCP back-pressure), delivery must keep going once the sink is back, the process must not die, and
 * every event must arrive exactly once. Then any queue file call failing at random, with the sink up.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { FakeSink, cef, makeConfig, silent, tcpConnect, tempDir, waitFor } from '../forwarder/helpers.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';

let fwd: RunningForwarder | null = null;
let faults: FaultController | null = null;
const dirs: string[] = [];
afterEach(async () => {
  faults?.clear();
  await fwd?.shutdown();
  fwd = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('forwarder with a queue directory that refuses new segments for a while', () => {
  it('pauses intake, survives, and delivers every event exactly once', async () => {
    let sinkDown = false;
    const sink = new FakeSink();
    const send = sink.send.bind(sink);
    sink.send = async (rows) => (sinkDown ? { status: 'retryable', error: 'HTTP 503' } : send(rows));
    const dir = tempDir();
    dirs.push(dir);
    const config = makeConfig(dir, { listen: ['tcp://127.0.0.1:0'], admin: false, queue: { segmentBytes: 8192, fsyncIntervalMs: 20 } });
    fwd = await startForwarder(config, { logger: silent, sink, random: () => 0.5, diskRetryMs: 30 });
    const s = await tcpConnect(fwd.addresses[0]!.port);
    const total = 3000;
    const write = (from: number, to: number) => {
      let chunk = '';
      for (let i = from; i < to; i++) chunk += cef(i) + '\n';
      s.write(chunk);
    };
    write(0, 500);
    await waitFor(() => sink.accepted.length >= 100, 10_000, 'first deliveries');
    sinkDown = true;
    faults = injectFaults([{ ops: ['open'], path: /\.seg$/, codes: ['EACCES'] }]);
    for (let i = 500; i < total; i += 250) {
      write(i, i + 250);
      await new Promise((r) => setTimeout(r, 40));
    }
    await waitFor(() => fwd!.health().queue.intakePaused, 10_000, 'intake paused on EACCES');
    await new Promise((r) => setTimeout(r, 300));
    faults.clear();
    sinkDown = false;
    s.end();
    await waitFor(() => sink.accepted.length >= total, 20_000, `all delivered (have ${sink.accepted.length})`);
    await new Promise((r) => setTimeout(r, 200));
    const ids = sink.accepted.map((r) => Number(r.DeviceEventClassID));
    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total);
    expect(fwd.health().queue.intakePaused).toBe(false);
    expect(fwd.health().counters.dropped).toBe(0);
  }, 40_000);

  it('any failing queue file call (EIO, ENOSPC, EMFILE, EACCES, short writes) pauses and retries; nothing is lost', async () => {
    const sink = new FakeSink();
    const dir = tempDir();
    dirs.push(dir);
    const config = makeConfig(dir, {
      listen: ['tcp://127.0.0.1:0'],
      admin: false,
      queue: { segmentBytes: 8192, fsyncIntervalMs: 5 },
      retry: { initialMs: 10, maxMs: 50 },
    });
    fwd = await startForwarder(config, { logger: silent, sink, random: () => 0.5, diskRetryMs: 30 });
    const s = await tcpConnect(fwd.addresses[0]!.port);
    const total = 3000;
    faults = injectFaults(
      [
        {
          ops: ['open', 'write', 'fsync', 'truncate', 'close', 'read', 'stat', 'unlink'],
          path: /[/]queue[/]/,
          codes: ['EIO', 'ENOSPC', 'EMFILE', 'EACCES', 'SHORT'],
          probability: 0.05,
        },
      ],
      11,
    );
    for (let i = 0; i < total; i += 100) {
      let chunk = '';
      for (let k = i; k < i + 100; k++) chunk += cef(k) + '\n';
      s.write(chunk);
      await new Promise((r) => setTimeout(r, 15));
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(faults.total).toBeGreaterThan(0);
    faults.clear();
    s.end();
    await waitFor(
      () => new Set(sink.accepted.map((r) => r.DeviceEventClassID)).size >= total,
      20_000,
      `all delivered (have ${sink.accepted.length})`,
    );
    const ids = new Set(sink.accepted.map((r) => Number(r.DeviceEventClassID)));
    expect(ids.size).toBe(total);
    // A failed read restarts delivery from the cursor: duplicates are allowed (at-least-once), loss is not.
    await waitFor(() => fwd!.health().queue.records === 0 && !fwd!.health().queue.intakePaused, 10_000, 'queue drained and intake running');
    expect(fwd.health().counters.dropped).toBe(0);
  }, 40_000);
});
