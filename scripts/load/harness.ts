/**
 * Pieces the chaos scenarios and the reliability tests share: the mock Azure workspace in this
 * process (feeding a sequence checker), the real forwarder bundle (dist/forwarder.mjs) as a child
 * process with a config file, and /proc figures (peak RSS, CPU seconds, UDP counters).
 */
import { FORWARDER_ENV, FORWARDER_NODE_FLAGS } from '../../src/install/service.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { startMockAzure, type MockAzure } from '../../test/helpers/mock-azure.js';
import { SeqChecker } from './chkseq.js';

export const REPO = resolve(import.meta.dirname, '../..');
export const BUNDLE = join(REPO, 'dist/forwarder.mjs');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface Workspace {
  mock: MockAzure;
  checker: SeqChecker;
  workspaceId: string;
  /** 0600 file with the Data Collector shared key. */
  keyFile: string;
  /** 0600 file with the app's client secret (Logs Ingestion). */
  secretFile: string;
  /** When the mock last accepted rows. */
  lastAcceptAt: number;
}

/** Mock Data Collector workspace (plain HTTP on loopback) whose accepted rows go straight to a checker. */
export async function startWorkspace(
  dir: string,
  opts: { latencySampleEvery?: number; https?: boolean; port?: number } = {},
): Promise<Workspace> {
  const checker = new SeqChecker(opts);
  const sharedKey = randomBytes(64).toString('base64');
  const workspaceId = randomUUID();
  mkdirSync(dir, { recursive: true });
  const keyFile = join(dir, 'workspace.key');
  writeFileSync(keyFile, `${sharedKey}\n`, { mode: 0o600 });
  const clientSecret = randomBytes(24).toString('base64url');
  const secretFile = join(dir, 'client.secret');
  writeFileSync(secretFile, `${clientSecret}\n`, { mode: 0o600 });
  // HTTPS, as Azure is (and @azure/identity requires for its authority); the forwarder trusts the
  // mock's certificate through NODE_EXTRA_CA_CERTS.
  const mock = await startMockAzure({
    https: opts.https ?? true,
    port: opts.port,
    certDir: dir,
    sharedKey,
    clientSecret,
    workspaceId,
    keepRows: false,
    // ws.checker, not checker: a run may swap in a fresh checker (after an install's own probe).
    onRows: (rows) => {
      for (const r of rows) ws.checker.addRow(r.row, r.at);
      ws.lastAcceptAt = Date.now();
    },
  });
  const ws: Workspace = { mock, checker, workspaceId, keyFile, secretFile, lastAcceptAt: 0 };
  return ws;
}

export interface FwOptions {
  dir: string;
  ws: Workspace;
  tcpPort?: number;
  udpPort?: number;
  tls?: { certFile: string; keyFile: string };
  /** Merged over the generated config (queue, batch, retry, limits...). */
  config?: Record<string, unknown>;
  /** Run the queue on a tmpfs of this many bytes, in a private mount namespace (host untouched). */
  tmpfsQueueBytes?: number;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Raise the open-files limit of the forwarder process (many-connection runs). */
  ulimitNofile?: number;
  /** Which Azure API (default logs-ingestion: the Data Collector API was retired in Sept. 2026). */
  sink?: 'logs-ingestion' | 'log-analytics';
}

export function sinkConfig(ws: Workspace, kind: FwOptions['sink'] = 'logs-ingestion'): Record<string, unknown> {
  const m = ws.mock;
  if (kind === 'log-analytics') return { type: 'log-analytics', workspaceId: ws.workspaceId, sharedKeyFile: ws.keyFile, endpoint: m.url };
  return {
    type: 'logs-ingestion',
    endpoint: m.url,
    dcrImmutableId: m.dcrImmutableId,
    stream: m.stream,
    authorityHost: m.url,
    auth: { kind: 'client-secret', tenantId: m.tenantId, clientId: m.clientId, clientSecretFile: ws.secretFile },
  };
}

export interface Health {
  status: string;
  queue: { bytes: number; records: number; maxBytes: number; intakePaused: boolean };
  counters: { received: number; parseFailures: number; delivered: number; retried: number; deadLettered: number; dropped: number };
}

/** The real forwarder bundle in its own process, restartable on the same ports and queue. */
export class ForwarderProc {
  child: ChildProcess | null = null;
  readonly configPath: string;
  readonly queueDir: string;
  readonly deadLetterFile: string;
  readonly logPath: string;
  adminPort = 0;
  tcpPort = 0;
  udpPort = 0;
  tlsPort = 0;
  starts = 0;
  private exited: Promise<number | null> = Promise.resolve(null);

