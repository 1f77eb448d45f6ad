import type { CslRow } from '../parser/types.js';

/**
 * What a sink says about one send. The delivery loop owns retries and dead-lettering:
 * - success: every row was accepted.
 * - retryable: nothing may be assumed accepted; send the same rows again later
 *   (after retryAfterMs when the service said so).
 * - partial: the sink split the batch (size limits, 413); `rejected` rows were refused for good
 *   with a reason and go to the dead-letter file; every other row was accepted.
 * - failure: the whole batch was refused for good (400, 403, ...); dead-letter all rows.
 */
export type SendResult =
  | { status: 'success'; accepted: number }
  | { status: 'retryable'; error: string; retryAfterMs?: number; httpStatus?: number }
  | { status: 'partial'; accepted: number; rejected: Array<{ row: CslRow; reason: string }> }
  | { status: 'failure'; error: string; httpStatus?: number };

export interface Sink {
  /** Short name for logs and metrics: file, log-analytics, logs-ingestion. */
  readonly name: string;
  send(rows: CslRow[], opts?: { signal?: AbortSignal }): Promise<SendResult>;
  /** Called once at start; e.g. warn about a retired API, fetch a first token. Must not throw for transient errors. */
  start?(): Promise<void>;
  close?(): Promise<void>;
}
