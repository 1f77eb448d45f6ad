import type { Logger } from 'pino';
import type { CslRow, ParseResult } from '../parser/types.js';
import type { SendResult, Sink } from '../sinks/types.js';
import type { Health } from './admin-types.js';
import type { DeadLetterEntry, DeadLetterFile } from './dead-letter.js';
import { FLAG_TRUNCATED, type DiskQueue, type QueueBatch } from './disk-queue.js';
import type { ForwarderMetrics } from './metrics.js';
import { probeIdOfRow, type ProbeTracker } from './probes.js';

/** Added to AdditionalExtensions of a row whose message was cut at the maximum message size. */
export const TRUNCATED_MARKER = 'sentinelCefTruncated=true';

export interface DeliveryOptions {
  queue: DiskQueue;
  sink: Sink;
  parse: (raw: Buffer, receivedAt: Date) => ParseResult;
  deadLetter: DeadLetterFile;
  metrics: ForwarderMetrics;
  probes: ProbeTracker;
  logger: Logger;
  batch: { maxRecords: number; maxBytes: number; flushMs: number };
  retry: { initialMs: number; maxMs: number };
  random?: () => number;
}

class Aborted extends Error {}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Aborted());
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Aborted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface Prepared {
  batch: QueueBatch;
  rows: CslRow[];
  receivedAt: number[];
  parseFailures: DeadLetterEntry[];
}

/**
 * Moves batches from the disk queue to the sink. The sink only classifies each send; this loop
 * retries retryable results forever (exponential backoff with full jitter, never before
 * retryAfterMs), dead-letters what is refused for good, and only then moves the queue cursor.
 */
