import { createHash, randomBytes } from 'node:crypto';
import type { ProbeStatus } from '../../forwarder/admin-types.js';
import { HUNG_ERROR, listenPort, type Context } from '../context.js';
import { LAYOUT } from '../layout.js';
import { buildSizedProbe } from '../../forwarder/send-test.js';
import { daemonToForwarder, isLoopback, reachableFromLoopback, type SocketEntry } from '../proc.js';
import type { Listener } from '../../system/listeners.js';
import type { CheckOutcome, Transport } from '../types.js';
import { fixForDelivery } from '../advice.js';
import { clockFault, firewallVerdicts, probeSize } from '../facts.js';
import { stripConfigComments } from '../../install/config-text.js';
import { detectIpv6, type Ipv6Mode } from '../../system/ipv6.js';

const G = 'e2e' as const;
const POLL_MS = 200;

/** Where a probe stopped. */
export type ProbeStage =
  | 'delivered'
  | 'delivered-cut' // accepted by the sink, but a hop cut it short (its tail hash differs from what was sent)
  | 'daemon-not-receiving' // nothing listening, connection refused, port held by another program
  | 'daemon-not-forwarding' // the daemon got it (or could have), the forwarder never saw it
  | 'forwarder-down' // the daemon got it, but no forwarder is listening (the daemon queues it meanwhile)
  | 'forwarder-hung' // the forwarder's process and ports exist, but its admin endpoint does not answer
  | 'forwarder-not-delivering' // the forwarder has it, the sink has not accepted it
  | 'unknown'; // the forwarder's admin endpoint could not be asked

export interface ProbeResult {
  id: string;
  transport: Transport;
  /** The address family the probe was sent over. */
  family: 4 | 6;
  target: string;
  /** Epoch ms: sent, received by the forwarder, accepted by the sink (hops not reached stay unset). */
  sentAt?: number;
  receivedAt?: number;
  acceptedAt?: number;
  sendError?: string;
  received: boolean;
  accepted: boolean;
  latencyMs?: number;
  error?: string;
  /** HTTP status of the sink's last failed delivery, when the probe is stuck there. */
  httpStatus?: number;
  deadLettered?: boolean;
  /** Bytes sent, and as the forwarder received them. */
  sentBytes?: number;
  arrivedBytes?: number;
  /** The probe arrived as sent from its id on (false: a hop cut it); unknown when the forwarder cannot tell. */
  intact?: boolean;
  stage: ProbeStage;
  /** Why we place the probe at that stage. */
  evidence: string[];
}

export interface ProbeRun {
  results: ProbeResult[];
  adminError?: string;
  capture?: { unavailable?: string; seen?: Record<string, { daemonPort: boolean; forwarderPort: boolean }> };
  /** Daemon processes' connections to the forwarder's ports after sending. */
  daemonToForwarder: SocketEntry[];
}

function listenersOn(listeners: Listener[], port: number, transport: Transport): Listener[] {
  return listeners.filter((s) => s.protocol === transport && s.port === port);
}

/**
 * One loopback target per address family the listeners take, so each family's path is proven: a [::] socket takes
 * IPv4 too unless IPv6 sockets are v6-only (bindv6only=1). Sockets bound to one outside address are probed there.
 */
export function targetHosts(listeners: Listener[], ipv6: Ipv6Mode): Array<{ family: 4 | 6; host: string }> {
  if (listeners.length === 0) return [{ family: 4, host: '127.0.0.1' }];
  const out: Array<{ family: 4 | 6; host: string }> = [];
  const mapped = (a: string) => a.startsWith('::ffff:');
  const v4 = listeners.find((l) => (l.family === 4 || mapped(l.address)) && reachableFromLoopback(l.address.replace(/^::ffff:/, '')));
  if (v4) out.push({ family: 4, host: isLoopback(v4.address) ? v4.address.replace(/^::ffff:/, '') : '127.0.0.1' });
  else if (ipv6 !== 'separate' && listeners.some((l) => l.family === 6 && l.address === '::')) out.push({ family: 4, host: '127.0.0.1' });
  const v6 = listeners.find((l) => l.family === 6 && !mapped(l.address) && reachableFromLoopback(l.address));
  if (v6) out.push({ family: 6, host: isLoopback(v6.address) ? v6.address : '::1' });
  if (out.length === 0) {
    const l = listeners[0];
    out.push({ family: l.family === 6 && !mapped(l.address) ? 6 : 4, host: l.address.replace(/^::ffff:/, '') });
  }
  return out;
}

