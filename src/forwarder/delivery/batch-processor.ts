import type { Logger } from 'pino';
import type { CslRow, ParseResult } from '../../parser/types.js';
import { parseLine } from '../../parser/index.js';
import { defaultWriter } from '../../sinks/row-writer.js';
import { rowOf, type PreparedRow, type SendResult, type Sink } from '../../sinks/types.js';
import type { DeadLetterEntry, DeadLetterFile } from '../dead-letter.js';
import type { QueueBatch, QueueRecord } from '../disk-queue.js';
import { AuthHold, DEFAULT_AUTH_FAILURE_MAX_MS } from './auth-hold.js';
import { backoffMs, mustSucceed, sleep, type Sleep } from './backoff.js';
import { prepareRecords, type Item, type Prepared } from './prepare.js';
import { sendRows, type DeliveryEffects, type RowOutcome } from './send.js';

/** What a delivered batch changes in the metrics; applied only after the cursor moved. */
export interface BatchReport {
  rows: number;
  parseFailures: number;
  deadReasons: Array<[string, number]>;
  truncatedNotes: number;
  /** receivedAt of every row the sink accepted (a typed array: it crosses from the worker without a per-element copy). */
  deliveredAt: Float64Array;
  /** Accepted probes: id and receivedAt. */
  probes: Array<[string, number]>;
}

/** Below this many rows a batch is not split across parallel sends. */
const MIN_SLICE_ROWS = 250;

export interface BatchProcessorOptions {
  sink: Sink;
  /** Default: the stock parser (which lets a sink with rowLimits get rows' JSON while they are parsed). */
  parse?: (raw: Buffer, receivedAt: Date) => ParseResult;
  deadLetter: DeadLetterFile;
  logger: Logger;
  effects: DeliveryEffects;
  parallelSends: number;
  retry: { initialMs: number; maxMs: number };
  maxMessageBytes: number;
  random?: () => number;
  /**
   * How long continuous authorization refusals (results with `auth`) hold rows before they are
   * dead-lettered (retry.authFailureMaxSec). Default 1 hour.
   */
  authFailureMaxMs?: number;
  /** Monotonic clock for that bound (tests); a clock fixed by a jump must not cut the hold short. */
  monotonic?: () => number;
  /** Waits between retries (tests: a fake clock). */
  sleep?: Sleep;
}

/**
 * Parses queue records and sends the rows through the sink until each is accepted or refused for
 * good (dead-lettered). Retryable results are retried forever (exponential backoff with full jitter,
 * never before retryAfterMs), except authorization refusals: those are retried while they have lasted
 * less than authFailureMaxMs, then dead-lettered with the reason until a send is accepted again.
 * Runs on the main thread or in the delivery worker; moving the queue cursor is the caller's job,
 * after this resolves.
 */
export class BatchProcessor {
  private readonly random: () => number;
  private readonly sleep: Sleep;
  private readonly auth: AuthHold;
  constructor(private readonly o: BatchProcessorOptions) {
    this.random = o.random ?? Math.random;
    this.sleep = o.sleep ?? sleep;
    this.auth = new AuthHold({
      sink: o.sink.name,
      logger: o.logger,
      maxMs: o.authFailureMaxMs ?? DEFAULT_AUTH_FAILURE_MAX_MS,
      now: o.monotonic ?? (() => performance.now()),
    });
  }

  backoff(attempt: number): number {
    return backoffMs(this.o.retry, attempt, this.random);
  }

  /** With an ordered sink: the delivery of the batch handed over last. */
  private previous: Promise<unknown> = Promise.resolve();

  /**
   * Runs a batch's delivery after the batch handed over before it settled, when the sink is ordered
   * (Sink.ordered); call it as the loop hands the batch over. After a failed batch the later ones fail
   * unsent: the loop rewinds to the cursor and sends them all again, in order (resetOrder).
   */
  inOrder(run: () => Promise<BatchReport>): Promise<BatchReport> {
    if (!this.o.sink.ordered) return run();
    const mine = this.previous.then(run);
    mine.catch(() => {});
    this.previous = mine;
    return mine;
  }

  /** After a rewind: batches handed over from now on wait for none of the earlier ones. */
  resetOrder(): void {
    this.previous = Promise.resolve();
  }

  /**
   * Parses in slices with an event-loop turn between them: a whole batch at once would hold up the
   * HTTP responses and compressed bodies of the batches already on the wire for ~100 ms.
   */
  prepare(records: ReadonlyArray<QueueRecord>): Promise<Prepared> {
    const { sink } = this.o;
    return prepareRecords(records, {
      parse: this.o.parse ?? ((raw, at) => parseLine(raw, at)),
      prepare: sink.prepare !== undefined && sink.sendPrepared !== undefined ? (rows) => sink.prepare!(rows) : undefined,
      json: this.o.parse === undefined && sink.rowLimits !== undefined ? { limits: sink.rowLimits, writer: defaultWriter } : undefined,
      maxMessageBytes: this.o.maxMessageBytes,
      yieldBetweenSlices: true,
    });
  }

