/**
 * Scale-out figures on real systemd machines: sender → HAProxy → 2 VM nodes (scripts/vm, bookworm), each
 * installed by `sentinel-cef install --sink file:… --readiness 0.0.0.0:25228`, so rsyslog takes TCP on 514 and
 * forwards over omrelp (the acknowledged local hop) to the forwarder under the hardened unit. Run through
 * `scripts/scale-out-vm run`, which gives this process a network namespace of its own (the sender's and
 * HAProxy's; nothing on the host's network changes) and passes SCALE_OUT_VM_NAMES, SCALE_OUT_HAPROXY(_LIBS)
 * and SCALE_OUT_DIR.
 *
 * Network: the VMs boot with nspawn --private-network (loopback only). Each gets a veth into its namespace:
 * here 10.78.K.1 ↔ node K 10.78.K.2 (eth1). A power cut removes the node's namespace and with it the link; the
 * link is plugged again after the node boots. HAProxy listens on 127.0.0.1:1514 here, balances leastconn to
 * each node's 514 and checks its readiness endpoint (httpchk every 500 ms, down after 2 failures, up after 2).
 * Lost and duplicated events come from the sequence checker over both nodes' sink files (read through the
 * machines' overlay mounts) once every node is healthy again.
 */
import { execFile, execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { checkNdjson, SeqChecker } from './chkseq.js';
import { forkGenerator, type GenResult } from './gen.js';
import { loadAvg, REPO, sleep, waitFor } from './harness.js';
import {
  drained as drainedBy,
  fmtMs as fmt,
  haproxyCommand,
  haproxyGlobals,
  haproxyServerStats,
  LineCounter,
  lossFigures,
  startHaproxy,
} from './scale-out-common.js';

const DIR = process.env.SCALE_OUT_DIR ?? '';
const HAPROXY = process.env.SCALE_OUT_HAPROXY ?? '';
const NAMES = (process.env.SCALE_OUT_VM_NAMES ?? '').split(' ').filter(Boolean);
const VM = join(REPO, 'scripts/vm');
const FRONT = { host: '127.0.0.1', port: 1514, shutPort: 1515 };
const ROWS = '/var/lib/sentinel-cef-scale/rows.ndjson';
const UNIT = 'sentinel-cef-forwarder';
const READINESS_PORT = 25228;

const T0 = Date.now();
const say = (s: string) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(1)} s] ${s}\n`);

function run(cmd: string, args: string[], timeout = 120_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
const ip = (...args: string[]) => run('ip', args);
const pexec = promisify(execFile);
/** The same without blocking the event loop (the sampler keeps running during a fault). */
async function runAsync(cmd: string, args: string[], timeout = 180_000): Promise<void> {
  await pexec(cmd, args, { timeout });
}

/** A VM node: its machine, its link from here, and its sink file as the host sees it. */
class VmNode {
  constructor(
    readonly k: number,
    readonly name: string,
  ) {}

  get addr(): string {
    return `10.78.${this.k}.2`;
  }

  /** The sink file through the machine's overlay mount (absent while the machine is off). */
  get sinkFile(): string {
    return `/run/sentinel-cef-vm/${this.name}/merged${ROWS}`;
  }

  sh(script: string, timeout = 120_000): string {
    return run(VM, ['exec', this.name, '--', 'bash', '-c', script], timeout);
  }

  shAsync(script: string): Promise<void> {
    return runAsync(VM, ['exec', this.name, '--', 'bash', '-c', script]);
  }

  /** A veth from this namespace into the machine's (its PID 1's) network namespace. */
  plug(): void {
    spawnSync('ip', ['link', 'del', `vh${this.k}`]);
    const leader = readFileSync(`/run/sentinel-cef-vm/${this.name}/leader.pid`, 'utf8').trim();
    ip('link', 'add', `vh${this.k}`, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', leader);
    ip('addr', 'add', `10.78.${this.k}.1/24`, 'dev', `vh${this.k}`);
    ip('link', 'set', `vh${this.k}`, 'up');
    this.sh(`ip addr add ${this.addr}/24 dev eth1 && ip link set eth1 up`);
  }

  /** The readiness endpoint's HTTP status as seen from here (0 when it does not answer). */
  async readiness(): Promise<number> {
    return new Promise((resolve) => {
      const s = connect(READINESS_PORT, this.addr);
      let out = '';
      const done = (n: number) => {
        s.destroy();
        resolve(n);
      };
      s.setTimeout(3000, () => done(0));
      s.on('connect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
      s.on('data', (d) => (out += d.toString()));
      s.on('end', () => done(Number(/HTTP\/1\.\d (\d+)/.exec(out)?.[1] ?? 0)));
      s.on('error', () => done(0));
    });
  }

  async waitHealthy(ms = 90_000): Promise<void> {
    await waitFor(
      `${this.name} healthy`,
      () => spawnSync(VM, ['exec', this.name, '--', 'systemctl', 'is-active', '-q', 'rsyslog', UNIT]).status === 0,
      ms,
      250,
    );
    await waitFor(`${this.name} ready`, async () => (await this.readiness()) === 200, ms, 250);
  }
}

interface ServerStat {
  status: string;
  scur: number;
}

class Balancer {
  child: ChildProcess | null = null;
  readonly sock = join(DIR, 'haproxy.sock');

  constructor(private readonly nodes: VmNode[]) {}

  config(): string {
    const servers = this.nodes.map((n) => `  server n${n.k} ${n.addr}:514`).join('\n');
    return `${haproxyGlobals(this.sock)}frontend syslog
  bind ${FRONT.host}:${FRONT.port}
  default_backend nodes
