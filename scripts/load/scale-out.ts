/**
 * Scale-out figures: sender → HAProxy → N forwarder nodes, each in its own network namespace, each
 * running the built forwarder (dist/forwarder.mjs) with a file sink. Run through `scripts/scale-out run`,
 * which puts this process in private mount/net/PID namespaces (its own netns is the sender's) and
 * passes SCALE_OUT_DIR, SCALE_OUT_HAPROXY and SCALE_OUT_HAPROXY_LIBS.
 *
 * Addresses: sender 10.77.0.1 ↔ HAProxy 10.77.0.2 (frontend :514); HAProxy 10.77.K.1 ↔ node K 10.77.K.2
 * (forwarder :25226 with PROXY v2, readiness :25228, RELP :2514 with PROXY v2). HAProxy balances leastconn and checks
 * each node's readiness endpoint (httpchk every 500 ms, down after 2 failures, up after 2 successes).
 * Lost and duplicated events come from the sequence checker over every node's sink file.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FORWARDER_ENV, FORWARDER_NODE_FLAGS } from '../../src/install/service.js';
import { checkNdjson, SeqChecker, type SeqReport } from './chkseq.js';
import { forkGenerator, type GenResult } from './gen.js';
import { BUNDLE, loadAvg, sleep, waitFor } from './harness.js';
import { relpGenerate } from './relp-gen.js';
import {
  drained as drainedBy,
  fmtMs as fmt,
  haproxyGlobals,
  haproxyServerStats,
  LineCounter,
  lossFigures,
  startHaproxy,
} from './scale-out-common.js';

const DIR = process.env.SCALE_OUT_DIR ?? '';
const HAPROXY = process.env.SCALE_OUT_HAPROXY ?? '';
const FRONT = { host: '10.77.0.2', port: 514, relpPort: 2514 };
const nodeAddr = (k: number) => `10.77.${k}.2`;

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** A node: its namespace, link to HAProxy, forwarder process and sink file. */
class Node {
  readonly ns: string;
  readonly dir: string;
  readonly sinkDir: string;
  child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly k: number,
    runDir: string,
    private readonly cfg: { maxAgeSec: number },
  ) {
    this.ns = `sco-n${k}`;
    this.dir = join(runDir, `n${k}`);
    this.sinkDir = join(this.dir, 'sink');
    mkdirSync(this.sinkDir, { recursive: true });
    ip('netns', 'add', this.ns);
    ip('-n', this.ns, 'link', 'set', 'lo', 'up');
    this.plug();
  }

  get sinkFile(): string {
    return join(this.sinkDir, 'rows.ndjson');
  }

  /** The veth between HAProxy and this node (a power-off removes it). */
  plug(): void {
    ip('-n', 'sco-hap', 'link', 'add', `h${this.k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns);
    ip('-n', 'sco-hap', 'addr', 'add', `10.77.${this.k}.1/24`, 'dev', `h${this.k}`);
    ip('-n', 'sco-hap', 'link', 'set', `h${this.k}`, 'up');
    ip('-n', this.ns, 'addr', 'add', `${nodeAddr(this.k)}/24`, 'dev', 'eth0');
    ip('-n', this.ns, 'link', 'set', 'eth0', 'up');
  }

  unplug(): void {
    ip('-n', 'sco-hap', 'link', 'del', `h${this.k}`);
  }

  async start(): Promise<void> {
    const a = nodeAddr(this.k);
    const config = {
      listen: [`tcp://${a}:25226?proxy=v2`, `relp://${a}:2514?proxy=v2`],
      queue: { dir: join(this.dir, 'queue') },
      deadLetterFile: join(this.dir, 'dead-letter.ndjson'),
      admin: false,
      readiness: `${a}:25228`,
      // Not ready one second after delivery starts failing: the balancer's checks take it from there.
      readinessRules: { sinkFailingSec: 1 },
      drainGraceSec: 0,
      // A restart of a node whose sink fails should not wait on it: the queue keeps the rows.
      drainTimeoutSec: 1,
      limits: { maxConnectionAgeSec: this.cfg.maxAgeSec },
      retry: { initialMs: 200, maxMs: 2000 },
      // Short batches: a failing sink shows within a fifth of a second of the fault.
      batch: { parseWorkers: 0, flushMs: 200 },
      logLevel: 'warn',
      sink: { type: 'file', path: this.sinkFile },
    };
    const configPath = join(this.dir, 'forwarder.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
    const log = createWriteStream(join(this.dir, 'forwarder.log'), { flags: 'a' });
    const child = spawn('ip', ['netns', 'exec', this.ns, process.execPath, ...FORWARDER_NODE_FLAGS, BUNDLE, '--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...FORWARDER_ENV, ...process.env },
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    await waitFor(`node ${this.k} ready`, async () => (await this.readiness()) === 200, 30_000, 100);
  }

  /** The readiness endpoint's status (run from HAProxy's namespace, the only one routed to the node). */
  async readiness(): Promise<number> {
    const r = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        'sco-hap',
        'bash',
        '-c',
        `exec 3<>/dev/tcp/${nodeAddr(this.k)}/25228 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3`,
      ],
      { encoding: 'utf8', timeout: 3000 },
    );
    return Number(/HTTP\/1\.\d (\d+)/.exec(r.stdout ?? '')?.[1] ?? 0);
  }

  async kill9(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(15_000).then(() => this.child?.kill('SIGKILL'))]);
    await this.exited;
  }

  /** The sink's directory replaced by a file: every append fails (ENOTDIR), as root too. */
  breakSink(): void {
    renameSync(this.sinkDir, `${this.sinkDir}.held`);
    writeFileSync(this.sinkDir, '');
  }

  healSink(): void {
    rmSync(this.sinkDir);
    renameSync(`${this.sinkDir}.held`, this.sinkDir);
  }
}

