/**
 * Issue 13, forwarder-wide: the real in-process forwarder (TCP ×4 + UDP in, disk queue, delivery loop,
 * `file:` sink, dead-letter file, a logger on a file) under load while a seeded plan fails open, write,
 * fsync, rename and truncate calls (EACCES, ENOSPC, EMFILE, EIO, short writes) at random points of
 * every file it writes: queue segments and cursor, dead-letter file and its rotations, the sink file,
 * the log. Then the faults stop. Asserted: /healthz answers throughout; once the faults clear every
 * TCP event is in the sink exactly once and in its connection's order, every UDP datagram is there or
 * counted as dropped, every malformed line is dead-lettered once with its reason (or counted with a
 * rotated dead-letter file deleted for room), every sink and log line is valid JSON.
 */
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setWorkerEntry, startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { LogDestination } from '../../src/forwarder/log-destination.js';
import { createLogger } from '../../src/forwarder/logger.js';
import * as fsio from '../../src/util/fsio.js';
import { injectFaults, type FaultController, type FaultRule } from '../helpers/faults.js';
import { buildForwarderBundle, cef, makeConfig, tcpConnect, tempDir, waitFor } from '../forwarder/helpers.js';

const CONNECTIONS = 4;
const PER_CONN = 600;
/** A malformed line after every BAD_EVERY events of a connection. */
const BAD_EVERY = 15;
const UDP = 300;
const UDP_BASE = 9_000_000;
const DL_FILES = 40;

let bundleDir = '';
let bundle: URL;
let faults: FaultController | null = null;
const cleanup: Array<() => void | Promise<void>> = [];

beforeAll(async () => {
  // Parse workers run the self-contained bundle, as deployed.
  bundle = pathToFileURL(await buildForwarderBundle('fault-layer-bundle-'));
  bundleDir = dirname(bundle.pathname);
}, 60_000);
afterAll(() => {
  setWorkerEntry(null);
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});
afterEach(async () => {
  faults?.clear();
  faults = null;
  for (const f of cleanup.splice(0).reverse()) await f();
});

const ERRNOS = ['EACCES', 'ENOSPC', 'EMFILE', 'EIO'];

/**
 * Rules per kind of file, so the test can check each was hit: opens and fsyncs fail with an errno,
 * writes also come up short; renames (dead-letter rotation) and truncates (cutting a failed append
 * back) fail often, as they are rare. The sink file gets no EACCES: the file sink waits 30 s after a
 * permission error (an operator's fix), past this test's budget.
 */
const KINDS: Array<[string, RegExp, number, string[]]> = [
  ['queue', /[/]queue[/]/, 0.03, ERRNOS],
  ['dead-letter', /dead-letter\.ndjson(\.\d+)?$/, 0.2, ERRNOS],
  ['sink', /rows\.ndjson$/, 0.15, ERRNOS.filter((c) => c !== 'EACCES')],
  ['log', /forwarder\.log$/, 0.15, ERRNOS],
];
function plan(): FaultRule[] {
  return [
    { ops: ['rename', 'truncate'], codes: ERRNOS, probability: 0.3 },
    ...KINDS.map(([, path, probability, codes]): FaultRule => ({ ops: ['open', 'fsync'], path, codes, probability })),
    ...KINDS.map(([, path, probability, codes]): FaultRule => ({ ops: ['write'], path, codes: [...codes, 'SHORT'], probability })),
  ];
}
/** Faults so far on each kind of file (open, fsync and write rules). */
const byKind = (c: FaultController) =>
  Object.fromEntries(KINDS.map(([name], i) => [name, c.byRule[1 + i]! + c.byRule[1 + KINDS.length + i]!]));

const badLine = (conn: number, k: number) => `malformed c${conn} k${k} ${'x'.repeat(1000)}`;

/** Connection `conn`'s lines: events conn*1e6 + i with a malformed line after every BAD_EVERY. */
function lines(conn: number): { text: string[]; bad: string[] } {
  const text: string[] = [];
  const bad: string[] = [];
  for (let i = 0; i < PER_CONN; i++) {
    text.push(cef(conn * 1_000_000 + i, `cs1Label=conn cs1=${conn}`));
    if (i % BAD_EVERY === BAD_EVERY - 1) {
      bad.push(badLine(conn, i));
      text.push(bad.at(-1)!);
    }
  }
  return { text, bad };
}

