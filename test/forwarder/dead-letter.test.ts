import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import { DeadLetterFile, type DeadLetterEntry } from '../../src/forwarder/dead-letter.js';
import { startForwarder } from '../../src/forwarder/forwarder.js';
import { injectFaults, prng, type FaultController } from '../helpers/faults.js';
import { cef, makeConfig, readRows, silent, tcpConnect, tempDir, waitFor, writeAndEnd } from './helpers.js';

/** The naming the `dead-letters` command reads: <path>.1 (newest) … <path>.N (oldest). */
const rotatedPath = (path: string, k: number) => `${path}.${k}`;

let faults: FaultController | null = null;
const cleanup: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  faults?.clear();
  faults = null;
  for (const f of cleanup.splice(0).reverse()) await f();
});

function dir(): string {
  const d = tempDir('dl-');
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Every dead-letter line under `path` (live and rotated), each parsed: a torn line fails the test. */
function allEntries(path: string, files: number): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (let k = files; k >= 0; k--) {
    const p = k === 0 ? path : rotatedPath(path, k);
    if (!existsSync(p)) continue;
    for (const l of readFileSync(p, 'utf8').split('\n')) if (l) out.push(JSON.parse(l) as Record<string, unknown>);
  }
  return out;
}

function totalBytes(path: string, files: number): number {
  let n = 0;
  for (let k = 0; k <= files; k++) {
    const p = k === 0 ? path : rotatedPath(path, k);
    if (existsSync(p)) n += statSync(p).size;
  }
  return n;
}

const entry = (i: number, pad = 0): DeadLetterEntry => ({
  reason: 'parse_failure',
  raw: `CEF:broken ${i} ${'x'.repeat(pad)}`,
  receivedAt: new Date(0).toISOString(),
});

