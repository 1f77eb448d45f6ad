import type { Logger } from 'pino';

export class Aborted extends Error {}

/** Waits `ms`, or rejects with Aborted when the signal fires first. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export const sleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
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
  ctx: { backgroundError(where: string): void; logger: Logger; backoff(attempt: number): number; sleep?: Sleep },
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      fn();
      return;
    } catch (err) {
      ctx.backgroundError(what);
      ctx.logger.error({ err: (err as Error).message }, `${what} failed; retrying before the queue moves on`);
      await (ctx.sleep ?? sleep)(ctx.backoff(attempt), signal);
    }
  }
}
