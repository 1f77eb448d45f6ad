import type { CslRow } from '../parser/types.js';
import type { RowLimits } from '../parser/json-out.js';
import type { RowWriter } from './row-writer.js';

/**
 * What a sink says about one send. The delivery loop owns retries and dead-lettering:
 * - success: every row was accepted.
 * - retryable: nothing may be assumed accepted; send the same rows again later
 *   (after retryAfterMs when the service said so). With `auth` the service refused our credentials
 *   in a way that can heal by itself (clock skew, role propagation, key rotation): the delivery loop
 *   retries for a bounded time (retry.authFailureMaxSec), then dead-letters.
 * - partial: the sink split the batch (size limits, 413); `rejected` rows were refused for good
 *   with a reason and go to the dead-letter file; every other row was accepted.
 * - failure: the whole batch was refused for good (400, 403, ...); dead-letter all rows.
 * - truncated (success/partial, optional): rows that were accepted with a value cut to the service's
 *   per-field limit (flagged in-row in AdditionalExtensions as sentinelCefTruncated=Column:bytes);
 *   `row` is the untruncated original, worth keeping in the dead-letter file.
 */
export type SendResult<R = CslRow> =
  | { status: 'success'; accepted: number; truncated?: RowNote<R>[] }
  | { status: 'retryable'; error: string; retryAfterMs?: number; httpStatus?: number; progress?: SendProgress<R>; auth?: AuthFailure }
  | { status: 'partial'; accepted: number; rejected: RowNote<R>[]; truncated?: RowNote<R>[] }
  | { status: 'failure'; error: string; httpStatus?: number };

/** An authorization refusal that may be transient, and what probably causes it. */
export interface AuthFailure {
  /** The likely cause and what to check, for the operator (one clause, no secrets). */
  hint: string;
  /** This machine's clock minus the service's (its `Date` header), when the response had one. */
  clockSkewMs?: number;
}

/** A row (the same object as given to send / sendPrepared) and why it is reported. */
export interface RowNote<R = CslRow> {
  row: R;
  reason: string;
}

/**
 * A row serialized ahead of its send by Sink.prepare. The forwarder keeps these, not the row objects,
 * while a batch is on the wire: the row's UTF-8 JSON lives in a Buffer shared by many rows (outside
 * V8's heap), so garbage collections neither copy nor promote it (peak RSS, CPU). rowOf() gives the
 * row back when one is dead-lettered.
 */
export interface PreparedRow {
  /** Holds the row's JSON (as it will be sent, after truncation to the per-field limit) at [start, start + bytes). */
  buf: Buffer;
  start: number;
  /** UTF-8 bytes of the JSON. */
  bytes: number;
  /** Set when a value was truncated: which columns and their original sizes. */
  truncated?: string;
  /** The untruncated row, kept only when a value was truncated (for the dead-letter file). */
  original?: CslRow;
  /** Refused before sending (e.g. too many columns for the API), with the reason. */
  rejected?: string;
}

/** The JSON text a PreparedRow carries. */
export function jsonOf(p: PreparedRow): string {
  return p.buf.toString('utf8', p.start, p.start + p.bytes);
}

/** The row a PreparedRow was made from. */
export function rowOf(p: PreparedRow): CslRow {
  return p.original ?? (JSON.parse(jsonOf(p)) as CslRow);
}

/**
 * Optional detail on a `retryable` result when the sink had split the batch and part of it already
 * settled before a retryable error: `accepted` rows are in Azure, `rejected` are refused for good,
 * only `pending` needs sending again. A forwarder that ignores this resends all rows (at-least-once:
 * duplicates of the accepted part, nothing lost).
 */
export interface SendProgress<R = CslRow> {
  accepted: number;
  rejected: RowNote<R>[];
  pending: R[];
  truncated?: RowNote<R>[];
}

/** A sink's per-row limits (see Sink.rowLimits). */
export type { RowLimits };

export interface Sink {
  /** Short name for logs and metrics: file, log-analytics, logs-ingestion. */
  readonly name: string;
  send(rows: CslRow[], opts?: { signal?: AbortSignal }): Promise<SendResult>;
  /**
   * Optional, with sendPrepared: does the per-row work of a later send (serialization) now, so the
   * forwarder can run it while the previous batch is on the wire and keep only the result. One
   * PreparedRow per row, in order. sendPrepared(prepare(rows)) gives the same result as send(rows).
   * `writer` says where the JSON goes (a parse worker collects it per batch to hand it over).
   */
  prepare?(rows: CslRow[], writer?: RowWriter): PreparedRow[];
  /**
   * Set when prepare writes each row as JSON.stringify(row) unless the row has more than maxColumns
   * columns or a value over maxFieldBytes: the forwarder may then write such rows' JSON while parsing.
   */
  readonly rowLimits?: RowLimits;
  /** Sends rows made by prepare; notes in the result refer to those same PreparedRow objects. */
  sendPrepared?(rows: PreparedRow[], opts?: { signal?: AbortSignal }): Promise<SendResult<PreparedRow>>;
  /**
   * Set by a sink that must get whole batches one at a time, in queue order, each retried until it
   * settles before the next is sent (a file: rows in input order, and a failed append can undo itself).
   */
  readonly ordered?: boolean;
  /** Called once at start; e.g. warn about a retired API, fetch a first token. Must not throw for transient errors. */
  start?(): Promise<void>;
  close?(): Promise<void>;
}