  constructor(private readonly o: FwOptions) {
    this.configPath = join(o.dir, 'forwarder.json');
    this.queueDir = join(o.dir, 'queue');
    this.deadLetterFile = join(o.dir, 'dead-letter.ndjson');
    this.logPath = join(o.dir, 'forwarder.log');
  }

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  async start(): Promise<void> {
    // freePort() only finds a port that was free a moment ago: with test files running side by side another
    // process can take it first. The first start picks again on EADDRINUSE; restarts keep their ports.
    if (this.adminPort || this.o.tcpPort !== undefined) return this.startOnce();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOnce();
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
        this.adminPort = 0;
        this.starts--; // the failed attempt was not a start
      }
    }
  }

  private async startOnce(): Promise<void> {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build`);
    if (!this.adminPort) {
      this.adminPort = await freePort();
      this.tcpPort = this.o.tcpPort ?? (await freePort());
      this.udpPort = this.o.udpPort ?? this.tcpPort;
      if (this.o.tls) this.tlsPort = await freePort();
    }
    const { ws } = this.o;
    const base = {
      listen: [
        `tcp://127.0.0.1:${this.tcpPort}`,
        `udp://127.0.0.1:${this.udpPort}`,
        ...(this.o.tls ? [`tls://127.0.0.1:${this.tlsPort}`] : []),
      ],
      ...(this.o.tls ? { tls: this.o.tls } : {}),
      queue: { dir: this.queueDir },
      deadLetterFile: this.deadLetterFile,
      admin: `127.0.0.1:${this.adminPort}`,
      logLevel: 'info',
      drainTimeoutSec: 5,
      sink: sinkConfig(ws, this.o.sink),
    };
    const cfg = merge(base, this.o.config ?? {});
    writeFileSync(this.configPath, JSON.stringify(cfg, null, 2), { mode: 0o600 });
    const node = [process.execPath, ...FORWARDER_NODE_FLAGS, ...(this.o.nodeArgs ?? []), BUNDLE, '--config', this.configPath];
    let cmd: string;
    let args: string[];
    if (this.o.tmpfsQueueBytes) {
      // Private mount namespace: the tmpfs exists only for this process; `exec` keeps the pid.
      mkdirSync(this.queueDir, { recursive: true });
      const q = JSON.stringify(this.queueDir);
      cmd = 'unshare';
      args = [
        '--mount',
        '--propagation',
        'private',
        'bash',
        '-c',
        `mountpoint -q ${q} || mount -t tmpfs -o size=${this.o.tmpfsQueueBytes},mode=0700 tmpfs ${q}; exec "$@"`,
        'fw',
        ...node,
      ];
    } else if (this.o.ulimitNofile) {
      cmd = 'bash';
      args = ['-c', `ulimit -n ${this.o.ulimitNofile} && exec "$@"`, 'fw', ...node];
    } else {
      cmd = node[0];
      args = node.slice(1);
    }
    const log = createWriteStream(this.logPath, { flags: 'a' });
    const env = { ...FORWARDER_ENV, ...process.env, ...(ws.mock.caPath ? { NODE_EXTRA_CA_CERTS: ws.mock.caPath } : {}) };
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    this.starts++;
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    this.exited = new Promise((r) => child.once('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
    // Ready when the admin endpoint answers (the listeners are bound before it starts).
    let exitedEarly = false;
    void this.exited.then(() => (exitedEarly = true));
    await waitFor(
      'the forwarder admin endpoint',
      async () => {
        if (exitedEarly) throw new Error(`forwarder exited during start: ${this.log().slice(-2000)}`);
        try {
          // Ours, not another test's process that took the port first (that one fails us with EADDRINUSE next).
          const h = (await (await fetch(`http://127.0.0.1:${this.adminPort}/healthz`)).json()) as { pid?: number };
          return h.pid === child.pid;
        } catch {
          return false;
        }
      },
      // An exit ends the wait at once; the bound is for a hang. Start-up took 48 s at load 38 on 2 cores.
      90_000,
      50,
    );
  }

  alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill9(): Promise<void> {
    if (!this.alive()) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<number | null> {
    if (!this.alive()) return this.child?.exitCode ?? null;
    this.child!.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(20_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      this.child!.kill('SIGKILL');
      return this.exited;
    }
    return code;
  }

  async health(): Promise<Health> {
    const r = await fetch(`http://127.0.0.1:${this.adminPort}/healthz`);
    return (await r.json()) as Health;
  }

  async metricsText(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.adminPort}/metrics`)).text();
  }

  /** Sum of a Prometheus counter (all label sets), optionally only series whose labels contain `match`. */
  async metric(name: string, match?: string): Promise<number> {
    let sum = 0;
    for (const line of (await this.metricsText()).split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^(\S+?)(\{[^}]*\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      if (match && !(m[2] ?? '').includes(match)) continue;
      sum += Number(m[3]);
    }
    return sum;
  }

  peakRssMb(): number {
    return procStatus(this.pid).hwmMb;
  }

  cpuSec(): number {
    return procCpuSec(this.pid);
  }

  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
  }
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export function procStatus(pid: number): { rssMb: number; hwmMb: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
  } catch {
    return { rssMb: 0, hwmMb: 0 };
  }
}

/** utime + stime of a process (children not included). */
export function procCpuSec(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14, 15 (clock ticks, 100 Hz on Linux)
  } catch {
    return 0;
  }
}

/** Udp counters of this network namespace (/proc/net/snmp). */
export function udpCounters(): Record<string, number> {
  const lines = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const keys = lines[0].split(/\s+/).slice(1);
  const vals = lines[1].split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]]));
}

export function loadAvg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Samples a function every `everyMs` and keeps the maximum (queue bytes, RSS). */
export function peakSampler(fn: () => number | Promise<number>, everyMs = 200): { stop: () => number; peak: () => number } {
  let peak = 0;
  let stopped = false;
  const tick = async () => {
    while (!stopped) {
      try {
        peak = Math.max(peak, await fn());
      } catch {
        // the process may be restarting
      }
      await sleep(everyMs);
    }
  };
  void tick();
  return {
    peak: () => peak,
    stop: () => {
      stopped = true;
      return peak;
    },
  };
}