/** Writes `text` in chunks of 25 lines, a pause between them, respecting back-pressure. */
async function send(s: Socket, text: string[]): Promise<void> {
  for (let i = 0; i < text.length; i += 25) {
    if (!s.write(text.slice(i, i + 25).join('\n') + '\n')) await new Promise((r) => s.once('drain', r));
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function sendUdp(port: number): Promise<void> {
  const u = createSocket('udp4');
  try {
    for (let i = 0; i < UDP; i++) {
      await new Promise<void>((r, j) => u.send(cef(UDP_BASE + i), port, '127.0.0.1', (e) => (e ? j(e) : r())));
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    u.close();
  }
}

async function healthz(admin: string): Promise<{ status: string; queue: { intakePaused: boolean } }> {
  const res = await fetch(`http://${admin}/healthz`, { signal: AbortSignal.timeout(3000) });
  return (await res.json()) as { status: string; queue: { intakePaused: boolean } };
}

/** Lines of an NDJSON file; throws naming the first line that is not JSON. */
function ndjson(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  if (text && !text.endsWith('\n')) throw new Error(`${path} does not end a line`);
  return text
    .split('\n')
    .slice(0, -1)
    .map((l, n) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`${path} line ${n + 1} is not JSON: ${l.slice(0, 120)}`);
      }
    });
}

async function droppedByReason(f: RunningForwarder): Promise<Record<string, number>> {
  const m = await f.metrics.registry.getSingleMetric('sentinel_cef_dropped_total')!.get();
  const out: Record<string, number> = {};
  for (const v of m.values) out[String(v.labels.reason)] = (out[String(v.labels.reason)] ?? 0) + v.value;
  return out;
}