backend nodes
  balance leastconn
  option httpchk GET /
  http-check expect status 200
  default-server check port ${READINESS_PORT} inter 500ms fall 2 rise 2
${servers}
# The same nodes, but a node marked down loses its sessions (the senders reconnect to the others).
frontend syslog-shut
  bind ${FRONT.host}:${FRONT.shutPort}
  default_backend nodes-shut
backend nodes-shut
  balance leastconn
  option httpchk GET /
  http-check expect status 200
  default-server check port ${READINESS_PORT} inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
${servers}
`;
  }

  async start(): Promise<void> {
    this.child = await startHaproxy(DIR, this.sock, this.config(), [HAPROXY]);
  }

  command(cmd: string): Promise<string> {
    return haproxyCommand(this.sock, cmd);
  }

  async stats(backend = 'nodes'): Promise<Record<string, ServerStat>> {
    const out: Record<string, ServerStat> = {};
    for (const [name, c] of Object.entries(await haproxyServerStats(this.sock, backend)))
      out[name] = { status: c.status, scur: Number(c.scur) };
    return out;
  }

  async allUp(): Promise<void> {
    await waitFor(
      'haproxy marking every enabled node up',
      async () => Object.values(await this.stats()).every((s) => s.status === 'UP' || s.status === 'MAINT'),
      60_000,
      200,
    );
  }

  stop(): void {
    this.child?.kill('SIGKILL');
  }
}

const nodes = NAMES.map((n, i) => new VmNode(i + 1, n));
const counters = nodes.map((n) => new LineCounter(() => n.sinkFile));
const delivered = () => counters.reduce((a, c) => a + c.poll(), 0);

/** Until the sinks grew by `want` rows or stopped growing for `quietMs`; returns when the last row came. */
function drained(want: number, quietMs: number, maxMs: number): Promise<number> {
  return drainedBy(delivered, delivered() + want, quietMs, maxMs, 200);
}

async function check(expect: Record<string, number>) {
  const c = new SeqChecker();
  for (const [k, v] of Object.entries(expect)) c.expect(k, v);
  for (const n of nodes) if (existsSync(n.sinkFile)) await checkNdjson(c, n.sinkFile);
  return c.report();
}

/** Each node installed: rsyslog (+ rsyslog-relp) from the image's cache, then `sentinel-cef install`. */
function installNodes(sinkFailingSec: number): void {
  for (const n of nodes) {
    say(`${n.name}: rsyslog, rsyslog-relp and sentinel-cef install`);
    n.sh('apt-get install -y -qq --no-install-recommends rsyslog rsyslog-relp >/dev/null 2>&1', 300_000);
    n.sh(
      `CI=true node /opt/sentinel-cef/bin/sentinel-cef install --sink file:${ROWS} --readiness 0.0.0.0:${READINESS_PORT} --yes >/root/install.log 2>&1 || { cat /root/install.log; exit 1; }`,
      300_000,
    );
    // The issue's target (a failing node drained within 10 s) needs a shorter rule than the default 60 s.
    n.sh(
      `node -e "const f='/etc/sentinel-cef/forwarder.json',fs=require('fs'),c=JSON.parse(fs.readFileSync(f));c.readinessRules={...c.readinessRules,sinkFailingSec:${sinkFailingSec}};fs.writeFileSync(f,JSON.stringify(c,null,2))" && systemctl restart ${UNIT}`,
    );
    n.sh(`grep -q 'type="omrelp"' /etc/rsyslog.d/*sentinel-cef*.conf`);
    // rsyslog's own counters every second (what imtcp took, the queues' sizes): where a lost event was lost.
    n.sh(
      `echo 'module(load="impstats" interval="1" format="json" log.syslog="off" log.file="/var/log/rsyslog-stats.json")' >/etc/rsyslog.d/05-scale-out-stats.conf && systemctl restart rsyslog`,
    );
  }
}

interface Sample {
  t: number;
  s: Record<string, ServerStat>;
  rows: number[];
}

function sampler(hap: Balancer, backend: string): { samples: Sample[]; stop: () => Promise<void> } {
  const samples: Sample[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      try {
        samples.push({ t: Date.now(), s: await hap.stats(backend), rows: counters.map((c) => c.poll()) });
      } catch {
        // HAProxy busy: next round.
      }
      await sleep(200);
    }
  })();
  return {
    samples,
    stop: async () => {
      on = false;
      await loop;
    },
  };
}

/** Bytes queued in the sockets that carry syslog towards node 1: `ss` here (sender, HAProxy) and in the node. */
interface SockSample {
  t: number;
  /** Sender's unsent bytes to HAProxy plus HAProxy's unread ones from the sender (all nodes' share). */
  front: number;
  /** HAProxy's unsent bytes to node 1's 514. */
  toNode: number;
  /** Bytes node 1's rsyslog has not read from its 514 connections; -1 when the node did not answer. */
  inNode: number;
  nodeConns: number;
}

