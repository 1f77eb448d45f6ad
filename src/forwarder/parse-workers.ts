/**
 * Parsing and serializing in worker threads (config batch.parseWorkers). The main thread keeps
 * intake, the disk queue, the HTTP calls, the cursor-after-accept rule, metrics and probes; a worker
 * gets a batch's raw bytes (transferred, not copied) and answers with the rows' JSON in buffers of its
 * own (transferred back), so neither side copies an event or rebuilds an object graph per row.
 */
import { Worker, parentPort, type WorkerOptions } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { CslRow } from '../parser/types.js';
import { parseLine } from '../parser/index.js';
import { RowWriter } from '../sinks/row-writer.js';
import { rowPreparer } from '../sinks/index.js';
import type { PreparedRow } from '../sinks/types.js';
import type { DeadLetterEntry } from './dead-letter.js';
import { Aborted } from './delivery/backoff.js';
import type { BatchProcessor, BatchReport, BatchRunner } from './delivery/batch-processor.js';
import { prepareRecords, type Prepared } from './delivery/prepare.js';
import type { QueueBatch, QueueRecord } from './disk-queue.js';
import { PARSE_WORKER_ROLE, type ParseWorkerData } from './parse-worker-role.js';

export { PARSE_WORKER_ROLE, type ParseWorkerData };
const NO_CHUNK = 0xffff;

/**
 * Old-generation cap of a parse worker. A batch's rows, strings and JSON take about 8x its raw bytes
 * while it is parsed; the cap allows several such batches. Running out ends the worker, its batches
 * are parsed again by a new one.
 */
export function workerOldGenerationMb(maxBatchBytes: number): number {
  return Math.max(48, Math.ceil(16 + (3 * 8 * maxBatchBytes) / 2 ** 20));
}

/** A batch to parse, or chunks whose rows were sent, for the worker to write into again. */
type ToWorker = BatchMessage | { recycle: ArrayBuffer[] };

interface BatchMessage {
  id: number;
  buf: ArrayBuffer;
  base: number;
  /** Record i's raw bytes are buf[base + starts[i], base + ends[i]). */
  starts: Uint32Array;
  ends: Uint32Array;
  recv: Float64Array;
  flags: Uint8Array;
}

/** A prepared batch as it crosses back: JSON in transferred chunks, everything per row in typed arrays. */
interface FromWorker {
  id: number;
  error?: string;
  chunks: ArrayBuffer[];
  /** Per row: chunk index (NO_CHUNK: no JSON, e.g. refused before sending), start and bytes. */
  chunk: Uint16Array;
  start: Uint32Array;
  bytes: Uint32Array;
  /** Rare per-row extras (truncated, original, rejected), by row index. */
  extras: Array<[number, { truncated?: string; original?: CslRow; rejected?: string }]>;
  receivedAt: Float64Array;
  parseFailures: DeadLetterEntry[];
  probes: Array<[number, string]>;
}

interface Waiting {
  worker: number;
  resolve: (p: Prepared) => void;
  reject: (e: Error) => void;
}

/** Worker deaths within FAILURE_WINDOW_MS after which parsing moves to the main thread for good. */
export const MAX_WORKER_FAILURES = 3;
const FAILURE_WINDOW_MS = 10 * 60_000;

/**
 * BatchRunner that parses in `count` workers (batches handed out in turn) and delivers on this thread
 * through the given BatchProcessor. A worker that dies fails its batches; the delivery loop rewinds to
 * the cursor and a new worker parses them again (at-least-once). Workers that keep dying (a broken
 * bundle, a batch that exhausts the heap cap) do not stall delivery: after MAX_WORKER_FAILURES the
 * runner parses on the main thread.
 */
export class ParseWorkerRunner implements BatchRunner {
  private readonly workers: Array<Worker | null>;
  private turn = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private closed = false;
  private failures: number[] = [];
  /** Set once workers have failed too often: parse here from then on. */
  private local = false;

