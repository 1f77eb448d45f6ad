import path from 'node:path';
import type { FsRoot } from '../system/fs-root.js';
import { readConfigTree, stripConfigComments } from './config-text.js';

export interface SyslogNgListener {
  source: string;
  driver: string;
  protocol: 'tcp' | 'udp';
  port: number;
  file: string;
  /** Binds IPv6 (udp6()/tcp6(), ip-protocol(6), or an IPv6 ip()); unset: IPv4 only. */
  ipv6?: true;
}

export interface SyslogNgScan {
  mainFile: string;
  files: string[];
  /** The main file has @include for conf.d/*.conf. */
  includesConfD: boolean;
  sources: string[];
  destinations: string[];
  listeners: SyslogNgListener[];
  version: string | null;
}

export const SYSLOG_NG_MAIN = '/etc/syslog-ng/syslog-ng.conf';
export const SYSLOG_NG_CONF_D = '/etc/syslog-ng/conf.d';

/** Index just past the bracket that closes the one at `open`. */
function matchBracket(text: string, open: number, o: string, c: string): number {
  let depth = 0;
  let inQuote = false;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"' && text[i - 1] !== '\\') inQuote = !inQuote;
    if (inQuote) continue;
    if (ch === o) depth++;
    else if (ch === c && --depth === 0) return i + 1;
  }
  return text.length;
}

const NET_DRIVERS: Record<string, { protocol?: 'tcp' | 'udp'; port: number }> = {
  udp: { protocol: 'udp', port: 514 },
  udp6: { protocol: 'udp', port: 514 },
  tcp: { protocol: 'tcp', port: 514 },
  tcp6: { protocol: 'tcp', port: 514 },
  network: { port: 514 },
  syslog: { port: 601 },
};

export function scanSyslogNgText(text: string, file: string, into: SyslogNgScan): string[] {
  const clean = stripConfigComments(text);
  const includes: string[] = [];
  for (const m of clean.matchAll(/^\s*@include\s+"([^"]+)"/gm)) includes.push(m[1]);
  const v = /^\s*@version:\s*(\S+)/m.exec(clean);
  if (v && file === SYSLOG_NG_MAIN) into.version = v[1];
  for (const m of clean.matchAll(/\bdestination\s+([A-Za-z0-9_]+)\s*\{/g)) into.destinations.push(m[1]);
  for (const m of clean.matchAll(/\bsource\s+([A-Za-z0-9_]+)\s*\{/g)) {
    const name = m[1];
    into.sources.push(name);
    const open = m.index! + m[0].length - 1;
    const body = clean.slice(open + 1, matchBracket(clean, open, '{', '}') - 1);
    for (const d of body.matchAll(/\b(udp6?|tcp6?|network|syslog)\s*\(/g)) {
      const start = d.index! + d[0].length - 1;
      const args = body.slice(start + 1, matchBracket(body, start, '(', ')') - 1);
      const def = NET_DRIVERS[d[1]];
      const port = /\bport\s*\(\s*(\d+)\s*\)/.exec(args);
      const transport = /\btransport\s*\(\s*"?(\w+)"?\s*\)/.exec(args);
      const protocol = def.protocol ?? (transport && /^udp$/i.test(transport[1]) ? 'udp' : 'tcp');
      const ipv6 = d[1].endsWith('6') || /\bip-protocol\s*\(\s*6\s*\)/.test(args) || /\bip\s*\(\s*"?[^")]*:/.test(args);
      into.listeners.push({
        source: name,
        driver: d[1],
        protocol,
        port: port ? Number(port[1]) : def.port,
        file,
        ...(ipv6 ? { ipv6 } : {}),
      });
    }
  }
  return includes;
}

/** Reads syslog-ng.conf and its @includes (except scl and files we manage). */
export async function scanSyslogNgConfig(fs: FsRoot, opts: { exclude?: string[] } = {}): Promise<SyslogNgScan> {
  const scan: SyslogNgScan = {
    mainFile: SYSLOG_NG_MAIN,
    files: [],
    includesConfD: false,
    sources: [],
    destinations: [],
    listeners: [],
    version: null,
  };
  scan.files = await readConfigTree(fs, SYSLOG_NG_MAIN, {
    exclude: opts.exclude,
    // "scl.conf" resolves against the include path (/usr/share/syslog-ng/include): library code, not config.
    includes: (text, file) => scanSyslogNgText(text, file, scan).filter((inc) => path.isAbsolute(inc) || inc.includes('/')),
    onInclude: (from, pattern) => {
      if (from === SYSLOG_NG_MAIN && path.dirname(pattern) === SYSLOG_NG_CONF_D) scan.includesConfD = true;
    },
  });
  return scan;
}
