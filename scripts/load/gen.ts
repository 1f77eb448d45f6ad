/**
 * Sequence-numbered CEF load generator (in the manner of rsyslog's tcpflood): TCP with N connections,
 * TLS, or UDP; a fixed rate or as fast as the receiver takes it; lines of a fixed size or a uniform mix.
 *
 * Streams: each TCP/TLS connection is a stream `<run>-c<k>` numbered from 0. When a connection drops
 * (receiver killed, refused) the generator reconnects and starts segment s+1 as stream
 * `<run>-c<k>-s<s+1>`, so the checker can tell what was in flight at the moment of the drop (the
 * tail of the old segment) from what a receiver lost after reading it (holes). UDP is one stream
 * `<run>-udp`.
 *
 *   npx tsx scripts/load/gen.ts --port 25226 [--host 127.0.0.1] [--proto tcp|udp|tls] [--connections 4]
 *        [--events 100000] [--rate 10000] [--size 500 | --size 200-8192] [--run ID] [--expect-file F]
 *
 * Prints one JSON line: {run, sent, ms, eps, expect: {stream: count}} (expect feeds chkseq.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { parseArgs } from 'node:util';
import { cefLine } from './cef.js';

export interface GenOptions {
  host?: string;
  port: number;
  proto?: 'tcp' | 'udp' | 'tls';
  connections?: number;
  /** Total events (all connections). */
  events: number;
  /** Events per second in total; 0 = as fast as the receiver takes them. */
  rate?: number;
  /** Line size in bytes, or [min, max] for a uniform mix. */
  size?: number | [number, number];
  run?: string;
  /** Reconnect after a dropped connection (chaos runs); otherwise a drop ends the connection's share. */
  reconnect?: boolean;
  /** Give up reconnecting after this long without a connection. */
  reconnectTimeoutMs?: number;
}

export interface GenResult {
  run: string;
  sent: number;
  ms: number;
  eps: number;
  /** Events written per stream (the checker's expectations). */
  expect: Record<string, number>;
  reconnects: number;
  /** CPU seconds the generator process used (when run in its own process). */
  cpuSec?: number;
}

