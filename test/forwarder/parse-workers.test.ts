import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchProcessor } from '../../src/forwarder/delivery/batch-processor.js';
import { prepareRecords, type Prepared } from '../../src/forwarder/delivery/prepare.js';
import { DeadLetterFile } from '../../src/forwarder/dead-letter.js';
import { DiskQueue } from '../../src/forwarder/disk-queue.js';
import { MAX_WORKER_FAILURES, PARSE_WORKER_ROLE, ParseWorkerRunner, type ParseWorkerData } from '../../src/forwarder/parse-workers.js';
import { parseLine } from '../../src/parser/index.js';
import { rowPreparer } from '../../src/sinks/index.js';
import { RowWriter } from '../../src/sinks/row-writer.js';
import { jsonOf, type PreparedRow } from '../../src/sinks/types.js';
import { PreparingFakeSink, buildForwarderBundle, cef, silent, tempDir } from './helpers.js';

let entry: URL;
const runners: ParseWorkerRunner[] = [];

beforeAll(async () => {
  // The worker entry is the self-contained bundle, as deployed.
  entry = pathToFileURL(await buildForwarderBundle('parse-worker-bundle-'));
});
afterAll(async () => {
  for (const r of runners) await r.close();
});

const effects = { retried() {}, lastDelivery() {}, backgroundError() {}, sinkDuration() {}, probeFailed() {}, probeDeadLettered() {} };

function runner(sink: ParseWorkerData['sink'], count: number, workerEntry = entry, maxMessageBytes = 64 * 1024) {
  const dir = tempDir();
  const processor = new BatchProcessor({
    sink: new PreparingFakeSink(),
    parse: (raw, at) => parseLine(raw, at),
    deadLetter: new DeadLetterFile(join(dir, 'dl.ndjson')),
    logger: silent,
    effects,
    parallelSends: 1,
    retry: { initialMs: 10, maxMs: 10 },
    maxMessageBytes,
  });
  const errors: string[] = [];
  const r = new ParseWorkerRunner(
    workerEntry,
    { role: PARSE_WORKER_ROLE, sink, maxMessageBytes, maxBatchBytes: 2 * 1024 * 1024 },
    processor,
    silent,
    count,
    (w) => errors.push(w),
  );
  runners.push(r);
  return { r, errors };
}

/** A queue batch of these lines (the second flagged as truncated at intake). */
function batchOf(lines: string[]) {
  const q = new DiskQueue({ dir: join(tempDir(), 'q'), maxBytes: 1 << 30, segmentBytes: 1 << 24, fsyncIntervalMs: 0 });
  q.open();
  q.append(
    lines.map((l, i) => ({ data: Buffer.from(l), truncated: i === 1 })),
    Date.UTC(2026, 10, 22, 8, 0, 0),
  );
  const batch = q.readBatch(10_000, 1 << 30);
  q.close();
  return batch;
}

function view(p: Prepared) {
  return {
    rows: (p.rows as PreparedRow[]).map((r) => ({
      json: jsonOf(r),
      bytes: r.bytes,
      truncated: r.truncated,
      original: r.original,
      rejected: r.rejected,
    })),
    receivedAt: p.receivedAt,
    parseFailures: p.parseFailures,
    probes: [...p.probes],
  };
}

const LINES = [
  ...Array.from({ length: 1200 }, (_, i) => cef(i)),
  '<134>Nov 22 08:00:00 fw1 CEF:0|TestCommonEventFormat|sentinel-cef|1.0|probe|probe|3|cs2Label=ProbeId cs2=probe-in-worker',
  'not a syslog CEF line at all',
  `<134>Nov 22 08:00:00 fw1 CEF:0|V|P|1|id|name|5|msg=${'é'.repeat(40_000)} cs1=${'x'.repeat(70_000)}`,
  '<134>Nov 22 08:00:00 fw1 CEF:0|Ünï|Prødüct|1|id|nâme|5|suser=jürgen',
];

const SINKS = [
  { type: 'logs-ingestion', endpoint: 'https://dce.example', dcrImmutableId: 'dcr-1', auth: { kind: 'managed-identity' } },
  { type: 'log-analytics', workspaceId: '00000000-0000-0000-0000-000000000001', cloud: 'AzureCloud', logType: 'CommonSecurityLog' },
  { type: 'file', path: '/nonexistent/rows.ndjson' },
] as ParseWorkerData['sink'][];