const FAMILY = { 4: 'IPv4', 6: 'IPv6' } as const;

/** The text from `from` up to the parenthesis that closes the one open there, skipping quoted strings. */
function balancedTail(t: string, from: number): string {
  let depth = 1;
  let quote = '';
  for (let i = from; i < t.length; i++) {
    const c = t[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return t.slice(from, i);
  }
  return t.slice(from);
}

/** How the daemon talks to the forwarder: RELP runs over a TCP socket, so only the forwarder's config tells it from TCP. */
export type ForwardTransport = Transport | 'relp';

/**
 * The transports the daemon's rules use towards the forwarder's ports (rsyslog omfwd defaults to UDP, `@@` is TCP,
 * omrelp is RELP, syslog-ng's syslog()/network()/tcp() default to TCP), and those the forwarder listens on there
 * (a TCP socket is RELP when the config's listen says relp://).
 */
export async function forwardPath(
  ctx: Context,
): Promise<{ sends: ForwardTransport[]; listens: ForwardTransport[]; missing: ForwardTransport[] }> {
  const fwdPorts = await ctx.forwarderPorts();
  const sends = new Set<ForwardTransport>();
  for (const f of await ctx.daemonConfigFiles()) {
    const t = stripConfigComments(f.text);
    for (const m of t.matchAll(/action\s*\(([^)]*)\)/g)) {
      const a = m[1];
      const port = /\bport\s*=\s*"?(\d+)/.exec(a);
      const type = /type\s*=\s*"(omfwd|omrelp)"/.exec(a)?.[1];
      if (!type || !port || !fwdPorts.includes(Number(port[1]))) continue;
      sends.add(type === 'omrelp' ? 'relp' : /protocol\s*=\s*"tcp"/i.test(a) ? 'tcp' : 'udp');
    }
    for (const m of t.matchAll(/(^|[\s;])(@@?)(?:\([^)]*\))?\[?[\w.:]+\]?:(\d+)/gm)) {
      if (fwdPorts.includes(Number(m[3]))) sends.add(m[2] === '@@' ? 'tcp' : 'udp');
    }
    for (const m of t.matchAll(/\b(syslog|network|tcp6?|udp6?)\s*\(\s*"[^"]*"/g)) {
      // Our own destination nests a template several parentheses deep: read up to the matching one.
      const body = balancedTail(t, m.index! + m[0].length);
      const port = /\bport\s*\(\s*(\d+)/.exec(body);
      if (!port || !fwdPorts.includes(Number(port[1]))) continue;
      const tr = /transport\s*\(\s*"?(\w+)/.exec(body)?.[1];
      sends.add(m[1].startsWith('udp') || tr === 'udp' ? 'udp' : 'tcp');
    }
  }
  const relpPorts = new Set(((await ctx.config()).config?.listen ?? []).map((u) => listenPort(u, 'relp')));
  const listens = [
    ...new Set(
      (await ctx.listeners())
        .filter((s) => fwdPorts.includes(s.port))
        .map((s): ForwardTransport => (s.protocol === 'tcp' && relpPorts.has(s.port) ? 'relp' : (s.protocol as Transport))),
    ),
  ];
  return { sends: [...sends], listens, missing: [...sends].filter((t) => listens.length > 0 && !listens.includes(t)) };
}

/** One line for a daemon that sends on a transport the forwarder does not listen on, with the exact change. */
export async function protocolMismatch(ctx: Context): Promise<{ message: string; fix: string } | null> {
  const p = await forwardPath(ctx);
  if (p.missing.length === 0) return null;
  const d = (await ctx.daemon()).name ?? 'the syslog daemon';
  const port = (await ctx.forwarderPorts())[0];
  const want = p.missing.map((t) => `"${t}://127.0.0.1:${port}"`).join(', ');
  // TCP and RELP share the port's one TCP socket: the listener changes, it is not added.
  const stream = (t: ForwardTransport) => t !== 'udp';
  const swap = p.missing.find(stream);
  const held = p.listens.find(stream);
  const change =
    swap && held
      ? `change "${held}://127.0.0.1:${port}" to "${swap}://127.0.0.1:${port}" in "listen" in ${ctx.opts.configPath}`
      : `add ${want} to "listen" in ${ctx.opts.configPath}`;
  return {
    message: `${d} sends ${p.missing.join('+')} to 127.0.0.1:${port}, but the forwarder listens there on ${p.listens.join('+')} only`,
    fix: `${change} and restart the forwarder (or re-run \`sentinel-cef install\`, which sets both)`,
  };
}

/** The forwarder's health once the probes have run (they exercise delivery), or now when there are none. */
export async function settledHealth(ctx: Context) {
  if (ctx.opts.probes > 0) await runProbes(ctx);
  return ctx.health();
}

/** Sends the probes once per run and follows each to the sink; shared by every check that needs the answer. */
export function runProbes(ctx: Context): Promise<ProbeRun> {
  return ctx.once('e2e-probes', async () => {
    const { deps, opts } = ctx;
    const sockets = await ctx.listeners();
    const daemonPids = new Set(await ctx.daemonPids());
    const fwdPorts = await ctx.forwarderPorts();
    const runId = randomBytes(4).toString('hex');
    const firewallP = firewallVerdicts(ctx);

    let capture: { stop(): Promise<string> } | undefined;
    let captureInfo: ProbeRun['capture'];
    if (opts.capture) {
      const c = await deps.startCapture([opts.port, ...fwdPorts]);
      if ('unavailable' in c) captureInfo = { unavailable: c.unavailable };
      else capture = c;
    }

    const results: ProbeResult[] = [];
    // Probes as long as the devices' lines: a hop that cuts them shows in the tail hash the forwarder returns.
    const size = await probeSize(ctx);
    const tails = new Map<string, string>();
    const ipv6 = await detectIpv6(ctx.fs);
    // Only the transports install opened: a TCP-only install refuses UDP by design.
    // Forwarder-only behind a balancer: a TCP listener that wants a PROXY header would close a bare probe.
    const proxied =
      opts.forwarderOnly && ((await ctx.config()).config?.listen ?? []).some((u) => u.startsWith('tcp://') && u.includes('?proxy='));
    for (const transport of opts.protocol === 'both' ? (['tcp', 'udp'] as const) : [opts.protocol]) {
      if (transport === 'tcp' && proxied) {
        deps.progress(`not probing ${opts.port}/tcp: it expects a PROXY header from the balancer`);
        continue;
      }
      const hosts = targetHosts(listenersOn(sockets, opts.port, transport), ipv6);
      // --probes is per transport, spread over the families, but every family gets at least one.
      for (let i = 0; i < Math.max(opts.probes, hosts.length); i++) {
        const { host, family } = hosts[i % hosts.length];
        // Fixed width, so no id is a substring of another when searching logs and captures.
        const id = `ts-${runId}-${transport}-${String(i + 1).padStart(4, '0')}`;
        const r: ProbeResult = {
          id,
          transport,
          family,
          target: `${host.includes(':') ? `[${host}]` : host}:${opts.port}/${transport}`,
          received: false,
          accepted: false,
          stage: 'unknown',
          evidence: [],
        };
        const probe = buildSizedProbe(id, size);
        tails.set(id, createHash('sha256').update(probe.tail).digest('hex'));
        r.sentBytes = Buffer.byteLength(probe.message);
        r.sentAt = deps.now();
        try {
          await deps.sendSyslog({ host, port: opts.port, transport }, probe.message);
        } catch (err) {
          r.sendError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        }
        results.push(r);
      }
    }
    deps.progress(`sent ${results.length} probes, waiting for delivery (up to ${opts.timeoutSec}s)`);

    // Poll the forwarder until every probe is accepted, dead-lettered, or time is up. --timeout bounds the whole
    // run, so stop early enough to place the probes and let the checks that read them finish.
    let adminError: string | undefined;
    const total = opts.timeoutSec * 1000;
    const deadline = ctx.startedAt + total - Math.min(3000, total * 0.25);
    const base = await ctx.adminBase();
    if (!base) adminError = 'admin endpoint disabled in the config';
    while (!adminError) {
      const pending = results.filter((r) => !r.sendError && !r.accepted && !r.deadLettered);
      if (pending.length === 0) break;
      await Promise.all(
        pending.map(async (r) => {
          const s = await ctx.fetchJson<ProbeStatus>(`/probes/${encodeURIComponent(r.id)}`);
          if (s.status === 0) {
            adminError = s.error;
            return;
          }
          if (s.body) {
            r.received = s.body.received;
            r.accepted = s.body.accepted;
            r.latencyMs = s.body.latencyMs;
            if (s.body.receivedAt) r.receivedAt = Date.parse(s.body.receivedAt);
            if (s.body.acceptedAt) r.acceptedAt = Date.parse(s.body.acceptedAt);
            r.error = s.body.error;
            r.deadLettered = s.body.deadLettered;
            if (s.body.bytes !== undefined) r.arrivedBytes = s.body.bytes;
            if (s.body.tailSha256) r.intact = s.body.tailSha256 === tails.get(r.id);
          }
        }),
      );
      if (deps.now() >= deadline) break;
      await deps.sleep(POLL_MS);
    }

    let seen: NonNullable<ProbeRun['capture']>['seen'] = {};
    if (capture) {
      seen = parseCapture(
        await capture.stop(),
        results.map((r) => r.id),
        opts.port,
        fwdPorts,
      );
      captureInfo = { seen };
    }

    ctx.invalidate(['sockets', 'processes', 'listeners']); // connections opened by the daemon while sending
    const after = await ctx.sockets();
    const toForwarder = daemonToForwarder(after, fwdPorts, daemonPids);

    const logs = await daemonLogHits(
      ctx,
      results.map((r) => r.id),
    );
    ctx.invalidate(['health']); // delivery state after the probes, for every check that reads it
    const health = (await ctx.health()).health;
    const mismatch = (await protocolMismatch(ctx))?.message;
    // Asked since the start; a firewall tool that does not answer by now must not hold the probes' verdict.
    const fw = await Promise.race([firewallP.then((f) => f.verdicts), new Promise<[]>((r) => setTimeout(r, 100, []))]);
    // The rules of the probe's own address family (a probe to ::1 meets the IPv6 rules).
    const firewallDrop = (t: Transport, target: string) =>
      fw.find(
        (x) =>
          x.packet.iface === 'lo' &&
          x.packet.protocol === t &&
          (x.packet.family === 6) === target.startsWith('[') &&
          x.verdict.action === 'drop',
      )?.verdict.by;
    for (const r of results) {
      locate(ctx, r, {
        sockets,
        daemonPids,
        daemonToForwarder: toForwarder,
        fwdPorts,
        logs,
        mismatch,
        firewallDrop: firewallDrop(r.transport, r.target),
        adminError,
        health,
        seen: seen[r.id],
      });
    }
    return { results, adminError, capture: captureInfo, daemonToForwarder: toForwarder };
  });
}

/**
 * Which probes tcpdump -A saw on the daemon port and on the forwarder port: it prints a header line per packet
 * (`IP 127.0.0.1.40000 > 127.0.0.1.514: ...`), then the payload; payload lines belong to the last header.
 */
export function parseCapture(
  text: string,
  ids: string[],
  daemonPort: number,
  fwdPorts: number[],
): Record<string, { daemonPort: boolean; forwarderPort: boolean }> {
  const seen: Record<string, { daemonPort: boolean; forwarderPort: boolean }> = {};
  for (const id of ids) seen[id] = { daemonPort: false, forwarderPort: false };
  let ports: number[] = [];
  for (const line of text.split('\n')) {
    const h = /\bIP6? \S+?\.(\d+) > \S+?\.(\d+):/.exec(line);
    if (h) ports = [Number(h[1]), Number(h[2])];
    for (const id of ids) {
      if (!line.includes(id)) continue;
      if (ports.includes(daemonPort)) seen[id].daemonPort = true;
      if (ports.some((p) => fwdPorts.includes(p))) seen[id].forwarderPort = true;
    }
  }
  return seen;
}

async function daemonLogHits(ctx: Context, ids: string[]): Promise<Map<string, string>> {
  const hits = new Map<string, string>();
  for (const f of LAYOUT.systemLogs) {
    const st = await ctx.stat(f);
    if (!st) continue;
    // Only the tail: the probes are seconds old.
    const text = await ctx.readText(f);
    if (!text) continue;
    const tail = text.slice(-4 * 1024 * 1024);
    for (const id of ids) if (!hits.has(id) && tail.includes(id)) hits.set(id, f);
  }
  return hits;
}

function locate(
  ctx: Context,
  r: ProbeResult,
  e: {
    sockets: Listener[];
    daemonPids: Set<number>;
    daemonToForwarder: SocketEntry[];
    fwdPorts: number[];
    logs: Map<string, string>;
    mismatch?: string;
    /** The firewall rule that drops this transport's packets to the daemon port, if one does. */
    firewallDrop?: string;
    adminError?: string;
    health?: import('../../forwarder/admin-types.js').Health;
    seen?: { daemonPort: boolean; forwarderPort: boolean };
  },
): void {
  const port = ctx.opts.port;
  if (r.accepted) {
    r.stage = r.intact === false ? 'delivered-cut' : 'delivered';
    return;
  }
  if (r.received) {
    r.stage = 'forwarder-not-delivering';
    const ld = e.health?.lastDelivery && !e.health.lastDelivery.ok ? e.health.lastDelivery : undefined;
    const err = r.error ?? ld?.error;
    if (ld?.httpStatus) r.httpStatus = ld.httpStatus;
    if (r.deadLettered) r.evidence.push('dead-lettered by the forwarder');
    if (err) {
      r.error = err;
      r.evidence.push(`sink error: ${err}`);
    } else r.evidence.push(`received by the forwarder, not accepted by the sink within ${ctx.opts.timeoutSec}s`);
    return;
  }
  const listeners = listenersOn(e.sockets, port, r.transport);
  // Forwarder-only: the forwarder itself is the receiver on the port.
  const receiver = (l: Listener) =>
    (l.pid !== undefined && e.daemonPids.has(l.pid)) || (ctx.opts.forwarderOnly && (l.comm === 'node' || l.comm === 'sentinel-cef'));
  // An IPv4 probe goes to an IPv4 socket when there is one, before a dual-stack [::] one: a program holding
  // 0.0.0.0:514 takes it even though the daemon holds [::]:514.
  const v4 = /^\d+\.\d+\.\d+\.\d+:/.test(r.target);
  const direct = listeners.filter((l) => (l.family === 6) !== v4);
  const serving = direct.length ? direct : listeners;
  const foreign = serving.filter((l) => l.pid !== undefined && !receiver(l));
  if (r.sendError || listeners.length === 0 || (foreign.length > 0 && foreign.length === serving.length) || e.firewallDrop) {
    r.stage = 'daemon-not-receiving';
    if (e.firewallDrop) r.evidence.push(`the firewall drops ${port}/${r.transport}: ${e.firewallDrop}`);
    if (r.sendError) r.evidence.push(`sending to ${r.target} failed: ${r.sendError}`);
    if (listeners.length === 0) r.evidence.push(`nothing listens on ${port}/${r.transport}`);
    for (const f of foreign) r.evidence.push(`${port}/${r.transport} is held by ${f.comm} (pid ${f.pid}), not the syslog daemon`);
    return;
  }
  if (e.adminError) {
    const fwdUp = e.sockets.some((s) => e.fwdPorts.includes(s.port));
    const hung = fwdUp && HUNG_ERROR.test(e.adminError);
    r.stage = hung ? 'forwarder-hung' : fwdUp ? 'unknown' : 'forwarder-down';
    r.evidence.push(
      hung
        ? `the forwarder holds port ${e.fwdPorts.join('/')} but its admin endpoint does not answer (${e.adminError})`
        : fwdUp
          ? `cannot ask the forwarder: ${e.adminError}`
          : `nothing listens on the forwarder port ${e.fwdPorts.join('/')}`,
    );
    return;
  }
  if (ctx.opts.forwarderOnly) {
    r.stage = 'unknown';
    r.evidence.push(`the forwarder listens on ${r.target} but never received it`);
    return;
  }
  r.stage = 'daemon-not-forwarding';
  if (e.mismatch) r.evidence.push(e.mismatch);
  const log = e.logs.get(r.id);
  if (log) r.evidence.push(`the daemon logged it to ${log}`);
  if (e.seen?.daemonPort) r.evidence.push(`captured on port ${port}`);
  if (e.seen && !e.seen.forwarderPort) r.evidence.push('not captured on the forwarder port');
  if (r.transport === 'tcp') r.evidence.push(`the daemon accepted the TCP connection on ${r.target}`);
  if (e.daemonToForwarder.length === 0) r.evidence.push('the daemon holds no connection to the forwarder port');
  r.evidence.push('the forwarder never received it');
}

const STAGE_TEXT: Record<Exclude<ProbeStage, 'delivered'>, string> = {
  'daemon-not-receiving': 'never reached the syslog daemon',
  'daemon-not-forwarding': 'reached the daemon but were not forwarded',
  'forwarder-down': 'reached the daemon, but the forwarder is not running',
  'forwarder-hung': 'reached the daemon, but the forwarder is hung (alive, not answering)',
  'forwarder-not-delivering': 'reached the forwarder but were not delivered',
  'delivered-cut': 'were delivered cut short',
  unknown: 'could not be followed',
};

const STAGE_ORDER: ProbeStage[] = [
  'daemon-not-receiving',
  'daemon-not-forwarding',
  'forwarder-down',
  'forwarder-hung',
  'forwarder-not-delivering',
  'unknown',
  'delivered-cut',
];

export async function checkProbes(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'e2e.probes', title: 'End-to-end probes', group: G };
  if (ctx.opts.probes === 0) return { ...base, status: 'skip', message: 'disabled with --probes 0' };
  const run = await runProbes(ctx);
  const total = run.results.length;
  const ok = run.results.filter((r) => r.accepted);
  const lat = ok
    .map((r) => r.latencyMs)
    .filter((x): x is number => typeof x === 'number')
    .sort((a, b) => a - b);
  const latText = lat.length ? `, latency p50 ${lat[Math.floor(lat.length / 2)]} ms, max ${lat.at(-1)} ms` : '';
  const byTransport = (t: Transport) =>
    `${t} ${run.results.filter((r) => r.transport === t && r.accepted).length}/${run.results.filter((r) => r.transport === t).length}`;
  const families = ([4, 6] as const).filter((f) => run.results.some((r) => r.family === f));
  const familyText = families.length > 1 ? ` over ${families.map((f) => FAMILY[f]).join(' and ')}` : '';
  // Where each family's probes stopped (the earliest stage among them), for the JSON reader and the fault matrix.
  const stoppedAtByFamily = Object.fromEntries(
    families.map((f) => {
      const of = run.results.filter((r) => r.family === f && !r.accepted);
      const rank = (st: ProbeStage) => STAGE_ORDER.indexOf(st);
      return [FAMILY[f], of.length ? of.map((r) => r.stage).sort((a, b) => rank(a) - rank(b))[0] : 'delivered'];
    }),
  );
  const details = {
    stoppedAtByFamily,
    probes: run.results,
    capture: run.capture,
    daemonToForwarder: run.daemonToForwarder.map((s) => `${s.localAddress}:${s.localPort} -> ${s.remoteAddress}:${s.remotePort}`),
  };
  const cut = run.results.filter((r) => r.intact === false);
  if (ok.length === total && cut.length) {
    return {
      ...base,
      status: 'fail',
      message:
        `${total}/${total} probes delivered, but ${cut.length} arrived cut: a ${cut[0].sentBytes}-byte ${cut[0].transport} probe ` +
        `arrived as ${cut[0].arrivedBytes ?? '?'} bytes`,
      fix: 'a hop cuts long messages: daemon.max-message-size names it and the setting to raise',
      details: { ...details, cut: cut.map((r) => r.id), stoppedAt: 'delivered-cut' },
    };
  }
  if (ok.length === total) {
    return {
      ...base,
      status: 'pass',
      message: `${total}/${total} probes delivered (${byTransport('tcp')}, ${byTransport('udp')})${familyText}${latText}`,
      details,
    };
  }
  // Report the earliest stage where probes stopped: it is the one to fix first.
  const order = STAGE_ORDER.filter((s) => s !== 'delivered-cut');
  // Each family is followed to its own stop: an IPv4 rule that drops the port must not hide behind delivered IPv6 probes.
  const groups = order
    .flatMap((stage) => families.map((f) => ({ stage, family: f, probes: run.results.filter((r) => r.stage === stage && r.family === f) })))
    .filter((g) => g.probes.length > 0);
  const parts = groups.map((g) => {
    const ts = [...new Set(g.probes.map((p) => p.transport))].join('+');
    const over = families.length > 1 ? `over ${FAMILY[g.family]}: ` : '';
    return `${over}${g.probes.length} ${ts} probe${g.probes.length === 1 ? '' : 's'} ${STAGE_TEXT[g.stage as Exclude<ProbeStage, 'delivered'>]} (${g.probes[0].evidence.join('; ')})`;
  });
  const first = groups[0];
  const sink = (await ctx.config()).config?.sink;
  const sinkType = sink?.type;
  const skew = first.stage === 'forwarder-not-delivering' ? await clockFault(ctx) : null;
  const mismatch = first.stage === 'daemon-not-forwarding' ? await protocolMismatch(ctx) : null;
  // A forwarder that paused its intake (a full queue or disk) leaves the probes with the daemon: not a routing fault.
  const paused = first.stage === 'daemon-not-forwarding' && !mismatch && (await ctx.health()).health?.queue.intakePaused;
  const fix = paused
    ? 'the forwarder has paused its intake, so the daemon holds the events: free what stops its queue (see forwarder.queue and system.disk)'
    : (mismatch?.fix ??
      fixForStage(first.stage, first.probes[0], ctx.opts.port, sinkType, skew, sink?.type === 'file' ? sink.path : undefined));
  return {
    ...base,
    status: 'fail',
    message: `${ok.length}/${total} probes delivered (${byTransport('tcp')}, ${byTransport('udp')}): ${parts.join('; ')}`,
    fix,
    details: { ...details, stoppedAt: first.stage },
  };
}

function fixForStage(stage: ProbeStage, p: ProbeResult, port: number, sinkType?: string, skew?: number | null, sinkPath?: string): string {
  switch (stage) {
    case 'daemon-not-receiving':
      if (p.evidence.some((e) => e.startsWith('the firewall drops'))) {
        return `let ${port}/${p.transport} through the firewall: see system.firewall for the exact rule and command (\`sentinel-cef troubleshoot --fix\` adds it)`;
      }
      if (p.evidence.some((e) => e.includes('is held by'))) {
        return `stop the program holding port ${port} (see daemon.listening) or install on another port with \`sentinel-cef install --port N\``;
      }
      return `make the syslog daemon listen on ${port}/${p.transport}: \`sentinel-cef install\` (see daemon.running and daemon.dropin)`;
    case 'forwarder-hung':
      return 'restart the hung forwarder (see forwarder.running): `sentinel-cef troubleshoot --fix` kills and restarts it';
    case 'forwarder-down':
      return 'start the forwarder (see forwarder.running): `sentinel-cef troubleshoot --fix` or `sentinel-cef install` restarts it';
    case 'daemon-not-forwarding':
      return 'the daemon does not route CEF to the forwarder: re-run `sentinel-cef install` (see daemon.dropin, daemon.forwarding)';
    case 'forwarder-not-delivering': {
      const m = /\b(4\d\d|5\d\d)\b/.exec(p.error ?? '');
      if (!p.error) return 'delivery is slower than --timeout: check forwarder.queue, or run again with a longer --timeout';
      return fixForDelivery(sinkType, p.httpStatus ?? (m ? Number(m[1]) : undefined), p.error, skew, sinkPath);
    }
    default:
      return 'start the forwarder and its admin endpoint (see forwarder.running, forwarder.admin)';
  }
}

export async function checkCapture(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'e2e.capture', title: 'Packet capture', group: G };
  if (!ctx.opts.capture) return { ...base, status: 'skip', message: 'not requested (use --capture)' };
  if (ctx.opts.probes === 0) return { ...base, status: 'skip', message: 'no probes to capture (--probes 0)' };
  const run = await runProbes(ctx);
  if (!run.capture || run.capture.unavailable) {
    return { ...base, status: 'skip', message: run.capture?.unavailable ?? 'capture did not run' };
  }
  const seen = run.capture.seen ?? {};
  const onDaemon = Object.values(seen).filter((s) => s.daemonPort).length;
  const onFwd = Object.values(seen).filter((s) => s.forwarderPort).length;
  const total = run.results.length;
  const msg = `${onDaemon}/${total} probes seen on port ${ctx.opts.port}, ${onFwd}/${total} on the forwarder port`;
  if (onDaemon === total && onFwd === total) return { ...base, status: 'pass', message: msg, details: { seen } };
  return {
    ...base,
    status: 'warn',
    message: msg,
    fix: onDaemon < total ? `probes did not reach port ${ctx.opts.port}` : 'the daemon did not pass every probe on: see daemon.dropin',
    details: { seen },
  };
}
