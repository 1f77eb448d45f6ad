import type { Logger } from 'pino';
import type { Health } from '../admin-types.js';
import type { DiskQueue, Position, QueueBatch } from '../disk-queue.js';
import type { ForwarderMetrics } from '../metrics.js';
import type { ProbeTracker } from '../probes.js';
import { Aborted, backoffMs, mustSucceed, sleep, type Sleep } from './backoff.js';
import type { BatchReport, BatchRunner } from './batch-processor.js';
import type { DeliveryEffects } from './send.js';

interface BatchAck {
  end: Position;
  records: number;
  diskBytes: number;
}

/** Effects applied straight to this thread's metrics, probes and health. */
export function localEffects(
  metrics: ForwarderMetrics,
  probes: ProbeTracker,
  setLast: (d: Health['lastDelivery']) => void,
): DeliveryEffects {
  return {
    retried(reason) {
      metrics.totals.retried++;
      metrics.retried.inc({ reason });
    },
    lastDelivery: setLast,
    backgroundError(where) {
      metrics.backgroundErrors.inc({ where });
    },
    sinkDuration(sink, result, seconds) {
      metrics.sinkRequestDuration.observe({ sink, result }, seconds);
    },
    probeFailed(id, receivedAt, error) {
      probes.failed(id, receivedAt, error);
    },
    probeDeadLettered(id, receivedAt, reason) {
      probes.deadLettered(id, receivedAt, reason);
    },
  };
}

export interface DeliveryOptions {
  queue: DiskQueue;
  metrics: ForwarderMetrics;
  probes: ProbeTracker;
  logger: Logger;
  batch: { maxRecords: number; maxBytes: number; flushMs: number; parallelSends: number; inFlight: number };
  retry: { initialMs: number; maxMs: number };
  random?: () => number;
  /** Waits before a restart or a retried cursor write (tests: a fake clock). */
  sleep?: Sleep;
  /** Built from the loop's own effects (so lastDelivery lands on the loop). */
  runner: (effects: DeliveryEffects) => BatchRunner;
}

/**
 * Moves batches from the disk queue to the sink (through a BatchRunner) and moves the queue cursor
 * only after the batch is accepted or dead-lettered.
 */
