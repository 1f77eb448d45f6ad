/**
 * Forwarder throughput benchmark: a TCP load generator (several connections, ~500-byte CEF lines,
 * sequence-numbered) → the production bundle dist/forwarder.mjs (disk queue on, real parser,
 * Logs Ingestion sink with gzip and the Entra token flow) → the mock Azure service (HTTPS), which
 * checks every sequence number arrived. Side by side in the same run: the raw ceiling, the same
 * stream read and discarded by a bare TCP server.
 *
 *   npm run bench-forward -- [--events 1000000] [--connections 4] [--rate EVENTS_PER_SEC] [--batch JSON] [--rtt MS] [--validate-every N] [--no-core]
 *
 * --rtt MS delays every ingestion answer (a round trip to a distant region).
 *
 * Without --rate the generator sends as fast as TCP lets it (throughput); with --rate it paces the
 * stream so the receive→accept latency reflects a sustainable load instead of a backlog.
 *
 * Each role runs in its own process: generator, forwarder (measured: peak RSS from /proc VmHWM,
 * CPU from /proc stat) and this orchestrator (mock Azure).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanSeqRows } from './load/cef.js';
import { SeqChecker } from './load/chkseq.js';
import { generate } from './load/gen.js';
const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const role = arg('role', 'main');

/** The shared sequence-numbered generator (scripts/load/gen.ts): 500-byte lines, one stream per connection. */
async function generator(): Promise<void> {
  // events/s are counted from here (the first send), not from this process's start-up.
  const startedAt = Date.now();
  const cpu0 = process.cpuUsage();
  const r = await generate({
    port: Number(arg('port', '0')),
    events: Number(arg('events', '1000000')),
    connections: Number(arg('connections', '4')),
    // --rate N paces the whole stream at N events/s (for latency at a sustainable load).
    rate: Number(arg('rate', '0')),
    size: 500,
    run: 'bf',
  });
  const cpu = process.cpuUsage(cpu0);
  process.send!({ sent: r.sent, ms: r.ms, expect: r.expect, startedAt, cpuMs: (cpu.user + cpu.system) / 1000 });
}

async function discardServer(): Promise<void> {
  let bytes = 0;
  let lines = 0;
  const server = createTcpServer((s) =>
    s.on('data', (d: Buffer) => {
      bytes += d.length;
      // Count newlines so the ceiling does the minimal per-byte work a receiver must do.
      for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
    }),
  );
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
  process.on('message', () => process.send!({ bytes, lines }));
}

/**
 * The forwarder's own cost: intake, framing, disk queue (CRC, group fsync) and the delivery loop,
 * with a parse that only wraps the raw line and a sink that accepts at once.
 */
async function core(): Promise<void> {
  const { forwarderConfigSchema } = await import('../src/config/schema.js');
  const { startForwarder } = await import('../src/forwarder/forwarder.js');
  const { pino } = await import('pino');
  const dir = arg('dir', '');
  let accepted = 0;
  const config = forwarderConfigSchema.parse({
    listen: ['tcp://127.0.0.1:0'],
    queue: { dir: join(dir, 'queue'), maxBytes: 4 * 1024 ** 3 },
    sink: { type: 'file', path: join(dir, 'unused') },
    admin: false,
  });
  const f = await startForwarder(config, {
    logger: pino({ level: 'warn' }),
    parse: (raw) => ({ ok: true, kind: 'cef', row: { RawLength: raw.length } }),
    sink: {
      name: 'null',
      send: async (rows) => {
        accepted += rows.length;
        return { status: 'success', accepted: rows.length };
      },
    },
  });
  const cpu0 = process.cpuUsage();
  // This process also holds the benchmark's own code: report growth under load, not its baseline.
  const rss0 = peakRssMb(process.pid);
  if (process.env.BENCH_DEBUG) {
    const t0 = Date.now();
    setInterval(() => {
      const m = process.memoryUsage();
      const mb = (n: number) => (n / 2 ** 20).toFixed(0);
      console.error(
        `core +${Date.now() - t0} ms rss ${mb(m.rss)} heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)} accepted ${accepted}`,
      );
    }, 100).unref();
  }
  process.send!({ port: f.addresses[0].port });
  process.on('message', (m) => {
    const c = process.cpuUsage(cpu0);
    process.send!({ accepted, cpuUs: c.user + c.system, rss: peakRssMb(process.pid) - rss0 });
    if (m === 'stop' && process.env.BENCH_DEBUG) console.error('core memory', process.memoryUsage());
    if (m === 'stop') {
      // A failed shutdown fails the child (and so the benchmark), as an unhandled rejection did.
      f.shutdown().then(
        () => process.exit(0),
        (err: unknown) => {
          console.error('core: shutdown failed:', err);
          process.exit(1);
        },
      );
    }
  });
}

