/**
 * Runs with real syslog daemons inside the sandbox (scripts/sandbox: private mount/net/pid
 * namespaces, overlays over /etc, /usr, /var; the host is untouched).
 *
 *   npm run bench:chain -- --mode chain --daemon rsyslog|syslog-ng [--events 1000000] [--connections 4]
 *       Scenario 1: the real `sentinel-cef install` (Data Collector form, against the mock workspace),
 *       then N events over TCP to port 514 → daemon → forwarder → mock. Lost, duplicated, events/s,
 *       p99 latency, peak RSS and CPU of the forwarder and of the daemon.
 *
 *   npm run bench:chain -- --mode compare [--events 1000000] [--connections 4] [--size 500]
 *       Side by side in one run, on the same generated stream: the raw ceiling (read and discard),
 *       our forwarder (disk queue; Data Collector over HTTP, and Logs Ingestion over HTTPS with gzip),
 *       and the peer an admin would configure instead: syslog-ng 3.38's csv-parser()+kv-parser()
 *       (its cef-parser() arrived in 4.x) and http() with azure-auth-header() posting signed batches
 *       to the same mock Data Collector endpoint, with a reliable disk buffer.
 *
 * Prints one JSON line per measurement (prefix "RESULT ") and a table.
 */
import { spawn, spawnSync, execFileSync, fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cefLine } from './cef.js';
import { SeqChecker, formatReport, type SeqReport } from './chkseq.js';
import { forkGenerator, type GenResult } from './gen.js';
import {
  ForwarderProc,
  REPO,
  freePort,
  loadAvg,
  procCpuSec,
  procStatus,
  sleep,
  startWorkspace,
  waitFor,
  type Workspace,
} from './harness.js';

export interface Measurement {
  name: string;
  events: number;
  received: number;
  lost: number;
  duplicates: number;
  eps: number;
  cpuSecPerMillion: number | null;
  eventsPerCpuSec: number | null;
  peakRssMb: number | null;
  p99Ms: number | null;
  p50Ms: number | null;
  ratioToCeiling?: number;
  load: string;
  note?: string;
  extra?: Record<string, number | string | null>;
}

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'compare' },
    daemon: { type: 'string', default: 'syslog-ng' },
    events: { type: 'string', default: '1000000' },
    connections: { type: 'string', default: '4' },
    size: { type: 'string', default: '500' },
    inside: { type: 'boolean', default: false },
    only: { type: 'string' },
    bursts: { type: 'string', default: '1' },
  },
});
const EVENTS = Number(values.events);
const CONNS = Number(values.connections);
const SIZE = Number(values.size);
/** rsyslog: N bursts of --events each, with a check after every burst for events stuck in rsyslog's queues. */
const BURSTS = Number(values.bursts);

function pgrep(args: string[]): number {
  const r = spawnSync('pgrep', args, { encoding: 'utf8' });
  const pids = r.stdout.trim().split('\n').filter(Boolean).map(Number);
  return pids.length ? Math.max(...pids) : 0;
}

