import type { CslRow } from '../parser/types.js';
import { defaultWriter, type RowWriter } from './row-writer.js';
import { rowOf, type AuthFailure, type PreparedRow, type RowNote, type SendResult, type Sink } from './types.js';

export type { PreparedRow } from './types.js';

/** Marker added to AdditionalExtensions when a value was cut to the service's per-field limit. */
export const TRUNCATION_MARKER = 'sentinelCefTruncated';

/** Cut a UTF-8 string to at most `maxBytes` bytes without splitting a character. */
export function truncateUtf8(value: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  const buf = Buffer.from(value, 'utf8');
  if (buf.length <= maxBytes) return value;
  let end = maxBytes;
  // Back off continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/**
 * Enforce the per-field limit. Decision: an over-long value is truncated (the event still reaches
 * Sentinel, which is what an analyst needs) and flagged in-row with
 * `sentinelCefTruncated=<Column>:<originalBytes>` in AdditionalExtensions; the sink also reports the
 * untruncated row in SendResult.truncated so the forwarder can keep the full text in the dead-letter
 * file. Azure would otherwise truncate silently.
 */
export function prepareRow(row: CslRow, maxFieldBytes: number, writer: RowWriter = defaultWriter): PreparedRow {
  let out: CslRow | undefined;
  const notes: string[] = [];
  // for-in rather than Object.entries: no array of pairs per row on this per-event path.
  for (const key in row) {
    const value = row[key];
    // A JS string of n UTF-16 units is at most 3n UTF-8 bytes: skip the byte count for short values.
    if (typeof value !== 'string' || value.length * 3 <= maxFieldBytes) continue;
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes <= maxFieldBytes) continue;
    out ??= { ...row };
    out[key] = truncateUtf8(value, maxFieldBytes);
    notes.push(`${key}:${bytes}`);
  }
  if (!out) {
    const w = writer.write(JSON.stringify(row));
    return { buf: w.buf, start: w.start, bytes: w.bytes };
  }
  const flag = `${TRUNCATION_MARKER}=${notes.join(',')}`;
  const ae = typeof out.AdditionalExtensions === 'string' && out.AdditionalExtensions ? out.AdditionalExtensions : '';
  const room = maxFieldBytes - Buffer.byteLength(flag, 'utf8') - 1;
  out.AdditionalExtensions = ae ? `${truncateUtf8(ae, room)};${flag}` : flag;
  const w = writer.write(JSON.stringify(out));
  return { original: row, buf: w.buf, start: w.start, bytes: w.bytes, truncated: notes.join(', ') };
}

/**
 * send(rows) for a sink built on prepare/sendPrepared: the same result, with notes pointing at the
 * caller's row objects.
 */
export async function sendRows(
  rows: CslRow[],
  prepare: (rows: CslRow[]) => PreparedRow[],
  sendPrepared: (rows: PreparedRow[]) => Promise<SendResult<PreparedRow>>,
): Promise<SendResult> {
  const prepared = prepare(rows);
  const res = await sendPrepared(prepared);
  if (res.status === 'failure') return res;
  const back = new Map<PreparedRow, CslRow>();
  for (let i = 0; i < prepared.length; i++) back.set(prepared[i]!, rows[i]!);
  const row = (p: PreparedRow) => back.get(p) ?? rowOf(p);
  const notes = (list: RowNote<PreparedRow>[] | undefined) => list?.map((n) => ({ row: row(n.row), reason: n.reason }));
  switch (res.status) {
    case 'success':
      return res.truncated
        ? { status: 'success', accepted: res.accepted, truncated: notes(res.truncated)! }
        : { status: 'success', accepted: res.accepted };
    case 'partial':
      return {
        status: 'partial',
        accepted: res.accepted,
        rejected: notes(res.rejected)!,
        ...(res.truncated ? { truncated: notes(res.truncated)! } : {}),
      };
    case 'retryable': {
      const { progress, ...rest } = res;
      if (!progress) return rest;
      return {
        ...rest,
        progress: {
          accepted: progress.accepted,
          rejected: notes(progress.rejected)!,
          pending: progress.pending.map(row),
          ...(progress.truncated ? { truncated: notes(progress.truncated)! } : {}),
        },
      };
    }
  }
}

/** A sink built on prepare/sendPrepared; send(rows) is derived from them (sendRows). */
export function preparingSink(
  parts: Omit<Sink, 'send' | 'prepare' | 'sendPrepared'> & Required<Pick<Sink, 'prepare' | 'sendPrepared'>>,
): Sink {
  return {
    ...parts,
    send: (rows, opts) =>
      sendRows(
        rows,
        (r) => parts.prepare(r),
        (p) => parts.sendPrepared(p, opts),
      ),
  };
}

