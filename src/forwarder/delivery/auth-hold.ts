import type { Logger } from 'pino';
import type { AuthFailure } from '../../sinks/types.js';

/** While authorization keeps failing, a reminder this often (besides one line per state change). */
const AUTH_LOG_EVERY_MS = 5 * 60_000;

/** Default of retry.authFailureMaxSec, in ms. */
export const DEFAULT_AUTH_FAILURE_MAX_MS = 60 * 60_000;

export function minutes(ms: number): string {
  return ms < 60_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

/**
 * How long continuous authorization refusals have held rows, shared by every send of a sink: rows are
 * retried while refusals have lasted less than `maxMs`, then dead-lettered until a send is accepted.
 * Logs one line per state change plus a reminder every 5 min. `now` is monotonic: a clock fixed by a
 * jump must not cut the hold short.
 */
export class AuthHold {
  /** Set while every send is refused authorization: since when, and when it was last logged. */
  private state: { since: number; lastLog: number; expired: boolean } | null = null;
  constructor(private readonly o: { sink: string; logger: Logger; maxMs: number; now: () => number }) {}

  get maxMs(): number {
    return this.o.maxMs;
  }

  /** Notes a refusal. True once refusals have lasted maxMs: the caller then dead-letters instead of retrying. */
  refused(auth: AuthFailure, httpStatus: number | undefined): boolean {
    const { logger, sink, maxMs: max } = this.o;
    const now = this.o.now();
    const fields = {
      sink,
      httpStatus,
      cause: auth.hint,
      ...(auth.clockSkewMs !== undefined ? { clockSkewSec: Math.round(auth.clockSkewMs / 1000) } : {}),
    };
    let st = this.state;
    if (!st) {
      st = this.state = { since: now, lastLog: now, expired: false };
      if (max > 0) {
        logger.warn(
          { ...fields, holdSec: Math.round(max / 1000) },
          `authorization refused (${auth.hint}); rows stay queued and are retried for up to ${minutes(max)} before they are dead-lettered`,
        );
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
      logger.warn(
        { ...fields, failingSec: Math.round(held / 1000) },
        `authorization still refused after ${minutes(held)} (${auth.hint}); rows stay queued, dead-lettered in ${minutes(max - held)}`,
      );
    }
    return false;
  }

  /** A send was accepted: authorization works (again). */
  authorized(): void {
    const st = this.state;
    if (!st) return;
    this.state = null;
    this.o.logger.info(
      { sink: this.o.sink, failingSec: Math.round((this.o.now() - st.since) / 1000) },
      `authorization works again after ${minutes(this.o.now() - st.since)} of refusals; delivering the queued rows`,
    );
  }
}
