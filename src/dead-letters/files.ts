/**
 * Reading dead-letter files (src/forwarder/dead-letter.ts writes them): the live file `<path>` and
 * rotated ones `<path>.1` (newest) … `<path>.N` (oldest), NDJSON, one DeadLetterEntry with its
 * `time` per line. Read oldest first. Every entry carries its byte range in its file, which is what
 * the replay ledger records.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DeadLetterEntry } from '../forwarder/dead-letter.js';

export interface StoredEntry extends DeadLetterEntry {
  time?: string;
}

export interface EntryAt {
  /** [start, end) in the file, the newline included. */
  start: number;
  end: number;
  /** Undefined when the line is not a JSON object (counted as malformed, never replayed). */
  entry?: StoredEntry;
}

export interface DeadLetterFileData {
  path: string;
  /**
   * The hash of the first line (its `time` to the millisecond and its content): the same for the file
   * after a rename (rotation), a byte copy (copytruncate, backup) or a reboot, unlike device and inode
   * numbers; a new file starts with a new line. Byte ranges in the ledger are relative to it.
   */
  id: string;
  entries: EntryAt[];
}

/** The live file and its rotations that exist, oldest first. */
export function deadLetterFiles(path: string): string[] {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const rotated = names
    .map((n) => (n.startsWith(`${base}.`) ? /^\d+$/.exec(n.slice(base.length + 1)) : null))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[0]))
    .filter((n) => n >= 1)
    .sort((a, b) => b - a)
    .map((n) => join(dir, `${base}.${n}`));
  return [...rotated, ...(names.includes(base) ? [path] : [])];
}

/**
 * Reads one file's complete lines (a line still being written, without its newline, is left for
 * later). Throws the fs error for an unreadable file.
 */
export function readDeadLetterFile(path: string): DeadLetterFileData {
  const buf = readFileSync(path);
  const entries: EntryAt[] = [];
  let firstLine = '';
  for (let start = 0; start < buf.length;) {
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) break;
    const end = nl + 1;
    const text = buf.toString('utf8', start, nl);
    if (!entries.length) firstLine = text;
    let entry: StoredEntry | undefined;
    try {
      const v = JSON.parse(text) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as StoredEntry).reason === 'string') entry = v as StoredEntry;
    } catch {
      // malformed: kept as a range without an entry
    }
    if (text.trim()) entries.push({ start, end, entry });
    start = end;
  }
  return { path, id: createHash('sha256').update(firstLine).digest('hex').slice(0, 32), entries };
}