interface ServerStat {
  status: string;
  scur: number;
  bin: number;
}

/** HAProxy from the cached .deb, in its own namespace, with a stats socket for per-node figures. */
class Balancer {
  child: ChildProcess | null = null;
  readonly sock: string;

  constructor(
    private readonly dir: string,
    private readonly nodes: number,
  ) {
    this.sock = join(dir, 'haproxy.sock');
    ip('netns', 'add', 'sco-hap');
    ip('-n', 'sco-hap', 'link', 'set', 'lo', 'up');
    ip('link', 'add', 's0', 'type', 'veth', 'peer', 'name', 'h0', 'netns', 'sco-hap');
    ip('addr', 'add', '10.77.0.1/24', 'dev', 's0');
    ip('link', 'set', 's0', 'up');
    ip('-n', 'sco-hap', 'addr', 'add', '10.77.0.2/24', 'dev', 'h0');
    ip('-n', 'sco-hap', 'link', 'set', 'h0', 'up');
  }

  config(): string {
    const servers = (port: number, proxy: boolean) =>
      Array.from({ length: this.nodes }, (_, i) => `  server n${i + 1} ${nodeAddr(i + 1)}:${port}${proxy ? ' send-proxy-v2' : ''}`).join(
        '\n',
      );
    return `${haproxyGlobals(this.sock)}frontend syslog
  bind ${FRONT.host}:${FRONT.port}
  default_backend forwarders
frontend relp
  bind ${FRONT.host}:${FRONT.relpPort}
  default_backend forwarders-relp
backend forwarders
  balance leastconn
  option httpchk GET /
  http-check expect status 200
  default-server check port 25228 inter 500ms fall 2 rise 2
${servers(25226, true)}
backend forwarders-relp
  balance leastconn
  option httpchk GET /
  http-check expect status 200
  default-server check port 25228 inter 500ms fall 2 rise 2
${servers(2514, true)}
`;
  }

