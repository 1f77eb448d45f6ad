import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CslRow } from '../parser/types.js';

export interface DeadLetterEntry {
  reason: string;
  httpStatus?: number;
  /** Set when the row was accepted (e.g. with a value cut to the field limit) and is kept for reference. */
  accepted?: boolean;
  row?: CslRow;
  /** The original message when it could not be parsed. */
  raw?: string;
  receivedAt?: string;
}

/**
 * NDJSON file of events the forwarder could not deliver for good: `{time, reason, httpStatus?, row}`
 * for rows the sink refused, `{time, reason, raw, receivedAt}` for messages that did not parse.
 * Written synchronously before the queue cursor moves, so an entry is never lost between the two.
 */
export class DeadLetterFile {
  private dirReady = false;
  constructor(readonly path: string) {}

  write(entries: DeadLetterEntry[]): void {
    if (!entries.length) return;
    if (!this.dirReady) {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      this.dirReady = true;
    }
    const time = new Date().toISOString();
    let text = '';
    for (const e of entries) text += JSON.stringify({ time, ...e }) + '\n';
    appendFileSync(this.path, text, { mode: 0o600 });
  }
}
