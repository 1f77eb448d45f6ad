import type { CslRow } from '../parser/types.js';

/**
 * What a sink says about one send. The delivery loop owns retries and dead-lettering:
 * - success: every row was accepted.
 * - retryable: nothing may be assumed accepted; send the same rows again later
 *   (after retryAfterMs when the service said so).
 * - partial: the sink split the batch (size limits, 413); `rejected` rows were refused for good
 *   with a reason and go to the dead-letter file; every other row was accepted.
 * - failure: the whole batch was refused for good (400, 403, ...); dead-letter all rows.
 * - truncated (success/partial, optional): rows that were accepted with a value cut to the service's
 *   per-field limit (flagged in-row in AdditionalExtensions as sentinelCefTruncated=Column:bytes);
 *   `row` is the untruncated original, worth keeping in the dead-letter file.
 */
export type SendResult =
  | { status: 'success'; accepted: number; truncated?: RowNote[] }
  | { status: 'retryable'; error: string; retryAfterMs?: number; httpStatus?: number; progress?: SendProgress }
  | { status: 'partial'; accepted: number; rejected: RowNote[]; truncated?: RowNote[] }
  | { status: 'failure'; error: string; httpStatus?: number };

/** A row (as given to send) and why it is reported. */
export interface RowNote {
  row: CslRow;
  reason: string;
}

/**
 * Optional detail on a `retryable` result when the sink had split the batch and part of it already
 * settled before a retryable error: `accepted` rows are in Azure, `rejected` are refused for good,
 * only `pending` needs sending again. A forwarder that ignores this resends all rows (at-least-once:
 * duplicates of the accepted part, nothing lost).
 */
export interface SendProgress {
  accepted: number;
  rejected: RowNote[];
  pending: CslRow[];
  truncated?: RowNote[];
}

export interface Sink {
  /** Short name for logs and metrics: file, log-analytics, logs-ingestion. */
  readonly name: string;
  send(rows: CslRow[], opts?: { signal?: AbortSignal }): Promise<SendResult>;
  /**
   * Optional: does the per-row work of a later send (serialization) now, so the forwarder can run it
   * while the previous batch is on the wire. send() gives the same result with or without it; rows
   * must not change between prepare and send.
   */
  prepare?(rows: CslRow[]): void;
  /** Called once at start; e.g. warn about a retired API, fetch a first token. Must not throw for transient errors. */
  start?(): Promise<void>;
  close?(): Promise<void>;
}
