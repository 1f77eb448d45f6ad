/**
 * Issue 13: the `file:` sink under load with several batches in flight and a disk that fails at
 * random points (ENOSPC/EIO, short writes, failed truncates). Through the real forwarder (TCP in,
 * disk queue, delivery loop): every line of the output is valid JSON, every event appears exactly
 * once, and each connection's events keep their order.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder } from '../../src/forwarder/forwarder.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';
import { cef, makeConfig, silent, tcpConnect, tempDir, waitFor, writeAndEnd } from '../forwarder/helpers.js';

let faults: FaultController | null = null;
afterEach(() => faults?.clear());

const CONNECTIONS = 4;

/** Events `conn`:0..n-1 as ~600-byte CEF lines: the sequence in the event class id, the connection in cs1. */
function stream(conn: number, n: number): string {
  const pad = 'p'.repeat(480);
  let out = '';
  for (let i = 0; i < n; i++) out += `${cef(conn * 1_000_000 + i, `cs1=${conn} cs1Label=conn msg=${pad}`)}\n`;
  return out;
}

/** Every line is JSON, every event is there exactly once, each connection in its own order. */
function checkFile(path: string, perConn: number): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  expect(text.endsWith('\n')).toBe(true);
  const lines = text.split('\n').slice(0, -1);
  const ids: number[] = [];
  let bad = 0;
  for (const l of lines) {
    try {
      ids.push(Number((JSON.parse(l) as { DeviceEventClassID: string }).DeviceEventClassID));
    } catch {
      bad++;
    }
  }
  expect(bad, 'lines that are not JSON').toBe(0);
  expect(new Set(ids).size, 'duplicates').toBe(ids.length);
  expect(ids.length, 'events').toBe(CONNECTIONS * perConn);
  let outOfOrder = 0;
  const last = new Map<number, number>();
  for (const id of ids) {
    const conn = Math.floor(id / 1_000_000);
    if ((last.get(conn) ?? -1) > id) outOfOrder++;
    last.set(conn, id);
  }
  expect(outOfOrder, 'events out of their connection order').toBe(0);
}

async function run(perConn: number, withFaults: boolean, seed: number): Promise<void> {
  const dir = tempDir('file-sink-faults-');
  const path = join(dir, 'rows.ndjson');
  const config = makeConfig(dir, {
    listen: ['tcp://127.0.0.1:0'],
    admin: false,
    // Batches over 512 KiB, several in flight (the default): what tore lines.
    batch: { maxRecords: 2000, maxBytes: 600 * 1024, flushMs: 20, inFlight: 8 },
    retry: { initialMs: 2, maxMs: 20 },
    sink: { type: 'file', path, fsync: true },
  });
  if (withFaults) {
    const onSink = /rows\.ndjson$/;
    faults = injectFaults(
      [
        { ops: ['write'], path: onSink, codes: ['SHORT'], probability: 0.3 },
        { ops: ['write'], path: onSink, codes: ['ENOSPC', 'EIO'], probability: 0.25 },
        { ops: ['truncate'], path: onSink, codes: ['EIO'], probability: 0.3 },
        { ops: ['fsync', 'open'], path: onSink, codes: ['EIO', 'ENOSPC'], probability: 0.05 },
      ],
      seed,
    );
  }
  const f = await startForwarder(config, { logger: silent });
  try {
    const port = f.addresses[0]!.port;
    await Promise.all(Array.from({ length: CONNECTIONS }, async (_, k) => writeAndEnd(await tcpConnect(port), stream(k, perConn))));
    await waitFor(() => f.metrics.totals.delivered >= CONNECTIONS * perConn, 60_000, 'every event delivered');
  } finally {
    await f.shutdown();
  }
  if (withFaults) {
    expect(faults!.hits.get('write:SHORT') ?? 0, JSON.stringify([...faults!.hits])).toBeGreaterThan(0);
    expect((faults!.hits.get('write:ENOSPC') ?? 0) + (faults!.hits.get('write:EIO') ?? 0)).toBeGreaterThan(0);
    faults!.clear();
  }
  try {
    checkFile(path, perConn);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('file sink through the forwarder, several batches in flight', () => {
  it('20,000 events of ~600 bytes over 4 connections: whole lines, each event once, in order', () => run(5000, false, 0), 60_000);

  it.each([1, 2])(
    'the same with ENOSPC/EIO, short writes and failed truncates at random (seed %i)',
    (seed) => run(2500, true, seed),
    60_000,
  );
});
