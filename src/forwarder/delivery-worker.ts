/**
 * Delivery in a worker thread (opt-in: SENTINEL_CEF_DELIVERY_WORKER=1): parsing, serializing, gzip
 * and HTTP run beside intake + queue appends (main thread). The main thread keeps the queue, the
 * cursor-after-accept rule, metrics and probes; the worker gets raw records and answers with a
 * BatchReport once every row is accepted or dead-lettered. Not the default: on the 2-core benchmark
 * box it cost more CPU per event than it gained in parallelism (see forwarder.ts).
 */
import { Worker, parentPort, type WorkerOptions } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { ForwarderConfig } from '../config/schema.js';
import { parseLine } from '../parser/index.js';
import { createSink } from '../sinks/index.js';
import { DeadLetterFile } from './dead-letter.js';
import { Aborted, BatchProcessor, type BatchReport, type BatchRunner, type DeliveryEffects, type Prepared } from './delivery.js';
import type { QueueBatch, QueueRecord } from './disk-queue.js';
import { createLogger } from './logger.js';

export const DELIVERY_WORKER_ROLE = 'sentinel-cef-delivery';
const WORKER_YOUNG_GENERATION_MB = 32;

export function workerOldGenerationMb(config: ForwarderConfig): number {
  const live = (config.batch.inFlight + 1) * config.batch.maxBytes * 8;
  return Math.max(96, Math.ceil(48 + live / 2 ** 20));
}

export interface DeliveryWorkerData {
  role: typeof DELIVERY_WORKER_ROLE;
  config: ForwarderConfig;
  deadLetterPath: string;
}

type ToWorker =
  | { t: 'prepare'; id: number; buf: ArrayBuffer; base: number; offs: Uint32Array; recv: Float64Array; flags: Uint8Array }
  | { t: 'deliver'; id: number }
  | { t: 'reset' }
  | { t: 'abort' }
  | { t: 'close' };

type FromWorker =
  | { t: 'effect'; name: keyof DeliveryEffects; args: unknown[] }
  | { t: 'done'; id: number; report?: BatchReport; error?: string; stack?: string; aborted?: boolean }
  | { t: 'closed' };

interface Pending {
  worker: Worker;
  resolve: (r: BatchReport) => void;
  reject: (e: Error) => void;
}

/**
 * Main-thread side: a BatchRunner that hands batches round-robin to `count` delivery workers (with
 * batch.inFlight >= count, each works on its own batch; the cursor still moves strictly in order).
 * The forwarder uses one: with the mock's or Azure's TLS and the generator on the same two cores,
 * a second worker measured no faster and costs ~60 MB.
 */
export class WorkerRunner implements BatchRunner {
  private readonly workers: Array<Worker | null>;
  private turn = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closing = false;

  constructor(
    private readonly entry: URL,
    private readonly data: DeliveryWorkerData,
    private readonly effects: DeliveryEffects,
    private readonly logger: Logger,
    count: number,
  ) {
    this.workers = new Array<Worker | null>(Math.max(1, count)).fill(null);
  }

  private ensure(k: number): Worker {
    const existing = this.workers[k];
    if (existing) return existing;
    const w = new Worker(this.entry, {
      workerData: this.data,
      // Young generation: the worker's GC share measured the same (~20%) from 32 to 96 MB, so the
      // smaller one, for RSS (12 MB cost more GC).
      // The old generation is capped from what can be alive at once (inFlight batches plus one being
      // parsed, ~8x their raw bytes as rows and JSON): V8 otherwise lets it grow far past the live
      // data before collecting (measured peak RSS 304 → 239 MB). Running out of it ends the worker;
      // its batches are resent from the cursor by a new one.
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB, maxOldGenerationSizeMb: workerOldGenerationMb(this.data.config) },
    } satisfies WorkerOptions);
    w.on('message', (list: FromWorker[]) => {
      for (const m of list) this.onMessage(m);
    });
    w.on('error', (err) => {
      this.effects.backgroundError('delivery_worker');
      this.logger.error({ err: err.message, stack: err.stack }, 'delivery worker failed');
    });
    w.on('exit', (code) => {
      if (this.workers[k] === w) this.workers[k] = null;
      // Its batches were not acknowledged: the loop rewinds and resends them (at-least-once).
      for (const [id, p] of this.pending) {
        if (p.worker !== w) continue;
        this.pending.delete(id);
        p.reject(new Error(`delivery worker exited (code ${code})`));
      }
    });
    this.workers[k] = w;
    return w;
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'effect') {
      (this.effects[m.name] as (...a: unknown[]) => void)(...m.args);
    } else if (m.t === 'done') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.report) p.resolve(m.report);
      else if (m.aborted) p.reject(new Aborted());
      else p.reject(Object.assign(new Error(m.error), { stack: m.stack }));
    }
  }

  prepare(batch: QueueBatch): { k: number; id: number } {
    const k = this.turn;
    this.turn = (this.turn + 1) % this.workers.length;
    const w = this.ensure(k);
    const id = this.nextId++;
    const n = batch.records.length;
    // batch.buffer holds the raw bytes back to back in an ArrayBuffer of its own (readBatch), so it
    // moves to the worker without a copy; the records' views here are detached, which is fine: the
    // loop keeps only the cursor position.
    const base = batch.buffer.byteOffset;
    const offs = new Uint32Array(n + 1);
    const recv = new Float64Array(n);
    const flags = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const r = batch.records[i];
      offs[i] = r.raw.byteOffset - base;
      recv[i] = r.receivedAt;
      flags[i] = r.flags;
    }
    offs[n] = batch.buffer.length;
    const buf = batch.buffer;
    const msg: ToWorker = { t: 'prepare', id, buf: buf.buffer as ArrayBuffer, base, offs, recv, flags };
    w.postMessage(msg, [buf.buffer as ArrayBuffer, offs.buffer, recv.buffer, flags.buffer]);
    return { k, id };
  }

  deliver(handle: unknown, signal: AbortSignal): Promise<BatchReport> {
    if (signal.aborted) return Promise.reject(new Aborted());
    const { k, id } = handle as { k: number; id: number };
    const w = this.ensure(k);
    return new Promise<BatchReport>((resolve, reject) => {
      const onAbort = () => w.postMessage({ t: 'abort' } satisfies ToWorker);
      signal.addEventListener('abort', onAbort, { once: true });
      const done = () => signal.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        worker: w,
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
      });
      w.postMessage({ t: 'deliver', id } satisfies ToWorker);
    });
  }

  /** Spawns the workers now, so the sink's start-up checks (first token) run at start. */
  start(): void {
    for (let k = 0; k < this.workers.length; k++) this.ensure(k);
  }

  reset(): void {
    for (const w of this.workers) w?.postMessage({ t: 'reset' } satisfies ToWorker);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await Promise.all(
      this.workers.map(async (w) => {
        if (!w) return;
        const exited = new Promise<void>((r) => w.once('exit', () => r()));
        w.postMessage({ t: 'close' } satisfies ToWorker);
        // The worker closes its sink (keep-alive sockets) and exits; do not wait on a stuck one.
        const t = setTimeout(() => void w.terminate(), 2000);
        await exited;
        clearTimeout(t);
      }),
    );
  }
}