  constructor(
    private readonly entry: URL,
    private readonly data: ParseWorkerData,
    private readonly processor: BatchProcessor,
    private readonly logger: Logger,
    count: number,
    private readonly onError: (where: string) => void,
  ) {
    this.workers = new Array<Worker | null>(Math.max(1, count)).fill(null);
  }

  private ensure(k: number): Worker {
    const existing = this.workers[k];
    if (existing) return existing;
    // V8 lets a worker's old generation grow far past what it holds (peak RSS +25-40 MB measured);
    // the cap leaves room for several batches of rows at once (workerOldGenerationMb).
    const w = new Worker(this.entry, {
      workerData: this.data,
      resourceLimits: { maxOldGenerationSizeMb: workerOldGenerationMb(this.data.maxBatchBytes) },
    } satisfies WorkerOptions);
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (err) => {
      this.onError('parse_worker');
      this.logger.error({ err: err.message, stack: err.stack }, 'parse worker failed');
    });
    w.on('exit', (code) => {
      if (this.workers[k] === w) this.workers[k] = null;
      if (!this.closed) this.noteFailure(code);
      for (const [id, p] of this.waiting) {
        if (p.worker !== k) continue;
        this.waiting.delete(id);
        p.reject(new Error(`parse worker exited (code ${code})`));
      }
    });
    w.unref();
    this.workers[k] = w;
    return w;
  }

  private noteFailure(code: number): void {
    const now = Date.now();
    this.failures = [...this.failures.filter((t) => now - t < FAILURE_WINDOW_MS), now];
    if (this.failures.length >= MAX_WORKER_FAILURES && !this.local) {
      this.local = true;
      this.onError('parse_worker_fallback');
      this.logger.error(
        { exitCode: code, failures: this.failures.length },
        'parse workers keep exiting: parsing on the main thread from now on (restart the forwarder to try workers again)',
      );
    } else {
      this.logger.warn({ exitCode: code }, 'parse worker exited; its batches are read again from the queue cursor');
    }
  }

  /** True once parsing has moved to the main thread. */
  get parsingLocally(): boolean {
    return this.local;
  }

  private onMessage(m: FromWorker): void {
    const p = this.waiting.get(m.id);
    if (!p) return;
    this.waiting.delete(m.id);
    if (m.error !== undefined) {
      p.reject(new Error(`parse worker: ${m.error}`));
      return;
    }
    const chunks = m.chunks.map((ab) => Buffer.from(ab));
    const empty = Buffer.alloc(0);
    const rows: PreparedRow[] = new Array(m.chunk.length);
    for (let i = 0; i < rows.length; i++) {
      const c = m.chunk[i]!;
      rows[i] = { buf: c === NO_CHUNK ? empty : chunks[c]!, start: m.start[i]!, bytes: m.bytes[i]! };
    }
    for (const [i, extra] of m.extras) Object.assign(rows[i]!, extra);
    const release = () => {
      // Every row is settled and nothing refers to the chunks any more: hand them back to a worker,
      // which writes into them again instead of touching fresh memory (page faults, malloc churn).
      const w = this.workers[p.worker];
      if (w && m.chunks.length) w.postMessage({ recycle: m.chunks } satisfies ToWorker, m.chunks);
    };
    p.resolve({
      rows,
      prepared: true,
      receivedAt: Array.from(m.receivedAt),
      parseFailures: m.parseFailures,
      probes: new Map(m.probes),
      release,
    });
  }

  prepare(batch: QueueBatch): Promise<Prepared> {
    if (this.closed) return Promise.reject(new Aborted());
    if (this.local) return this.processor.prepare(batch.records);
    const k = this.turn;
    this.turn = (this.turn + 1) % this.workers.length;
    const w = this.ensure(k);
    const id = this.nextId++;
    // The batch's raw bytes sit in an ArrayBuffer of their own (readBatch), so they move to the
    // worker without a copy, with the batch's typed arrays.
    const { buffer, starts, ends, receivedAt: recv, flags } = batch;
    const ab = buffer.buffer as ArrayBuffer;
    const done = new Promise<Prepared>((resolve, reject) => this.waiting.set(id, { worker: k, resolve, reject }));
    const msg: BatchMessage = { id, buf: ab, base: buffer.byteOffset, starts, ends, recv, flags };
    w.postMessage(msg, [ab, starts.buffer, ends.buffer, recv.buffer, flags.buffer] as ArrayBuffer[]);
    return done;
  }

  deliver(prepared: unknown, signal: AbortSignal): Promise<BatchReport> {
    const parsed = prepared as Promise<Prepared>;
    parsed.catch(() => {}); // awaited in turn
    return this.processor.inOrder(async () => {
      const p = await parsed;
      const report = await this.processor.deliver(p, signal);
      p.rows = [];
      p.release?.();
      return report;
    });
  }

  /** Answers of a batch handed out before a rewind are ignored (their promises still settle). */
  reset(): void {
    this.processor.resetOrder();
  }

  /** Spawns the workers now, so a broken worker shows at start. */
  start(): void {
    for (let k = 0; k < this.workers.length; k++) this.ensure(k);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w?.terminate()));
    for (const [id, p] of this.waiting) {
      this.waiting.delete(id);
      p.reject(new Aborted());
    }
  }
}

