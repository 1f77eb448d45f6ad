import { dirname } from 'node:path';
import type { CslRow } from '../parser/types.js';
import * as fsio from '../util/fsio.js';
import { prepareRow, preparingSink } from './batch.js';
import type { RowWriter } from './row-writer.js';
import type { PreparedRow, RowLimits, SendResult, Sink } from './types.js';

/** No field limit in a file: rows are written whole. */
export const FILE_ROW_LIMITS: RowLimits = { maxFieldBytes: Infinity, maxColumns: Infinity };

export function prepareFileRows(rows: CslRow[], writer?: RowWriter): PreparedRow[] {
  return rows.map((r) => prepareRow(r, Infinity, writer));
}

/** The rows' JSON, one per line. */
function ndjsonOf(rows: PreparedRow[]): Buffer {
  let size = rows.length;
  for (const r of rows) size += r.bytes;
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  for (const r of rows) {
    p += r.buf.copy(out, p, r.start, r.start + r.bytes);
    out[p++] = 0x0a;
  }
  return out;
}

/**
 * Bytes after the file's last newline: a line cut by a crash mid-append (its batch was never
 * acknowledged, so it is sent again). Read backwards in 64 KiB steps; 0 when the file ends a line.
 */
function tornTailBytes(fd: number, size: number): number {
  if (size === 0) return 0;
  const last = Buffer.allocUnsafe(1);
  if (fsio.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] === 0x0a) return 0;
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (let end = size; end > 0;) {
    const start = Math.max(0, end - buf.length);
    const n = fsio.readSync(fd, buf, 0, end - start, start);
    const nl = buf.subarray(0, n).lastIndexOf(0x0a);
    if (nl !== -1) return size - (start + nl + 1);
    end = start;
  }
  return size;
}

/** Errors an operator fixes by hand (permissions, wrong path): retry slowly, keep the rows queued. */
const CONFIG_ERRORS = new Set(['EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'EROFS']);

/**
 * NDJSON rows appended to a file. One writer: appends run one at a time in call order, so a batch's
 * bytes never interleave with another's (a large append takes several write calls) and a failed
 * append can remove exactly its own bytes. Every error is retryable (the queue keeps the rows).
 * `ordered`: the delivery loop hands batches over one at a time in queue order, so rows keep input
 * order even when a batch is retried.
 *
 * The append itself is synchronous, as the disk queue's writes are (page cache, well under a
 * millisecond a batch); only the optional fsync goes to the thread pool. Asynchronous calls queue
 * there behind the disk queue's fsyncs, and with one append at a time that wait capped delivery at a
 * fraction of intake on a busy disk.
 */
export function createFileSink(config: { path: string; fsync?: boolean }, opts: { fsync?: boolean } = {}): Sink {
  const path = config.path;
  const fsync = opts.fsync ?? config.fsync ?? false;
  let dirReady = false;
  /** The append running now (appends chain on it). */
  let tail: Promise<unknown> = Promise.resolve();
  /**
   * A failed append whose bytes could not be removed: the fd it wrote to (the path may have been
   * rotated since) and where its bytes begin. Nothing is appended until they are gone, so no row
   * follows a broken line and a retry never duplicates what the failed append left.
   */
  let torn: { fd: number; at: number } | null = null;

  const retryable = (what: string, err: unknown): SendResult<PreparedRow> => {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    return {
      status: 'retryable',
      error: `${what} ${path}: ${code ? `${code} ` : ''}${(err as Error).message}`,
      ...(CONFIG_ERRORS.has(code) ? { retryAfterMs: 30_000 } : {}),
    };
  };

  const closeQuietly = (fd: number) => {
    try {
      fsio.closeSync(fd);
    } catch {
      // Linux releases the fd even when close reports an error; nothing to retry.
    }
  };

  const removeTorn = (): void => {
    const t = torn!;
    fsio.ftruncateSync(t.fd, t.at);
    torn = null;
    closeQuietly(t.fd);
  };

  async function append(rows: PreparedRow[], signal?: AbortSignal): Promise<SendResult<PreparedRow>> {
    if (torn) {
      try {
        removeTorn();
      } catch (err) {
        return retryable('cannot remove a partial append from', err);
      }
    }
    // Given up on by the delivery loop: writing now would duplicate the rows it sends again later.
    if (signal?.aborted) return { status: 'retryable', error: 'send aborted' };
    const data = ndjsonOf(rows);
    let fd: number | undefined;
    let at = 0;
    let written = 0;
    try {
      if (!dirReady) {
        fsio.mkdirSync(dirname(path), { recursive: true });
        dirReady = true;
      }
      // Opened per batch so logrotate's rename/create is picked up without a signal.
      fd = fsio.openSync(path, 'a+', 0o640);
      const st = fsio.fstatSync(fd);
      at = st.size;
      // A line cut by a crash would swallow the first row appended after it.
      const cut = st.isFile() ? tornTailBytes(fd, at) : 0;
      if (cut > 0) {
        fsio.ftruncateSync(fd, at - cut);
        at -= cut;
      }
      while (written < data.length) written += fsio.writeSync(fd, data, written, data.length - written);
      if (fsync) await fsio.fdatasync(fd);
      return { status: 'success', accepted: rows.length };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (code === 'ENOENT') dirReady = false;
      if (fd !== undefined && written > 0) {
        // Only this append's bytes go: nothing else was appended since `at` (one writer).
        try {
          fsio.ftruncateSync(fd, at);
        } catch {
          torn = { fd, at };
          fd = undefined;
        }
      }
      return retryable('cannot write', err);
    } finally {
      // The rows are in the file once written (and synced when asked): a failed close changes nothing.
      if (fd !== undefined) closeQuietly(fd);
    }
  }

  return preparingSink({
    name: 'file',
    ordered: true,
    prepare: (rows, writer) => prepareFileRows(rows, writer),
    rowLimits: FILE_ROW_LIMITS,
    sendPrepared(rows: PreparedRow[], o?: { signal?: AbortSignal }): Promise<SendResult<PreparedRow>> {
      if (rows.length === 0) return Promise.resolve({ status: 'success', accepted: 0 });
      const run = tail.then(() => append(rows, o?.signal));
      tail = run.catch(() => undefined);
      return run;
    },
    async close(): Promise<void> {
      await tail;
      if (torn) {
        try {
          removeTorn();
        } catch {
          // Nothing more to try: the rows stay queued; the partial line stays in the file.
        }
      }
    },
  });
}
