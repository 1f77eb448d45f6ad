import * as fsio from '../util/fsio.js';

export interface LogDestinationOptions {
  /** Where lines go (default 1: stdout, a file under a supervisor or a pipe to journald). */
  fd?: number;
  /** Lines waiting beyond this many bytes are dropped and counted (default 1 MiB). */
  maxBufferBytes?: number;
  /** First retry delay after a failed write; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** At most one "N log lines dropped" line per this interval. */
  reportIntervalMs?: number;
}

/**
 * A pino destination that can never block or kill the process: lines are written with async
 * write(2) through the fsio seam, one write in flight at a time, from a bounded buffer. While the
 * output fails (ENOSPC on a full log filesystem, EIO, EAGAIN from a stalled pipe, EPIPE from a closed
 * stdout) it retries with backoff and drops new lines once the buffer is full, counting them; once a
 * write succeeds again it says how many were lost. pino's own destination (sonic-boom) either waits
 * synchronously or, after a non-EAGAIN error, emits an 'error' event that ends the process.
 */
export class LogDestination {
  /** Lines dropped since start (metric sentinel_cef_log_lines_dropped_total). */
  dropped = 0;
  /** Write errors since start. */
  errors = 0;
  private unreported = 0;
  private lastReportAt = 0;
  private readonly fd: number;
  private readonly max: number;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly reportMs: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  /** The chunk being written and how much of it is done. */
  private out: Buffer | null = null;
  private outDone = 0;
  private busy = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private drained: Array<() => void> = [];

  constructor(o: LogDestinationOptions = {}) {
    this.fd = o.fd ?? 1;
    this.max = o.maxBufferBytes ?? 1024 * 1024;
    this.retryMs = o.retryMs ?? 100;
    this.maxRetryMs = o.maxRetryMs ?? 5000;
    this.reportMs = o.reportIntervalMs ?? 10_000;
  }

  /** Called by pino with one serialized line. Never throws. */
  write(line: string): boolean {
    // String length undercounts multi-byte text a little; a bound, not an exact budget.
    if (this.bufferedBytes + line.length > this.max) {
      this.dropped++;
      this.unreported++;
      return false;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.busy && this.retryTimer === null) this.flush();
    return true;
  }

  /** Bytes waiting to be written (including a chunk in flight). */
  get bufferedBytes(): number {
    return this.pendingBytes + (this.out ? this.out.length - this.outDone : 0);
  }

  /** Resolves once everything buffered is written, or after timeoutMs (before exit). */
  drain(timeoutMs: number): Promise<void> {
    if (this.bufferedBytes === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.drained = this.drained.filter((f) => f !== done);
        resolve();
      };
      const t = setTimeout(done, timeoutMs);
      this.drained.push(done);
    });
  }

  private flush(): void {
    if (this.out === null) {
      if (this.pending.length === 0) {
        for (const f of this.drained.slice()) f();
        return;
      }
      this.out = Buffer.from(this.pending.length === 1 ? this.pending[0]! : this.pending.join(''));
      this.outDone = 0;
      this.pending = [];
      this.pendingBytes = 0;
    }
    this.busy = true;
    const out = this.out;
    fsio.write(this.fd, out, this.outDone, out.length - this.outDone).then(
      (n) => {
        this.busy = false;
        this.failures = 0;
        this.outDone += n;
        if (this.outDone >= out.length) this.out = null;
        if (this.unreported > 0) this.report();
        this.flush();
      },
      () => {
        this.busy = false;
        this.errors++;
        // Keep the chunk (its lines are the oldest) and wait; new lines fill the buffer, then drop.
        const delay = Math.min(this.maxRetryMs, this.retryMs * 2 ** Math.min(this.failures++, 16));
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          if (!this.busy) this.flush();
        }, delay);
        this.retryTimer.unref();
      },
    );
  }

  /** Writing works again: one line saying how many were lost, at most once per interval. */
  private report(): void {
    const now = Date.now();
    const wait = this.lastReportAt + this.reportMs - now;
    if (wait > 0) {
      this.reportTimer ??= setTimeout(() => {
        this.reportTimer = null;
        if (this.unreported > 0 && this.failures === 0) {
          this.report();
          if (!this.busy && this.retryTimer === null) this.flush();
        }
      }, wait);
      this.reportTimer.unref();
      return;
    }
    this.lastReportAt = now;
    const n = this.unreported;
    this.unreported = 0;
    // Outside the cap: it is small and it is the line that explains the gap.
    const line = `${JSON.stringify({ level: 40, time: now, pid: process.pid, droppedLogLines: n, droppedLogLinesTotal: this.dropped, msg: `${n} log lines dropped: the log output failed (full filesystem, stalled or closed pipe)` })}\n`;
    this.pending.push(line);
    this.pendingBytes += line.length;
  }
}