/** Worker-thread side. */
export async function runDeliveryWorker(data: DeliveryWorkerData): Promise<void> {
  const port = parentPort!;
  const { config } = data;
  const logger = createLogger(config.logLevel).child({ thread: 'delivery' });
  // Effects are sent in one message per event-loop turn (and always ahead of the 'done' they
  // precede): a postMessage per sink call measured ~0.25 ms each on a busy thread.
  let outbox: FromWorker[] = [];
  let flushing = false;
  const flush = (transfer: ArrayBuffer[] = []) => {
    flushing = false;
    if (outbox.length) port.postMessage(outbox, transfer);
    outbox = [];
  };
  const post = (m: FromWorker) => {
    outbox.push(m);
    flush();
  };
  const effect =
    <K extends keyof DeliveryEffects>(name: K) =>
    (...args: unknown[]) => {
      outbox.push({ t: 'effect', name, args });
      if (!flushing) {
        flushing = true;
        setImmediate(() => flush());
      }
    };
  const effects: DeliveryEffects = {
    retried: effect('retried'),
    lastDelivery: effect('lastDelivery'),
    backgroundError: effect('backgroundError'),
    sinkDuration: effect('sinkDuration'),
    probeFailed: effect('probeFailed'),
    probeDeadLettered: effect('probeDeadLettered'),
  };
  const sink = createSink(config.sink, { logger: logger.child({ sink: config.sink.type }) });
  const processor = new BatchProcessor({
    sink,
    parse: (raw, at) => parseLine(raw, at),
    deadLetter: new DeadLetterFile(data.deadLetterPath),
    logger,
    effects,
    parallelSends: config.batch.parallelSends,
    retry: config.retry,
    maxMessageBytes: config.limits.maxMessageBytes,
  });
  const abort = new AbortController();
  const prepared = new Map<number, Promise<Prepared>>();
  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'prepare': {
        const records: QueueRecord[] = new Array(m.recv.length);
        for (let i = 0; i < m.recv.length; i++) {
          records[i] = { receivedAt: m.recv[i], flags: m.flags[i], raw: Buffer.from(m.buf, m.base + m.offs[i], m.offs[i + 1] - m.offs[i]) };
        }
        prepared.set(m.id, processor.prepare(records));
        break;
      }
      case 'deliver': {
        const p = prepared.get(m.id);
        prepared.delete(m.id);
        if (!p) {
          post({ t: 'done', id: m.id, error: `delivery worker: batch ${m.id} was not prepared` });
          break;
        }
        p.then((ready) => processor.deliver(ready, abort.signal)).then(
          (report) => {
            outbox.push({ t: 'done', id: m.id, report });
            flush([report.deliveredAt.buffer as ArrayBuffer]);
          },
          (err: Error) => post({ t: 'done', id: m.id, aborted: err instanceof Aborted || abort.signal.aborted, error: err?.message ?? String(err), stack: err?.stack }),
        );
        break;
      }
      case 'reset':
        prepared.clear();
        break;
      case 'abort':
        abort.abort();
        break;
      case 'close':
        void Promise.resolve(sink.close?.())
          .catch((err: Error) => logger.warn({ err: err.message }, 'sink close failed'))
          .finally(() => {
            post({ t: 'closed' });
            port.close();
          });
        break;
    }
  });
  if (sink.start) {
    await sink.start().catch((err: Error) => logger.warn({ err: err.message, sink: sink.name }, 'sink start reported a problem; delivery will retry'));
  }
}