export class DeliveryLoop {
  lastDelivery: Health['lastDelivery'] = null;
  private readonly abort = new AbortController();
  private draining = false;
  private running: Promise<void> | null = null;
  private readonly random: () => number;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly o: DeliveryOptions) {
    this.random = o.random ?? Math.random;
  }

  start(): void {
    this.running ??= this.run().catch((err) => {
      if (!(err instanceof Aborted)) this.o.logger.error({ err }, 'delivery loop stopped unexpectedly');
    });
  }

  get isRunning(): boolean {
    return this.running !== null && !this.abort.signal.aborted;
  }

  /** Delivers what is queued until empty or the deadline, then stops. Unsent events stay queued. */
  async stop(deadlineMs: number): Promise<void> {
    this.draining = true;
    const loop = this.running;
    if (!loop) return;
    const empty = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    this.o.queue.notify();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadlineMs);
    });
    await Promise.race([empty, deadline, loop]);
    clearTimeout(timer);
    this.abort.abort();
    // A sink that ignores the abort signal must not hold shutdown hostage.
    await Promise.race([loop, new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.o.retry.maxMs, this.o.retry.initialMs * 2 ** Math.min(attempt, 30));
    // Full jitter, but never below half the step so retries stay spaced.
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  private async run(): Promise<void> {
    const { queue, batch: cfg } = this.o;
    const signal = this.abort.signal;
    let firstSeen: number | null = null;
    let next: Prepared | null = null;
    while (!signal.aborted) {
      let cur: Prepared;
      if (next) {
        cur = next;
        next = null;
      } else {
        if (!queue.unread) {
          firstSeen = null;
          if (this.draining) {
            for (const w of this.drainWaiters.splice(0)) w();
          }
          await queue.waitForData(this.draining ? 50 : 1000, signal);
          continue;
        }
        const now = Date.now();
        firstSeen ??= now;
        const ready =
          this.draining || queue.records >= cfg.maxRecords || queue.bytes >= cfg.maxBytes || now - firstSeen >= cfg.flushMs;
        if (!ready) {
          await queue.waitForData(Math.max(1, firstSeen + cfg.flushMs - now), signal);
          continue;
        }
        firstSeen = null;
        cur = this.prepare(queue.readBatch(cfg.maxRecords, cfg.maxBytes));
      }
      const sending = this.deliver(cur, signal);
      // Overlap: parse the next full batch while this one is on the wire (still one send in flight,
      // so a crash duplicates at most one batch).
      if (queue.unread && queue.records - cur.batch.records.length >= cfg.maxRecords) {
        next = this.prepare(queue.readBatch(cfg.maxRecords, cfg.maxBytes));
      }
      try {
        await sending;
      } catch (err) {
        queue.rewind();
        if (err instanceof Aborted) return;
        throw err;
      }
    }
  }

  private prepare(batch: QueueBatch): Prepared {
    const rows: CslRow[] = [];
    const receivedAt: number[] = [];
    const parseFailures: DeadLetterEntry[] = [];
    for (const rec of batch.records) {
      let res: ParseResult;
      try {
        res = this.o.parse(rec.raw, new Date(rec.receivedAt));
      } catch (err) {
        res = { ok: false, reason: `parser error: ${(err as Error).message}` };
      }
      if (res.ok) {
        const row = res.row;
        if (rec.flags & FLAG_TRUNCATED) {
          const prev = row.AdditionalExtensions;
          row.AdditionalExtensions = prev ? `${prev};${TRUNCATED_MARKER}` : TRUNCATED_MARKER;
        }
        rows.push(row);
        receivedAt.push(rec.receivedAt);
      } else {
        parseFailures.push({
          reason: `parse failure: ${res.reason}`,
          raw: rec.raw.toString('utf8'),
          receivedAt: new Date(rec.receivedAt).toISOString(),
        });
      }
    }
    return { batch, rows, receivedAt, parseFailures };
  }

  /** Runs a step that must happen before the cursor moves; retries it on errors (e.g. disk full). */
  private async mustSucceed(what: string, fn: () => void, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        fn();
        return;
      } catch (err) {
        this.o.metrics.backgroundErrors.inc({ where: what });
        this.o.logger.error({ err: (err as Error).message }, `${what} failed; retrying before the queue moves on`);
        await sleep(this.backoff(attempt), signal);
      }
    }
  }

  private async deliver(p: Prepared, signal: AbortSignal): Promise<void> {
    const { metrics, probes, sink, logger } = this.o;
    const dead: DeadLetterEntry[] = [...p.parseFailures];
    let deadReasonCounts = new Map<string, number>();
    if (p.parseFailures.length) deadReasonCounts.set('parse_failure', p.parseFailures.length);
    let delivered = 0;
    let accepted: number[] | 'all' = 'all';
    const rows = p.rows;
    for (let attempt = 0; rows.length > 0; attempt++) {
      const t0 = performance.now();
      let res: SendResult;
      try {
        res = await sink.send(rows, { signal });
      } catch (err) {
        if (signal.aborted) throw new Aborted();
        metrics.backgroundErrors.inc({ where: 'sink' });
        res = { status: 'retryable', error: `sink error: ${(err as Error).message}` };
      }
      metrics.sinkRequestDuration.observe({ sink: sink.name, result: res.status }, (performance.now() - t0) / 1000);
      const now = Date.now();
      if (res.status === 'retryable') {
        if (signal.aborted) throw new Aborted();
        metrics.totals.retried++;
        metrics.retried.inc({ reason: res.httpStatus ? String(res.httpStatus) : 'error' });
        this.lastDelivery = { ok: false, at: new Date(now).toISOString(), error: res.error, ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}) };
        for (let i = 0; i < rows.length; i++) {
          const id = probeIdOfRow(rows[i]);
          if (id) probes.failed(id, p.receivedAt[i], res.error);
        }
        const delay = Math.max(res.retryAfterMs ?? 0, this.backoff(attempt));
        logger.warn({ sink: sink.name, rows: rows.length, attempt: attempt + 1, delayMs: delay, httpStatus: res.httpStatus, error: res.error }, 'delivery failed, will retry the same batch');
        await sleep(delay, signal);
        continue;
      }
      if (res.status === 'success') {
        delivered = rows.length;
        accepted = 'all';
      } else if (res.status === 'partial') {
        const rejected = new Set<CslRow>();
        for (const r of res.rejected) {
          rejected.add(r.row);
          dead.push({ reason: r.reason, row: r.row });
        }
        deadReasonCounts.set('sink_rejected', (deadReasonCounts.get('sink_rejected') ?? 0) + res.rejected.length);
        accepted = [];
        for (let i = 0; i < rows.length; i++) if (!rejected.has(rows[i])) accepted.push(i);
        delivered = rows.length - rejected.size;
        logger.warn({ sink: sink.name, rejected: res.rejected.length, accepted: delivered, firstReason: res.rejected[0]?.reason }, 'sink refused part of a batch; refused rows dead-lettered');
        for (const r of res.rejected) {
          const id = probeIdOfRow(r.row);
          if (id) probes.deadLettered(id, p.receivedAt[rows.indexOf(r.row)] ?? now, r.reason);
        }
      } else {
        for (const row of rows) dead.push({ reason: res.error, ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}), row });
        deadReasonCounts.set('sink_failure', (deadReasonCounts.get('sink_failure') ?? 0) + rows.length);
        logger.error({ sink: sink.name, rows: rows.length, httpStatus: res.httpStatus, error: res.error }, 'sink refused the batch for good; rows dead-lettered');
        for (let i = 0; i < rows.length; i++) {
          const id = probeIdOfRow(rows[i]);
          if (id) probes.deadLettered(id, p.receivedAt[i], res.error);
        }
      }
      this.lastDelivery =
        res.status === 'failure'
          ? { ok: false, at: new Date(now).toISOString(), error: res.error, ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}) }
          : { ok: true, at: new Date(now).toISOString() };
      break;
    }
    await this.mustSucceed('dead-letter write', () => this.o.deadLetter.write(dead), signal);
    await this.mustSucceed('queue cursor write', () => this.o.queue.ackTo(p.batch.end, p.batch.records.length, p.batch.diskBytes), signal);
    // Count only after the cursor moved, so a crash in between never counts twice.
    if (p.parseFailures.length) {
      metrics.totals.parseFailures += p.parseFailures.length;
      metrics.parseFailures.inc(p.parseFailures.length);
    }
    for (const [reason, n] of deadReasonCounts) metrics.addDeadLettered(reason, n);
    deadReasonCounts = new Map();
    if (delivered) {
      metrics.totals.delivered += delivered;
      metrics.delivered.inc(delivered);
      metrics.batchSize.observe(rows.length);
      const now = Date.now();
      const idx = accepted === 'all' ? null : accepted;
      const n = idx ? idx.length : rows.length;
      for (let k = 0; k < n; k++) {
        const i = idx ? idx[k] : k;
        metrics.deliveryLatency.observe((now - p.receivedAt[i]) / 1000);
        const id = probeIdOfRow(rows[i]);
        if (id) probes.accepted(id, p.receivedAt[i], now);
      }
    }
  }
}
