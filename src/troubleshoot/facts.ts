/**
 * Facts about this machine that several checks read: gathered once per run (ctx.once) and free of any verdict,
 * so checks can share them without importing each other.
 */
import type { SinkConfig } from '../config/schema.js';
import { stripConfigComments } from '../install/config-text.js';
import { dataCollectorUrl } from '../sinks/log-analytics.js';
import type { Context, DaemonName } from './context.js';
import { evaluateIptables, evaluateNft, parseIptablesSave, parseNftJson, type Packet, type Verdict } from './netfilter.js';
import type { EndpointProbe } from './types.js';

export const SKEW_FAIL_SEC = 300;

/** The HTTPS endpoint the sink posts to (its origin: the handshake and Date header are what matter). */
export function sinkEndpoint(sink: SinkConfig): string | null {
  if (sink.type === 'log-analytics') return dataCollectorUrl(sink).origin;
  if (sink.type === 'logs-ingestion') return new URL(sink.endpoint).origin;
  return null;
}

export async function endpointProbe(ctx: Context): Promise<EndpointProbe | null> {
  const c = await ctx.config();
  const url = c.config ? sinkEndpoint(c.config.sink) : null;
  if (!url) return null;
  // Once per run: the clock check reuses the same handshake.
  return ctx.once('azure-endpoint', () => ctx.deps.probeEndpoint(url, { timeoutMs: 5000, env: ctx.deps.env }));
}

/**
 * Seconds the local clock is off when that alone explains refused requests (over 5 minutes by the endpoint's Date
 * header, or by the forwarder's own `clock is N s off` delivery hint), else null. Checks that see a 401/403 ask this
 * first so one cause gets one message.
 */
export function clockFault(ctx: Context): Promise<number | null> {
  return ctx.once('clock-fault', async () => {
    const c = await ctx.config();
    if (!c.config || c.config.sink.type === 'file') return null;
    const p = await endpointProbe(ctx);
    if (p?.serverDate && p.localDate) {
      const skew = Math.round((p.localDate - p.serverDate) / 1000);
      if (Math.abs(skew) > SKEW_FAIL_SEC) return skew;
    }
    const err = (await ctx.health()).health?.lastDelivery?.error ?? '';
    const m = /clock is (\d+) s off \((behind|ahead)/.exec(err);
    if (m && Number(m[1]) > SKEW_FAIL_SEC) return m[2] === 'behind' ? -Number(m[1]) : Number(m[1]);
    return null;
  });
}

/** Parses "64k", "1m", "8192" as rsyslog does. */
export function parseSize(v: string): number | null {
  const m = /^\s*(\d+)\s*([kKmMgG]?)[bB]?\s*$/.exec(v);
  if (!m) return null;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

/** Room for the header a daemon puts in front when it passes a message on. */
export const HEADER_MARGIN = 1024;
export const UDP_MAX_PAYLOAD = 65_507;

export interface SizeLimits {
  daemon: DaemonName;
  daemonMax: number;
  /** Where the daemon's limit is set, or null for its built-in default. */
  daemonWhere: string | null;
  daemonSetting: string | null;
  forwarderMax: number;
}

/** The maximum message size of each hop the probes cross (null without a daemon). */
export function sizeLimits(ctx: Context): Promise<SizeLimits | null> {
  return ctx.once('size-limits', async () => {
    const d = await ctx.daemon();
    if (!d.name) return null;
    let size: number | null = null;
    let where: string | null = null;
    let setting: string | null = null;
    for (const f of await ctx.daemonConfigFiles()) {
      const t = stripConfigComments(f.text);
      const m =
        d.name === 'rsyslog'
          ? (/maxMessageSize\s*=\s*"?([^"\s)]+)"?/i.exec(t) ?? /^\s*\$MaxMessageSize\s+(\S+)/im.exec(t))
          : /\blog[-_]msg[-_]size\s*\(\s*(\d+)\s*\)/.exec(t);
      if (m) {
        size = parseSize(m[1]);
        where = f.path;
        setting = m[0].trim();
      }
    }
    const c = await ctx.config();
    return {
      daemon: d.name,
      daemonMax: size ?? (d.name === 'rsyslog' ? 8 * 1024 : 64 * 1024),
      daemonWhere: where,
      daemonSetting: setting,
      forwarderMax: c.config?.limits.maxMessageBytes ?? 64 * 1024,
    };
  });
}