function queued(ssOut: string, match: (local: string, peer: string) => boolean, col: 0 | 1): { bytes: number; conns: number } {
  let bytes = 0;
  let conns = 0;
  for (const l of ssOut.split('\n')) {
    const f = l.trim().split(/\s+/);
    if (f.length < 4 || !match(f[2], f[3])) continue;
    bytes += Number(f[col]);
    conns++;
  }
  return { bytes, conns };
}

const isFront = (addr: string) => addr.endsWith(`:${FRONT.port}`) || addr.endsWith(`:${FRONT.shutPort}`);

function sockSampler(victim: VmNode): { samples: SockSample[]; stop: () => Promise<void> } {
  const samples: SockSample[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      const t = Date.now();
      const here = spawnSync('ss', ['-tnH', 'state', 'established'], { encoding: 'utf8' }).stdout ?? '';
      let inNode = -1;
      let nodeConns = 0;
      try {
        const r = await pexec(VM, ['exec', victim.name, '--', 'ss', '-tnH', 'state', 'established', '( sport = :514 )'], { timeout: 2000 });
        const q = queued(r.stdout, () => true, 0);
        inNode = q.bytes;
        nodeConns = q.conns;
      } catch {
        // Off or busy.
      }
      samples.push({
        t,
        front: queued(here, (_l, p) => isFront(p), 1).bytes + queued(here, (l) => isFront(l), 0).bytes,
        toNode: queued(here, (_l, p) => p === `${victim.addr}:514`, 1).bytes,
        inNode,
        nodeConns,
      });
      await sleep(250);
    }
  })();
  return {
    samples,
    stop: async () => {
      on = false;
      await loop;
    },
  };
}

type Fault = 'kill9' | 'rsyslog-restart' | 'poweroff' | 'sink' | 'sink-shutdown';

export interface VmFaultResult {
  fault: Fault;
  rate: number;
  sent: number;
  received: number;
  unknown: number;
  lost: number;
  tail: number;
  holes: number;
  duplicated: number;
  reconnects: number;
  markedDownMs: number | null;
  noSessionMs: number | null;
  upAgainMs: number | null;
  drainMs: number;
  load: string;
}

let runNo = 0;
/** Every stream of the whole run: at the end each row in both sinks must belong to one, exactly once. */
const allExpect: Record<string, number> = {};

