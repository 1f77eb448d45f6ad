/**
 * What the host firewall does with a new packet to a port: the first rule of the filter INPUT path that matches it,
 * following jumps, gotos and returns, as the kernel does. Reads `iptables-save`, `ip6tables-save` (the same format, for
 * IPv6) and `nft -j list ruleset` output (ip and inet tables for IPv4, ip6 and inet for IPv6).
 *
 * A rule with a condition we cannot judge for every sender (source address, a named set, marks) is skipped: it does
 * not decide for all devices, so the next rule is looked at, and the report says which rule decided.
 */
import type { Transport } from './types.js';

/** A new packet to the daemon: from a remote device (`ext`) or from this machine (`lo`, as the probes are). */
export interface Packet {
  protocol: Transport;
  port: number;
  iface: 'ext' | 'lo';
  /** IP version; 4 when absent. IPv6 packets pass ip6tables and nft's ip6 and inet tables, never iptables or ip tables. */
  family?: 4 | 6;
}

export interface Verdict {
  action: 'accept' | 'drop';
  /** "rule 3 of chain INPUT (-A INPUT -p udp --dport 514 -j DROP)", or "the policy of chain INPUT". */
  by: string;
  /** Where an accept rule must go to precede it: the base chain the packet entered. */
  chain: string;
  /** nftables only: family and table of that chain. */
  table?: { family: string; name: string };
}

// ---- iptables-save ----

interface IptRule {
  text: string;
  args: string[];
}

/** The filter table of `iptables-save`: chains with policy and rules in order. */
export function parseIptablesSave(text: string): { policies: Map<string, string>; rules: Map<string, IptRule[]> } | null {
  const policies = new Map<string, string>();
  const rules = new Map<string, IptRule[]>();
  let table = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) table = line.slice(1);
    if (table !== 'filter') continue;
    const chain = /^:(\S+)\s+(\S+)/.exec(line);
    if (chain) {
      policies.set(chain[1], chain[2]);
      rules.set(chain[1], []);
    }
    if (line.startsWith('-A ')) {
      const args = splitArgs(line);
      const name = args[1];
      if (!rules.has(name)) rules.set(name, []);
      rules.get(name)!.push({ text: line, args: args.slice(2) });
    }
  }
  return rules.size ? { policies, rules } : null;
}

function splitArgs(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

function inPorts(spec: string, port: number): boolean {
  return spec.split(',').some((p) => {
    const [a, b] = p.split(':').map(Number);
    return b === undefined ? a === port : port >= a && port <= b;
  });
}

/** Does an iptables rule match the packet? undefined: it has a condition we cannot judge for every sender. */
function iptMatches(args: string[], p: Packet): boolean | undefined {
  for (let i = 0; i < args.length; i++) {
    const neg = args[i] === '!';
    if (neg) i++;
    const a = args[i];
    const v = args[i + 1];
    const test = (ok: boolean) => (neg ? !ok : ok);
    switch (a) {
      case '-p':
      case '--protocol':
        i++;
        if (!test(v === p.protocol || v === 'all')) return false;
        break;
      case '--dport':
      case '--destination-port':
      case '--dports':
      case '--destination-ports':
        i++;
        if (!test(inPorts(v, p.port))) return false;
        break;
      case '-i':
      case '--in-interface':
        i++;
        if (!test(v === 'lo' ? p.iface === 'lo' : p.iface === 'ext')) return false;
        break;
      case '--ctstate':
      case '--state':
        i++;
        if (!test(v.split(',').includes('NEW'))) return false;
        break;
      case '-m':
      case '--match':
      case '--comment':
        i++;
        break;
      case '-j':
      case '-g':
      case '--jump':
      case '--goto':
        return true;
      default:
        return undefined;
    }
  }
  return true;
}

export function evaluateIptables(save: NonNullable<ReturnType<typeof parseIptablesSave>>, p: Packet): Verdict {
  const walk = (chain: string, depth: number): Verdict | 'return' => {
    const list = save.rules.get(chain) ?? [];
    for (let n = 0; n < list.length && depth < 32; n++) {
      const r = list[n];
      if (iptMatches(r.args, p) !== true) continue;
      const j = r.args.indexOf('-j') >= 0 ? r.args.indexOf('-j') : r.args.indexOf('-g');
      const target = j >= 0 ? r.args[j + 1] : undefined;
      const by = `rule ${n + 1} of chain ${chain} (${r.text})`;
      if (target === 'ACCEPT') return { action: 'accept', by, chain: 'INPUT' };
      if (target === 'DROP' || target === 'REJECT') return { action: 'drop', by, chain: 'INPUT' };
      if (target === 'RETURN') return 'return';
      if (target && save.rules.has(target)) {
        const v = walk(target, depth + 1);
        if (v !== 'return') return v;
        if (r.args[j] === '-g') return 'return';
      }
      // LOG, counters and other non-terminal targets: go on.
    }
    return 'return';
  };
  const v = walk('INPUT', 0);
  if (v !== 'return') return v;
  const policy = save.policies.get('INPUT') ?? 'ACCEPT';
  return { action: policy === 'ACCEPT' ? 'accept' : 'drop', by: `the ${policy} policy of chain INPUT`, chain: 'INPUT' };
}

// ---- nft -j list ruleset ----

type Json = Record<string, unknown>;

interface NftChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  prio?: number;
  policy?: string;
  rules: Array<{ handle?: number; expr: Json[] }>;
}

