/**
 * Forwarder throughput benchmark: a TCP load generator (several connections, ~500-byte CEF lines,
 * sequence-numbered) → forwarder (disk queue on, gzip on) → mock HTTP ingestion endpoint that
 * gunzips, counts and checks every sequence number. Side by side in the same run: the raw ceiling,
 * the same stream read and discarded by a bare TCP server.
 *
 *   npm run bench-forward -- [--events 1000000] [--connections 4]
 *
 * Each role runs in its own process: generator, forwarder (measured: peak RSS from /proc VmHWM) and
 * this orchestrator (mock endpoint).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzip } from 'node:zlib';
import { promisify } from 'node:util';

const gzipAsync = promisify(gzip);
const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const role = arg('role', 'main');

/** ~500-byte CEF line; DeviceVersion carries the send time (ms), DeviceEventClassID the sequence number. */
function line(seq: number, sentAt: number): string {
  const head = `<134>Nov 22 08:00:00 bench-host CEF:0|Bench|LoadGen|${sentAt}|${seq}|Connection allowed|3|`;
  const ext = `src=10.1.${seq & 255}.${(seq >> 8) & 255} dst=203.0.113.${seq % 250} spt=${1024 + (seq % 60000)} dpt=443 proto=TCP act=allow deviceExternalId=FW-0001 cs1Label=Rule cs1=allow-outbound-web suser=user${seq % 1000}@example.com request=https://www.example.com/some/path?q=${seq} msg=`;
  const pad = 499 - head.length - ext.length;
  return head + ext + 'x'.repeat(Math.max(0, pad)) + '\n';
}

async function generator(): Promise<void> {
  const port = Number(arg('port', '0'));
  const events = Number(arg('events', '1000000'));
  const conns = Number(arg('connections', '4'));
  const per = Math.ceil(events / conns);
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: conns }, (_, c) =>
      new Promise<void>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port });
        s.on('error', reject);
        let seq = c * per;
        const end = Math.min(events, (c + 1) * per);
        const pump = () => {
          while (seq < end) {
            let chunk = '';
            const now = Date.now();
            const stop = Math.min(end, seq + 128);
            for (; seq < stop; seq++) chunk += line(seq, now);
            if (!s.write(chunk)) return s.once('drain', pump);
          }
          s.end(resolve);
        };
        s.on('connect', pump);
      }),
    ),
  );
  process.send!({ sent: events, ms: Date.now() - t0 });
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