async function faultRun(hap: Balancer, fault: Fault, rate: number, durationSec: number, faultAtSec: number): Promise<VmFaultResult> {
  const victim = nodes[0];
  const tag = `${fault}${++runNo}`;
  say(`fault ${fault}: ${rate}/s for ${durationSec} s, fault at ${faultAtSec} s`);
  await hap.allUp();
  const shut = fault === 'sink-shutdown';
  const smp = sampler(hap, shut ? 'nodes-shut' : 'nodes');
  const socks = sockSampler(victim);
  const since = victim.sh('date +%s').trim();
  const load = loadAvg();
  let faultAt = 0;
  let backAt = 0;
  const sinkDir = ROWS.slice(0, ROWS.lastIndexOf('/'));
  // As install left them, to put back after the sink fault.
  const modes = fault.startsWith('sink') ? victim.sh(`stat -c %a ${sinkDir} ${ROWS}`).trim().split('\n') : [];
  const script = (async () => {
    await sleep(faultAtSec * 1000);
    faultAt = Date.now();
    if (fault === 'kill9') {
      // The main process only (in nspawn machines systemd's cgroup kill fails with EIO); systemd restarts it.
      await victim.shAsync(`systemctl kill -s KILL --kill-who=main ${UNIT}`);
      backAt = Date.now();
    } else if (fault === 'rsyslog-restart') {
      await victim.shAsync('systemctl restart rsyslog');
      backAt = Date.now();
    } else if (fault === 'poweroff') {
      await runAsync(VM, ['kill', victim.name]);
      await sleep(5000);
      await runAsync(VM, ['start', victim.name]);
      victim.plug();
      backAt = Date.now();
    } else {
      // The service user can no longer append: the file sink fails with EACCES.
      await victim.shAsync(`chmod 0400 ${ROWS} && chmod 0500 ${sinkDir}`);
    }
  })();
  script.catch(() => {});
  const gen = forkGenerator({
    host: FRONT.host,
    port: shut ? FRONT.shutPort : FRONT.port,
    connections: 6,
    events: rate * durationSec,
    rate,
    size: 500,
    run: tag,
    reconnect: true,
    reconnectTimeoutMs: 120_000,
  });
  const g: GenResult = await gen.result;
  Object.assign(allExpect, g.expect);
  const sentAt = Date.now();
  say(`fault ${fault}: sender done (${g.sent} events, ${g.reconnects} reconnects)`);
  await script;
  if (fault.startsWith('sink')) {
    // The operator fixes the sink and restarts the forwarder (RELP: rsyslog holds what it sends meanwhile).
    victim.sh(`chmod ${modes[0]} ${sinkDir} && chmod ${modes[1]} ${ROWS} && systemctl restart ${UNIT}`);
  }
  await victim.waitHealthy();
  const lastAt = await drained(Number.MAX_SAFE_INTEGER, 8000, 300_000);
  await smp.stop();
  await socks.stop();
  const r = await check(g.expect);
  writeFileSync(
    join(DIR, `${tag}.json`),
    JSON.stringify({ expect: g.expect, faultAt, backAt, sentAt, samples: smp.samples, sockets: socks.samples }),
  );
  writeFileSync(
    join(DIR, `${tag}.node1.log`),
    victim.sh(
      `journalctl -u rsyslog -u ${UNIT} --since @${since} --no-pager -q -o short-precise | tail -300; echo; tail -n 400 /var/log/rsyslog-stats.json`,
    ),
  );
  const after = smp.samples.filter((x) => x.t >= faultAt);
  const down = after.find((x) => x.s.n1?.status.startsWith('DOWN'));
  const span = after.filter((x) => x.t <= (backAt || sentAt));
  let noSession: number | null = null;
  for (let i = span.length - 1; i >= 0 && (span[i].s.n1?.scur ?? 0) === 0; i--) noSession = span[i].t - faultAt;
  // Back in HAProxy's rotation: the first UP after it was marked down, counted from the fault.
  const up = down ? after.find((x) => x.t > down.t && x.s.n1?.status === 'UP') : undefined;
  return {
    fault,
    rate,
    ...lossFigures(g, r),
    reconnects: g.reconnects,
    markedDownMs: down ? down.t - faultAt : null,
    noSessionMs: noSession,
    upAgainMs: up ? up.t - faultAt : null,
    drainMs: Math.max(0, lastAt - sentAt),
    load,
  };
}