/** Worker-thread side: parse and serialize each batch it is given. */
export function runParseWorker(data: ParseWorkerData): void {
  const port = parentPort!;
  // Only the sink's serialization and per-API limits: no secrets, no connections in a worker.
  const writer = new RowWriter(true);
  const sink = rowPreparer(data.sink);
  const prepare = (rows: CslRow[]) => sink.prepare(rows, writer);
  port.on('message', (m: ToWorker) => {
    if ('recycle' in m) {
      writer.recycle(m.recycle.map((ab) => Buffer.from(ab)));
      return;
    }
    void handle(m).catch((err: Error) => {
      writer.takeChunks();
      port.postMessage({ id: m.id, error: err?.message ?? String(err) });
    });
  });

  async function handle(m: BatchMessage): Promise<void> {
    const n = m.recv.length;
    const records: QueueRecord[] = new Array(n);
    for (let i = 0; i < n; i++) {
      records[i] = {
        receivedAt: m.recv[i]!,
        flags: m.flags[i]!,
        raw: Buffer.from(m.buf, m.base + m.starts[i]!, m.ends[i]! - m.starts[i]!),
      };
    }
    const p = await prepareRecords(records, {
      parse: (raw, at) => parseLine(raw, at),
      prepare,
      json: { limits: sink.limits, writer },
      maxMessageBytes: data.maxMessageBytes,
      yieldBetweenSlices: false,
    });
    const chunks = writer.takeChunks();
    const index = new Map<Buffer, number>();
    chunks.forEach((c, i) => index.set(c, i));
    const rows = p.rows.length;
    const out: FromWorker = {
      id: m.id,
      chunks: chunks.map((c) => c.buffer as ArrayBuffer),
      chunk: new Uint16Array(rows),
      start: new Uint32Array(rows),
      bytes: new Uint32Array(rows),
      extras: [],
      receivedAt: Float64Array.from(p.receivedAt),
      parseFailures: p.parseFailures,
      probes: [...p.probes],
    };
    if (!p.prepared) throw new Error('the sink has no prepare step');
    for (let i = 0; i < rows; i++) {
      const r = p.rows[i] as PreparedRow;
      const c = r.bytes === 0 ? NO_CHUNK : index.get(r.buf);
      if (c === undefined) throw new Error('a prepared row is outside the batch chunks');
      out.chunk[i] = c;
      out.start[i] = r.start;
      out.bytes[i] = r.bytes;
      if (r.truncated !== undefined || r.original !== undefined || r.rejected !== undefined) {
        const extra: FromWorker['extras'][number][1] = {};
        if (r.truncated !== undefined) extra.truncated = r.truncated;
        if (r.original !== undefined) extra.original = r.original;
        if (r.rejected !== undefined) extra.rejected = r.rejected;
        out.extras.push([i, extra]);
      }
    }
    port.postMessage(out, [...out.chunks, out.chunk.buffer, out.start.buffer, out.bytes.buffer, out.receivedAt.buffer] as ArrayBuffer[]);
  }
}
