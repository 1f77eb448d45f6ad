import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { forwarderConfigSchema, type ForwarderConfig } from '../../src/config/schema.js';
import type { CslRow } from '../../src/parser/types.js';
import { jsonOf, type PreparedRow, type RowNote, type SendResult, type Sink } from '../../src/sinks/types.js';
import { prepareRow } from '../../src/sinks/batch.js';
import { Aborted } from '../../src/forwarder/delivery/backoff.js';

export const silent = pino({ level: 'silent' });

export function tempDir(prefix = 'fwd-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Test config in `dir`; object sections in `over` are merged (never falls back to /var/lib paths). */
export function makeConfig(dir: string, over: Record<string, unknown> = {}): ForwarderConfig {
  const base: Record<string, unknown> = {
    listen: ['tcp://127.0.0.1:0', 'udp://127.0.0.1:0'],
    queue: { dir: join(dir, 'queue'), fsyncIntervalMs: 50 },
    batch: { maxRecords: 500, maxBytes: 900 * 1024, flushMs: 20 },
    retry: { initialMs: 10, maxMs: 100 },
    drainTimeoutSec: 2,
    sink: { type: 'file', path: join(dir, 'rows.ndjson') },
    deadLetterFile: join(dir, 'dead-letter.ndjson'),
    admin: '127.0.0.1:0',
  };
  for (const [k, v] of Object.entries(over)) {
    const b = base[k];
    base[k] =
      b && typeof b === 'object' && !Array.isArray(b) && v && typeof v === 'object' && !Array.isArray(v) && k !== 'sink'
        ? { ...b, ...v }
        : v;
  }
  const config = forwarderConfigSchema.parse(base);
  if (!config.queue.dir.startsWith(dir)) throw new Error('test config must keep the queue in its temp dir');
  return config;
}

export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whole lines only: the sink may be half-way through an append while a test reads the file. */
function completeLines(path: string): string {
  const text = readFileSync(path, 'utf8');
  return text.slice(0, text.lastIndexOf('\n') + 1);
}

export function readRows(path: string): CslRow[] {
  if (!existsSync(path)) return [];
  return completeLines(path)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as CslRow);
}

export function readNdjson(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

export function cef(n: number | string, extra = ''): string {
  return `<134>Nov 22 08:00:00 fw1 CEF:0|Acme|Firewall|1.0|${n}|allow|3|src=10.0.0.1${extra ? ' ' + extra : ''}`;
}

export function tcpConnect(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host }, () => resolve(s));
    s.once('error', reject);
  });
}

/** What librelp offers when it opens a session. */
export const RELP_OFFERS = 'relp_version=0\nrelp_software=librelp,1.11.0,https://librelp.adiscon.com\ncommands=syslog';

/** One RELP frame as a sender writes it: `TXNR COMMAND LEN [SP DATA] LF`. */
export const relpFrame = (txnr: number, cmd: string, data = ''): string =>
  data === '' ? `${txnr} ${cmd} 0\n` : `${txnr} ${cmd} ${Buffer.byteLength(data)} ${data}\n`;

export interface RelpAnswer {
  txnr: number;
  /** A response's data (the open answer's holds LFs), or a hint's command (`serverclose`). */
  text: string;
}

/** The server's answers on a RELP client socket as they arrive, and when the socket closed. */
export function relpAnswers(s: Socket): { answers: RelpAnswer[]; closed: Promise<void> } {
  const answers: RelpAnswer[] = [];
  let buf = '';
  s.on('data', (c: Buffer) => {
    buf += c.toString('latin1');
    for (;;) {
      const m = /^(\d+) (\w+) (\d+) ?/.exec(buf);
      if (!m) return;
      const len = Number(m[3]);
      if (buf.length < m[0].length + len + 1) return;
      answers.push({ txnr: Number(m[1]), text: m[2] === 'rsp' ? buf.slice(m[0].length, m[0].length + len) : m[2]! });
      buf = buf.slice(m[0].length + len + 1);
    }
  });
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  return { answers, closed };
}

