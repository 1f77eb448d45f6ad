import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CslRow } from '../parser/types.js';
import { prepareRow, preparingSink, type RowWriter } from './batch.js';
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

/** Errors an operator fixes by hand (permissions, wrong path): retry slowly, keep the rows queued. */
const CONFIG_ERRORS = new Set(['EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'EROFS']);

/**
 * NDJSON rows appended to a file, one write per batch. Every error is retryable (the queue keeps the
 * rows); a write that fails half-way is truncated back so a retry never leaves a broken line.
 */
export function createFileSink(config: { path: string; fsync?: boolean }, opts: { fsync?: boolean } = {}): Sink {
  const path = config.path;
  const fsync = opts.fsync ?? config.fsync ?? false;
  let dirReady = false;
  return preparingSink({
    name: 'file',
    prepare: (rows, writer) => prepareFileRows(rows, writer),
    rowLimits: FILE_ROW_LIMITS,
    async sendPrepared(rows: PreparedRow[]): Promise<SendResult<PreparedRow>> {
      if (rows.length === 0) return { status: 'success', accepted: 0 };
      const data = ndjsonOf(rows);
      let fh;
      let sizeBefore: number | undefined;
      try {
        if (!dirReady) {
          await mkdir(dirname(path), { recursive: true });
          dirReady = true;
        }
        // Opened per batch so logrotate's rename/create is picked up without a signal.
        fh = await open(path, 'a', 0o640);
        sizeBefore = (await fh.stat()).size;
        await fh.appendFile(data);
        if (fsync) await fh.datasync();
        return { status: 'success', accepted: rows.length };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (code === 'ENOENT') dirReady = false;
        if (fh && sizeBefore !== undefined) await fh.truncate(sizeBefore).catch(() => undefined);
        return {
          status: 'retryable',
          error: `cannot write ${path}: ${code ? `${code} ` : ''}${(err as Error).message}`,
          ...(CONFIG_ERRORS.has(code) ? { retryAfterMs: 30_000 } : {}),
        };
      } finally {
        await fh?.close().catch(() => undefined);
      }
    },
  });
}