async function forwarder(): Promise<void> {
  const { forwarderConfigSchema } = await import('../src/config/schema.js');
  const { startForwarder } = await import('../src/forwarder/forwarder.js');
  const { createLogger } = await import('../src/forwarder/logger.js');
  const dir = arg('dir', '');
  const endpoint = arg('endpoint', '');
  const config = forwarderConfigSchema.parse({
    listen: ['tcp://127.0.0.1:0'],
    queue: { dir: join(dir, 'queue'), maxBytes: 4 * 1024 ** 3 },
    sink: { type: 'file', path: join(dir, 'unused.ndjson') },
    admin: '127.0.0.1:0',
    logLevel: 'warn',
  });
  // Until the Azure sinks are in this tree: a sink that does what the Logs Ingestion sink does per call
  // (JSON array, gzip on the thread pool, POST ≤ ~1 MB) against the mock endpoint.
  const sink = {
    name: 'bench-http',
    async send(rows: Array<Record<string, unknown>>) {
      const calls: string[] = [];
      let cur: string[] = [];
      let size = 2;
      for (const r of rows) {
        const j = JSON.stringify(r);
        if (size + j.length + 1 > 1_000_000 && cur.length) {
          calls.push(`[${cur.join(',')}]`);
          cur = [];
          size = 2;
        }
        cur.push(j);
        size += j.length + 1;
      }
      if (cur.length) calls.push(`[${cur.join(',')}]`);
      for (const body of calls) {
        const gz = await gzipAsync(body);
        const res = await fetch(endpoint, { method: 'POST', body: gz, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
        await res.arrayBuffer();
        if (res.status !== 204) return { status: 'retryable' as const, error: `HTTP ${res.status}`, httpStatus: res.status };
      }
      return { status: 'success' as const, accepted: rows.length };
    },
  };
  const f = await startForwarder(config, { logger: createLogger('warn', process.stderr), sink });
  process.send!({ port: f.addresses[0].port, admin: f.adminAddress });
  process.on('message', async (m: { cmd: string }) => {
    if (m.cmd === 'stop') {
      await f.shutdown();
      process.send!({ stopped: true, totals: f.metrics.totals });
      process.exit(0);
    }
  });
}

function child(roleName: string, extra: string[]): ChildProcess {
  return fork(new URL(import.meta.url).pathname, ['--role', roleName, ...extra], {
    execArgv: ['--import', 'tsx', ...(process.env.BENCH_CPU_PROF && roleName === 'forwarder' ? ['--cpu-prof', '--cpu-prof-dir', 'prof'] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

const once = <T>(c: ChildProcess) => new Promise<T>((r) => c.once('message', (m) => r(m as T)));

function peakRssMb(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)![1]) / 1024;
}

async function main(): Promise<void> {
  const events = Number(arg('events', '1000000'));
  const connections = arg('connections', '4');
  console.log(`events=${events} connections=${connections} line=500 B, cores=${(await import('node:os')).cpus().length}`);

  // Raw ceiling: the same stream read and discarded.
  const disc = child('discard', []);
  const { port: dport } = await once<{ port: number }>(disc);
  const g1 = child('gen', ['--port', String(dport), '--events', String(events), '--connections', connections]);
  const t1 = Date.now();
  await once(g1);
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

  // Forwarder → mock ingestion endpoint.
  const seen = new Uint8Array(events);
  let rows = 0;
  let dups = 0;
  const lat: number[] = [];
  let lastAt = 0;
  const http = createHttpServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const now = Date.now();
      const body = JSON.parse(gunzipSync(Buffer.concat(parts)).toString('utf8')) as Array<Record<string, string>>;
      for (const r of body) {
        const seq = Number(r.DeviceEventClassID);
        if (seen[seq]) dups++;
        else {
          seen[seq] = 1;
          rows++;
        }
        if ((seq & 15) === 0) lat.push(now - Number(r.DeviceVersion));
      }
      lastAt = now;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const endpoint = `http://127.0.0.1:${(http.address() as { port: number }).port}/dataCollectionRules/dcr-bench/streams/Custom-CommonSecurityLog`;
  const dir = mkdtempSync(join(tmpdir(), 'bench-forward-'));
  const fw = child('forwarder', ['--dir', dir, '--endpoint', endpoint]);
  const { port } = await once<{ port: number }>(fw);
  const g2 = child('gen', ['--port', String(port), '--events', String(events), '--connections', connections]);
  const t2 = Date.now();
  const gen = await once<{ ms: number }>(g2);
  const deadline = Date.now() + 300_000;
  while (rows < events && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const fwdMs = lastAt - t2;
  const rss = peakRssMb(fw.pid!);
  fw.send({ cmd: 'stop' });
  await once(fw);
  http.close();
  rmSync(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * q))];
  const eps = Math.round(rows / (fwdMs / 1000));
  console.log(`forwarder (disk queue + parse + gzip + HTTP): ${eps.toLocaleString()} events/s (${fwdMs} ms; generator finished sending after ${gen.ms} ms)`);
  console.log(`rows delivered ${rows}/${events}, duplicates ${dups}, lost ${events - rows}`);
  console.log(`send→accept latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms (sampled 1/16)`);
  console.log(`forwarder peak RSS ${rss.toFixed(0)} MB`);
  console.log(`ratio forwarder/raw: ${(eps / rawEps).toFixed(2)}`);
  process.exit(rows === events ? 0 : 1);
}

const roles: Record<string, () => Promise<void>> = { main, gen: generator, discard: discardServer, forwarder };
await roles[role]();