/** What one HTTP call said, reduced to what the delivery driver needs. */
export type PostOutcome =
  | { kind: 'ok' }
  /** 413: split and resend. */
  | { kind: 'too-large'; error: string }
  /** Send this and the rest again later. */
  | { kind: 'retry'; error: string; retryAfterMs?: number; httpStatus?: number; auth?: AuthFailure }
  /** This call's rows were refused; `isolate` = worth bisecting to find the offending rows. */
  | { kind: 'reject'; error: string; httpStatus?: number; isolate: boolean }
  /** Refused for a reason that applies to every call (bad key, unknown DCR): reject everything left. */
  | { kind: 'fatal'; error: string; httpStatus?: number };

export interface DeliverOptions {
  /** Largest body (uncompressed JSON array bytes) per call. */
  maxCallBytes: number;
  /** Extra calls allowed for bisecting a refused call to isolate poison rows. */
  isolateBudget?: number;
  /** Calls in flight at once within one send (default 1). */
  concurrency?: number;
  signal?: AbortSignal;
  post(body: Buffer, rows: PreparedRow[]): Promise<PostOutcome>;
  /** Bodies to reuse: only for a post that is done with its body once its promise settles. */
  bodies?: BodyPool;
}

/**
 * Call bodies reused across calls, for a sink that no longer reads a body once its post settled
 * (Logs Ingestion: gzip has read it). A fresh ~1 MB body per call page-faults on every write: the
 * service's malloc threshold gives such buffers back to the system when they are freed.
 */
export class BodyPool {
  private readonly free: Buffer[] = [];

  /** capacity: bytes of a new buffer at least (the sink's largest call); keeps at most `max` free. */
  constructor(
    private readonly capacity: number,
    private readonly max = 4,
  ) {}

  /** A body of exactly `size` bytes (a view into a pooled buffer); hand it back with give(). */
  take(size: number): Buffer {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const b = this.free[i]!;
      if (b.length >= size) {
        this.free.splice(i, 1);
        return b.subarray(0, size);
      }
    }
    return Buffer.allocUnsafeSlow(Math.max(size, this.capacity)).subarray(0, size);
  }

  give(body: Buffer): void {
    if (this.free.length < this.max) this.free.push(Buffer.from(body.buffer, body.byteOffset, body.buffer.byteLength - body.byteOffset));
  }

  /** Buffers waiting for reuse (tests). */
  get size(): number {
    return this.free.length;
  }
}

/** Greedy packing into JSON arrays of at most maxBytes; rows that cannot fit alone come back apart. */
export function packRows(rows: PreparedRow[], maxBytes: number): { groups: PreparedRow[][]; oversize: PreparedRow[] } {
  const groups: PreparedRow[][] = [];
  const oversize: PreparedRow[] = [];
  let cur: PreparedRow[] = [];
  let size = 2; // "[]"
  for (const r of rows) {
    if (r.bytes + 2 > maxBytes) {
      oversize.push(r);
      continue;
    }
    const add = r.bytes + (cur.length ? 1 : 0);
    if (cur.length && size + add > maxBytes) {
      groups.push(cur);
      cur = [];
      size = 2;
    }
    size += r.bytes + (cur.length ? 1 : 0);
    cur.push(r);
  }
  if (cur.length) groups.push(cur);
  return { groups, oversize };
}

/**
 * One call's body: the rows' JSON as an array. Rows written one after another with their `,` between
 * them (RowWriter, lineJsonParser) are copied as one run: a native copy costs as much as a row.
 */
export function bodyOf(rows: PreparedRow[], pool?: BodyPool): Buffer {
  let size = rows.length + 1;
  for (let i = 0; i < rows.length; i++) size += rows[i]!.bytes;
  if (rows.length === 0) size = 2;
  const out = pool ? pool.take(size) : Buffer.allocUnsafeSlow(size);
  out[0] = 0x5b; // [
  let p = 1;
  for (let i = 0; i < rows.length;) {
    const first = rows[i]!;
    const buf = first.buf;
    let end = first.start + first.bytes;
    // Extend the run while the next row starts right after this one's comma in the same buffer.
    for (i++; i < rows.length; i++) {
      const r = rows[i]!;
      if (r.buf !== buf || r.start !== end + 1 || buf[end] !== 0x2c) break;
      end = r.start + r.bytes;
    }
    out.set(new Uint8Array(buf.buffer, buf.byteOffset + first.start, end - first.start), p);
    p += end - first.start;
    if (i < rows.length) out[p++] = 0x2c; // ,
  }
  out[p] = 0x5d; // ]
  return out;
}

/**
 * Sends prepared rows in calls no larger than maxCallBytes, splitting on 413, bisecting refused
 * calls (within a budget) to isolate poison rows, and stopping at the first retryable outcome.
 */
