import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync, readdirSync, readlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Health } from '../../src/forwarder/admin-types.js';
import { startForwarder } from '../../src/forwarder/forwarder.js';
import { FakeSink, buildForwarderBundle, cef, makeConfig, silent, tcpConnect, tempDir, waitFor } from './helpers.js';

let bundleDir = '';
const children: ChildProcess[] = [];

beforeAll(async () => {
  bundleDir = dirname(await buildForwarderBundle());
});
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

interface Child {
  proc: ChildProcess;
  tcpPort: number;
  admin: string;
  exited: Promise<number | null>;
  parseWorkers: number;
}

function spawnForwarder(dir: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const proc = spawn(
    process.execPath,
    [
      join(bundleDir, 'forwarder.mjs'),
      '--listen',
      'tcp://127.0.0.1:0',
      '--queue-dir',
      join(dir, 'queue'),
      '--sink',
      `file:${join(dir, 'rows.ndjson')}`,
      '--admin',
      '127.0.0.1:0',
      ...extra,
    ],
    { cwd: bundleDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  children.push(proc);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.on('line', (line) => {
      const j = JSON.parse(line) as { msg: string; inputs?: string[]; admin?: string; parseWorkers?: number };
      if (j.msg === 'forwarder started') {
        resolve({ proc, tcpPort: Number(j.inputs![0].split(':').at(-1)), admin: j.admin!, exited, parseWorkers: j.parseWorkers! });
      }
    });
    // exited never rejects, and reject() does not throw.
    void exited.then((code) => reject(new Error(`forwarder exited early (${code}): ${stderr}`)));
  });
}

async function health(admin: string): Promise<Health> {
  return (await (await fetch(`http://${admin}/healthz`)).json()) as Health;
}

/** Streams seq-numbered CEF lines until stopped or the connection breaks; returns how many were written. */
function streamSeq(port: number, from: number, to: number, perTick = 200) {
  let next = from;
  let stop = false;
  const done = (async () => {
    const s = await tcpConnect(port);
    const closed = new Promise((r) => s.once('close', r));
    s.on('error', () => (stop = true));
    s.on('close', () => (stop = true));
    while (!stop && next < to) {
      let chunk = '';
      const end = Math.min(to, next + perTick);
      for (; next < end; next++) chunk += cef(next) + '\n';
      if (!s.write(chunk)) await Promise.race([new Promise((r) => s.once('drain', r)), closed]);
      await new Promise((r) => setImmediate(r));
    }
    s.end();
    return next;
  })();
  return { done, stop: () => (stop = true) };
}

/** Sequence numbers in the file sink; a line torn by kill -9 mid-append is skipped (its batch is re-sent). */
function seqs(path: string, maxTorn = 0): number[] {
  const out: number[] = [];
  let torn = 0;
  for (const l of readFileSync(path, 'utf8').split('\n')) {
    if (!l) continue;
    try {
      out.push(Number((JSON.parse(l) as Record<string, unknown>).DeviceEventClassID));
    } catch {
      torn++;
    }
  }
  expect(torn).toBeLessThanOrEqual(maxTorn);
  return out;
}

function checkPrefix(all: number[], atLeast: number, maxDup: number) {
  const distinct = new Set(all);
  const k = distinct.size;
  expect(k).toBeGreaterThanOrEqual(atLeast);
  // Single ordered stream: what was received is a prefix 0..k-1, no gaps.
  for (let i = 0; i < k; i++) if (!distinct.has(i)) throw new Error(`sequence ${i} lost (delivered ${k} distinct)`);
  expect(all.length - k).toBeLessThanOrEqual(maxDup);
}