export function parseNftJson(text: string): NftChain[] | null {
  let doc: { nftables?: Json[] };
  try {
    doc = JSON.parse(text) as { nftables?: Json[] };
  } catch {
    return null;
  }
  const chains = new Map<string, NftChain>();
  const key = (f: unknown, t: unknown, n: unknown) => `${String(f)}/${String(t)}/${String(n)}`;
  for (const o of doc.nftables ?? []) {
    const c = o.chain as Json | undefined;
    if (c) {
      chains.set(key(c.family, c.table, c.name), {
        family: String(c.family),
        table: String(c.table),
        name: String(c.name),
        hook: c.hook as string | undefined,
        prio: c.prio as number | undefined,
        policy: c.policy as string | undefined,
        rules: [],
      });
    }
    const r = o.rule as Json | undefined;
    if (r)
      chains.get(key(r.family, r.table, r.chain))?.rules.push({ handle: r.handle as number | undefined, expr: (r.expr as Json[]) ?? [] });
  }
  return [...chains.values()];
}

function nftValueMatches(right: unknown, value: string | number): boolean | undefined {
  if (typeof right === 'number' || typeof right === 'string') return right === value;
  const r = right as Json;
  if (Array.isArray(r?.set)) return (r.set as unknown[]).some((x) => nftValueMatches(x, value) === true);
  if (Array.isArray(r?.range)) {
    const [a, b] = r.range as number[];
    return typeof value === 'number' && value >= a && value <= b;
  }
  return undefined;
}

/** One nft match expression against the packet; undefined when it tests something we cannot judge. */
function nftMatch(m: Json, p: Packet): boolean | undefined {
  const left = m.left as Json;
  const op = (m.op as string) ?? '==';
  let got: boolean | undefined;
  const payload = left?.payload as Json | undefined;
  const meta = left?.meta as Json | undefined;
  // `ip …` applies only to IPv4 packets and `ip6 …` only to IPv6 ones, whatever the field or operator (inet tables).
  if (payload && ((payload.protocol === 'ip' && p.family === 6) || (payload.protocol === 'ip6' && p.family !== 6))) return false;
  if (payload && payload.field === 'dport') {
    got = payload.protocol === p.protocol ? nftValueMatches(m.right, p.port) : false;
  } else if ((meta && meta.key === 'l4proto') || (payload && (payload.field === 'protocol' || payload.field === 'nexthdr'))) {
    got = nftValueMatches(m.right, p.protocol);
  } else if (meta && (meta.key === 'iifname' || meta.key === 'iif')) {
    const isLo = nftValueMatches(m.right, 'lo');
    got = isLo === undefined ? undefined : p.iface === 'lo' ? isLo : !isLo;
  } else if (left?.ct && (left.ct as Json).key === 'state') {
    got = nftValueMatches(m.right, 'new');
    if (got === undefined && Array.isArray(m.right)) got = (m.right as string[]).includes('new');
  } else if (meta && meta.key === 'nfproto') {
    got = nftValueMatches(m.right, p.family === 6 ? 'ipv6' : 'ipv4');
  }
  if (got === undefined) return undefined;
  if (op === '!=') return !got;
  if (op === '==' || op === 'in') return got;
  return undefined;
}