/** Small deterministic PRNG (mulberry32) so size mixes repeat run to run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function generate(o: GenOptions, signal?: AbortSignal): Promise<GenResult> {
  const run = o.run ?? `r${Date.now().toString(36)}`;
  const proto = o.proto ?? 'tcp';
  const host = o.host ?? '127.0.0.1';
  const rate = o.rate ?? 0;
  const rnd = prng(0x5eed);
  const sizeOf = (): number => {
    const s = o.size ?? 500;
    return typeof s === 'number' ? s : Math.floor(s[0] + rnd() * (s[1] - s[0] + 1));
  };
  const expect: Record<string, number> = {};
  const t0 = Date.now();
  let sent = 0;
  let reconnects = 0;
  // Events allowed out so far under the rate limit (all connections share one budget).
  const allowed = () => (rate > 0 ? Math.min(o.events, Math.floor(((Date.now() - t0) / 1000) * rate) + 1) : o.events);

  if (proto === 'udp') {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const stream = `${run}-udp`;
    expect[stream] = 0;
    let seq = 0;
    while (seq < o.events && !signal?.aborted) {
      const upto = allowed();
      if (seq >= upto) {
        await sleep(2);
        continue;
      }
      const stop = Math.min(upto, seq + 256);
      const now = Date.now();
      const pending: Promise<void>[] = [];
      for (; seq < stop; seq++) {
        const line = cefLine(stream, seq, now, sizeOf());
        pending.push(new Promise<void>((r) => sock.send(line, o.port, host, () => r())));
        expect[stream]++;
        sent++;
      }
      await Promise.all(pending);
    }
    sock.close();
    const ms = Date.now() - t0;
    return { run, sent, ms, eps: Math.round(sent / (ms / 1000)), expect, reconnects };
  }

  const conns = Math.max(1, o.connections ?? 1);
  const per = Math.ceil(o.events / conns);
  // Rate share per connection: the shared budget is split evenly.
  const connAllowed = (k: number) => Math.min(per, Math.ceil(allowed() / conns) + (k < allowed() % conns ? 1 : 0));
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s =
        proto === 'tls'
          ? tlsConnect({ host, port: o.port, rejectUnauthorized: false }, () => resolve(s))
          : netConnect({ host, port: o.port }, () => resolve(s));
      s.once('error', reject);
    });

  const worker = async (k: number): Promise<void> => {
    const total = k === conns - 1 ? o.events - per * (conns - 1) : per;
    let done = 0; // events of this connection's share written so far (all segments)
    let segment = 0;
    while (done < total && !signal?.aborted) {
      let s: Socket;
      const since = Date.now();
      for (;;) {
        try {
          s = await open();
          break;
        } catch (err) {
          if (!o.reconnect || Date.now() - since > (o.reconnectTimeoutMs ?? 60_000)) throw err;
          await sleep(50);
        }
      }
      const stream = segment === 0 ? `${run}-c${k}` : `${run}-c${k}-s${segment}`;
      expect[stream] = 0;
      let seq = 0;
      let broken = false;
      s.on('error', () => {
        broken = true;
      });
      s.on('close', () => {
        broken = true;
      });
      while (done < total && !broken && !signal?.aborted) {
        const upto = rate > 0 ? connAllowed(k) : total;
        if (done >= upto) {
          await sleep(2);
          continue;
        }
        const stop = Math.min(upto, done + 64);
        const now = Date.now();
        let chunk = '';
        const n = stop - done;
        for (let i = 0; i < n; i++) chunk += cefLine(stream, seq + i, now, sizeOf());
        const ok = s.write(chunk);
        seq += n;
        done += n;
        expect[stream] += n;
        sent += n;
        if (!ok && !broken) {
          await new Promise<void>((r) => {
            const fin = () => {
              s.off('drain', fin);
              s.off('close', fin);
              r();
            };
            s.on('drain', fin);
            s.on('close', fin);
          });
        }
      }
      if (!broken) {
        await new Promise<void>((r) => {
          s.end(() => r());
          s.once('close', () => r());
        });
        if (done >= total) return;
      }
      s.destroy();
      if (!o.reconnect) return;
      segment++;
      reconnects++;
    }
  };
  await Promise.all(Array.from({ length: conns }, (_, k) => worker(k)));
  const ms = Date.now() - t0;
  return { run, sent, ms, eps: Math.round(sent / (ms / 1000)), expect, reconnects };
}

/** Runs the generator in its own process (so it does not share an event loop with what it measures). */
export function forkGenerator(o: GenOptions): { child: ChildProcess; result: Promise<GenResult>; stop: () => void } {
  const child = fork(new URL(import.meta.url).pathname, ['--ipc', JSON.stringify(o)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const result = new Promise<GenResult>((resolve, reject) => {
    child.once('message', (m) => resolve(m as GenResult));
    child.once('exit', (code) => reject(new Error(`generator exited (${code}) before reporting`)));
  });
  return { child, result, stop: () => child.send('stop') };
}

async function main(): Promise<void> {
  const ipc = process.argv.indexOf('--ipc');
  if (ipc >= 0) {
    const ac = new AbortController();
    process.on('message', (m) => m === 'stop' && ac.abort());
    const r = await generate(JSON.parse(process.argv[ipc + 1]) as GenOptions, ac.signal);
    const c = process.cpuUsage();
    process.send!({ ...r, cpuSec: (c.user + c.system) / 1e6 }, () => process.exit(0));
    return;
  }
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      proto: { type: 'string', default: 'tcp' },
      connections: { type: 'string', default: '4' },
      events: { type: 'string', default: '100000' },
      rate: { type: 'string', default: '0' },
      size: { type: 'string', default: '500' },
      run: { type: 'string' },
      reconnect: { type: 'boolean', default: false },
      'expect-file': { type: 'string' },
    },
  });
  if (!values.port) throw new Error('gen: --port is required');
  const size = values.size!.includes('-') ? (values.size!.split('-').map(Number) as [number, number]) : Number(values.size);
  const r = await generate({
    host: values.host,
    port: Number(values.port),
    proto: values.proto as GenOptions['proto'],
    connections: Number(values.connections),
    events: Number(values.events),
    rate: Number(values.rate),
    size,
    run: values.run,
    reconnect: values.reconnect,
  });
  if (values['expect-file']) writeFileSync(values['expect-file'], JSON.stringify(r.expect));
  console.log(JSON.stringify(r));
}

/** Run as a script (not when imported, nor when bundled into another script). */
function isMain(): boolean {
  return /[\\/]scripts[\\/]load[\\/]gen\.[cm]?[jt]s$/.test(process.argv[1] ?? '');
}

if (isMain()) await main();