export async function deliver(rows: PreparedRow[], opts: DeliverOptions): Promise<SendResult<PreparedRow>> {
  const rejected: RowNote<PreparedRow>[] = [];
  const truncated: RowNote<PreparedRow>[] = [];
  let accepted = 0;
  let budget = opts.isolateBudget ?? 32;
  const prepared: PreparedRow[] = [];
  for (const r of rows) {
    if (r.rejected !== undefined) rejected.push({ row: r, reason: r.rejected });
    else prepared.push(r);
  }
  const { groups, oversize } = packRows(prepared, opts.maxCallBytes);
  for (const r of oversize) {
    rejected.push({ row: r, reason: `record is ${r.bytes} bytes, over the ${opts.maxCallBytes}-byte limit of one call` });
  }
  const queue = groups;
  const pending: PreparedRow[][] = [];
  let lastFailure: { error: string; httpStatus?: number } | undefined;
  let retry: { error: string; retryAfterMs?: number; httpStatus?: number; auth?: AuthFailure } | undefined;
  let fatal: { error: string; httpStatus?: number } | undefined;
  const halves = (g: PreparedRow[]) => {
    const mid = Math.ceil(g.length / 2);
    queue.unshift(g.slice(0, mid), g.slice(mid));
  };

  // Up to `concurrency` calls in flight; the first retryable or fatal answer stops new calls.
  const worker = async () => {
    while (queue.length && !retry && !fatal) {
      const group = queue.shift()!;
      if (opts.signal?.aborted) {
        retry ??= { error: 'send aborted' };
        pending.push(group);
        break;
      }
      const body = bodyOf(group, opts.bodies);
      let out: PostOutcome;
      try {
        out = await opts.post(body, group);
      } finally {
        opts.bodies?.give(body);
      }
      switch (out.kind) {
        case 'ok':
          accepted += group.length;
          for (const r of group) if (r.truncated) truncated.push({ row: r, reason: `truncated to the per-field limit: ${r.truncated}` });
          break;
        case 'too-large':
          if (group.length === 1) rejected.push({ row: group[0]!, reason: `the service refused the record as too large: ${out.error}` });
          else halves(group);
          break;
        case 'retry':
          retry ??= out;
          pending.push(group);
          break;
        case 'reject':
          if (out.isolate && group.length > 1 && budget >= 2) {
            budget -= 2;
            halves(group);
          } else {
            lastFailure = { error: out.error, httpStatus: out.httpStatus };
            for (const r of group) rejected.push({ row: r, reason: out.error });
          }
          break;
        case 'fatal':
          fatal ??= { error: out.error, httpStatus: out.httpStatus };
          lastFailure = fatal;
          for (const r of group) rejected.push({ row: r, reason: out.error });
          break;
      }
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 1, queue.length || 1));
  // A worker that finds the queue empty ends; halves from a split are sent by the workers still running.
  await Promise.all(Array.from({ length: n }, () => worker()));

  const fatalErr = fatal as { error: string; httpStatus?: number } | undefined;
  if (fatalErr) {
    for (const r of queue.flat()) rejected.push({ row: r, reason: fatalErr.error });
    queue.length = 0;
  }
  if (retry) {
    return retryResult(retry, accepted, rejected, truncated, [...pending.flat(), ...queue.flat()]);
  }
  const extra = truncated.length ? { truncated } : {};
  if (rejected.length === 0) return { status: 'success', accepted, ...extra };
  if (accepted === 0 && lastFailure && rejected.every((r) => r.reason === lastFailure!.error)) {
    return { status: 'failure', error: lastFailure.error, httpStatus: lastFailure.httpStatus };
  }
  return { status: 'partial', accepted, rejected, ...extra };
}

function retryResult(
  out: { error: string; retryAfterMs?: number; httpStatus?: number; auth?: AuthFailure },
  accepted: number,
  rejected: RowNote<PreparedRow>[],
  truncated: RowNote<PreparedRow>[],
  pending: PreparedRow[],
): SendResult<PreparedRow> {
  const base: SendResult<PreparedRow> = { status: 'retryable', error: out.error };
  if (out.retryAfterMs !== undefined) base.retryAfterMs = out.retryAfterMs;
  if (out.httpStatus !== undefined) base.httpStatus = out.httpStatus;
  if (out.auth !== undefined) base.auth = out.auth;
  // Only when part of the batch already settled: lets a forwarder that understands `progress`
  // avoid resending accepted rows; one that ignores it resends everything (duplicates, no loss).
  if (accepted > 0 || rejected.length > 0) base.progress = { accepted, rejected, pending, ...(truncated.length ? { truncated } : {}) };
  return base;
}
