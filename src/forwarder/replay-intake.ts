/**
 * The forwarder's side of `sentinel-cef dead-letters replay`: dead-letter entries come back over the
 * loopback admin API and are appended to the disk queue, so they take the normal path (parse or not,
 * send, retry, dead-letter again) with the queue's durability. The request is answered only after the
 * append: a 200 means every record is in the queue (at-least-once from there).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import * as fsio from '../util/fsio.js';
import { formatConfigIssue } from '../errors.js';
import { REPLAY_TOKEN_FILE, type ReplayResponse } from './admin-types.js';
import type { DiskQueue } from './disk-queue.js';

const recordSchema = z.union([
  z.object({ raw: z.string(), receivedAt: z.string().optional() }).strict(),
  z.object({ row: z.record(z.string(), z.unknown()) }).strict(),
]);
const requestSchema = z.object({ records: z.array(recordSchema).max(100_000) }).strict();

/**
 * Writes a fresh random token to <queueDir>/replay.token (0600, via a temp file and rename): only a
 * user who can read the queue directory (root) can replay.
 */
export function writeReplayToken(queueDir: string): string {
  const token = randomBytes(32).toString('hex');
  const path = join(queueDir, REPLAY_TOKEN_FILE);
  const tmp = `${path}.tmp`;
  const fd = fsio.openSync(tmp, 'w', 0o600);
  try {
    fsio.writeAllSync(fd, Buffer.from(`${token}\n`));
    fsio.fsyncSync(fd);
  } finally {
    fsio.closeSync(fd);
  }
  fsio.renameSync(tmp, path);
  return token;
}

/** Appends a replay request's records to the queue; never throws (errors become the answer). */
export function appendReplay(queue: DiskQueue, body: unknown, now = Date.now()): { status: number; body: ReplayResponse } {
  const parsed = requestSchema.safeParse(body);
  if (!parsed.success) {
    return { status: 400, body: { appended: 0, error: formatConfigIssue(parsed.error.issues[0]!) } };
  }
  const messages: Array<{ data: Buffer; truncated: boolean; row: boolean; at: number }> = [];
  let bytes = 0;
  for (const r of parsed.data.records) {
    if ('row' in r) {
      messages.push({ data: Buffer.from(JSON.stringify(r.row)), truncated: false, row: true, at: now });
    } else {
      const at = r.receivedAt === undefined ? NaN : Date.parse(r.receivedAt);
      messages.push({ data: Buffer.from(r.raw), truncated: false, row: false, at: Number.isNaN(at) ? now : at });
    }
    bytes += messages[messages.length - 1]!.data.length + 32;
  }
  // The disk budget applies to replays as to intake; the caller retries later.
  if (queue.bytes + bytes > queue.maxBytes) {
    return {
      status: 503,
      body: {
        appended: 0,
        error: `the queue has no room (${queue.bytes} of ${queue.maxBytes} bytes used); replay again once it has drained`,
      },
    };
  }
  try {
    // One append per run of records that share a receive time (an append has one).
    for (let i = 0; i < messages.length;) {
      let j = i + 1;
      while (j < messages.length && messages[j]!.at === messages[i]!.at) j++;
      queue.append(messages.slice(i, j), messages[i]!.at);
      i = j;
    }
  } catch (err) {
    // Appends before the failing one are in the queue: the client resends the chunk (duplicates, no loss).
    return {
      status: 507,
      body: { appended: 0, error: `cannot append to the queue: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` },
    };
  }
  return { status: 200, body: { appended: messages.length } };
}