  async deliver(p: Prepared, signal: AbortSignal): Promise<BatchReport> {
    const { sink, logger, effects } = this.o;
    const rows = p.rows;
    const send = (items: Item[]): Promise<SendResult<Item>> =>
      p.prepared ? sink.sendPrepared!(items as PreparedRow[], { signal }) : sink.send(items as CslRow[], { signal });
    const rowFor = (it: Item): CslRow => (p.prepared ? rowOf(it as PreparedRow) : (it as CslRow));
    // Row → position, built only when a sink reports rows individually (partial, progress).
    let index: Map<Item, number> | null = null;
    const indexOf = (row: Item) => {
      if (!index) {
        index = new Map();
        for (let i = 0; i < rows.length; i++) index.set(rows[i], i);
      }
      return index.get(row) ?? -1;
    };
    const probeAt = (i: number) => (i >= 0 && p.probes.size ? p.probes.get(i) : undefined);
    const onRetry = p.probes.size
      ? (pending: readonly Item[], error: string, now: number) => {
          for (const r of pending) {
            const i = indexOf(r);
            const id = probeAt(i);
            if (id) effects.probeFailed(id, p.receivedAt[i] ?? now, error);
          }
        }
      : undefined;
    // One batch in flight (the cursor covers it), sent as up to parallelSends concurrent sink calls
    // so a slow round trip to Azure does not cap throughput; each slice retries on its own.
    const slices = sink.ordered ? 1 : Math.max(1, Math.min(this.o.parallelSends, Math.ceil(rows.length / MIN_SLICE_ROWS)));
    const per = Math.ceil(rows.length / slices);
    const sends: Array<Promise<RowOutcome<Item>[]>> = [];
    for (let k = 0; k < rows.length; k += per) {
      const slice = k === 0 && per >= rows.length ? rows : rows.slice(k, Math.min(rows.length, k + per));
      sends.push(
        sendRows(slice, {
          sinkName: sink.name,
          send,
          effects,
          logger,
          auth: this.auth,
          backoff: (a) => this.backoff(a),
          sleep: this.sleep,
          signal,
          onRetry,
        }),
      );
    }
    const settled = await Promise.allSettled(sends);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;

    // Per row: 1 accepted, 2 refused for good. Rows a slice did not name were accepted as sent.
    const state = new Uint8Array(rows.length).fill(1);
    const dead: DeadLetterEntry[] = [...p.parseFailures];
    const deadReasonCounts = new Map<string, number>();
    const addDead = (reason: string, n: number) => deadReasonCounts.set(reason, (deadReasonCounts.get(reason) ?? 0) + n);
    if (p.parseFailures.length) addDead('parse_failure', p.parseFailures.length);
    let truncatedNotes = 0;
    for (const s of settled) {
      for (const n of (s as PromiseFulfilledResult<RowOutcome<Item>[]>).value) {
        if (!n.refused) {
          dead.push({ reason: `accepted truncated: ${n.reason}`, accepted: true, row: rowFor(n.row) });
          truncatedNotes++;
          continue;
        }
        const i = indexOf(n.row);
        if (i >= 0) state[i] = 2;
        dead.push(
          n.httpStatus ? { reason: n.reason, row: rowFor(n.row), httpStatus: n.httpStatus } : { reason: n.reason, row: rowFor(n.row) },
        );
        addDead(n.refused, 1);
        const id = probeAt(i);
        if (id) effects.probeDeadLettered(id, p.receivedAt[i], n.reason);
      }
    }
    await mustSucceed('dead-letter write', () => this.o.deadLetter.write(dead), signal, {
      backgroundError: (w) => effects.backgroundError(w),
      logger,
      backoff: (a) => this.backoff(a),
      sleep: this.sleep,
    });
    let accepted = 0;
    for (let i = 0; i < rows.length; i++) if (state[i] === 1) accepted++;
    const deliveredAt = new Float64Array(accepted);
    const probes: Array<[string, number]> = [];
    for (let i = 0, k = 0; i < rows.length; i++) {
      if (state[i] !== 1) continue;
      deliveredAt[k++] = p.receivedAt[i];
      const id = probeAt(i);
      if (id) probes.push([id, p.receivedAt[i]]);
    }
    return {
      rows: rows.length,
      parseFailures: p.parseFailures.length,
      deadReasons: [...deadReasonCounts],
      truncatedNotes,
      deliveredAt,
      probes,
    };
  }
}

/** Hands batches to a BatchProcessor: in this thread, or in the delivery worker (delivery-worker.ts). */
export interface BatchRunner {
  /** Starts parsing a batch (the worker parses while the previous batch is on the wire). */
  prepare(batch: QueueBatch): unknown;
  deliver(prepared: unknown, signal: AbortSignal): Promise<BatchReport>;
  /** Forgets prepared batches (after a rewind). */
  reset(): void;
  start?(): void;
  close?(): Promise<void>;
}

export function localRunner(processor: BatchProcessor): BatchRunner {
  return {
    prepare: (batch) => processor.prepare(batch.records),
    deliver: (prepared, signal) => {
      (prepared as Promise<Prepared>).catch(() => {}); // awaited in turn
      return processor.inOrder(async () => processor.deliver(await (prepared as Promise<Prepared>), signal));
    },
    reset: () => processor.resetOrder(),
  };
}