let bundled = '';
let forwarderBundle = '';
/** Children run esbuild bundles (the forwarder exactly as the installer deploys it), not tsx. */
async function bundleSelf(): Promise<void> {
  const { build } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'bench-forward-bin-'));
  const common = {
    platform: 'node' as const,
    target: 'node20',
    format: 'esm' as const,
    bundle: true,
    logLevel: 'warning' as const,
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  };
  bundled = join(dir, 'bench-forward.mjs');
  forwarderBundle = join(dir, 'forwarder.mjs');
  await build({ ...common, entryPoints: [new URL(import.meta.url).pathname], outfile: bundled, external: ['esbuild'] });
  await build({ ...common, entryPoints: [new URL('../src/forwarder-main.ts', import.meta.url).pathname], outfile: forwarderBundle });
}

/** A forwarder gauge from its Prometheus text, in MiB. */
function promMb(prom: string, name: string): number {
  return Number(new RegExp(`^sentinel_cef_${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(prom)?.[1] ?? NaN) / 2 ** 20;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createTcpServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime (fields 14 and 15) in clock ticks of 10 ms.
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** CPU ms of each thread of a process, by tid, with the thread's name (the main thread is named after the process). */
function threadCpuMs(pid: number): Map<string, { name: string; ms: number }> {
  const out = new Map<string, { name: string; ms: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')).replace(/\d+$/, '');
      const f = st.slice(st.lastIndexOf(') ') + 2).split(' ');
      out.set(tid, { name: tid === String(pid) ? 'main' : name, ms: (Number(f[11]) + Number(f[12])) * 10 });
    } catch {
      // The thread exited between readdir and read: it has no CPU left to count.
    }
  }
  return out;
}

function child(roleName: string, extra: string[]): ChildProcess {
  return fork(bundled, ['--role', roleName, ...extra], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // BENCH_CPU_PROF=core profiles the core phase's forwarder (intake + queue + loop).
    ...(roleName === 'core' && process.env.BENCH_CPU_PROF === 'core' ? { execArgv: ['--cpu-prof', '--cpu-prof-dir', 'prof'] } : {}),
  });
}

const once = <T>(c: ChildProcess) => new Promise<T>((r) => c.once('message', (m) => r(m as T)));

function peakRssMb(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)![1]) / 1024;
}

async function main(): Promise<void> {
  // A million events: ~10 s of load, so start-up (JIT, worker start) is a small part of a sustained rate.
  const events = Number(arg('events', '1000000'));
  const connections = arg('connections', '4');
  await bundleSelf();
  console.log(`events=${events} connections=${connections} line=500 B, cores=${(await import('node:os')).cpus().length}`);

  // Raw ceiling: the same stream read and discarded.
  const disc = child('discard', []);
  const { port: dport } = await once<{ port: number }>(disc);
  const rateArgs = arg('rate', '') ? ['--rate', arg('rate', '')] : [];
  const g1 = child('gen', ['--port', String(dport), '--events', String(events), '--connections', connections, ...rateArgs]);
  const { startedAt: t1 } = await once<{ startedAt: number }>(g1);
  for (;;) {
    disc.send('stat');
    const st = await once<{ lines: number }>(disc);
    if (st.lines >= events) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const rawMs = Date.now() - t1;
  disc.kill();
  const rawEps = Math.round(events / (rawMs / 1000));
  console.log(`raw ceiling (read+discard): ${rawEps.toLocaleString()} events/s (${rawMs} ms)`);

  // Forwarder core only: intake + disk queue + delivery loop, no-op parse and sink (--no-core skips it).
  if (!args.includes('--no-core')) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-forward-core-'));
    const c = child('core', ['--dir', dir]);
    const { port: cport } = await once<{ port: number }>(c);
    const g = child('gen', ['--port', String(cport), '--events', String(events), '--connections', connections, ...rateArgs]);
    const { startedAt: t } = await once<{ startedAt: number }>(g);
    let st: { accepted: number; cpuUs: number; rss: number };
    const until = Date.now() + 120_000;
    for (;;) {
      c.send('stat');
      st = await once<{ accepted: number; cpuUs: number; rss: number }>(c);
      if (st.accepted >= events || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const ms = Date.now() - t;
    c.send('stop');
    if (st.accepted !== events) throw new Error(`core phase delivered ${st.accepted} of ${events}`);
    console.log(
      `forwarder core (intake + disk queue + delivery loop, no-op parse/sink): ${Math.round(events / (ms / 1000)).toLocaleString()} events/s (${ms} ms), CPU ${(st.cpuUs / events).toFixed(1)} µs per event, RSS growth ${st.rss.toFixed(0)} MB`,
    );
    rmSync(dir, { recursive: true, force: true });
  }

  // Forwarder bundle → Logs Ingestion sink → mock Azure (HTTPS, token flow, schema checks).
  const { startMockAzure, writeSecretFile } = await import('../test/helpers/mock-azure.js');
  // Every row of every call is sequence-checked as it arrives (not kept). Every Nth call (--validate-every,
  // default 20; 1 = all) is parsed in full and its columns checked; the others are read by scanSeqRows
  // (indexOf on the bytes, no decoding or JSON.parse), which leaves the forwarder most of the second core.
  const checker = new SeqChecker();
  let delivered = 0;
  let lastAcceptAt = 0;
  const validateEvery = Math.max(1, Number(arg('validate-every', '20')));
  const mock = await startMockAzure({
    quiet: true,
    keepRows: false,
    validateEvery,
    onRows: (batch) => {
      for (const r of batch) checker.addRow(r.row, r.at);
      delivered += batch.length;
      lastAcceptAt = batch[0]?.at ?? lastAcceptAt;
    },
    scanBody: (raw) => {
      const rows = scanSeqRows(raw);
      if (!rows) return undefined;
      return {
        rows: rows.seqs.length,
        accept: (at) => {
          checker.addScanned(rows, at);
          delivered += rows.seqs.length;
          lastAcceptAt = at;
        },
      };
    },
  });
  console.log(
    validateEvery === 1
      ? 'mock: every call parsed in full (JSON.parse), column-checked and every row sequence-checked'
      : `mock: every row sequence-checked by scanning (no JSON.parse); full JSON + column checks on 1 call in ${validateEvery}`,
  );
  // --rtt MS: every ingestion call waits this long before its answer, as a far-away Azure region would.
  const rtt = Number(arg('rtt', '0'));
  if (rtt > 0) mock.fail({ api: 'logs-ingestion', delayMs: rtt });
  const dir = mkdtempSync(join(tmpdir(), 'bench-forward-'));
  const secretFile = writeSecretFile(dir, 'client-secret', mock.clientSecret);
  const port = await freePort();
  const adminPort = await freePort();
  // --batch '{"inFlight":1}' overrides the forwarder's batch settings (to compare settings side by side).
  const batchJson = arg('batch', '');
  const configArgs: string[] = [];
  if (batchJson) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'forwarder.json'), JSON.stringify({ batch: JSON.parse(batchJson) }));
    configArgs.push('--config', join(dir, 'forwarder.json'));
  }
  const { FORWARDER_ENV, FORWARDER_NODE_FLAGS } = await import('../src/install/service.js');
  const fw = spawn(
    process.execPath,
    [
      // The node flags the installed service runs with (systemd unit, supervisor).
      ...FORWARDER_NODE_FLAGS,
      // BENCH_CPU_PROF=1 writes a V8 CPU profile of the forwarder to ./prof (open in Chrome DevTools).
      ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', 'prof'] : []),
      ...(process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : []),
      forwarderBundle,
      ...configArgs,
      '--listen',
      `tcp://127.0.0.1:${port}`,
      '--queue-dir',
      join(dir, 'queue'),
      '--queue-max-bytes',
      '4G',
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--log-level',
      'warn',
      '--sink',
      'logs-ingestion',
      '--dce',
      mock.url,
      '--dcr',
      mock.dcrImmutableId,
      '--stream',
      mock.stream,
      '--tenant',
      mock.tenantId,
      '--client-id',
      mock.clientId,
      '--client-secret-file',
      secretFile,
      '--authority-host',
      mock.url,
    ],
    { env: { ...FORWARDER_ENV, ...process.env, NODE_EXTRA_CA_CERTS: mock.caPath }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) =>
      connect({ host: '127.0.0.1', port })
        .on('connect', function (this: import('node:net').Socket) {
          this.destroy();
          r(true);
        })
        .on('error', () => r(false)),
    );
    if (up) break;
    if (i > 200) throw new Error('forwarder did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const cpu0 = cpuMs(fw.pid!);
  const threads0 = threadCpuMs(fw.pid!);
  const mockCpu0 = process.cpuUsage();
  // RSS timeline (VmRSS every 100 ms): where the peak happens, while receiving or while draining.
  const rssAt: Array<[number, number]> = [];
  const tStart = Date.now();
  const sampler = setInterval(() => {
    try {
      const mb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${fw.pid}/status`, 'utf8'))![1]) / 1024;
      rssAt.push([Date.now() - tStart, mb]);
      // BENCH_DEBUG=1: the timeline with V8 heap and external memory from the forwarder's /metrics.
      if (process.env.BENCH_DEBUG) {
        const t = Date.now() - tStart;
        void fetch(`http://127.0.0.1:${adminPort}/metrics`)
          .then((r) => r.text())
          .then((prom) => {
            const g = (name: string) => promMb(prom, name).toFixed(0);
            console.error(
              `forwarder +${t} ms rss ${mb.toFixed(0)} MB heap ${g('nodejs_heap_size_used_bytes')}/${g('nodejs_heap_size_total_bytes')} external ${g('nodejs_external_memory_bytes')} queue ${g('queue_bytes')} MB, delivered ${delivered}`,
            );
          })
          .catch(() => {});
      }
    } catch {
      // The forwarder has exited (no /proc entry): the timeline ends with its last sample.
    }
  }, 100);
  const g2 = child('gen', ['--port', String(port), '--events', String(events), '--connections', connections, ...rateArgs]);
  const gen = await once<{ ms: number; expect: Record<string, number>; startedAt: number; cpuMs: number }>(g2);
  const t2 = gen.startedAt;
  const deadline = Date.now() + 300_000;
  while (delivered < events && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const lastAt = lastAcceptAt || Date.now();
  const fwdMs = lastAt - t2;
  const rss = peakRssMb(fw.pid!);
  clearInterval(sampler);
  const cpu = cpuMs(fw.pid!) - cpu0;
  const threads = threadCpuMs(fw.pid!);
  const mc = process.cpuUsage(mockCpu0);
  const mockCpuMs = Math.round((mc.user + mc.system) / 1000);
  const prom = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const metric = (name: string) => promMb(prom, name);
  const heapNow = `heap used ${metric('nodejs_heap_size_used_bytes').toFixed(0)} MB of ${metric('nodejs_heap_size_total_bytes').toFixed(0)} MB, external ${metric('nodejs_external_memory_bytes').toFixed(0)} MB, rss now ${metric('process_resident_memory_bytes').toFixed(0)} MB`;
  fw.kill('SIGTERM');
  await new Promise((r) => fw.once('exit', r));
  // Sequence check (scripts/load/chkseq.ts): lost, duplicated, latency from the send time in each event.
  for (const [k, v] of Object.entries(gen.expect)) checker.expect(k, v);
  const rep = checker.report();
  const rows = rep.received;
  const dups = rep.duplicates;
  const mstats = mock.stats();
  const requests = mstats.requests;
  await mock.close();
  rmSync(dir, { recursive: true, force: true });
  const eps = Math.round(rows / (fwdMs / 1000));
  console.log(
    `forwarder (disk queue + parse + Logs Ingestion gzip/HTTPS): ${eps.toLocaleString()} events/s (${fwdMs} ms; generator finished sending after ${gen.ms} ms using ${((gen.cpuMs * 1000) / events).toFixed(1)} µs CPU per event; ${requests} HTTP requests on ${mstats.connectionsOpened} connections)`,
  );
  console.log(
    `rows delivered ${rows}/${events}, duplicates ${dups}, lost ${events - rows}; mock checked the columns of ${mstats.validatedCalls} calls: ${mstats.typeMismatches.length} type mismatches, ${mstats.undeclaredColumns.length} undeclared columns`,
  );
  console.log(
    `mock read ${mstats.scannedCalls} calls by scanning, parsed ${mstats.validatedCalls} in full for column checks, ` +
      `fell back to a full parse on ${mstats.scanFallbacks}; scan errors ${mstats.scanErrors}${mstats.scanErrorSamples.length ? ` (${mstats.scanErrorSamples.join('; ')})` : ''}, ` +
      `scan/parse row-count mismatches ${mstats.scanMismatches}; rows of unknown streams or without sequence fields ${rep.unknown}`,
  );
  console.log(`send→accept latency p50 ${rep.latencyMs?.p50} ms, p99 ${rep.latencyMs?.p99} ms (includes time queued behind the backlog)`);
  const peakAt = rssAt.reduce((a, b) => (b[1] > a[1] ? b : a), [0, 0]);
  const sendingPeak = Math.max(0, ...rssAt.filter(([t]) => t <= gen.ms).map(([, m]) => m));
  console.log(
    `forwarder peak RSS ${rss.toFixed(0)} MB (sampled: ${peakAt[1].toFixed(0)} MB at +${peakAt[0]} ms; while the generator was sending ${sendingPeak.toFixed(0)} MB; at the end: ${heapNow})`,
  );
  const us = (cpu * 1000) / events;
  console.log(
    `forwarder CPU ${cpu} ms (user+sys, all threads) = ${us.toFixed(1)} µs per event → ${Math.round(2e6 / us).toLocaleString()} events/s if it had both cores to itself`,
  );
  // Per thread (main, parse worker, V8 GC helpers, libuv pool): where the forwarder's CPU goes.
  const byThread = new Map<string, number>();
  for (const [tid, t] of threads) {
    const d = t.ms - (threads0.get(tid)?.ms ?? 0);
    if (d > 0) byThread.set(t.name === 'main' ? 'main' : `${t.name}:${tid}`, d);
  }
  console.log(
    `forwarder CPU by thread (µs per event): ${[...byThread]
      .sort((a, b) => b[1] - a[1])
      .map(([n, ms]) => `${n} ${((ms * 1000) / events).toFixed(1)}`)
      .join(', ')}`,
  );
  console.log(
    `mock Azure (this process) CPU ${mockCpuMs} ms over the same ${fwdMs} ms: ${((100 * mockCpuMs) / fwdMs).toFixed(0)}% of a core, ${((mockCpuMs * 1000) / events).toFixed(1)} µs per event`,
  );
  console.log(`ratio forwarder/raw: ${(eps / rawEps).toFixed(2)}`);
  const clean = rows === events && rep.unknown === 0 && mstats.scanErrors === 0 && mstats.scanMismatches === 0;
  process.exit(clean ? 0 : 1);
}

const roles: Record<string, () => Promise<void>> = { main, gen: generator, discard: discardServer, core };
await roles[role]();
