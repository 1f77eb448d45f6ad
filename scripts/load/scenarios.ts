/**
 * Chaos scenarios against the real forwarder bundle and the mock Azure workspace. Each takes its
 * parameters (the short CI version and the long figure-producing version differ only in them) and
 * returns its figures; `line` is the one-line summary the chaos CLI prints.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatReport, type SeqReport } from './chkseq.js';
import { cefLine } from './cef.js';
import { forkGenerator, generate, type GenResult } from './gen.js';
import { ForwarderProc, loadAvg, peakSampler, procStatus, sleep, startWorkspace, udpCounters, waitFor, type FwOptions, type Workspace } from './harness.js';

export interface ScenarioResult {
  scenario: string;
  ok: boolean;
  /** Why ok is false (each a broken promise). */
  failures: string[];
  seq?: SeqReport;
  figures: Record<string, number | string | null>;
  line: string;
}

interface Ctx {
  dir: string;
  ws: Workspace;
  fw: ForwarderProc;
}

async function withForwarder<T>(
  name: string,
  fwOpts: Omit<FwOptions, 'dir' | 'ws'>,
  body: (c: Ctx) => Promise<T>,
  keep = process.env.CHAOS_KEEP === '1',
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `chaos-${name}-`));
  const ws = await startWorkspace(join(dir, 'ws'), { latencySampleEvery: 4 });
  const fw = new ForwarderProc({ dir, ws, ...fwOpts });
  try {
    await fw.start();
    return await body({ dir, ws, fw });
  } catch (err) {
    const tail = fw.log().split('\n').slice(-15).join('\n');
    throw new Error(`${(err as Error).message}\n--- forwarder log (tail) ---\n${tail}`, { cause: err });
  } finally {
    await fw.stop().catch(() => undefined);
    await ws.mock.close();
    if (!keep) rmSync(dir, { recursive: true, force: true });
    else console.error(`kept ${dir}`);
  }
}

function expectAll(ws: Workspace, gen: GenResult): void {
  for (const [k, v] of Object.entries(gen.expect)) ws.checker.expect(k, v);
}

/** Waits until every expected event (or `target`) reached the mock, or the timeout. */
async function waitDelivered(ws: Workspace, target: number, timeoutMs: number): Promise<void> {
  await waitFor(`${target} events at the sink`, () => ws.checker.received >= target, timeoutMs, 100).catch(() => undefined);
}

const mb = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;

function finish(scenario: string, failures: string[], seq: SeqReport | undefined, figures: Record<string, number | string | null>): ScenarioResult {
  const figs = Object.entries(figures)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const line = `[${scenario}] ${failures.length ? 'FAIL' : 'ok'} ${seq ? formatReport(seq) + ' ' : ''}${figs} load=${loadAvg()}${failures.length ? ` — ${failures.join('; ')}` : ''}`;
  return { scenario, ok: failures.length === 0, failures, seq, figures, line };
}

// ---------------------------------------------------------------------------------------------
// 0. Throughput: generator → forwarder (disk queue) → mock, as fast as it goes.

export interface ThroughputParams {
  events: number;
  connections: number;
  size: number | [number, number];
  proto?: 'tcp' | 'tls';
  nodeArgs?: string[];
}

export async function throughput(p: ThroughputParams): Promise<ScenarioResult> {
  return withForwarder('throughput', { nodeArgs: p.nodeArgs, config: { logLevel: 'warn', queue: { maxBytes: 8 * 1024 ** 3 } }, ...(p.proto === 'tls' ? { tls: selfSigned() } : {}) }, async ({ ws, fw }) => {
    const cpu0 = fw.cpuSec();
    const t0 = Date.now();
    const port = p.proto === 'tls' ? fw.tlsPort : fw.tcpPort;
    const g = forkGenerator({ port, proto: p.proto ?? 'tcp', connections: p.connections, events: p.events, size: p.size, run: 'tp' });
    const gen = await g.result;
    expectAll(ws, gen);
    await waitDelivered(ws, p.events, 600_000);
    const ms = Date.now() - t0;
    const seq = ws.checker.report();
    const cpu = fw.cpuSec() - cpu0;
    const failures: string[] = [];
    if (seq.lost) failures.push(`${seq.lost} lost`);
    if (seq.duplicates) failures.push(`${seq.duplicates} duplicated`);
    return finish('throughput', failures, seq, {
      eps: Math.round(seq.received / (ms / 1000)),
      genEps: gen.eps,
      cpuSecPerM: Math.round((cpu / (p.events / 1e6)) * 10) / 10,
      peakRssMb: Math.round(fw.peakRssMb()),
    });
  });
}

let cert: { certFile: string; keyFile: string } | null = null;
function selfSigned(): { certFile: string; keyFile: string } {
  if (cert) return cert;
  const dir = mkdtempSync(join(tmpdir(), 'chaos-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  cert = { certFile, keyFile };
  return cert;
}