describe('rows written as JSON while parsed (prepareRecords json)', () => {
  it('give the same rows, JSON, probes, parse failures and truncation notes as the row path', async () => {
    for (const sink of SINKS) {
      const { prepare, limits } = rowPreparer(sink);
      const o = { parse: (raw: Buffer, at: Date) => parseLine(raw, at), prepare, maxMessageBytes: 64 * 1024, yieldBetweenSlices: false };
      const rowPath = await prepareRecords(batchOf(LINES).records, o);
      const writer = new RowWriter(true);
      const direct = await prepareRecords(batchOf(LINES).records, { ...o, json: { limits, writer } });
      expect(view(direct)).toEqual(view(rowPath));
      expect(direct.probes.get(1200)).toBe('probe-in-worker');
      // CEF rows went straight into the writer's chunks; the truncated message, the probe and (where a
      // field limit applies) the over-long row through prepare.
      const chunks = new Set(writer.takeChunks());
      expect((direct.rows as PreparedRow[]).filter((r) => chunks.has(r.buf)).length).toBe(1200 - 1 + 1 + (sink.type === 'file' ? 1 : 0));
    }
  });
});

describe('parse workers', () => {
  it('give the same rows, JSON, probes, parse failures and truncation notes as parsing on the main thread', async () => {
    for (const sink of SINKS) {
      const local = await prepareRecords(batchOf(LINES).records, {
        parse: (raw, at) => parseLine(raw, at),
        prepare: rowPreparer(sink).prepare,
        maxMessageBytes: 64 * 1024,
        yieldBetweenSlices: true,
      });
      const { r, errors } = runner(sink, 2);
      // Two batches in turn go to the two workers.
      const [a, b] = await Promise.all([r.prepare(batchOf(LINES)), r.prepare(batchOf(LINES.slice(0, 10)))]);
      expect(view(a)).toEqual(view(local));
      expect(view(b).rows).toEqual(view(local).rows.slice(0, 10));
      expect(a.parseFailures).toHaveLength(1);
      expect(a.probes.get(1200)).toBe('probe-in-worker');
      // The intake's truncation flag and the per-field cut both survive the trip.
      expect(jsonOf(a.rows[1] as PreparedRow)).toContain('sentinelCefTruncated=message:65536');
      const cut = (a.rows as PreparedRow[]).filter((row) => row.truncated !== undefined);
      // Per-field limits: 64 KiB for Logs Ingestion, 32 KiB for the Data Collector API, none in a file.
      const expected = {
        'logs-ingestion': ['Message:80000, DeviceCustomString1:70000'],
        'log-analytics': ['Message:80000, DeviceCustomString1:70000'],
        file: [],
      }[sink.type];
      expect(cut.map((row) => row.truncated)).toEqual(expected);
      expect(errors).toEqual([]);
      // Once delivered, the chunks go back to the worker (the views here are emptied by the transfer),
      // and the next batches are written into them correctly.
      const bufs = (a.rows as PreparedRow[]).map((row) => row.buf);
      await r.deliver(Promise.resolve(a), new AbortController().signal);
      expect(bufs.every((b) => b.length === 0)).toBe(true);
      for (let round = 0; round < 3; round++) {
        const again = await r.prepare(batchOf(LINES));
        expect(view(again)).toEqual(view(local));
        await r.deliver(Promise.resolve(again), new AbortController().signal);
      }
    }
  });

  it('a worker that dies fails its batch (the loop re-reads it from the cursor); workers that keep dying hand parsing to the main thread', async () => {
    const dir = tempDir();
    const dying = join(dir, 'dying.mjs');
    // Stands in for a worker that crashes (out of memory, a bug) while holding a batch.
    writeFileSync(dying, "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(7));\n");
    const { r, errors } = runner({ type: 'file', path: '/nonexistent' }, 1, pathToFileURL(dying));
    for (let i = 0; i < MAX_WORKER_FAILURES; i++) {
      await expect(r.prepare(batchOf(LINES.slice(0, 3)))).rejects.toThrow(/parse worker exited \(code 7\)/);
      expect(r.parsingLocally).toBe(i === MAX_WORKER_FAILURES - 1);
    }
    // Workers that keep dying do not stall delivery: the batch is parsed on this thread.
    const p = await r.prepare(batchOf(LINES.slice(0, 3)));
    expect((p.rows as PreparedRow[]).map((row) => JSON.parse(jsonOf(row)).DeviceEventClassID)).toEqual(['0', '1', '2']);
    expect(errors).toEqual(['parse_worker_fallback']);
  });

  it('close answers batches still being parsed as aborted', async () => {
    const { r } = runner({ type: 'file', path: '/nonexistent' }, 1);
    const pending = r.prepare(batchOf(LINES));
    await r.close();
    await expect(pending).rejects.toThrow();
  });
});
