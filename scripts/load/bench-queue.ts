/**
 * The disk queue alone, on this thread: append (frames as views into a socket-sized chunk, as the
 * framer gives them), readBatch (1,000 records / 2 MiB, as delivery reads) and ack, then bodyOf over
 * 1,000 prepared rows. CPU µs per event for each step, best and median of the rounds.
 *
 * Runs under the service's malloc settings (FORWARDER_ENV: freed buffers of 64 KiB and more go back to
 * the system, so fresh large buffers page-fault), re-executing itself when they are not set.
 *
 *   npx tsx scripts/load/bench-queue.ts [--events 200000] [--size 500] [--rounds 7]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskQueue } from '../../src/forwarder/disk-queue.js';
import * as batch from '../../src/sinks/batch.js';
import { FORWARDER_ENV } from '../../src/install/service.js';

const missing = Object.entries(FORWARDER_ENV).filter(([k, v]) => process.env[k] !== v);
if (missing.length) {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, ...FORWARDER_ENV },
  });
  process.exit(r.status ?? 1);
}
import type { PreparedRow } from '../../src/sinks/types.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const events = arg('events', 200_000);
const size = arg('size', 500);
const rounds = arg('rounds', 7);
// ~64 KiB socket reads, as TCP intake sees them under load.
const perRead = Math.max(1, Math.floor(65536 / (size + 1)));

const chunk = Buffer.alloc(perRead * (size + 1));
for (let i = 0; i < perRead; i++) {
  const o = i * (size + 1);
  chunk.write(`<134>Nov 22 10:00:00 host CEF:0|Vendor|Product|1.0|100|name|5|seq=${i} msg=`, o, 'latin1');
  for (let j = o + 70; j < o + size; j++) chunk[j] = 97 + (j % 26);
  chunk[o + size] = 10;
}
const frames = Array.from({ length: perRead }, (_, i) => ({
  data: chunk.subarray(i * (size + 1), i * (size + 1) + size),
  truncated: false,
}));

// Rows as a parse worker hands them back: 1.2 KB JSON each in 256 KiB chunks.
const rowBytes = 1200;
const rowChunk = Buffer.alloc(256 * 1024, 0x61);
const rows: PreparedRow[] = Array.from({ length: 1000 }, (_, i) => ({
  buf: rowChunk,
  start: (i * rowBytes) % (rowChunk.length - rowBytes),
  bytes: rowBytes,
}));

const cpu = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

const res: Record<'append' | 'read' | 'body', number[]> = { append: [], read: [], body: [] };
let sink = 0;
for (let r = 0; r < rounds; r++) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-queue-'));
  const q = new DiskQueue({ dir, maxBytes: 8 * 1024 ** 3, segmentBytes: 64 * 1024 ** 2, fsyncIntervalMs: 1000 });
  q.open();
  let t = cpu();
  let n = 0;
  while (n < events) {
    q.append(frames, Date.now());
    n += frames.length;
  }
  res.append.push((cpu() - t) / n);
  t = cpu();
  let got = 0;
  for (;;) {
    const b = q.readBatch(1000, 2 * 1024 * 1024);
    if (b.count === 0) break;
    got += b.count;
    sink += b.buffer[0]!;
    q.ackTo(b.end, b.count, b.diskBytes);
  }
  res.read.push((cpu() - t) / got);
  if (got !== n) throw new Error(`read ${got} of ${n}`);
  q.close();
  rmSync(dir, { recursive: true, force: true });
  t = cpu();
  // As the Logs Ingestion sink builds its calls (a BodyPool where the code has one).
  const pool = 'BodyPool' in batch ? new batch.BodyPool(1 << 20, 3) : undefined;
  for (let k = 0; k < n / rows.length; k++) {
    const body = (batch.bodyOf as (r: PreparedRow[], p?: unknown) => Buffer)(rows, pool);
    sink += body.length;
    pool?.give(body);
  }
  res.body.push((cpu() - t) / n);
}
const fmt = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `best ${s[0]!.toFixed(3)} median ${s[s.length >> 1]!.toFixed(3)}`;
};
console.log(`bench-queue: ${events} events of ${size} B, ${perRead} per append, ${rounds} rounds (CPU µs per event)`);
for (const k of ['append', 'read', 'body'] as const) console.log(`  ${k.padEnd(6)} ${fmt(res[k])}`);
console.log(`  total  best ${(Math.min(...res.append) + Math.min(...res.read) + Math.min(...res.body)).toFixed(3)}  (${sink & 1})`);