/** Events delivered per second, from the first send to the last acceptance. */
function measure(
  name: string,
  ws: Workspace | null,
  t0: number,
  gen: GenResult,
  opts: {
    pid?: number;
    cpu0?: number;
    rep?: SeqReport;
    endAt?: number;
    note?: string;
    extra?: Measurement['extra'];
    selfCpu0?: NodeJS.CpuUsage;
  },
): Measurement {
  const rep = opts.rep ?? ws!.checker.report();
  const end = opts.endAt ?? ws!.lastAcceptAt;
  const secs = Math.max(0.001, (end - t0) / 1000);
  const cpu = opts.pid ? procCpuSec(opts.pid) - (opts.cpu0 ?? 0) : null;
  const m = rep.received / 1e6;
  return {
    name,
    events: gen.sent,
    received: rep.received,
    lost: rep.lost,
    duplicates: rep.duplicates,
    eps: Math.round(rep.received / secs),
    cpuSecPerMillion: cpu !== null && m > 0 ? Math.round((cpu / m) * 10) / 10 : null,
    eventsPerCpuSec: cpu ? Math.round(rep.received / cpu) : null,
    peakRssMb: opts.pid ? Math.round(procStatus(opts.pid).hwmMb) : null,
    p99Ms: rep.latencyMs?.p99 ?? null,
    p50Ms: rep.latencyMs?.p50 ?? null,
    load: loadAvg(),
    ...(opts.note ? { note: opts.note } : {}),
    extra: {
      // Where the rest of the CPU went: the generator, and this process (mock workspace + checker).
      generatorCpuSecPerMillion: gen.cpuSec !== undefined && m > 0 ? Math.round((gen.cpuSec / m) * 10) / 10 : null,
      ...(opts.selfCpu0 && m > 0
        ? {
            mockCpuSecPerMillion:
              Math.round(((process.cpuUsage(opts.selfCpu0).user + process.cpuUsage(opts.selfCpu0).system) / 1e6 / m) * 10) / 10,
          }
        : {}),
      ...opts.extra,
    },
  };
}

function print(m: Measurement): void {
  console.log(`RESULT ${JSON.stringify(m)}`);
}