function nftRuleText(expr: Json[]): string {
  return expr
    .map((e) => {
      const m = e.match as Json | undefined;
      if (m) {
        const l = m.left as Json;
        const pl = l?.payload as Json | undefined;
        const mt = l?.meta as Json | undefined;
        const what = pl ? `${String(pl.protocol)} ${String(pl.field)}` : mt ? `meta ${String(mt.key)}` : Object.keys(l ?? {})[0];
        const right = m.right as Json | number | string;
        const rv =
          typeof right === 'object' && right && Array.isArray(right.set)
            ? `{ ${(right.set as unknown[]).join(', ')} }`
            : JSON.stringify(right);
        return `${what} ${m.op === '!=' ? '!= ' : ''}${String(rv).replace(/^"|"$/g, '')}`;
      }
      return Object.keys(e)[0];
    })
    .join(' ');
}

export function evaluateNft(chains: NftChain[], p: Packet): Verdict | null {
  const byName = (family: string, table: string, name: string) =>
    chains.find((c) => c.family === family && c.table === table && c.name === name);
  const walk = (c: NftChain, depth: number): { v: Verdict | null; ret: boolean; goto?: boolean } => {
    for (const r of c.rules) {
      if (depth > 32) break;
      let applies = true;
      for (const e of r.expr) {
        if (!e.match) continue;
        const ok = nftMatch(e.match as Json, p);
        if (ok !== true) {
          applies = false;
          break;
        }
      }
      if (!applies) continue;
      const by = `rule handle ${r.handle ?? '?'} of chain ${c.name} in table ${c.family} ${c.table} (${nftRuleText(r.expr)})`;
      for (const e of r.expr) {
        if ('accept' in e) return { v: { action: 'accept', by, chain: c.name, table: { family: c.family, name: c.table } }, ret: false };
        if ('drop' in e || 'reject' in e)
          return { v: { action: 'drop', by, chain: c.name, table: { family: c.family, name: c.table } }, ret: false };
        if ('return' in e) return { v: null, ret: true };
        const jump = (e.jump ?? e.goto) as Json | undefined;
        if (jump) {
          const target = byName(c.family, c.table, String(jump.target));
          if (!target) continue;
          const sub = walk(target, depth + 1);
          if (sub.v) return sub;
          if ('goto' in e) return { v: null, ret: true };
        }
      }
    }
    return { v: null, ret: true };
  };
  const families = new Set(p.family === 6 ? ['ip6', 'inet'] : ['ip', 'inet']);
  const bases = chains.filter((c) => c.hook === 'input' && families.has(c.family)).sort((a, b) => (a.prio ?? 0) - (b.prio ?? 0));
  if (bases.length === 0) return null;
  // Every input base chain must accept: a drop in any of them drops the packet.
  let accepted: Verdict | null = null;
  for (const base of bases) {
    const r = walk(base, 0);
    const table = { family: base.family, name: base.table };
    const v = r.v
      ? { ...r.v, chain: base.name, table }
      : {
          action: base.policy === 'drop' ? ('drop' as const) : ('accept' as const),
          by: `the ${base.policy ?? 'accept'} policy of chain ${base.name} in table ${base.family} ${base.table}`,
          chain: base.name,
          table,
        };
    if (v.action === 'drop') return v;
    accepted ??= v;
  }
  return accepted;
}