describe('the whole forwarder under random file faults on every file it writes', () => {
  it.each([
    [1, 0],
    [2, 0],
    [3, 0],
    [4, 1],
  ])(
    'seed %i, %i parse workers: up throughout; then every event once, in order, or counted',
    async (seed, workers) => {
      const dir = tempDir('fault-layer-');
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      const logPath = join(dir, 'forwarder.log');
      const logFd = fsio.openSync(logPath, 'a', 0o600);
      const dest = new LogDestination({ fd: logFd, maxBufferBytes: 64 * 1024, retryMs: 5, maxRetryMs: 50, reportIntervalMs: 0 });
      cleanup.push(async () => {
        await dest.drain(2000);
        fsio.closeSync(logFd);
      });
      const logger = createLogger('info', dest);
      const config = makeConfig(dir, {
        queue: { segmentBytes: 16 * 1024, fsyncIntervalMs: 5 },
        batch: { maxRecords: 100, flushMs: 10, parseWorkers: workers },
        retry: { initialMs: 10, maxMs: 50 },
        // 1 MiB over 40 rotated files: the live file rotates every ~25 KiB, so renames happen.
        deadLetter: { maxBytes: 1024 * 1024, files: DL_FILES },
      });
      setWorkerEntry(workers ? bundle : null);
      cleanup.push(() => setWorkerEntry(null));
      const f = await startForwarder(config, { logger, random: () => 0.5, diskRetryMs: 20 });
      cleanup.push(() => f.shutdown());
      expect(f.health().counters).toBeDefined();
      const tcp = f.addresses.find((a) => a.protocol === 'tcp')!.port;
      const udp = f.addresses.find((a) => a.protocol === 'udp')!.port;

      const streams = Array.from({ length: CONNECTIONS }, (_, c) => lines(c));
      const bad = streams.flatMap((s) => s.bad);
      const sockets = await Promise.all(streams.map(() => tcpConnect(tcp)));

      faults = injectFaults(plan(), seed);
      // /healthz must answer while the faults last (intake paused or not).
      let healthAnswers = 0;
      let sawPaused = false;
      let faulting = true;
      const watcher = (async () => {
        while (faulting) {
          const h = await healthz(f.adminAddress!);
          healthAnswers++;
          sawPaused ||= h.queue.intakePaused;
          // Log lines while the faults last, so the log's writes meet them whatever the forwarder logs.
          logger.info({ status: h.status, paused: h.queue.intakePaused }, 'fault test: /healthz answered');
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      await Promise.all([...sockets.map((s, c) => send(s, streams[c]!.text)), sendUdp(udp)]);
      await new Promise((r) => setTimeout(r, 500));
      // Delivery keeps retrying while the faults last: give every kind of file and call its fault.
      const opHits = (c: FaultController, op: string) => [...c.hits].reduce((n, [k, v]) => (k.startsWith(`${op}:`) ? n + v : n), 0);
      const injectedOf = (c: FaultController) => ({ ...byKind(c), 'rename or truncate': opHits(c, 'rename') + opHits(c, 'truncate') });
      const covered = (c: FaultController) => Object.values(injectedOf(c)).every((n) => n > 0);
      await waitFor(() => covered(faults!), 3000, 'a fault on every kind of file').catch(() => undefined);
      faulting = false;
      await watcher;
      const injected = injectedOf(faults);
      const hits = Object.fromEntries(faults.hits);
      faults.clear();
      faults = null;
      for (const s of sockets) s.end();

      const sinkPath = join(dir, 'rows.ndjson');
      const dlFiles = () => [f.deadLetterFile, ...Array.from({ length: DL_FILES }, (_, k) => `${f.deadLetterFile}.${k + 1}`)];
      const deadLetters = () => dlFiles().flatMap((p) => ndjson(p));
      const tcpTotal = CONNECTIONS * PER_CONN;
      let state: Record<string, unknown> = {};
      await waitFor(
        async () => {
          const h = f.health();
          if (h.queue.records !== 0 || h.queue.intakePaused) return false;
          const rows = ndjson(sinkPath);
          const tcpRows = rows.filter((r) => Number(r.DeviceEventClassID) < UDP_BASE).length;
          const udpRows = rows.length - tcpRows;
          const dropped = await droppedByReason(f);
          const udpDropped = (dropped.udp_queue_full ?? 0) + (dropped.udp_disk_full ?? 0);
          const dl = deadLetters().filter((d) => d.raw !== undefined).length + h.deadLetters!.droppedEntries;
          state = {
            records: h.queue.records,
            paused: h.queue.intakePaused,
            tcpRows,
            udpRows,
            udpDropped,
            dl,
            droppedEntries: h.deadLetters!.droppedEntries,
            delivered: h.counters.delivered,
            received: h.counters.received,
          };
          return tcpRows >= tcpTotal && udpRows + udpDropped >= UDP && dl >= bad.length;
        },
        15_000,
        'every event delivered or counted after the faults',
      ).catch((err: Error) => {
        if (process.env.DEBUG_FAULT_LAYER) {
          const got = new Set(deadLetters().map((d) => d.raw));
          console.log(
            'missing',
            bad.filter((b) => !got.has(b)).map((b) => b.slice(0, 20)),
          );
          for (const p of dlFiles())
            if (existsSync(p))
              console.log(
                p,
                ndjson(p)
                  .map((d) => String(d.raw).slice(10, 20))
                  .join(','),
              );
          for (const l of ndjson(logPath)) if (/dead-letter/.test(JSON.stringify(l))) console.log(JSON.stringify(l).slice(0, 300));
        }
        throw new Error(`${err.message}: ${JSON.stringify(state)}`);
      });
      await new Promise((r) => setTimeout(r, 100)); // nothing more arrives
      const h = f.health();
      await f.shutdown();
      await dest.drain(2000);

      // The forwarder answered /healthz all along.
      expect(healthAnswers).toBeGreaterThan(3);

      // The sink: every line JSON; every TCP event exactly once and in its connection's order.
      const rows = ndjson(sinkPath);
      const ids = rows.map((r) => Number(r.DeviceEventClassID));
      const tcpIds = ids.filter((i) => i < UDP_BASE);
      expect(new Set(tcpIds).size, 'duplicated TCP events').toBe(tcpIds.length);
      expect(tcpIds.length, 'TCP events').toBe(tcpTotal);
      const last = new Map<number, number>();
      let outOfOrder = 0;
      for (const id of tcpIds) {
        const conn = Math.floor(id / 1_000_000);
        if ((last.get(conn) ?? -1) > id) outOfOrder++;
        last.set(conn, id);
      }
      expect(outOfOrder, 'TCP events out of their connection order').toBe(0);

      // UDP: each datagram delivered at most once, the rest counted as dropped (nothing else lost).
      const udpIds = ids.filter((i) => i >= UDP_BASE);
      expect(new Set(udpIds).size, 'duplicated UDP events').toBe(udpIds.length);
      const dropped = await droppedByReason(f);
      expect(
        Object.keys(dropped).filter((r) => !r.startsWith('udp_') && dropped[r]! > 0),
        'drops other than UDP',
      ).toEqual([]);
      expect(udpIds.length + (dropped.udp_queue_full ?? 0) + (dropped.udp_disk_full ?? 0)).toBe(UDP);
      expect(h.counters.dropped).toBe(UDP - udpIds.length);

      // Malformed lines: each in the dead-letter files once with its reason, or counted with a rotated
      // file deleted to make room (ENOSPC); none twice.
      const raws = deadLetters().filter((d) => d.raw !== undefined);
      for (const d of raws) expect(d.reason).toMatch(/^parse failure: /);
      const rawSet = new Set(raws.map((d) => d.raw as string));
      expect(rawSet.size, 'malformed lines dead-lettered twice').toBe(raws.length);
      for (const r of rawSet) expect(bad).toContain(r);
      expect(raws.length + h.deadLetters!.droppedEntries).toBe(bad.length);
      expect(h.counters.parseFailures).toBe(bad.length);

      // The log: whatever was written is whole JSON lines; what was not is counted.
      const log = ndjson(logPath);
      expect(log.length).toBeGreaterThan(0);
      expect(dest.errors, 'log writes that failed').toBeGreaterThan(0);
      // Faults hit every kind of file and call.
      expect(
        Object.entries(injected)
          .filter(([, n]) => n === 0)
          .map(([k]) => k),
        JSON.stringify(hits),
      ).toEqual([]);
      if (process.env.DEBUG_FAULT_LAYER) {
        console.log({
          seed,
          workers,
          hits,
          injected,
          healthAnswers,
          sawPaused,
          udpDelivered: udpIds.length,
          dropped,
          dlKept: raws.length,
          dlDropped: h.deadLetters!.droppedEntries,
          logLines: log.length,
          logErrors: dest.errors,
          logDropped: dest.dropped,
        });
      }
    },
    40_000,
  );
});