/** Waits until all events arrived, or nothing new arrived for quietMs. */
async function settle(ws: Workspace, events: number, quietMs = 20_000, maxMs = 1_800_000): Promise<void> {
  const end = Date.now() + maxMs;
  let last = -1;
  let since = Date.now();
  while (Date.now() < end) {
    const n = ws.checker.received;
    if (n >= events) return;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since > quietMs) return;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------

async function ceiling(): Promise<Measurement> {
  // bench-forward's read-and-discard server (counts newlines), in its own process.
  const child: ChildProcess = fork(join(REPO, 'scripts/bench-forward.ts'), ['--role', 'discard'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const { port } = await new Promise<{ port: number }>((r) => child.once('message', (m) => r(m as { port: number })));
  const cpu0 = procCpuSec(child.pid!);
  const t0 = Date.now();
  const g = forkGenerator({ port, connections: CONNS, events: EVENTS, size: SIZE, run: 'ceil' });
  const gen = await g.result;
  let st = { lines: 0 };
  let lastAt = 0;
  await waitFor(
    'the discard server to count every line',
    async () => {
      child.send('stat');
      st = await new Promise((r) => child.once('message', (m) => r(m as typeof st)));
      lastAt = Date.now();
      return st.lines >= EVENTS;
    },
    120_000,
    20,
  ).catch(() => undefined);
  const rep: SeqReport = {
    expected: EVENTS,
    received: st.lines,
    lost: EVENTS - st.lines,
    holes: 0,
    tail: 0,
    duplicates: 0,
    reordered: 0,
    unknown: 0,
    latencyMs: null,
    streams: CONNS,
    holeSamples: [],
  };
  const m = measure('raw ceiling (read + discard)', null, t0, gen, { pid: child.pid, cpu0, rep, endAt: lastAt });
  child.kill();
  return m;
}

async function ours(sink: 'log-analytics' | 'logs-ingestion'): Promise<Measurement> {
  const dir = mkdtempSync(join(tmpdir(), `cmp-ours-${sink}-`));
  const ws = await startWorkspace(join(dir, 'ws'), { https: sink === 'logs-ingestion', latencySampleEvery: 8 });
  const fw = new ForwarderProc({ dir, ws, sink, config: { logLevel: 'warn', queue: { maxBytes: 16 * 1024 ** 3 } } });
  await fw.start();
  try {
    const cpu0 = fw.cpuSec();
    const selfCpu0 = process.cpuUsage();
    const t0 = Date.now();
    const gen = await forkGenerator({ port: fw.tcpPort, connections: CONNS, events: EVENTS, size: SIZE, run: `ours-${sink}` }).result;
    for (const [k, v] of Object.entries(gen.expect)) ws.checker.expect(k, v);
    await settle(ws, EVENTS);
    const label =
      sink === 'log-analytics'
        ? 'sentinel-cef forward (disk queue, Data Collector, HTTP)'
        : 'sentinel-cef forward (disk queue, Logs Ingestion, gzip, HTTPS)';
    return measure(label, ws, t0, gen, { pid: fw.pid, cpu0, selfCpu0 });
  } finally {
    await fw.stop();
    await ws.mock.close();
  }
}

/** syslog-ng 3.38 as the peer: CEF parsed with csv-parser + kv-parser, http() + azure-auth-header, reliable disk buffer. */
function peerConfig(o: { port: number; url: string; workspaceId: string; key: string; bufDir: string }): string {
  return `@version: 3.38
@include "scl.conf"
options { keep-hostname(yes); stats-freq(0); log-fifo-size(100000); };
source s_net { network(transport("tcp") ip("127.0.0.1") port(${o.port}) max-connections(100) log-iw-size(100000)); };
parser p_cef {
  csv-parser(columns(".cef.version", ".cef.DeviceVendor", ".cef.DeviceProduct", ".cef.DeviceVersion", ".cef.DeviceEventClassID", ".cef.Activity", ".cef.LogSeverity", ".cef.ext")
             delimiters(chars("|")) quote-pairs("") flags(escape-backslash, greedy) template("\${MSG}"));
  kv-parser(prefix(".cef.") template("\${.cef.ext}"));
};
destination d_la {
  http(url("${o.url}/api/logs?api-version=2016-04-01") method("POST")
       headers("Content-Type: application/json", "Log-Type: CommonSecurityLog", "time-generated-field: TimeGenerated")
       azure-auth-header(workspace-id("${o.workspaceId}") secret("${o.key}") method("POST") path("/api/logs") content-type("application/json"))
       body-prefix("[") delimiter(",") body-suffix("]")
       body("$(format-json --key .cef.* --exclude .cef.ext --rekey .cef.* --shift 5 TimeGenerated=\${ISODATE} Computer=\${HOST})")
       batch-lines(5000) batch-bytes(900KiB) batch-timeout(1000) workers(4)
       disk-buffer(reliable(yes) disk-buf-size(17179869184) mem-buf-size(67108864) dir("${o.bufDir}")));
};
log { source(s_net); parser(p_cef); destination(d_la); flags(flow-control); };
`;
}

async function peer(): Promise<Measurement> {
  const dir = mkdtempSync(join(tmpdir(), 'cmp-peer-'));
  const ws = await startWorkspace(join(dir, 'ws'), { https: false, latencySampleEvery: 8 });
  const port = await freePort();
  const bufDir = join(dir, 'buf');
  mkdirSync(bufDir);
  const conf = join(dir, 'peer.conf');
  // The key sits in the peer's config file (0600), as syslog-ng's azure-auth-header() requires.
  writeFileSync(
    conf,
    peerConfig({ port, url: ws.mock.url, workspaceId: ws.workspaceId, key: readFileSync(ws.keyFile, 'utf8').trim(), bufDir }),
    { mode: 0o600 },
  );
  const sng = spawn(
    'syslog-ng',
    ['-F', '-f', conf, '-R', join(dir, 'persist'), '-p', join(dir, 'pid'), '-c', join(dir, 'ctl'), '--no-caps'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  sng.stdout!.on('data', (d) => (out += d));
  sng.stderr!.on('data', (d) => (out += d));
  try {
    await waitFor(
      'syslog-ng to listen',
      () =>
        new Promise<boolean>((r) => {
          if (sng.exitCode !== null) throw new Error(`syslog-ng exited: ${out}`);
          const s = connect({ host: '127.0.0.1', port }, () => {
            s.destroy();
            r(true);
          });
          s.on('error', () => r(false));
        }),
      20_000,
      100,
    );
    const cpu0 = procCpuSec(sng.pid!);
    const selfCpu0 = process.cpuUsage();
    const t0 = Date.now();
    const gen = await forkGenerator({ port, connections: CONNS, events: EVENTS, size: SIZE, run: 'peer' }).result;
    for (const [k, v] of Object.entries(gen.expect)) ws.checker.expect(k, v);
    await settle(ws, EVENTS);
    return measure('syslog-ng 3.38 peer (csv+kv parser, http() + azure-auth-header, reliable disk-buffer)', ws, t0, gen, {
      pid: sng.pid,
      cpu0,
      selfCpu0,
    });
  } finally {
    sng.kill('SIGTERM');
    await ws.mock.close();
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * rsyslog's own counters (impstats), test-only: a drop-in written into the sandbox's overlay /etc
 * before the install restarts rsyslogd — never part of the product's template. Counters go to a
 * file only (log.syslog off), so they do not flow through the rules they measure.
 */
const IMPSTATS_FILE = '/var/log/rsyslog-impstats.json';
function enableImpstats(): void {
  writeFileSync(
    '/etc/rsyslog.d/00-bench-impstats.conf',
    `# Benchmark only (scripts/load/chain.ts, inside the sandbox)\n` +
      `module(load="impstats" interval="1" format="json" resetCounters="off" log.syslog="off" log.file="${IMPSTATS_FILE}")\n`,
  );
}

/** The last record of each impstats object (counters are cumulative: resetCounters off). */
function readImpstats(): Map<string, Record<string, number | string>> {
  const last = new Map<string, Record<string, number | string>>();
  if (!existsSync(IMPSTATS_FILE)) return last;
  for (const line of readFileSync(IMPSTATS_FILE, 'utf8').split('\n')) {
    const at = line.indexOf('{');
    if (at < 0) continue;
    try {
      const o = JSON.parse(line.slice(at)) as Record<string, number | string>;
      if (typeof o.name === 'string') last.set(o.name, o);
    } catch {
      /* a line cut by the read while rsyslog writes it */
    }
  }
  return last;
}

/** Prints where each event went, hop by hop: imtcp → main Q → action queue (+ its disk part) → omfwd → forwarder. */
function rsyslogCounters(fwReceived: number | undefined): Record<string, number | string | null> {
  const st = readImpstats();
  const pick = (name: string, keys: string[]) => {
    const o = st.get(name);
    return o ? Object.fromEntries(keys.map((k) => [k, o[k] ?? null])) : null;
  };
  const qKeys = ['size', 'enqueued', 'full', 'discarded.full', 'discarded.nf', 'maxqsize'];
  const rows: Array<[string, Record<string, unknown> | null]> = [
    ['imtcp(514)', pick([...st.keys()].find((k) => /^imtcp\(514\)/.test(k)) ?? 'imtcp(514)', ['submitted'])],
    ['main Q', pick('main Q', qKeys)],
    ['sentinel-cef-forward queue', pick('sentinel-cef-forward queue', qKeys)],
    ['sentinel-cef-forward queue[DA]', pick('sentinel-cef-forward queue[DA]', qKeys)],
    ['action sentinel-cef-forward', pick('sentinel-cef-forward', ['processed', 'failed', 'suspended', 'suspended.duration', 'resumed'])],
  ];
  console.log(`rsyslog impstats (${st.size} objects in ${IMPSTATS_FILE}):`);
  for (const [n, v] of rows) console.log(`  ${n}: ${v ? JSON.stringify(v) : 'absent'}`);
  console.log(`  forwarder received: ${fwReceived ?? 'unknown'}`);
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  const main = rows[1][1] ?? {};
  const aq = rows[2][1] ?? {};
  const da = rows[3][1] ?? {};
  const act = rows[4][1] ?? {};
  return {
    rsImtcpSubmitted: (rows[0][1]?.submitted as number) ?? null,
    rsMainEnqueued: num(main.enqueued),
    rsMainFull: num(main.full),
    rsMainDiscardedFull: num(main['discarded.full']),
    rsMainDiscardedNf: num(main['discarded.nf']),
    rsMainMaxqsize: num(main.maxqsize),
    rsActQEnqueued: num(aq.enqueued),
    rsActQFull: num(aq.full),
    rsActQDiscardedFull: num(aq['discarded.full']),
    rsActQDiscardedNf: num(aq['discarded.nf']),
    rsActQMaxqsize: num(aq.maxqsize),
    rsDaEnqueued: num(da.enqueued),
    rsDaDiscardedFull: num(da['discarded.full']),
    rsDaDiscardedNf: num(da['discarded.nf']),
    rsOmfwdProcessed: num(act.processed),
    rsOmfwdFailed: num(act.failed),
    rsOmfwdSuspended: num(act.suspended),
    rsOmfwdResumed: num(act.resumed),
  };
}

/** rsyslogd's busiest threads over 2 s (a spinning queue worker shows as ~100 %). */
function threadCpu(pid: number): string {
  const sample = () => {
    const out = new Map<string, number>();
    for (const t of spawnSync('ls', [`/proc/${pid}/task`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)) {
      try {
        const st = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
        const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        out.set(`${t} ${comm}`, Number(f[11]) + Number(f[12]));
      } catch {
        /* thread ended */
      }
    }
    return out;
  };
  const a = sample();
  spawnSync('sleep', ['2']);
  const b = sample();
  return (
    [...b.entries()]
      .map(([k, v]) => [k, (v - (a.get(k) ?? v)) / 2] as const)
      .filter(([, d]) => d > 0)
      .sort((x, y) => y[1] - x[1])
      .map(([k, d]) => `${k}: ${d} %`)
      .join(', ') || 'all idle'
  );
}

/** Where the missing events are: rsyslog's spool files (on disk, not delivered) or nowhere. */
function rsyslogStuckDiagnostics(pid: number, hole: { stream: string; seq: number } | undefined): void {
  console.log(`rsyslogd threads, CPU over 2 s: ${threadCpu(pid)}`);
  spawnSync('bash', ['-c', 'ls -l /var/spool/rsyslog/ /var/lib/rsyslog/ 2>/dev/null | grep -v "^total"'], { stdio: 'inherit' });
  if (hole) {
    const needle = `externalId=${hole.seq} cs6=${hole.stream} `;
    const r = spawnSync('bash', ['-c', `grep -l -a -F -- "${needle}" /var/spool/rsyslog/* /var/lib/rsyslog/* 2>/dev/null`], {
      encoding: 'utf8',
    });
    console.log(`first missing event (${hole.stream} #${hole.seq}) in rsyslog's spool files: ${r.stdout.trim() || 'no'}`);
    spawnSync(
      'bash',
      [
        '-c',
        'for f in /var/spool/rsyslog/*.qi /var/lib/rsyslog/*.qi; do [ -f "$f" ] && { echo "== $f"; cat "$f"; echo; }; done 2>/dev/null | head -40',
      ],
      { stdio: 'inherit' },
    );
  }
}

async function installChain(daemon: string): Promise<Workspace> {
  const dir = mkdtempSync(join(tmpdir(), `chain-${daemon}-`));
  const ws = await startWorkspace(join(dir, 'ws'), { https: false, latencySampleEvery: 8 });
  if (daemon === 'rsyslog') enableImpstats();
  const cli = join(REPO, 'bin/sentinel-cef');
  // Asynchronously: the mock in this process must keep answering the install's probe.
  const inst = await new Promise<{ status: number | null; out: string }>((resolve) => {
    const c = spawn(process.execPath, [cli, 'install', ws.workspaceId, '--key-file', ws.keyFile, '--endpoint', ws.mock.url, '--yes'], {
      env: { ...process.env, CI: 'true', NO_COLOR: '1' },
    });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('exit', (status) => resolve({ status, out }));
  });
  if (inst.status !== 0) throw new Error(`install failed (${inst.status}): ${inst.out}`);
  console.log(
    inst.out
      .split('\n')
      .filter((l) => /probe|Installed|maximum message/i.test(l))
      .join('\n'),
  );
  // The install's own probe went through already; count only the load from here.
  ws.checker = new SeqChecker({ latencySampleEvery: 8 });
  return ws;
}

/**
 * Bursts into rsyslog, each followed by a quiet period: every burst pushes the action queue into
 * disk-assisted mode and back, and after each one the events still missing and the action queue's
 * sizes are recorded; the next burst shows whether they were stuck (delivered late) or lost.
 */
async function bursts(daemon: string): Promise<void> {
  const ws = await installChain(daemon);
  const dPid = pgrep(['-x', 'rsyslogd']);
  let expected = 0;
  const all: string[] = [];
  let stuckBursts = 0;
  for (let b = 0; b < BURSTS; b++) {
    const missingBefore = expected - ws.checker.receivedOf(all);
    const gen = await forkGenerator({ port: 514, connections: CONNS, events: EVENTS, size: SIZE, run: `burst${b}` }).result;
    for (const [k, v] of Object.entries(gen.expect)) {
      ws.checker.expect(k, v);
      all.push(k);
    }
    expected += gen.sent;
    await settle(ws, expected, 10_000);
    await sleep(2500);
    const missing = expected - ws.checker.receivedOf(all);
    const st = readImpstats();
    const size = (n: string) => st.get(n)?.size ?? '?';
    const da = st.get('sentinel-cef-forward queue[DA]');
    console.log(
      `burst ${b}: ${gen.sent} sent at ${gen.eps}/s; missing before it ${missingBefore}, after it ${missing}; ` +
        `main Q size ${size('main Q')}, action queue size ${size('sentinel-cef-forward queue')}, disk part size ${size('sentinel-cef-forward queue[DA]')} ` +
        `(enqueued ${da?.enqueued ?? '?'}, maxqsize ${da?.maxqsize ?? '?'}), load ${loadAvg()}`,
    );
    if (missing > 0) {
      stuckBursts++;
      const rep = ws.checker.report();
      rsyslogStuckDiagnostics(dPid, rep.holeSamples[0]);
    }
  }
  // The last burst has no successor: one more message, then whatever is still missing is lost.
  await new Promise<void>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: 514 }, () => s.end(cefLine('chain-nudge', 0, Date.now()), () => resolve()));
    s.on('error', reject);
  });
  await settle(ws, expected + 1, 15_000);
  const missing = expected - ws.checker.receivedOf(all);
  console.log(formatReport(ws.checker.report()));
  rsyslogCounters(undefined);
  console.log(
    `BURSTS ${JSON.stringify({ bursts: BURSTS, eventsPerBurst: EVENTS, burstsLeavingEventsBehind: stuckBursts, missingAtEnd: missing, load: loadAvg() })}`,
  );
  spawnSync('bash', ['-c', 'grep -h -i -E "rsyslogd.*(queue|omfwd|suspend|lost|discard|error)" /var/log/syslog 2>/dev/null | tail -15'], {
    stdio: 'inherit',
  });
  await ws.mock.close();
}

async function chain(daemon: string): Promise<Measurement> {
  const ws = await installChain(daemon);
  const fwPid = pgrep(['-f', 'forwarder.mjs']);
  const dPid = pgrep(['-x', daemon === 'rsyslog' ? 'rsyslogd' : 'syslog-ng']);
  const fwCpu0 = procCpuSec(fwPid);
  const dCpu0 = procCpuSec(dPid);
  const selfCpu0 = process.cpuUsage();
  const t0 = Date.now();
  const gen = await forkGenerator({ port: 514, connections: CONNS, events: EVENTS, size: SIZE, run: `chain-${daemon}` }).result;
  for (const [k, v] of Object.entries(gen.expect)) ws.checker.expect(k, v);
  await settle(ws, EVENTS, 30_000);
  const m = measure(`${daemon} → sentinel-cef forward → mock (installed by sentinel-cef install)`, ws, t0, gen, {
    pid: fwPid,
    cpu0: fwCpu0,
    selfCpu0,
  });
  const dCpu = procCpuSec(dPid) - dCpu0;
  m.extra = {
    ...m.extra,
    daemonCpuSecPerMillion: Math.round((dCpu / Math.max(1e-9, m.received / 1e6)) * 10) / 10,
    daemonPeakRssMb: Math.round(procStatus(dPid).hwmMb),
    generatorEps: gen.eps,
  };
  const rep = ws.checker.report();
  console.log(formatReport(rep));
  // Where a loss happened: what the forwarder itself counted, and what it logged.
  let fwReceived: number | undefined;
  try {
    const h = (await (await fetch('http://127.0.0.1:25227/healthz')).json()) as { counters: Record<string, number> };
    console.log(`forwarder counters: ${JSON.stringify(h.counters)}`);
    fwReceived = h.counters.received;
    Object.assign(m.extra!, {
      fwReceived: h.counters.received,
      fwParseFailures: h.counters.parseFailures,
      fwDeadLettered: h.counters.deadLettered,
      fwDropped: h.counters.dropped,
    });
    const prom = await (await fetch('http://127.0.0.1:25227/metrics')).text();
    // Connections the forwarder closed itself, and anything its own disk queue skipped as torn or corrupt.
    const own = prom.split('\n').filter((l) => /^sentinel_cef_(connections_(closed|rejected)|queue_corrupt_bytes|dropped)_total/.test(l));
    console.log(`forwarder closed/rejected connections, corrupt queue bytes, drops: ${own.length ? own.join('; ') : 'none'}`);
  } catch (err) {
    console.log(`forwarder health unavailable: ${(err as Error).message}`);
  }
  if (daemon === 'rsyslog') {
    await sleep(2500); // one more impstats interval after the last delivery
    Object.assign(m.extra!, rsyslogCounters(fwReceived));
    // rsyslog's own complaints (queue full, omfwd suspended, disk queue problems), loss or not.
    spawnSync(
      'bash',
      [
        '-c',
        'grep -h -i -E "rsyslogd.*(queue|omfwd|suspend|lost|discard|error)|action .* (suspended|resumed)" /var/log/syslog /var/log/messages 2>/dev/null | tail -15',
      ],
      { stdio: 'inherit' },
    );
  }
  if (rep.lost && daemon === 'rsyslog') {
    // Lost or only stuck? Events still counted in rsyslog's queues (impstats size) are not lost yet:
    // wait, then send one more message (the next enqueue wakes a queue whose worker went idle).
    const streams = Object.keys(gen.expect);
    const before = ws.checker.receivedOf(streams);
    rsyslogStuckDiagnostics(dPid, rep.holeSamples[0]);
    await sleep(15_000);
    const afterWait = ws.checker.receivedOf(streams);
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: 514 }, () => s.end(cefLine('chain-nudge', 0, Date.now()), () => resolve()));
      s.on('error', reject);
    });
    await settle(ws, EVENTS, 15_000, 120_000);
    const afterNudge = ws.checker.receivedOf(streams);
    await sleep(2500);
    const st = readImpstats();
    const sizes = ['main Q', 'sentinel-cef-forward queue', 'sentinel-cef-forward queue[DA]']
      .map((n) => `${n} size=${st.get(n)?.size ?? '?'}`)
      .join(', ');
    console.log(
      `still missing after the run: ${EVENTS - before}; after 15 s more: ${EVENTS - afterWait}; ` +
        `after one more message into port 514: ${EVENTS - afterNudge} (${sizes})`,
    );
    Object.assign(m.extra!, { missingAfterWait: EVENTS - afterWait, missingAfterNudge: EVENTS - afterNudge });
  }
  if (rep.lost) {
    console.log(`first holes: ${JSON.stringify(rep.holeSamples)}`);
    for (const f of ['/var/log/sentinel-cef/forwarder.log']) {
      if (existsSync(f))
        console.log(
          readFileSync(f, 'utf8')
            .split('\n')
            .filter((l) => /"level":(40|50|60)/.test(l))
            .slice(-10)
            .join('\n'),
        );
    }
    spawnSync('bash', ['-c', 'grep -h -i -E "omfwd|suspend|error|lost|discard" /var/log/syslog /var/log/messages 2>/dev/null | tail -10'], {
      stdio: 'inherit',
    });
  }
  await ws.mock.close();
  return m;
}

