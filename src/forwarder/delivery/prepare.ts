import type { CslRow, ParseResult } from '../../parser/types.js';
import type { PreparedRow, RowLimits } from '../../sinks/types.js';
import type { RowWriter } from '../../sinks/row-writer.js';
import { lineJsonParser } from '../../parser/index.js';
import { PROBE_ID_LABEL } from '../admin-types.js';
import type { DeadLetterEntry } from '../dead-letter.js';
import { FLAG_ROW, FLAG_TRUNCATED, type QueueRecord } from '../disk-queue.js';
import { probeIdOfRow } from '../probes.js';

/**
 * Added to AdditionalExtensions of a row whose syslog message was cut at the maximum message size;
 * same shape as the sinks' per-field flag (sentinelCefTruncated=Column:bytes).
 */
export function truncatedMarker(maxMessageBytes: number): string {
  return `sentinelCefTruncated=message:${maxMessageBytes}`;
}

/** A queue record with FLAG_ROW: a dead-lettered row put back by `dead-letters replay`. */
function replayedRow(raw: Buffer): ParseResult {
  try {
    const row = JSON.parse(raw.toString('utf8')) as unknown;
    if (row && typeof row === 'object' && !Array.isArray(row)) return { ok: true, kind: 'cef', row: row as CslRow };
  } catch {
    // reported below
  }
  return { ok: false, reason: 'replayed row is not a JSON object' };
}

/** Records parsed (or rows serialized) between event-loop turns. */
const PREPARE_SLICE = 500;

/** A row as held between parse and delivery: the row itself, or what the sink's prepare made of it. */
export type Item = CslRow | PreparedRow;

export interface Prepared {
  /** Parsed rows, or (when the sink has prepare/sendPrepared) their serialized form only. */
  rows: Item[];
  prepared: boolean;
  receivedAt: number[];
  parseFailures: DeadLetterEntry[];
  /** Probe id by row position (found at parse time, so a prepared row need not be read back). */
  probes: Map<number, string>;
  /** Called once every row is settled: the rows' storage may be reused (a parse worker's chunks). */
  release?: () => void;
}

export interface PrepareOptions {
  parse: (raw: Buffer, receivedAt: Date) => ParseResult;
  /** The sink's prepare (serialize rows now, keep only that); without it rows are kept as parsed. */
  prepare?: (rows: CslRow[]) => PreparedRow[];
  /**
   * With `parse` the stock parser and `prepare` a sink's that has rowLimits: CEF rows within the limits
   * are written as JSON into `writer` while they are parsed (the bytes prepare would give), with no row
   * object in between. Probes, truncated messages and other lines take the row path.
   */
  json?: { limits: RowLimits; writer: RowWriter };
  maxMessageBytes: number;
  /** An event-loop turn between slices (the main thread); a parse worker has nothing else to serve. */
  yieldBetweenSlices: boolean;
}

/**
 * Parses queue records into rows (or, with a preparing sink, their serialized form), notes probes and
 * parse failures. Rows are serialized slice by slice as they are parsed, so each row object dies
 * within its slice (young) and only its JSON is kept for the send.
 */
export async function prepareRecords(records: ReadonlyArray<QueueRecord>, o: PrepareOptions): Promise<Prepared> {
  const preparing = o.prepare !== undefined;
  const rows: Item[] = [];
  let pending: CslRow[] = [];
  const flush = () => {
    if (!pending.length) return;
    const out = o.prepare!(pending);
    for (let j = 0; j < out.length; j++) rows.push(out[j]!);
    pending = [];
  };
  const receivedAt: number[] = [];
  const parseFailures: DeadLetterEntry[] = [];
  const probes = new Map<number, string>();
  const marker = truncatedMarker(o.maxMessageBytes);
  const json = o.json !== undefined && preparing ? o.json : undefined;
  const direct = json && lineJsonParser({ ...json.limits, rowWhen: { column: 'DeviceCustomString2Label', value: PROBE_ID_LABEL } });
  let at = new Date(NaN);
  for (let k = 0; k < records.length; k++) {
    if (k > 0 && k % PREPARE_SLICE === 0) {
      if (preparing) flush();
      if (o.yieldBetweenSlices) await new Promise((r) => setImmediate(r));
    }
    const rec = records[k];
    // Records of one socket read share their receive time: one Date for them.
    if (at.getTime() !== rec.receivedAt) at = new Date(rec.receivedAt);
    let res: ParseResult;
    try {
      if (direct && rec.flags === 0) {
        const r = direct(rec.raw, at, json!.writer);
        if (r.ok && r.kind === 'json') {
          flush();
          rows.push(r as PreparedRow);
          receivedAt.push(rec.receivedAt);
          continue;
        }
        res = r as ParseResult;
      } else res = rec.flags & FLAG_ROW ? replayedRow(rec.raw) : o.parse(rec.raw, at);
    } catch (err) {
      res = { ok: false, reason: `parser error: ${(err as Error).message}` };
    }
    if (res.ok) {
      const row = res.row;
      if (rec.flags & FLAG_TRUNCATED) {
        const prev = row.AdditionalExtensions;
        row.AdditionalExtensions = prev ? `${prev};${marker}` : marker;
      }
      const probe = probeIdOfRow(row);
      if (probe) probes.set(receivedAt.length, probe);
      if (preparing) pending.push(row);
      else rows.push(row);
      receivedAt.push(rec.receivedAt);
    } else {
      parseFailures.push({
        reason: `parse failure: ${res.reason}`,
        raw: rec.raw.toString('utf8'),
        receivedAt: new Date(rec.receivedAt).toISOString(),
      });
    }
  }
  if (preparing) flush();
  return { rows, prepared: preparing, receivedAt, parseFailures, probes };
}