export class DeliveryLoop {
  lastDelivery: Health['lastDelivery'] = null;
  /** When the first of the delivery failures since the last success happened (ms), or null. */
  failingSince: number | null = null;
  readonly effects: DeliveryEffects;
  private readonly runner: BatchRunner;
  private readonly abort = new AbortController();
  private draining = false;
  private running: Promise<void> | null = null;
  private readonly random: () => number;
  private readonly sleep: Sleep;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly o: DeliveryOptions) {
    this.random = o.random ?? Math.random;
    this.sleep = o.sleep ?? sleep;
    this.effects = localEffects(o.metrics, o.probes, (d) => {
      this.lastDelivery = d;
      this.failingSince = d === null || d.ok ? null : (this.failingSince ?? Date.now());
    });
    this.runner = o.runner(this.effects);
  }

  start(): void {
    this.runner.start?.();
    this.running ??= this.supervise();
  }

  /** Runs the loop; an unexpected error is counted, logged and the loop restarted from the cursor. */
  private async supervise(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        await this.run();
        return;
      } catch (err) {
        if (err instanceof Aborted || this.abort.signal.aborted) return;
        this.o.metrics.backgroundErrors.inc({ where: 'delivery_loop' });
        this.o.logger.error(
          { err: (err as Error).message, stack: (err as Error).stack },
          'delivery loop failed; restarting from the queue cursor in 1 s',
        );
        this.o.queue.rewind();
        this.runner.reset();
        await this.sleep(1000, this.abort.signal).catch(() => {});
      }
    }
  }

  get isRunning(): boolean {
    return this.running !== null && !this.abort.signal.aborted;
  }

  /** Delivers what is queued until empty or the deadline, then stops. Unsent events stay queued. */
  async stop(deadlineMs: number): Promise<void> {
    this.draining = true;
    const loop = this.running;
    if (!loop) {
      await this.runner.close?.();
      return;
    }
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
    await this.runner.close?.();
  }

  private backoff(attempt: number): number {
    return backoffMs(this.o.retry, attempt, this.random);
  }

  private async run(): Promise<void> {
    const { queue, batch: cfg } = this.o;
    const signal = this.abort.signal;
    const limit = Math.max(1, cfg.inFlight);
    // Batches handed to the runner, oldest first. The cursor moves over them strictly in order, so a
    // crash resends at most `limit` batches (duplicates, never loss).
    // Only what the cursor needs is kept here: the records themselves (views into 1 MB read buffers)
    // go to the runner and are released as soon as they are parsed.
    const inflight: Array<{ ack: BatchAck; sending: Promise<BatchReport> }> = [];
    let handedRecords = 0;
    let handedBytes = 0;
    let firstSeen: number | null = null;
    // A failed read (a segment that cannot be opened: EMFILE, EACCES, EIO) hands out nothing: wait and
    // read again, while the batches already on the wire are acknowledged in order, not sent again.
    let readFailures = 0;
    let readAgainAt = 0;
    try {
      while (!signal.aborted) {
        // How long to wait for more data before another batch could start; null when at the limit.
        let wait: number | null = null;
        if (inflight.length < limit) {
          if (queue.unread && readAgainAt > Date.now()) {
            wait = readAgainAt - Date.now();
          } else if (queue.unread) {
            const now = Date.now();
            firstSeen ??= now;
            const ready =
              this.draining ||
              queue.records - handedRecords >= cfg.maxRecords ||
              queue.bytes - handedBytes >= cfg.maxBytes ||
              now - firstSeen >= cfg.flushMs;
            if (ready) {
              firstSeen = null;
              let batch: QueueBatch;
              try {
                batch = queue.readBatch(cfg.maxRecords, cfg.maxBytes);
              } catch (err) {
                this.effects.backgroundError('queue_read');
                if (readFailures++ === 0)
                  this.o.logger.error({ err: (err as Error).message }, 'cannot read the queue; retrying (batches already sent are kept)');
                readAgainAt = Date.now() + this.backoff(readFailures);
                continue;
              }
              if (readFailures) this.o.logger.info({ failures: readFailures }, 'reading the queue works again');
              readFailures = 0;
              // The runner parses this batch while earlier ones are on the wire.
              const sending = this.runner.deliver(this.runner.prepare(batch), signal);
              sending.catch(() => {}); // awaited in order below
              const ack = { end: batch.end, records: batch.count, diskBytes: batch.diskBytes };
              inflight.push({ ack, sending });
              handedRecords += ack.records;
              handedBytes += ack.diskBytes;
              continue;
            }
            wait = Math.max(1, firstSeen + cfg.flushMs - now);
          } else {
            firstSeen = null;
            if (this.draining && !inflight.length) {
              for (const w of this.drainWaiters.splice(0)) w();
            }
            wait = this.draining ? 50 : 1000;
          }
        }
        if (!inflight.length) {
          await queue.waitForData(wait!, signal);
          continue;
        }
        const oldest = inflight[0];
        if (wait !== null) {
          // Room for another batch: wake on whichever comes first, the oldest send or more data.
          const settled = await Promise.race([
            oldest.sending.then(
              () => true,
              () => true,
            ),
            queue.waitForData(wait, signal).then(() => false),
          ]);
          if (!settled) continue;
        }
        const report = await oldest.sending;
        inflight.shift();
        handedRecords -= oldest.ack.records;
        handedBytes -= oldest.ack.diskBytes;
        await this.acknowledge(oldest.ack, report, signal);
        // A sink that answers without real I/O would otherwise keep this loop in microtasks and
        // starve intake; give the event loop one turn per batch.
        await new Promise((r) => setImmediate(r));
      }
    } catch (err) {
      // Later batches may still be on the wire; their outcome is ignored and they are sent again
      // from the cursor (duplicates, never loss).
      queue.rewind();
      this.runner.reset();
      if (err instanceof Aborted) return;
      throw err;
    }
  }

  private async acknowledge(batch: BatchAck, report: BatchReport, signal: AbortSignal): Promise<void> {
    const { metrics, probes, queue, logger } = this.o;
    await mustSucceed('queue cursor write', () => queue.ackTo(batch.end, batch.records, batch.diskBytes), signal, {
      backgroundError: (w) => this.effects.backgroundError(w),
      logger,
      backoff: (a) => this.backoff(a),
      sleep: this.sleep,
    });
    // Count only after the cursor moved, so a crash in between never counts twice.
    if (report.parseFailures) {
      metrics.totals.parseFailures += report.parseFailures;
      metrics.parseFailures.inc(report.parseFailures);
    }
    for (const [reason, n] of report.deadReasons) metrics.addDeadLettered(reason, n);
    if (report.truncatedNotes) metrics.sinkTruncated.inc(report.truncatedNotes);
    const now = Date.now();
    for (const at of report.deliveredAt) metrics.deliveryLatency.observe((now - at) / 1000);
    for (const [id, at] of report.probes) probes.accepted(id, at, now);
    const delivered = report.deliveredAt.length;
    if (delivered) {
      metrics.totals.delivered += delivered;
      metrics.delivered.inc(delivered);
    }
    if (report.rows) metrics.batchSize.observe(report.rows);
  }
}