/** Bytes per probe: --probe-size, else just under the smallest limit, so a default install is not flagged. */
export async function probeSize(ctx: Context): Promise<number> {
  if (ctx.opts.probeSize) return ctx.opts.probeSize;
  const l = await sizeLimits(ctx);
  if (!l) return 0;
  return Math.max(0, Math.min(l.daemonMax, l.forwarderMax, UDP_MAX_PAYLOAD) - HEADER_MARGIN);
}

/** Verdicts of the iptables and nftables rulesets for new packets to the daemon port, per transport and origin. */
export function firewallVerdicts(
  ctx: Context,
): Promise<{ kind: 'iptables' | 'nftables' | 'none'; verdicts: Array<{ packet: Packet; verdict: Verdict }> }> {
  return ctx.once('firewall-verdicts', async () => {
    const port = ctx.opts.port;
    const packets: Packet[] = ([4, 6] as const).flatMap((family) =>
      (['tcp', 'udp'] as const).flatMap((protocol) => (['ext', 'lo'] as const).map((iface) => ({ protocol, port, iface, family }))),
    );
    const saved = async (cmd: string) => {
      const r = await ctx.deps.exec.run(cmd, ['-t', 'filter'], { timeoutMs: 15_000 });
      return !r.notFound && r.exitCode === 0 ? parseIptablesSave(r.stdout) : null;
    };
    const save = await saved('iptables-save');
    // Devices that send over IPv6 meet only the IPv6 rules.
    const save6 = await saved('ip6tables-save');
    const nft = await ctx.deps.exec.run('nft', ['-j', 'list', 'ruleset'], { timeoutMs: 15_000 });
    const chains = !nft.notFound && nft.exitCode === 0 ? parseNftJson(nft.stdout) : null;
    const verdicts: Array<{ packet: Packet; verdict: Verdict }> = [];
    let kind: 'iptables' | 'nftables' | 'none' = 'none';
    for (const packet of packets) {
      const ipt = packet.family === 6 ? save6 : save;
      // iptables-nft shows the same rules both ways: a drop in either decides, the iptables view names it.
      const a = ipt ? evaluateIptables(ipt, packet) : null;
      const b = chains ? evaluateNft(chains, packet) : null;
      // Both accept: an explicit rule names the firewall in use, not iptables-nft's empty chains with their default policy.
      const v =
        a?.action === 'drop'
          ? a
          : b?.action === 'drop'
            ? b
            : a && b && !a.by.startsWith('rule ') && b.by.startsWith('rule ')
              ? b
              : (a ?? b);
      if (!v) continue;
      if (v === a) kind = 'iptables';
      else if (kind === 'none') kind = 'nftables';
      verdicts.push({ packet, verdict: v });
    }
    if (verdicts.some((x) => x.verdict.action === 'drop')) {
      kind = verdicts.some((x) => x.verdict.action === 'drop' && !x.verdict.table) ? 'iptables' : 'nftables';
    }
    return { kind, verdicts };
  });
}

/** Free space below which the queue's filesystem counts as full: the forwarder pauses intake on ENOSPC well before 0. */
const QUEUE_FULL_BYTES = 16 * 1024 ** 2;

/** The queue's filesystem when it is (nearly) full, measured at the queue dir or the nearest parent that exists. */
export function queueDiskFull(ctx: Context): Promise<{ dir: string; free: number; total: number } | null> {
  return ctx.once('queue-disk-full', async () => {
    const dir = (await ctx.config()).config?.queue.dir;
    if (!dir) return null;
    let probe = dir;
    let st = await ctx.deps.statfs(probe);
    while (!st && probe !== '/') {
      probe = probe.slice(0, probe.lastIndexOf('/')) || '/';
      st = await ctx.deps.statfs(probe);
    }
    return st && st.total > 0 && st.free < QUEUE_FULL_BYTES ? { dir, ...st } : null;
  });
}
