import type { Logger } from 'pino';
import type { CslRow, ParseResult } from '../parser/types.js';
import { rowOf, type AuthFailure, type PreparedRow, type RowLimits, type RowNote, type SendProgress, type SendResult, type Sink } from '../sinks/types.js';
import type { Health } from './admin-types.js';
import type { DeadLetterEntry, DeadLetterFile } from './dead-letter.js';
import { FLAG_ROW, FLAG_TRUNCATED, type DiskQueue, type Position, type QueueBatch, type QueueRecord } from './disk-queue.js';
import type { ForwarderMetrics } from './metrics.js';
import { probeIdOfRow, type ProbeTracker } from './probes.js';
import { PROBE_ID_LABEL } from './admin-types.js';
import { lineJsonParser, parseLine } from '../parser/index.js';
import { defaultWriter, type RowWriter } from '../sinks/batch.js';

/**
 * Added to AdditionalExtensions of a row whose syslog message was cut at the maximum message size;
 * same shape as the sinks' per-field flag (sentinelCefTruncated=Column:bytes).
 */
export function truncatedMarker(maxMessageBytes: number): string {
  return `sentinelCefTruncated=message:${maxMessageBytes}`;
}

export class Aborted extends Error {}

/** A queue record with FLAG_ROW: a dead-lettered row put back by `dead-letters replay`. */
function replayedRow(raw: Buffer): ParseResult {
  try {
    const row = JSON.parse(raw.toString('utf8')) as unknown;
    if (row && typeof row === 'object' && !Array.isArray(row)) return { ok: true, kind: 'cef', row: row as CslRow };
  } catch {
    // reported below
  }
  return { ok: false, reason: 'replayed row is not a JSON object' };
}

/** Records parsed (or rows serialized) between event-loop turns. */
const PREPARE_SLICE = 500;

/** While authorization keeps failing, a reminder this often (besides one line per state change). */
const AUTH_LOG_EVERY_MS = 5 * 60_000;

/** Default of retry.authFailureMaxSec, in ms. */
export const DEFAULT_AUTH_FAILURE_MAX_MS = 60 * 60_000;

function minutes(ms: number): string {
  return ms < 60_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

/** Below this many rows a batch is not split across parallel sends. */
const MIN_SLICE_ROWS = 250;

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
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

export function backoffMs(retry: { initialMs: number; maxMs: number }, attempt: number, random: () => number): number {
  const cap = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(attempt, 30));
  // Full jitter, but never below half the step so retries stay spaced.
  return Math.round(cap / 2 + (random() * cap) / 2);
}

/** Runs a step that must happen before the cursor moves; retries it on errors (e.g. disk full). */
export async function mustSucceed(
  what: string,
  fn: () => void,
  signal: AbortSignal,
  ctx: { backgroundError(where: string): void; logger: Logger; backoff(attempt: number): number },
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      fn();
      return;
    } catch (err) {
      ctx.backgroundError(what);
      ctx.logger.error({ err: (err as Error).message }, `${what} failed; retrying before the queue moves on`);
      await sleep(ctx.backoff(attempt), signal);
    }
  }
}

/** Side effects of a send while it runs (streamed to the main thread when delivery runs in a worker). */
export interface DeliveryEffects {
  retried(reason: string): void;
  lastDelivery(d: Health['lastDelivery']): void;
  backgroundError(where: string): void;
  sinkDuration(sink: string, result: string, seconds: number): void;
  probeFailed(id: string, receivedAt: number, error: string): void;
  probeDeadLettered(id: string, receivedAt: number, reason: string): void;
}

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

interface BatchAck {
  end: Position;
  records: number;
  diskBytes: number;
}

/** A row as held between parse and delivery: the row itself, or what the sink's prepare made of it. */
type Item = CslRow | PreparedRow;

export interface Prepared {
  /** Parsed rows, or (when the sink has prepare/sendPrepared) their serialized form only. */
  rows: Item[];
  prepared: boolean;
  receivedAt: number[];
  parseFailures: DeadLetterEntry[];
  /** Probe id by row position (found at parse time, so a prepared row need not be read back). */
  probes: Map<number, string>;
  /** Called once every row is settled: the rows' storage may be reused (a parse worker's chunks). */
  release?: () => void;
}

export interface PrepareOptions {
  parse: (raw: Buffer, receivedAt: Date) => ParseResult;
  /** The sink's prepare (serialize rows now, keep only that); without it rows are kept as parsed. */
  prepare?: (rows: CslRow[]) => PreparedRow[];
  /**
   * With `parse` the stock parser and `prepare` a sink's that has rowLimits: CEF rows within the limits
   * are written as JSON into `writer` while they are parsed (the bytes prepare would give), with no row
   * object in between. Probes, truncated messages and other lines take the row path.
   */
  json?: { limits: RowLimits; writer: RowWriter };
  maxMessageBytes: number;
  /** An event-loop turn between slices (the main thread); a parse worker has nothing else to serve. */
  yieldBetweenSlices: boolean;
}