  async start(): Promise<void> {
    this.child = await startHaproxy(this.dir, this.sock, this.config(), ['ip', 'netns', 'exec', 'sco-hap', HAPROXY]);
  }

  /** Per server of one backend: status (UP, DOWN, UP 1/2 ...), current sessions, bytes in. */
  async stats(backend = 'forwarders'): Promise<Record<string, ServerStat>> {
    const out: Record<string, ServerStat> = {};
    for (const [name, c] of Object.entries(await haproxyServerStats(this.sock, backend)))
      out[name] = { status: c.status, scur: Number(c.scur), bin: Number(c.bin) };
    return out;
  }

  stop(): void {
    this.child?.kill('SIGKILL');
  }
}

interface Topology {
  dir: string;
  hap: Balancer;
  nodes: Node[];
  counters: LineCounter[];
  delivered(): number;
  teardown(): Promise<void>;
}

let runSeq = 0;
async function topology(n: number, opts: { maxAgeSec: number }): Promise<Topology> {
  const dir = join(DIR, `run${++runSeq}`);
  mkdirSync(dir, { recursive: true });
  const hap = new Balancer(dir, n);
  const nodes = Array.from({ length: n }, (_, i) => new Node(i + 1, dir, opts));
  await Promise.all(nodes.map((x) => x.start()));
  await hap.start();
  await waitFor('haproxy marking every node up', async () => Object.values(await hap.stats()).every((s) => s.status === 'UP'), 15_000, 100);
  const counters = nodes.map((x) => new LineCounter(() => x.sinkFile));
  return {
    dir,
    hap,
    nodes,
    counters,
    delivered: () => counters.reduce((a, c) => a + c.poll(), 0),
    async teardown() {
      hap.stop();
      await Promise.all(nodes.map((x) => x.stop()));
      for (const x of nodes) spawnSync('ip', ['netns', 'del', x.ns]);
      spawnSync('ip', ['netns', 'del', 'sco-hap']);
      spawnSync('ip', ['link', 'del', 's0']);
      if (!process.env.SCALE_OUT_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function check(t: Topology, expect: Record<string, number>): Promise<SeqReport> {
  const c = new SeqChecker();
  for (const [k, v] of Object.entries(expect)) c.expect(k, v);
  for (const x of t.nodes) if (existsSync(x.sinkFile)) await checkNdjson(c, x.sinkFile);
  return c.report();
}

/** Waits until the sinks hold `want` rows, or stop growing for `quietMs`; returns when the last row came. */
function drained(t: Topology, want: number, quietMs: number, maxMs: number): Promise<number> {
  return drainedBy(() => t.delivered(), want, quietMs, maxMs, 100);
}

export interface ThroughputResult {
  nodes: number;
  events: number;
  eps: number;
  lost: number;
  duplicated: number;
  load: string;
}

async function throughput(n: number, events: number, connections: number): Promise<ThroughputResult> {
  const t = await topology(n, { maxAgeSec: 0 });
  try {
    const load = loadAvg();
    const t0 = Date.now();
    const gen = forkGenerator({ host: FRONT.host, port: FRONT.port, connections, events, rate: 0, size: 500, run: `tp${n}` });
    const g = await gen.result;
    const lastAt = await drained(t, g.sent, 5000, 120_000);
    const r = await check(t, g.expect);
    return { nodes: n, events: g.sent, eps: Math.round(g.sent / ((lastAt - t0) / 1000)), lost: r.lost, duplicated: r.duplicates, load };
  } finally {
    await t.teardown();
  }
}

export interface FaultResult {
  fault: string;
  nodes: number;
  rate: number;
  sent: number;
  /** Distinct events in the sinks. */
  received: number;
  /** Rows in the sinks that no sender sent. */
  unknown: number;
  lost: number;
  tail: number;
  holes: number;
  duplicated: number;
  /** Fault → HAProxy marks the node DOWN. */
  markedDownMs: number | null;
  /** Fault → HAProxy holds no session to the node (no more traffic to it). */
  trafficStoppedMs: number | null;
  /** Node back → HAProxy marks it UP. */
  upAgainMs: number | null;
  /** Node back → rows per node within 20 % over two consecutive 2-second windows. */
  balancedMs: number | null;
  /** Sender done → the last row in a sink. */
  drainMs: number;
  load: string;
  transport: string;
  /** limits.maxConnectionAgeSec on the nodes (0 = off). */
  maxAgeSec: number;
}

type Fault = 'kill9' | 'poweroff' | 'sink' | 'relp-kill9';

interface FaultPlan {
  fault: Fault;
  nodes: number;
  rate: number;
  connections: number;
  /** Seconds of load before the fault. */
  faultAtSec: number;
  /** Seconds from the fault until the node is back (kill9, poweroff); the sink is healed after the sender stops. */
  backAfterSec: number;
  /** Seconds the sender runs in total (at most, with stopWhenMoved). */
  durationSec: number;
  /**
   * Stop the sender once the victim has been down with no session for a second (CI: a loaded machine
   * takes longer to move the traffic; the run waits for it instead of ending before it).
   */
  stopWhenMoved?: boolean;
  maxAgeSec: number;
}

const T0 = Date.now();
const say = (s: string) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(1)} s] ${s}\n`);

async function faultRun(p: FaultPlan): Promise<FaultResult> {
  say(`fault ${p.fault}: starting ${p.nodes} nodes and HAProxy`);
  const t = await topology(p.nodes, { maxAgeSec: p.maxAgeSec });
  say(`fault ${p.fault}: sending ${p.rate}/s for ${p.durationSec} s, fault at ${p.faultAtSec} s`);
  const victim = t.nodes[0];
  // HAProxy's per-server state and sessions, and each node's rows in its sink (HAProxy's byte counters
  // move in bursts on long sessions, so traffic per node is read from the sinks).
  const samples: Array<{ t: number; s: Record<string, ServerStat>; rows: number[] }> = [];
  let sampling = true;
  const relp = p.fault === 'relp-kill9';
  const backend = relp ? 'forwarders-relp' : 'forwarders';
  const sampler = (async () => {
    while (sampling) {
      try {
        samples.push({ t: Date.now(), s: await t.hap.stats(backend), rows: t.counters.map((c) => c.poll()) });
      } catch {
        // HAProxy busy: next round.
      }
      await sleep(100);
    }
  })();
  try {
    const load = loadAvg();
    const events = p.rate * p.durationSec;
    let g: GenResult;
    let faultAt = 0;
    let backAt = 0;
    const script = (async () => {
      await sleep(p.faultAtSec * 1000);
      faultAt = Date.now();
      if (p.fault === 'kill9' || p.fault === 'relp-kill9') await victim.kill9();
      else if (p.fault === 'poweroff') {
        await victim.kill9();
        victim.unplug();
      } else victim.breakSink();
      if (p.fault === 'sink') return;
      await sleep(p.backAfterSec * 1000);
      if (p.fault === 'poweroff') victim.plug();
      backAt = Date.now();
      await victim.start();
    })();
    // Awaited after the sender; a failure meanwhile must not end the process as an unhandled rejection.
    script.catch(() => {});
    if (relp) {
      g = await relpGenerate({
        host: FRONT.host,
        port: FRONT.relpPort,
        connections: p.connections,
        events,
        rate: p.rate,
        size: 500,
        run: p.fault,
        window: 1000,
      });
    } else {
      const gen = forkGenerator({
        host: FRONT.host,
        port: FRONT.port,
        connections: p.connections,
        events,
        rate: p.rate,
        size: 500,
        run: p.fault,
        reconnect: true,
        reconnectTimeoutMs: 60_000,
      });
      let watching = p.stopWhenMoved === true;
      const watcher = (async () => {
        while (watching) {
          await sleep(200);
          const recent = samples.filter((x) => faultAt > 0 && x.t >= Date.now() - 1000);
          const down = samples.some((x) => faultAt > 0 && x.t >= faultAt && x.s.n1?.status.startsWith('DOWN'));
          if (down && recent.length >= 5 && recent.every((x) => (x.s.n1?.scur ?? 0) === 0)) {
            // The generator may have finished meanwhile: then there is nothing to stop.
            gen.child.on('error', () => {});
            if (gen.child.connected) gen.stop();
            return;
          }
        }
      })();
      g = await gen.result;
      watching = false;
      await watcher;
    }
    const sentAt = Date.now();
    say(`fault ${p.fault}: sender done (${g.sent} events)`);
    await script;
    if (p.fault === 'sink') {
      // The operator fixes the sink and restarts the node: its queue is delivered.
      await victim.stop();
      victim.healSink();
      await victim.start();
    }
    const lastAt = await drained(t, g.sent, 5000, 120_000);
    say(`fault ${p.fault}: sinks settled`);
    sampling = false;
    await sampler;
    const r = await check(t, g.expect);
    if (process.env.SCALE_OUT_KEEP) {
      writeFileSync(join(t.dir, 'expect.json'), JSON.stringify(g.expect));
      writeFileSync(join(t.dir, 'samples.json'), JSON.stringify({ faultAt, backAt, sentAt, samples }));
    }
    const v = 'n1';
    const after = samples.filter((x) => x.t >= faultAt);
    const down = after.find((x) => x.s[v]?.status.startsWith('DOWN'));
    // Traffic to the victim stopped: the first sample from which HAProxy holds no session to it.
    const until = backAt || sentAt;
    const span = after.filter((x) => x.t <= until);
    let stopped: number | null = null;
    for (let i = span.length - 1; i >= 0 && (span[i].s[v]?.scur ?? 0) === 0; i--) stopped = span[i].t - faultAt;
    if (span.length && (span[span.length - 1].s[v]?.scur ?? 0) > 0) stopped = null;
    let upAgainMs: number | null = null;
    let balancedMs: number | null = null;
    if (backAt) {
      const back = samples.filter((x) => x.t >= backAt && x.t <= sentAt);
      const up = back.find((x) => x.s[v]?.status === 'UP');
      upAgainMs = up ? up.t - backAt : null;
      // Rows per node in 2-second windows; balanced once two windows in a row are within 20 %.
      let prev = back[0];
      let okRun = 0;
      for (const x of back) {
        if (!prev || x.t - prev.t < 2000) continue;
        const rates = x.rows.map((r, i) => r - prev.rows[i]);
        const hi = Math.max(...rates);
        const lo = Math.min(...rates);
        okRun = hi > 0 && (hi - lo) / hi <= 0.2 ? okRun + 1 : 0;
        prev = x;
        if (okRun >= 2) {
          balancedMs = x.t - backAt;
          break;
        }
      }
    }
    return {
      fault: p.fault,
      nodes: p.nodes,
      rate: p.rate,
      ...lossFigures(g, r),
      markedDownMs: down ? down.t - faultAt : null,
      trafficStoppedMs: stopped,
      upAgainMs,
      balancedMs,
      drainMs: Math.max(0, lastAt - sentAt),
      load,
      transport: relp ? 'RELP (acknowledged)' : 'TCP, PROXY v2',
      maxAgeSec: p.maxAgeSec,
    };
  } finally {
    sampling = false;
    await sampler;
    await t.teardown();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { short: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, only: { type: 'string' } },
  });
  if (!DIR || !HAPROXY) throw new Error('scale-out.ts runs through scripts/scale-out run (it needs its namespaces)');
  const only = values.only;
  const FAULTS = ['throughput', 'kill9', 'relp-kill9', 'poweroff', 'return', 'sink', 'return-noage'];
  if (only && !FAULTS.includes(only)) {
    process.stderr.write(`scale-out: unknown --only ${only} (one of ${FAULTS.join(', ')})\n`);
    process.exit(2);
  }
  const want = (x: string) => !only || only === x;
  const out: { throughput: ThroughputResult[]; faults: FaultResult[]; cores: number } = {
    throughput: [],
    faults: [],
    cores: cpus().length,
  };
  if (values.short) {
    // CI: 2 nodes, one fault: a sink that starts failing is drained by the balancer, nothing lost.
    // The sender stops a second after the node is drained (40 s at most).
    out.faults.push(
      await faultRun({
        fault: 'sink',
        nodes: 2,
        rate: 2000,
        connections: 4,
        faultAtSec: 2,
        backAfterSec: 0,
        durationSec: 40,
        maxAgeSec: 2,
        stopWhenMoved: true,
      }),
    );
  } else {
    if (want('throughput')) {
      for (const n of [1, 2, 3]) {
        say(`throughput, ${n} node(s)...`);
        out.throughput.push(await throughput(n, 300_000, 6));
      }
    }
    const base = { nodes: 2, rate: 5000, connections: 6, maxAgeSec: 5 };
    if (want('kill9')) {
      say('fault: kill -9...');
      out.faults.push(await faultRun({ ...base, fault: 'kill9', faultAtSec: 5, backAfterSec: 3, durationSec: 30 }));
    }
    if (want('relp-kill9')) {
      say('fault: kill -9, RELP...');
      // 60 s like the return run: time after the restart for the aged sessions to spread again.
      out.faults.push(await faultRun({ ...base, fault: 'relp-kill9', faultAtSec: 5, backAfterSec: 3, durationSec: 60 }));
    }
    if (want('poweroff') || want('return')) {
      say('fault: power-off and return...');
      out.faults.push(await faultRun({ ...base, fault: 'poweroff', faultAtSec: 5, backAfterSec: 5, durationSec: 60 }));
    }
    if (only === 'return-noage') {
      // The contrast to the return above: without connection ageing nothing moves senders back.
      say('fault: power-off and return, connection ageing off...');
      out.faults.push(await faultRun({ ...base, maxAgeSec: 0, fault: 'poweroff', faultAtSec: 5, backAfterSec: 5, durationSec: 40 }));
    }
    if (want('sink')) {
      say('fault: failing sink...');
      out.faults.push(await faultRun({ ...base, fault: 'sink', faultAtSec: 5, backAfterSec: 0, durationSec: 20 }));
    }
  }
  if (values.json) {
    console.log(JSON.stringify(out));
    return;
  }
  if (out.throughput.length) {
    const one = out.throughput[0].eps;
    console.log(`nodes  events   events/s  ×1 node  lost  dup  load avg (${out.cores} cores)`);
    for (const r of out.throughput)
      console.log(
        `${String(r.nodes).padEnd(6)} ${String(r.events).padEnd(8)} ${String(r.eps).padEnd(9)} ${(r.eps / one).toFixed(2).padEnd(8)} ${String(r.lost).padEnd(5)} ${String(r.duplicated).padEnd(4)} ${r.load}`,
      );
  }
  if (out.faults.length) {
    console.log(
      'fault       transport            age  rate/s  sent     lost (tail/holes)  dup    down     stopped  up again  within 20%  drain   load avg',
    );
    for (const r of out.faults) {
      console.log(
        `${r.fault.padEnd(11)} ${r.transport.padEnd(20)} ${`${r.maxAgeSec}s`.padEnd(4)} ${String(r.rate).padEnd(7)} ${String(r.sent).padEnd(8)} ${`${r.lost} (${r.tail}/${r.holes})`.padEnd(18)} ${String(r.duplicated).padEnd(6)} ${fmt(r.markedDownMs).padEnd(8)} ${fmt(r.trafficStoppedMs).padEnd(8)} ${fmt(r.upAgainMs).padEnd(9)} ${fmt(r.balancedMs).padEnd(11)} ${fmt(r.drainMs).padEnd(7)} ${r.load}`,
      );
    }
  }
}

await main();
