import type { Logger } from 'pino';
import type { Health } from '../admin-types.js';
import type { RowNote, SendProgress, SendResult } from '../../sinks/types.js';
import { minutes, type AuthHold } from './auth-hold.js';
import { Aborted, type Sleep } from './backoff.js';

/** Side effects of a send while it runs (streamed to the main thread when delivery runs in a worker). */
export interface DeliveryEffects {
  retried(reason: string): void;
  lastDelivery(d: Health['lastDelivery']): void;
  backgroundError(where: string): void;
  sinkDuration(sink: string, result: string, seconds: number): void;
  probeFailed(id: string, receivedAt: number, error: string): void;
  probeDeadLettered(id: string, receivedAt: number, reason: string): void;
}

export type DeadReason = 'sink_rejected' | 'sink_failure' | 'auth_failure';

/** How a row ended when it was not simply accepted as sent. */
export interface RowOutcome<I> {
  row: I;
  reason: string;
  /** Refused for good (dead-lettered), counted under this reason; absent: accepted with a value cut to the field limit. */
  refused?: DeadReason;
  httpStatus?: number;
}

export interface SendRowsOptions<I> {
  sinkName: string;
  send(rows: I[]): Promise<SendResult<I>>;
  effects: DeliveryEffects;
  logger: Logger;
  auth: AuthHold;
  backoff(attempt: number): number;
  sleep: Sleep;
  signal: AbortSignal;
  /** After a retryable result: the rows still pending (probe bookkeeping). */
  onRetry?(pending: readonly I[], error: string, at: number): void;
}

/**
 * Sends `rows` through the sink until each is accepted or refused for good. Retryable results are
 * retried forever (backoff, never before retryAfterMs), except authorization refusals that have lasted
 * past the AuthHold's bound: those fail. Returns the rows refused or accepted truncated; every other
 * row was accepted as sent. Throws Aborted when the signal fires.
 */
export async function sendRows<I>(rows: I[], o: SendRowsOptions<I>): Promise<RowOutcome<I>[]> {
  const { effects, logger, signal } = o;
  const out: RowOutcome<I>[] = [];
  const refuse = (notes: RowNote<I>[], refused: DeadReason, httpStatus?: number) => {
    for (const n of notes)
      out.push(httpStatus ? { row: n.row, reason: n.reason, refused, httpStatus } : { row: n.row, reason: n.reason, refused });
  };
  // Accepted with a value cut to the service's field limit: the full original row is kept.
  const noteTruncated = (notes: RowNote<I>[] | undefined) => {
    if (notes) for (const n of notes) out.push({ row: n.row, reason: n.reason });
  };
  let pending = rows;
  // Part of the rows settled before the error: only what is still pending goes on.
  const settle = (progress: SendProgress<I>) => {
    refuse(progress.rejected, 'sink_rejected');
    noteTruncated(progress.truncated);
    pending = progress.pending;
  };
  for (let attempt = 0; pending.length > 0; attempt++) {
    const t0 = performance.now();
    let res: SendResult<I>;
    try {
      res = await o.send(pending);
    } catch (err) {
      if (signal.aborted) throw new Aborted();
      effects.backgroundError('sink');
      res = { status: 'retryable', error: `sink error: ${(err as Error).message}` };
    }
    effects.sinkDuration(o.sinkName, res.status, (performance.now() - t0) / 1000);
    const now = Date.now();
    let authExpired = false;
    if (res.status === 'retryable' && res.auth && !signal.aborted && o.auth.refused(res.auth, res.httpStatus)) {
      // Refused for longer than retry.authFailureMaxSec: stop holding the rows.
      if (res.progress) settle(res.progress);
      res = {
        status: 'failure',
        error: `${res.error} [authorization refused for longer than ${minutes(o.auth.maxMs)} (retry.authFailureMaxSec)]`,
        ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}),
      };
      authExpired = true;
    }
    if (res.status === 'retryable') {
      if (signal.aborted) throw new Aborted();
      effects.retried(res.httpStatus ? String(res.httpStatus) : 'error');
      effects.lastDelivery({
        ok: false,
        at: new Date(now).toISOString(),
        error: res.error,
        ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}),
      });
      if (res.progress) settle(res.progress);
      o.onRetry?.(pending, res.error, now);
      const delay = Math.max(res.retryAfterMs ?? 0, o.backoff(attempt));
      // Authorization refusals are logged per state change (AuthHold), not per attempt.
      (res.auth ? logger.debug : logger.warn).call(
        logger,
        { sink: o.sinkName, rows: pending.length, attempt: attempt + 1, delayMs: delay, httpStatus: res.httpStatus, error: res.error },
        'delivery failed, will retry the same rows',
      );
      if (pending.length) await o.sleep(delay, signal);
      continue;
    }
    if (res.status !== 'failure') o.auth.authorized();
    if (res.status === 'success') {
      noteTruncated(res.truncated);
    } else if (res.status === 'partial') {
      refuse(res.rejected, 'sink_rejected');
      noteTruncated(res.truncated);
      logger.warn(
        { sink: o.sinkName, rejected: res.rejected.length, firstReason: res.rejected[0]?.reason },
        'sink refused part of a batch; refused rows dead-lettered',
      );
    } else {
      const error = res.error;
      refuse(
        pending.map((row) => ({ row, reason: error })),
        authExpired ? 'auth_failure' : 'sink_failure',
        res.httpStatus,
      );
      // Past the auth bound every batch lands here: AuthHold already logs that state (every 5 min).
      (authExpired ? logger.debug : logger.error).call(
        logger,
        { sink: o.sinkName, rows: pending.length, httpStatus: res.httpStatus, error: res.error },
        'sink refused the batch for good; rows dead-lettered',
      );
    }
    effects.lastDelivery(
      res.status === 'failure'
        ? { ok: false, at: new Date(now).toISOString(), error: res.error, ...(res.httpStatus ? { httpStatus: res.httpStatus } : {}) }
        : { ok: true, at: new Date(now).toISOString() },
    );
    return out;
  }
  return out;
}