/**
 * Parses queue records into rows (or, with a preparing sink, their serialized form), notes probes and
 * parse failures. Rows are serialized slice by slice as they are parsed, so each row object dies
 * within its slice (young) and only its JSON is kept for the send.
 */
export async function prepareRecords(records: ReadonlyArray<QueueRecord>, o: PrepareOptions): Promise<Prepared> {
  const preparing = o.prepare !== undefined;
  const rows: Item[] = [];
  let pending: CslRow[] = [];
  const flush = () => {
    if (!pending.length) return;
    const out = o.prepare!(pending);
    for (let j = 0; j < out.length; j++) rows.push(out[j]!);
    pending = [];
  };
  const receivedAt: number[] = [];
  const parseFailures: DeadLetterEntry[] = [];
  const probes = new Map<number, string>();
  const marker = truncatedMarker(o.maxMessageBytes);
  const json = o.json !== undefined && preparing ? o.json : undefined;
  const direct = json && lineJsonParser({ ...json.limits, rowWhen: { column: 'DeviceCustomString2Label', value: PROBE_ID_LABEL } });
  let at = new Date(NaN);
  for (let k = 0; k < records.length; k++) {
    if (k > 0 && k % PREPARE_SLICE === 0) {
      if (preparing) flush();
      if (o.yieldBetweenSlices) await new Promise((r) => setImmediate(r));
    }
    const rec = records[k];
    // Records of one socket read share their receive time: one Date for them.
    if (at.getTime() !== rec.receivedAt) at = new Date(rec.receivedAt);
    let res: ParseResult;
    try {
      if (direct && rec.flags === 0) {
        const r = direct(rec.raw, at, json!.writer);
        if (r.ok && r.kind === 'json') {
          flush();
          rows.push(r as PreparedRow);
          receivedAt.push(rec.receivedAt);
          continue;
        }
        res = r as ParseResult;
      } else res = rec.flags & FLAG_ROW ? replayedRow(rec.raw) : o.parse(rec.raw, at);
    } catch (err) {
      res = { ok: false, reason: `parser error: ${(err as Error).message}` };
    }
    if (res.ok) {
      const row = res.row;
      if (rec.flags & FLAG_TRUNCATED) {
        const prev = row.AdditionalExtensions;
        row.AdditionalExtensions = prev ? `${prev};${marker}` : marker;
      }
      const probe = probeIdOfRow(row);
      if (probe) probes.set(receivedAt.length, probe);
      if (preparing) pending.push(row);
      else rows.push(row);
      receivedAt.push(rec.receivedAt);
    } else {
      parseFailures.push({
        reason: `parse failure: ${res.reason}`,
        raw: rec.raw.toString('utf8'),
        receivedAt: new Date(rec.receivedAt).toISOString(),
      });
    }
  }
  if (preparing) flush();
  return { rows, prepared: preparing, receivedAt, parseFailures, probes };
}

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
  private readonly monotonic: () => number;
  /** Set while every send is refused authorization: since when, and when it was last logged. */
  private authState: { since: number; lastLog: number; expired: boolean } | null = null;
  constructor(private readonly o: BatchProcessorOptions) {
    this.random = o.random ?? Math.random;
    this.monotonic = o.monotonic ?? (() => performance.now());
  }

  /**
   * Notes an authorization refusal and logs state changes (plus a reminder every 5 min). True once
   * refusals have lasted authFailureMaxMs: the caller then dead-letters instead of retrying.
   */
  private noteAuthFailure(auth: AuthFailure, httpStatus: number | undefined): boolean {
    const { logger, sink } = this.o;
    const max = this.o.authFailureMaxMs ?? DEFAULT_AUTH_FAILURE_MAX_MS;
    const now = this.monotonic();
    const fields = {
      sink: sink.name,
      httpStatus,
      cause: auth.hint,
      ...(auth.clockSkewMs !== undefined ? { clockSkewSec: Math.round(auth.clockSkewMs / 1000) } : {}),
    };
    let st = this.authState;
    if (!st) {
      st = this.authState = { since: now, lastLog: now, expired: false };
      if (max > 0) {
        logger.warn({ ...fields, holdSec: Math.round(max / 1000) }, `authorization refused (${auth.hint}); rows stay queued and are retried for up to ${minutes(max)} before they are dead-lettered`);
      }
    }
    const held = now - st.since;
    if (held >= max) {
      if (!st.expired || now - st.lastLog >= AUTH_LOG_EVERY_MS) {
        st.lastLog = now;
        logger.error(
          { ...fields, failingSec: Math.round(held / 1000) },
          `authorization refused for ${minutes(held)} (${auth.hint}); dead-lettering rows until it works again, then replay them with \`sentinel-cef dead-letters replay\``,
        );
      }
      st.expired = true;
      return true;
    }
    if (now - st.lastLog >= AUTH_LOG_EVERY_MS) {
      st.lastLog = now;
      logger.warn({ ...fields, failingSec: Math.round(held / 1000) }, `authorization still refused after ${minutes(held)} (${auth.hint}); rows stay queued, dead-lettered in ${minutes(max - held)}`);
    }
    return false;
  }

  /** A send was accepted: authorization works (again). */
  private noteAuthorized(): void {
    const st = this.authState;
    if (!st) return;
    this.authState = null;
    this.o.logger.info({ sink: this.o.sink.name, failingSec: Math.round((this.monotonic() - st.since) / 1000) }, `authorization works again after ${minutes(this.monotonic() - st.since)} of refusals; delivering the queued rows`);
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
    const dead: DeadLetterEntry[] = [...p.parseFailures];
    const deadReasonCounts = new Map<string, number>();
    const addDead = (reason: string, n: number) => deadReasonCounts.set(reason, (deadReasonCounts.get(reason) ?? 0) + n);
    if (p.parseFailures.length) addDead('parse_failure', p.parseFailures.length);
    // Per row: 0 pending, 1 accepted, 2 refused for good.
    const state = new Uint8Array(rows.length);
    // Row → position, built only when a sink reports rows individually (partial, progress).
    let index: Map<Item, number> | null = null;
    const indexOf = (row: Item) => {
      if (!index) {
        index = new Map();
        for (let i = 0; i < rows.length; i++) index.set(rows[i], i);
      }
      return index.get(row) ?? -1;
    };
    let truncatedNotes = 0;
    const probeAt = (i: number) => (i >= 0 && p.probes.size ? p.probes.get(i) : undefined);
    const refuse = (notes: RowNote<Item>[], counter: string) => {
      for (const n of notes) {
        const i = indexOf(n.row);
        if (i >= 0) state[i] = 2;
        dead.push({ reason: n.reason, row: rowFor(n.row) });
        const id = probeAt(i);
        if (id) effects.probeDeadLettered(id, p.receivedAt[i], n.reason);
      }
      if (notes.length) addDead(counter, notes.length);
    };
    const noteTruncated = (notes: RowNote<Item>[] | undefined) => {
      // Accepted with a value cut to the service's field limit: keep the full original row.
      for (const n of notes ?? []) dead.push({ reason: `accepted truncated: ${n.reason}`, accepted: true, row: rowFor(n.row) });
      truncatedNotes += notes?.length ?? 0;
    };
    // One batch in flight (the cursor covers it), sent as up to parallelSends concurrent sink calls
    // so a slow round trip to Azure does not cap throughput; each slice retries on its own.
    const sendSlice = async (from: number, to: number) => {
      const slice = from === 0 && to === rows.length ? rows : rows.slice(from, to);
      let pending = slice;
      for (let attempt = 0; pending.length > 0; attempt++) {
        const t0 = performance.now();
        let res: SendResult<Item>;
        try {
          res = await send(pending);
        } catch (err) {
          if (signal.aborted) throw new Aborted();
          effects.backgroundError('sink');
          res = { status: 'retryable', error: `sink error: ${(err as Error).message}` };
        }
        effects.sinkDuration(sink.name, res.status, (performance.now() - t0) / 1000);
        const now = Date.now();
        // Part of the slice settled before the error: only what is still pending goes on.
        const settle = (progress: SendProgress<Item>) => {
          refuse(progress.rejected, 'sink_rejected');
          noteTruncated(progress.truncated);
          const still = new Set(progress.pending);
          for (const r of pending) {
            const i = indexOf(r);
            if (state[i] === 0 && !still.has(r)) state[i] = 1;
          }
          pending = progress.pending;
        };
        let authExpired = false;
        if (res.status === 'retryable' && res.auth && !signal.aborted && this.noteAuthFailure(res.auth, res.httpStatus)) {
          // Refused for longer than retry.authFailureMaxSec: stop holding the rows.
          if (res.progress) settle(res.progress);
          const bound = minutes(this.o.authFailureMaxMs ?? DEFAULT_AUTH_FAILURE_MAX_MS);
          res = { status: 'failure', error: `${res.error} [authorization refused for longer than ${bound} (retry.authFailureMaxSec)]`, ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}) };
          authExpired = true;
        }
        if (res.status === 'retryable') {
          if (signal.aborted) throw new Aborted();
          effects.retried(res.httpStatus ? String(res.httpStatus) : 'error');
          effects.lastDelivery({ ok: false, at: new Date(now).toISOString(), error: res.error, ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}) });
          if (res.progress) settle(res.progress);
          if (p.probes.size) {
            for (const r of pending) {
              const i = indexOf(r);
              const id = probeAt(i);
              if (id) effects.probeFailed(id, p.receivedAt[i] ?? now, res.error);
            }
          }
          const delay = Math.max(res.retryAfterMs ?? 0, this.backoff(attempt));
          // Authorization refusals are logged per state change (noteAuthFailure), not per attempt.
          (res.auth ? logger.debug : logger.warn).call(logger, { sink: sink.name, rows: pending.length, attempt: attempt + 1, delayMs: delay, httpStatus: res.httpStatus, error: res.error }, 'delivery failed, will retry the same rows');
          if (pending.length) await sleep(delay, signal);
          continue;
        }
        if (res.status !== 'failure') this.noteAuthorized();
        if (res.status === 'success') {
          if (pending === slice) state.fill(1, from, to);
          else for (const r of pending) state[indexOf(r)] = 1;
          noteTruncated(res.truncated);
        } else if (res.status === 'partial') {
          refuse(res.rejected, 'sink_rejected');
          noteTruncated(res.truncated);
          for (const r of pending) {
            const i = indexOf(r);
            if (state[i] === 0) state[i] = 1;
          }
          logger.warn({ sink: sink.name, rejected: res.rejected.length, firstReason: res.rejected[0]?.reason }, 'sink refused part of a batch; refused rows dead-lettered');
        } else {
          const notes = pending.map((row) => ({ row, reason: res.error }) as RowNote<Item>);
          refuse(notes, authExpired ? 'auth_failure' : 'sink_failure');
          if (res.httpStatus) for (const d of dead.slice(-notes.length)) d.httpStatus = res.httpStatus;
          // Past the auth bound every batch lands here: noteAuthFailure already logs that state (every 5 min).
          (authExpired ? logger.debug : logger.error).call(logger, { sink: sink.name, rows: pending.length, httpStatus: res.httpStatus, error: res.error }, 'sink refused the batch for good; rows dead-lettered');
        }
        effects.lastDelivery(
          res.status === 'failure'
            ? { ok: false, at: new Date(now).toISOString(), error: res.error, ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}) }
            : { ok: true, at: new Date(now).toISOString() },
        );
        return;
      }
    };
    const slices = sink.ordered ? 1 : Math.max(1, Math.min(this.o.parallelSends, Math.ceil(rows.length / MIN_SLICE_ROWS)));
    const per = Math.ceil(rows.length / slices);
    const sends: Array<Promise<void>> = [];
    for (let k = 0; k < rows.length; k += per) sends.push(sendSlice(k, Math.min(rows.length, k + per)));
    const outcomes = await Promise.allSettled(sends);
    for (const o of outcomes) if (o.status === 'rejected') throw o.reason;
    await mustSucceed('dead-letter write', () => this.o.deadLetter.write(dead), signal, { backgroundError: (w) => effects.backgroundError(w), logger, backoff: (a) => this.backoff(a) });
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
    return { rows: rows.length, parseFailures: p.parseFailures.length, deadReasons: [...deadReasonCounts], truncatedNotes, deliveredAt, probes };
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

/** Effects applied straight to this thread's metrics, probes and health. */
export function localEffects(metrics: ForwarderMetrics, probes: ProbeTracker, setLast: (d: Health['lastDelivery']) => void): DeliveryEffects {
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

export interface DeliveryOptions {
  queue: DiskQueue;
  metrics: ForwarderMetrics;
  probes: ProbeTracker;
  logger: Logger;
  batch: { maxRecords: number; maxBytes: number; flushMs: number; parallelSends: number; inFlight: number };
  retry: { initialMs: number; maxMs: number };
  random?: () => number;
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
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly o: DeliveryOptions) {
    this.random = o.random ?? Math.random;
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
        this.o.logger.error({ err: (err as Error).message, stack: (err as Error).stack }, 'delivery loop failed; restarting from the queue cursor in 1 s');
        this.o.queue.rewind();
        this.runner.reset();
        await sleep(1000, this.abort.signal).catch(() => {});
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
                if (readFailures++ === 0) this.o.logger.error({ err: (err as Error).message }, 'cannot read the queue; retrying (batches already sent are kept)');
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
            oldest.sending.then(() => true, () => true),
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
