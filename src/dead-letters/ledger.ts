/**
 * The replay ledger, `<dead-letter file>.replayed` (NDJSON, 0600): one line per replayed chunk,
 * `{file, ranges, entries, at}`, written and fsynced after the forwarder accepted the chunk. An entry
 * whose byte range in a file (by its first line's hash, see files.ts) is covered is never replayed again; a crash
 * between the forwarder's answer and this write resends that one chunk. A torn last line is ignored.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as fsio from '../util/fsio.js';

export type Range = [number, number];

export function ledgerPath(deadLetterFile: string): string {
  return `${deadLetterFile}.replayed`;
}

export class ReplayLedger {
  private readonly done = new Map<string, Range[]>();
  private fd = -1;
  /** The file ends in a torn line: the next record starts on a new line so it is not glued to it. */
  private torn = false;

  constructor(readonly path: string) {
    if (!existsSync(path)) return;
    const text = readFileSync(path, 'utf8');
    this.torn = text.length > 0 && !text.endsWith('\n');
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const v = JSON.parse(line) as { file?: unknown; ranges?: unknown };
        if (typeof v.file !== 'string' || !Array.isArray(v.ranges)) continue;
        for (const r of v.ranges)
          if (Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number') this.add(v.file, [r[0], r[1]]);
      } catch {
        // torn line from a crash mid-write: that chunk counts as not replayed
      }
    }
  }

  private add(file: string, r: Range): void {
    let list = this.done.get(file);
    if (!list) this.done.set(file, (list = []));
    list.push(r);
  }

  /** The whole [start, end) was replayed before (ranges are whole entries, so one range covers it). */
  covers(file: string, start: number, end: number): boolean {
    for (const [s, e] of this.done.get(file) ?? []) if (s <= start && end <= e) return true;
    return false;
  }

  /** Records a replayed chunk durably (fsync) before the next chunk is sent. */
  record(file: string, ranges: Range[], entries: number): void {
    if (this.fd < 0) this.fd = fsio.openSync(this.path, 'a', 0o600);
    const line = JSON.stringify({ file, ranges, entries, at: new Date().toISOString() }) + '\n';
    fsio.writeAllSync(this.fd, Buffer.from(this.torn ? `\n${line}` : line));
    this.torn = false;
    fsio.fsyncSync(this.fd);
    for (const r of ranges) this.add(file, r);
  }

  close(): void {
    if (this.fd >= 0) fsio.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Sorted [start, end) pairs with adjacent ones merged. */
export function mergeRanges(ranges: Range[]): Range[] {
  const out: Range[] = [];
  for (const [s, e] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}