async function throughput(hap: Balancer, n: number, events: number) {
  for (const x of nodes) await hap.command(`${x.k <= n ? 'enable' : 'disable'} server nodes/n${x.k}`);
  await hap.allUp();
  const load = loadAvg();
  say(`throughput, ${n} node(s): ${events} events as fast as they are taken`);
  const before = counters.map((c) => c.poll());
  const t0 = Date.now();
  const gen = forkGenerator({ host: FRONT.host, port: FRONT.port, connections: 6, events, rate: 0, size: 500, run: `tp${n}` });
  const g = await gen.result;
  Object.assign(allExpect, g.expect);
  const lastAt = await drained(g.sent, 8000, 300_000);
  const r = await check(g.expect);
  const perNode = counters.map((c, i) => c.poll() - before[i]);
  for (const x of nodes) await hap.command(`enable server nodes/n${x.k}`);
  return {
    nodes: n,
    events: g.sent,
    eps: Math.round(g.sent / ((lastAt - t0) / 1000)),
    perNode,
    lost: r.lost,
    duplicated: r.duplicates,
    load,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      rate: { type: 'string', default: '5000' },
      duration: { type: 'string', default: '30' },
      events: { type: 'string', default: '100000' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!DIR || !HAPROXY || NAMES.length !== 2) throw new Error('scale-out-vm.ts runs through scripts/scale-out-vm run');
  const ALL = ['throughput', 'kill9', 'rsyslog-restart', 'poweroff', 'sink', 'sink-shutdown'];
  const only = values.only?.split(',') ?? ALL;
  for (const o of only) if (!ALL.includes(o)) throw new Error(`unknown --only ${o} (one of ${ALL.join(', ')})`);
  installNodes(2);
  for (const n of nodes) n.plug();
  for (const n of nodes) await n.waitHealthy();
  const hap = new Balancer(nodes);
  await hap.start();
  try {
    await hap.allUp();
    const out: { throughput: Awaited<ReturnType<typeof throughput>>[]; faults: VmFaultResult[]; cores: number } = {
      throughput: [],
      faults: [],
      cores: cpus().length,
    };
    if (only.includes('throughput')) for (const n of [1, 2]) out.throughput.push(await throughput(hap, n, Number(values.events)));
    for (const f of ['kill9', 'rsyslog-restart', 'poweroff', 'sink', 'sink-shutdown'] as const)
      if (only.includes(f)) out.faults.push(await faultRun(hap, f, Number(values.rate), Number(values.duration), 5));
    // A row sent again in a later fault's time (rsyslog re-reading its disk queue after a power cut) shows here.
    const whole = await check(allExpect);
    if (values.json) console.log(JSON.stringify({ ...out, whole }));
    if (out.throughput.length) {
      console.log(`nodes  events   events/s  ×1 node  rows per node      lost  dup  load avg (${out.cores} cores)`);
      const one = out.throughput[0].eps;
      for (const r of out.throughput)
        console.log(
          `${String(r.nodes).padEnd(6)} ${String(r.events).padEnd(8)} ${String(r.eps).padEnd(9)} ${(r.eps / one).toFixed(2).padEnd(8)} ${r.perNode.join(' / ').padEnd(18)} ${String(r.lost).padEnd(5)} ${String(r.duplicated).padEnd(4)} ${r.load}`,
        );
    }
    if (out.faults.length) {
      console.log(
        'fault            rate/s  sent     lost (tail/holes)  dup    unknown  reconn  down     no session  up again  drain    load avg',
      );
      for (const r of out.faults)
        console.log(
          `${r.fault.padEnd(16)} ${String(r.rate).padEnd(7)} ${String(r.sent).padEnd(8)} ${`${r.lost} (${r.tail}/${r.holes})`.padEnd(18)} ${String(r.duplicated).padEnd(6)} ${String(r.unknown).padEnd(8)} ${String(r.reconnects).padEnd(7)} ${fmt(r.markedDownMs).padEnd(8)} ${fmt(r.noSessionMs).padEnd(11)} ${fmt(r.upAgainMs).padEnd(9)} ${fmt(r.drainMs).padEnd(8)} ${r.load}`,
        );
    }
    console.log(
      `whole run, both sinks: ${whole.expected} sent, ${whole.received} distinct rows, lost ${whole.lost}, duplicated ${whole.duplicates}, rows of no stream ${whole.unknown}`,
    );
  } finally {
    hap.stop();
    for (const n of nodes) spawnSync('ip', ['link', 'del', `vh${n.k}`]);
  }
}

execFileSync('ip', ['link', 'set', 'lo', 'up']);
await main();