describe('durability', () => {
  it('loses nothing across a destination outage under load (4 connections)', async () => {
    const dir = tempDir();
    const sink = new FakeSink();
    let down = false;
    let refused = 0;
    sink.script = Array.from(
      { length: 100_000 },
      () => (rows) =>
        down
          ? (refused++, { status: 'retryable', error: 'HTTP 503', httpStatus: 503, retryAfterMs: 50 })
          : { status: 'success', accepted: rows.length },
    );
    const f = await startForwarder(makeConfig(dir, { listen: ['tcp://127.0.0.1:0'], admin: false }), { logger: silent, sink });
    try {
      const port = f.addresses[0].port;
      const per = 5000;
      const streams = [0, 1, 2, 3].map((k) => streamSeq(port, k * per, (k + 1) * per, 100));
      await new Promise((r) => setTimeout(r, 100));
      down = true;
      // The outage lasts until it has refused a batch (a loaded machine may not send one within a fixed window).
      await waitFor(() => refused > 0, 30_000, 'the sink to refuse a batch');
      await new Promise((r) => setTimeout(r, 700));
      down = false;
      await Promise.all(streams.map((s) => s.done));
      await waitFor(() => sink.accepted.length >= 4 * per, 15_000, 'all delivered');
      const got = sink.accepted.map((r) => Number(r.DeviceEventClassID)).sort((a, b) => a - b);
      expect(got).toEqual(Array.from({ length: 4 * per }, (_, i) => i));
      expect(f.health().counters.retried).toBeGreaterThan(0);
    } finally {
      await f.shutdown();
    }
  });

  it.each([1, 0])(
    'delivers every received event after kill -9 of the bundled forwarder, duplicates at most the batches in flight (%i parse workers)',
    async (workers) => {
      const dir = tempDir();
      const batch = ['--queue-max-bytes', '256M', '--parse-workers', String(workers)];
      const a = await spawnForwarder(dir, batch);
      // A bounded stream: unbounded, intake outran a parse worker still starting on a loaded machine by
      // ~170,000 events before the first delivery, and the restart then had that backlog to drain too.
      const stream = streamSeq(a.tcpPort, 0, 60_000, 100);
      await waitFor(async () => (await health(a.admin)).counters.delivered > 3000, 30_000, 'deliveries before the kill');
      const before = (await health(a.admin)).counters.received;
      a.proc.kill('SIGKILL');
      await a.exited;
      stream.stop();
      await stream.done.catch(() => 0);
      const b = await spawnForwarder(dir, batch);
      await waitFor(async () => (await health(b.admin)).queue.records === 0, 30_000, 'queue drained after restart');
      b.proc.kill('SIGTERM');
      expect(await b.exited).toBe(0);
      // Default batches of 1000 rows, 8 in flight: at most 8000 rows are delivered twice.
      const all = seqs(join(dir, 'rows.ndjson'), 1);
      if (process.env.DEBUG_DURABILITY) console.log({ before, delivered: all.length, distinct: new Set(all).size });
      checkPrefix(all, before, 8000);
    },
    90_000,
  );

  it('with --parse-workers 2 the bundle parses in worker threads: probes, metrics, dead letters and health', async () => {
    const dir = tempDir();
    const a = await spawnForwarder(dir, ['--parse-workers', '2']);
    expect(a.parseWorkers).toBe(2);
    const probe = '<134>Nov 22 08:00:00 fw1 CEF:0|TestCommonEventFormat|sentinel-cef|1.0|probe|probe|3|cs2Label=ProbeId cs2=worker-probe-1';
    const lines = [...Array.from({ length: 50 }, (_, i) => cef(i)), probe, 'not a syslog CEF line at all'];
    const s = await tcpConnect(a.tcpPort);
    await new Promise<void>((r) => s.end(lines.join('\n') + '\n', () => r()));
    await waitFor(async () => (await health(a.admin)).counters.delivered === 51, 30_000, 'delivered through the worker');
    const h = await health(a.admin);
    expect(h.counters).toMatchObject({ received: 52, delivered: 51, parseFailures: 1, deadLettered: 1 });
    expect(h.lastDelivery?.ok).toBe(true);
    expect(h.queue.records).toBe(0);
    const p = (await (await fetch(`http://${a.admin}/probes/worker-probe-1`)).json()) as { received: boolean; accepted: boolean };
    expect(p).toMatchObject({ received: true, accepted: true });
    const metrics = await (await fetch(`http://${a.admin}/metrics`)).text();
    expect(metrics).toMatch(/^sentinel_cef_delivery_latency_seconds_count 51$/m);
    expect(metrics).toMatch(/^sentinel_cef_sink_request_duration_seconds_count\{sink="file",result="success"\} [1-9]/m);
    const dead = readFileSync(join(dir, 'dead-letter.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { raw?: string });
    expect(dead).toEqual([expect.objectContaining({ raw: 'not a syslog CEF line at all' })]);
    a.proc.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(seqs(join(dir, 'rows.ndjson')).filter((n) => Number.isInteger(n)).length).toBe(50);
  });

  it('SIGTERM stops intake, drains the queue and exits 0', async () => {
    const dir = tempDir();
    const a = await spawnForwarder(dir, ['--drain-timeout', '5', '--parse-workers', '0']);
    expect(a.parseWorkers).toBe(0);
    const s = await tcpConnect(a.tcpPort);
    await new Promise<void>((r) => s.end(Array.from({ length: 3000 }, (_, i) => cef(i) + '\n').join(''), () => r()));
    await waitFor(async () => (await health(a.admin)).counters.received === 3000, 30_000);
    a.proc.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    checkPrefix(seqs(join(dir, 'rows.ndjson')), 3000, 0);
  });
});

describe('a stop while the forwarder loads', () => {
  // systemd can stop the service while node still loads (a stop right after a start or a restart). Node's default
  // action then ended the process with no word in the journal, and systemd reported a kill instead of a stop.
  it('SIGTERM before the forwarder has started: exit 0, nothing started, and the log says it stopped', async () => {
    const dir = tempDir();
    const fifo = join(dir, 'forwarder.json');
    execFileSync('mkfifo', [fifo]);
    // The config is a FIFO: loading blocks on it until it is written, which holds the process in its start. Held
    // open read-write here first, so the forwarder's open returns and it waits in read().
    const writer = openSync(fifo, constants.O_RDWR);
    const proc = spawn(process.execPath, [join(bundleDir, 'forwarder.mjs'), '--config', fifo], {
      cwd: bundleDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(proc);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      proc.once('exit', (code, signal) => r({ code, signal })),
    );
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    const opened = () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the forwarder exited before it read its config: ${out}`);
      return readdirSync(`/proc/${proc.pid}/fd`).some((fd) => readlinkSafe(`/proc/${proc.pid}/fd/${fd}`) === fifo);
    };
    await waitFor(opened, 10_000, 'the forwarder to open its config');
    proc.kill('SIGTERM');
    const config = {
      listen: ['tcp://127.0.0.1:0'],
      queue: { dir: join(dir, 'queue') },
      sink: { type: 'file', path: join(dir, 'rows.ndjson') },
      admin: '127.0.0.1:0',
    };
    try {
      writeSync(writer, JSON.stringify(config));
    } catch {
      // the process is gone; exited says how
    }
    closeSync(writer);
    expect(await exited).toEqual({ code: 0, signal: null });
    const msgs = out
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs).toEqual(['signal received', 'forwarder stopped']);
    // Nothing was started: a stop before the forwarder ran opens no port and no queue.
    expect(existsSync(join(dir, 'queue'))).toBe(false);
  });
});

function readlinkSafe(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
}