export function writeAndEnd(s: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => s.end(data, () => resolve()));
}

/** A sink under test control: each send takes the next scripted result (default success). */
export class FakeSink implements Sink {
  readonly name = 'fake';
  readonly sent: CslRow[][] = [];
  readonly accepted: CslRow[] = [];
  readonly sendTimes: number[] = [];
  script: Array<(rows: CslRow[]) => SendResult> = [];
  async send(rows: CslRow[]): Promise<SendResult> {
    this.sent.push(rows);
    this.sendTimes.push(Date.now());
    const next = this.script.shift();
    const r = next ? next(rows) : ({ status: 'success', accepted: rows.length } as SendResult);
    if (r.status === 'success') this.accepted.push(...rows);
    if (r.status === 'partial') {
      const rej = new Set(r.rejected.map((x) => x.row));
      this.accepted.push(...rows.filter((x) => !rej.has(x)));
    }
    return r;
  }
}

/**
 * A FakeSink with prepare/sendPrepared, as the Azure sinks have: the forwarder then keeps only the
 * serialized rows. sendPrepared reads the rows back (rowOf) and runs the same script as send.
 */
export class PreparingFakeSink extends FakeSink {
  preparedSends = 0;
  prepare(rows: CslRow[]): PreparedRow[] {
    return rows.map((r) => prepareRow(r, this.maxFieldBytes));
  }
  constructor(private readonly maxFieldBytes = 64 * 1024) {
    super();
  }
  async sendPrepared(prepared: PreparedRow[]): Promise<SendResult<PreparedRow>> {
    this.preparedSends++;
    // What goes on the wire: the JSON, truncated where a value was over the field limit.
    const rows = prepared.map((p) => JSON.parse(jsonOf(p)) as CslRow);
    const back = new Map(rows.map((r, i) => [r, prepared[i]!]));
    const res = await this.send(rows);
    const map = (notes?: RowNote[]) => notes?.map((n) => ({ row: back.get(n.row)!, reason: n.reason }));
    if (res.status === 'partial') return { ...res, rejected: map(res.rejected)!, truncated: map(res.truncated) };
    if (res.status === 'success') return { ...res, truncated: map(res.truncated) };
    if (res.status === 'retryable' && res.progress) {
      const pr = res.progress;
      return {
        ...res,
        progress: { ...pr, rejected: map(pr.rejected)!, truncated: map(pr.truncated), pending: pr.pending.map((r) => back.get(r)!) },
      };
    }
    return res as SendResult<PreparedRow>;
  }
}

/**
 * Builds the self-contained forwarder bundle into a fresh directory without node_modules (it must
 * not need one); returns its path.
 */
export async function buildForwarderBundle(prefix = 'fwd-bundle-'): Promise<string> {
  const dir = tempDir(prefix);
  const { build } = await import('esbuild');
  await build({
    entryPoints: [new URL('../../src/forwarder-main.ts', import.meta.url).pathname],
    outfile: join(dir, 'forwarder.mjs'),
    platform: 'node',
    target: 'node20',
    format: 'esm',
    bundle: true,
    logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return join(dir, 'forwarder.mjs');
}

/**
 * A fake clock for delivery's injected `sleep` and `monotonic`: a wait records its length, moves the
 * clock on by it and resolves on the next event-loop turn, so backoff and Retry-After cost no real time.
 */
export function fakeClock(): { now: () => number; sleep: (ms: number, signal: AbortSignal) => Promise<void>; waits: number[] } {
  let t = 0;
  const waits: number[] = [];
  return {
    now: () => t,
    waits,
    sleep: (ms, signal) =>
      new Promise((resolve, reject) => {
        waits.push(ms);
        t += ms;
        setImmediate(() => (signal.aborted ? reject(new Aborted()) : resolve()));
      }),
  };
}