async function inside(): Promise<void> {
  console.log(`cores=${cpus().length} events=${EVENTS} connections=${CONNS} size=${SIZE} load=${loadAvg()}`);
  if (values.mode === 'chain' && BURSTS > 1) {
    if (values.daemon !== 'rsyslog') throw new Error('--bursts is for --daemon rsyslog');
    await bursts(values.daemon);
    return;
  }
  if (values.mode === 'chain') {
    print(await chain(values.daemon!));
    return;
  }
  const only = values.only?.split(',');
  const want = (k: string) => !only || only.includes(k);
  const results: Measurement[] = [];
  if (want('ceiling')) results.push(await ceiling());
  if (want('ours-dc')) results.push(await ours('log-analytics'));
  if (want('ours-li')) results.push(await ours('logs-ingestion'));
  if (want('peer')) results.push(await peer());
  const ceil = results.find((r) => r.name.startsWith('raw ceiling'))?.eps;
  for (const r of results) {
    if (ceil) r.ratioToCeiling = Math.round((r.eps / ceil) * 1000) / 1000;
    print(r);
  }
}

async function outside(): Promise<void> {
  const sandbox = join(REPO, 'scripts/sandbox');
  const daemon = values.mode === 'compare' ? 'syslog-ng' : values.daemon!;
  const extra = values.mode === 'compare' ? ['--extra', 'syslog-ng-peer'] : [];
  if (!existsSync(join(REPO, 'dist/forwarder.mjs'))) execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: REPO, stdio: 'inherit' });
  const args = process.argv.slice(2).filter((a) => a !== '--inside');
  const r = spawnSync(
    sandbox,
    [
      'run',
      '--daemon',
      daemon,
      ...extra,
      '--',
      process.execPath,
      '--import',
      'tsx',
      new URL(import.meta.url).pathname,
      '--inside',
      ...args,
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      cwd: REPO,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const lines = (r.stdout ?? '').split('\n');
  for (const l of lines) if (l && !l.startsWith('RESULT ')) console.log(l);
  const rows = lines.filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice(7)) as Measurement);
  for (const m of rows) console.log(`RESULT ${JSON.stringify(m)}`);
  console.log('');
  console.log(
    '| measured | events/s | ratio to ceiling | CPU s / M events | events / CPU s | peak RSS MB | lost | dup | p50 / p99 ms | load |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const m of rows) {
    console.log(
      `| ${m.name} | ${m.eps.toLocaleString('en')} | ${m.ratioToCeiling ?? '—'} | ${m.cpuSecPerMillion ?? '—'} | ${m.eventsPerCpuSec?.toLocaleString('en') ?? '—'} | ${m.peakRssMb ?? '—'} | ${m.lost} | ${m.duplicates} | ${m.p50Ms ?? '—'} / ${m.p99Ms ?? '—'} | ${m.load} |`,
    );
  }
  process.exit(r.status ?? 1);
}

if (values.inside) await inside().then(() => process.exit(0));
else await outside();