describe('DeadLetterFile: bounded by size, rotated, the oldest dropped and counted', () => {
  it.each([
    [1, 1],
    [2, 4],
    [3, 2],
  ])('seed %i, %i rotated files: within the cap after every write; every entry kept once or counted as dropped', (seed, files) => {
    const d = dir();
    const path = join(d, 'dl', 'dead-letter.ndjson');
    const maxBytes = 64 * 1024;
    const dropped: number[] = [];
    const dl = new DeadLetterFile(path, { maxBytes, files, onDropped: (n) => dropped.push(n) });
    const rand = prng(seed);
    let written = 0;
    let biggest = 0;
    for (let w = 0; w < 300; w++) {
      const batch: DeadLetterEntry[] = [];
      for (let j = 1 + Math.floor(rand() * 5); j > 0; j--) batch.push(entry(written++, Math.floor(rand() * 400)));
      const before = totalBytes(path, files);
      dl.write(batch);
      biggest = Math.max(biggest, totalBytes(path, files) - before);
      expect(totalBytes(path, files)).toBeLessThanOrEqual(maxBytes);
      expect(dl.bytes).toBe(totalBytes(path, files));
    }
    dl.close();
    // Only the live file and <path>.1 … <path>.files exist.
    const names = readdirSync(join(d, 'dl')).sort();
    expect(names.every((n) => n === 'dead-letter.ndjson' || new RegExp(`^dead-letter\\.ndjson\\.([1-${files}])$`).test(n))).toBe(true);
    const kept = allEntries(path, files).map((o) => Number(String(o.raw).split(' ')[1]));
    // Oldest first across the files, no gaps: what is gone is exactly the oldest, and counted.
    const firstKept = kept[0]!;
    expect(kept).toEqual([...Array(written - firstKept).keys()].map((i) => i + firstKept));
    expect(dl.droppedEntries).toBe(firstKept);
    expect(dropped.reduce((a, b) => a + b, 0)).toBe(firstKept);
    expect(firstKept).toBeGreaterThan(0);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('a write that fails (ENOSPC, EIO, short then EIO) appends nothing; retried, every entry is there once and every line is JSON', () => {
    const d = dir();
    const path = join(d, 'dead-letter.ndjson');
    const dl = new DeadLetterFile(path, { maxBytes: 64 << 20, files: 2 });
    faults = injectFaults([{ ops: ['write'], path: /dead-letter/, codes: ['ENOSPC', 'EIO', 'SHORT'], probability: 0.5 }], 11);
    let failures = 0;
    for (let i = 0; i < 200; i++) {
      const batch = [entry(i * 2, 300), entry(i * 2 + 1, 5000)];
      for (;;) {
        try {
          dl.write(batch);
          break;
        } catch (err) {
          expect((err as NodeJS.ErrnoException).code).toMatch(/ENOSPC|EIO/);
          failures++;
        }
      }
    }
    faults.clear();
    expect(failures).toBeGreaterThan(10);
    const kept = allEntries(path, 2).map((o) => Number(String(o.raw).split(' ')[1]));
    expect(kept).toEqual([...Array(400).keys()]);
  });

  it('ENOSPC: the oldest rotated file gives way (counted) and the write goes through; with none to give, it throws', () => {
    const d = dir();
    const path = join(d, 'dead-letter.ndjson');
    const dl = new DeadLetterFile(path, { maxBytes: 40 * 1024, files: 3 });
    faults = injectFaults([{ ops: ['write'], path: /dead-letter/, codes: ['ENOSPC'], times: 1 }]);
    expect(() => dl.write([entry(0)])).toThrow(/ENOSPC/);
    for (let i = 1; i < 100; i++) dl.write([entry(i, 200)]);
    expect(existsSync(rotatedPath(path, 3))).toBe(true);
    const before = dl.droppedEntries;
    faults = injectFaults([{ ops: ['write'], path: /dead-letter/, codes: ['ENOSPC'], times: 1 }]);
    dl.write([entry(100)]);
    expect(existsSync(rotatedPath(path, 3))).toBe(false);
    expect(dl.droppedEntries).toBeGreaterThan(before);
    const kept = allEntries(path, 3).map((o) => Number(String(o.raw).split(' ')[1]));
    expect(kept.at(-1)).toBe(100);
    expect(kept.length + dl.droppedEntries).toBe(100);
  });

  it('lowering the file count: files beyond it are dropped (counted) at open', () => {
    const d = dir();
    const path = join(d, 'dead-letter.ndjson');
    const big = new DeadLetterFile(path, { maxBytes: 20 * 1024, files: 4 });
    for (let i = 0; i < 100; i++) big.write([entry(i, 200)]);
    big.close();
    expect(existsSync(rotatedPath(path, 4))).toBe(true);
    const small = new DeadLetterFile(path, { maxBytes: 20 * 1024, files: 1 });
    small.write([entry(100)]);
    expect(existsSync(rotatedPath(path, 2))).toBe(false);
    const kept = allEntries(path, 1).length;
    expect(kept + small.droppedEntries + big.droppedEntries).toBe(101);
  });

  it('config: deadLetter.maxBytes and files have defaults and are validated', () => {
    const sink = { type: 'file', path: '/tmp/x' };
    expect(forwarderConfigSchema.parse({ sink }).deadLetter).toEqual({ maxBytes: 256 * 1024 * 1024, files: 4 });
    expect(forwarderConfigSchema.safeParse({ sink, deadLetter: { maxBytes: 1000 } }).success).toBe(false);
    expect(forwarderConfigSchema.safeParse({ sink, deadLetter: { files: 0 } }).success).toBe(false);
    expect(forwarderConfigSchema.safeParse({ sink, deadLetter: { maxBytes: 2 ** 20, files: 1 } }).success).toBe(true);
  });
});

describe('forwarder under a flood of malformed lines', () => {
  it('the dead-letter files stay within the cap, drops are counted, valid events keep flowing', async () => {
    const d = dir();
    const config = makeConfig(d, { deadLetter: { maxBytes: 1024 * 1024, files: 2 } });
    const logged: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l) as Record<string, unknown>) });
    const f = await startForwarder(config, { logger });
    cleanup.push(() => f.shutdown());
    const tcp = f.addresses.find((a) => a.protocol === 'tcp')!;
    // ~12 MB of dead letters (about 3x the input), interleaved with 2,000 valid events.
    const junk = 'CEF:broken|' + 'y'.repeat(200);
    let text = '';
    for (let i = 0; i < 20_000; i++) {
      text += `<134>Nov 22 08:00:00 fw1 ${junk} ${i}\n`;
      if (i % 10 === 0) text += cef(i) + '\n';
    }
    const sock = await tcpConnect(tcp.port);
    await writeAndEnd(sock, text);
    const rowsPath = config.sink.type === 'file' ? config.sink.path : '';
    await waitFor(() => readRows(rowsPath).length >= 2000 && f.metrics.totals.parseFailures >= 20_000, 30_000, 'all events handled');
    expect(readRows(rowsPath).length).toBe(2000);
    expect(f.health().queue.intakePaused).toBe(false);
    const dl = f.deadLetterFile;
    expect(totalBytes(dl, 2)).toBeLessThanOrEqual(1024 * 1024);
    const kept = allEntries(dl, 2).length;
    const h = f.health();
    expect(h.deadLetters!.droppedEntries).toBeGreaterThan(0);
    expect(kept + h.deadLetters!.droppedEntries).toBe(20_000);
    expect(h.deadLetters!.bytes).toBe(totalBytes(dl, 2));
    const metrics = await (await fetch(`http://${f.adminAddress}/metrics`)).text();
    expect(Number(/sentinel_cef_dead_letter_dropped_total\{reason="cap"\} (\d+)/.exec(metrics)?.[1])).toBe(h.deadLetters!.droppedEntries);
    expect(Number(/sentinel_cef_dead_letter_bytes (\d+)/.exec(metrics)?.[1])).toBe(totalBytes(dl, 2));
    const capLines = logged.filter((o) => String(o.msg).startsWith('dead-letter cap reached'));
    expect(capLines.reduce((n, o) => n + (o.entries as number), 0)).toBe(h.deadLetters!.droppedEntries);
  }, 60_000);

  it('a full disk under the queue: old rotated dead letters give way (counted) before intake pauses', async () => {
    const d = dir();
    const config = makeConfig(d);
    const dlPath = config.deadLetterFile!;
    const old = (n: number, tag: string) =>
      Array.from(
        { length: n },
        (_, i) => JSON.stringify({ time: '2026-01-01T00:00:00.000Z', reason: 'parse_failure', raw: `${tag} ${i}` }) + '\n',
      ).join('');
    writeFileSync(rotatedPath(dlPath, 1), old(30, 'newer'));
    writeFileSync(rotatedPath(dlPath, 2), old(20, 'older'));
    let failNext = 0;
    const queueWriteFn = (fd: number, buf: Buffer, off: number, len: number) => {
      if (failNext > 0) {
        failNext--;
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
      return writeSync(fd, buf, off, len);
    };
    const f = await startForwarder(config, { logger: silent, queueWriteFn, diskRetryMs: 5000 });
    cleanup.push(() => f.shutdown());
    failNext = 2;
    const sock = await tcpConnect(f.addresses.find((a) => a.protocol === 'tcp')!.port);
    await writeAndEnd(sock, Array.from({ length: 100 }, (_, i) => cef(i) + '\n').join(''));
    const rowsPath = config.sink.type === 'file' ? config.sink.path : '';
    await waitFor(() => readRows(rowsPath).length >= 100, 3000, 'all 100 delivered without waiting for the disk retry');
    expect(failNext).toBe(0);
    expect(existsSync(rotatedPath(dlPath, 2))).toBe(false);
    const h = f.health();
    expect(h.queue.intakePaused).toBe(false);
    expect(h.deadLetters!.droppedEntries).toBeGreaterThanOrEqual(20);
    const metrics = await (await fetch(`http://${f.adminAddress}/metrics`)).text();
    expect(Number(/sentinel_cef_dead_letter_dropped_total\{reason="disk_full"\} (\d+)/.exec(metrics)?.[1])).toBe(
      h.deadLetters!.droppedEntries,
    );
    expect(metrics).not.toMatch(/background_errors_total\{where="queue_write"\} [1-9]/);
  }, 30_000);

  it('dead-letter writes failing (ENOSPC/EIO) for a while: no crash, the cursor waits, then every entry lands once', async () => {
    const d = dir();
    const config = makeConfig(d);
    const f = await startForwarder(config, { logger: silent });
    cleanup.push(() => f.shutdown());
    faults = injectFaults([{ ops: ['write', 'open'], path: /dead-letter/, codes: ['ENOSPC', 'EIO', 'SHORT'] }], 5);
    const tcp = f.addresses.find((a) => a.protocol === 'tcp')!;
    let text = '';
    for (let i = 0; i < 500; i++) text += `<134>Nov 22 08:00:00 fw1 CEF:broken ${i}\n` + cef(i) + '\n';
    const sock = await tcpConnect(tcp.port);
    await writeAndEnd(sock, text);
    await waitFor(() => f.metrics.totals.received >= 1000, 10_000, 'all received');
    await waitFor(() => faults!.total >= 3, 10_000, 'dead-letter writes to fail');
    // While the dead-letter file refuses writes the batch is not acknowledged: the queue keeps it.
    await new Promise((r) => setTimeout(r, 300));
    expect(f.health().queue.records).toBeGreaterThan(0);
    expect(f.metrics.totals.parseFailures).toBe(0);
    faults.clear();
    await waitFor(() => f.health().queue.records === 0 && f.metrics.totals.parseFailures >= 500, 20_000, 'the queue to drain');
    const raws = allEntries(f.deadLetterFile, 4).map((o) => String(o.raw));
    expect(raws.length).toBe(500);
    expect(new Set(raws).size).toBe(500);
    const metrics = await (await fetch(`http://${f.adminAddress}/metrics`)).text();
    expect(metrics).toMatch(/sentinel_cef_background_errors_total\{where="dead-letter write"\} [1-9]/);
  }, 60_000);
});
