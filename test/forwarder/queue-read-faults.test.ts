/**
 * A queue segment that cannot be opened for reading (EMFILE, EACCES, EIO) while batches are on the
 * wire: delivery waits and reads again, and the batches already sent are acknowledged, not sent a
 * second time. (The loop used to fail as a whole and restart from the cursor, re-sending every batch
 * in flight: 361 and 638 duplicated rows in the forwarder-wide fault test.)
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';
import { FakeSink, cef, makeConfig, silent, tcpConnect, tempDir, waitFor, writeAndEnd } from './helpers.js';

let fwd: RunningForwarder | null = null;
let faults: FaultController | null = null;
const dirs: string[] = [];
afterEach(async () => {
  faults?.clear();
  faults = null;
  await fwd?.shutdown();
  fwd = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('delivery when a queue segment cannot be opened for reading', () => {
  it.each([['EMFILE'], ['EACCES'], ['EIO']])(
    '%s: batches in flight are acknowledged once, nothing is sent twice',
    async (code) => {
      const sink = new FakeSink();
      const send = sink.send.bind(sink);
      // Slow sends keep several batches in flight when a read fails.
      sink.send = async (rows) => {
        await new Promise((r) => setTimeout(r, 100));
        return send(rows);
      };
      const dir = tempDir('queue-read-faults-');
      dirs.push(dir);
      const config = makeConfig(dir, {
        listen: ['tcp://127.0.0.1:0'],
        admin: false,
        queue: { segmentBytes: 4096, fsyncIntervalMs: 20 },
        batch: { maxRecords: 20, flushMs: 5, inFlight: 8 },
        retry: { initialMs: 10, maxMs: 50 },
      });
      fwd = await startForwarder(config, { logger: silent, sink, random: () => 0.5, diskRetryMs: 20 });
      const total = 3000;
      const s = await tcpConnect(fwd.addresses[0]!.port);
      // Small writes, so the queue holds many small segments and the reader opens one after another.
      for (let i = 0; i < total; i += 30) {
        s.write(Array.from({ length: 30 }, (_, k) => cef(i + k) + '\n').join(''));
        await new Promise((r) => setTimeout(r, 2));
      }
      await writeAndEnd(s, '');
      await waitFor(() => fwd!.health().counters.received === total, 10_000, 'all received');
      // Every segment is written by now: every open from here on is the reader's.
      await waitFor(() => sink.accepted.length > 100, 10_000, 'first deliveries');
      faults = injectFaults([{ ops: ['open'], path: /\.seg$/, codes: [code], probability: 0.5 }], 7);
      await waitFor(() => faults!.total >= 5, 10_000, 'failed segment opens');
      faults.clear();
      await waitFor(() => fwd!.health().queue.records === 0, 20_000, 'queue drained');
      const ids = sink.accepted.map((r) => Number(r.DeviceEventClassID));
      expect(new Set(ids).size).toBe(total);
      expect(ids.length, 'rows sent twice').toBe(total);
      expect(ids).toEqual(Array.from({ length: total }, (_, i) => i));
    },
    40_000,
  );
});
