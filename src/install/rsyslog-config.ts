import path from 'node:path';
import type { FsRoot } from '../system/fs-root.js';
import { readConfigTree, stripConfigComments } from './config-text.js';

export interface RsyslogInput {
  type: 'imudp' | 'imtcp' | 'imptcp' | 'imrelp' | string;
  port: number;
  ruleset?: string;
  file: string;
  /** ratelimit.interval (seconds) and ratelimit.burst set on this input; module-level values are in the scan. */
  rateLimit?: { interval?: number; burst?: number };
}

export interface RsyslogScan {
  mainFile: string;
  files: string[];
  /** Input modules already loaded anywhere (module(load=...) or $ModLoad). */
  modules: Set<string>;
  inputs: RsyslogInput[];
  maxMessageSize: string | null;
  workDirectory: string | null;
  /** The main file includes /etc/rsyslog.d/*.conf. */
  includesDropins: boolean;
  /** rsyslog.d/ files sorted after ours that are not ours: they see CEF only when they come before us. */
  dropinDir: string;
  /** The omrelp output module is installed (Debian/Ubuntu package rsyslog-relp, RHEL rsyslog-relp). */
  omrelp?: boolean;
  /** Rate limits set on a module(load=...) line: defaults for that module's inputs. */
  moduleRateLimits?: Record<string, { interval?: number; burst?: number; file: string }>;
  /** The file that configures the main queue (main_queue() or $MainMsgQueue...), if one does. */
  mainQueue?: string;
}

export const RSYSLOG_MAIN = '/etc/rsyslog.conf';
export const RSYSLOG_DROPIN_DIR = '/etc/rsyslog.d';

function param(body: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name}\\s*=\\s*(?:"([^"]*)"|([^\\s)"]+))`, 'i').exec(body);
  return m ? (m[1] ?? m[2]) : undefined;
}

function rateLimitOf(body: string): { interval?: number; burst?: number } | undefined {
  const interval = param(body, 'ratelimit\\.interval');
  const burst = param(body, 'ratelimit\\.burst');
  if (interval === undefined && burst === undefined) return undefined;
  return {
    ...(interval !== undefined && /^\d+$/.test(interval) ? { interval: Number(interval) } : {}),
    ...(burst !== undefined && /^\d+$/.test(burst) ? { burst: Number(burst) } : {}),
  };
}

/** Parses one file's text (exported for tests). */
export function scanRsyslogText(text: string, file: string, into: RsyslogScan): string[] {
  const clean = stripConfigComments(text);
  const includes: string[] = [];
  for (const m of clean.matchAll(/\bmodule\s*\(([^)]*)\)/g)) {
    const load = param(m[1], 'load');
    if (load) into.modules.add(load);
    const rl = rateLimitOf(m[1]);
    if (load && rl) (into.moduleRateLimits ??= {})[load] = { ...rl, file };
  }
  for (const m of clean.matchAll(/\binput\s*\(([^)]*)\)/g)) {
    const type = param(m[1], 'type');
    const port = param(m[1], 'port');
    const rateLimit = rateLimitOf(m[1]);
    if (type && port && /^\d+$/.test(port))
      into.inputs.push({ type, port: Number(port), ruleset: param(m[1], 'ruleset'), file, ...(rateLimit ? { rateLimit } : {}) });
  }
  for (const m of clean.matchAll(/\bglobal\s*\(([^)]*)\)/g)) {
    into.maxMessageSize = param(m[1], 'maxMessageSize') ?? into.maxMessageSize;
    into.workDirectory = param(m[1], 'workDirectory') ?? into.workDirectory;
  }
  if (/\bmain_queue\s*\(/.test(clean) || /^\s*\$MainMsgQueue/im.test(clean)) into.mainQueue ??= file;
  for (const m of clean.matchAll(/\binclude\s*\(([^)]*)\)/g)) {
    const f = param(m[1], 'file');
    if (f) includes.push(f);
  }
  let legacyRuleset: string | undefined;
  for (const raw of clean.split('\n')) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^\$ModLoad\s+(\S+)/i.exec(line))) into.modules.add(m[1].replace(/\.so$/, ''));
    else if ((m = /^\$UDPServerRun\s+(\d+)/i.exec(line)))
      into.inputs.push({ type: 'imudp', port: Number(m[1]), ruleset: legacyRuleset, file });
    else if ((m = /^\$InputTCPServerRun\s+(\d+)/i.exec(line)))
      into.inputs.push({ type: 'imtcp', port: Number(m[1]), ruleset: legacyRuleset, file });
    else if ((m = /^\$InputPTCPServerRun\s+(\d+)/i.exec(line)))
      into.inputs.push({ type: 'imptcp', port: Number(m[1]), ruleset: legacyRuleset, file });
    else if ((m = /^\$(?:InputTCPServerBindRuleset|InputUDPServerBindRuleset)\s+(\S+)/i.exec(line))) legacyRuleset = m[1];
    else if ((m = /^\$MaxMessageSize\s+(\S+)/i.exec(line))) into.maxMessageSize = m[1];
    else if ((m = /^\$WorkDirectory\s+(\S+)/i.exec(line))) into.workDirectory = m[1];
    else if ((m = /^\$IncludeConfig\s+(\S+)/i.exec(line))) includes.push(m[1]);
  }
  return includes;
}

/** Reads rsyslog.conf and everything it includes, leaving out the files we manage ourselves. */
export async function scanRsyslogConfig(fs: FsRoot, opts: { exclude?: string[] } = {}): Promise<RsyslogScan> {
  const scan: RsyslogScan = {
    mainFile: RSYSLOG_MAIN,
    files: [],
    modules: new Set(),
    inputs: [],
    maxMessageSize: null,
    workDirectory: null,
    includesDropins: false,
    dropinDir: RSYSLOG_DROPIN_DIR,
  };
  scan.files = await readConfigTree(fs, RSYSLOG_MAIN, {
    exclude: opts.exclude,
    includes: (text, file) => scanRsyslogText(text, file, scan),
    onInclude: (from, pattern) => {
      if (from === RSYSLOG_MAIN && path.dirname(pattern) === RSYSLOG_DROPIN_DIR) scan.includesDropins = true;
    },
  });
  scan.omrelp = await hasRsyslogModule(fs, 'omrelp');
  return scan;
}

/** rsyslog loads modules from its build's module directory: Debian's multiarch one, /usr/lib64 or /usr/lib. */
export async function hasRsyslogModule(fs: FsRoot, name: string): Promise<boolean> {
  const multiarch = (await fs.readdir('/usr/lib')).filter((d) => /-linux-gnu/.test(d)).map((d) => `/usr/lib/${d}/rsyslog`);
  for (const dir of [...multiarch, '/usr/lib64/rsyslog', '/usr/lib/rsyslog']) {
    if (await fs.exists(`${dir}/${name}.so`)) return true;
  }
  return false;
}

/** Parses rsyslog's size notation (64k, 1m, 8192) into bytes. */
export function parseRsyslogSize(v: string | null): number | null {
  if (!v) return null;
  const m = /^(\d+)\s*([kmg]?)b?$/i.exec(v.trim());
  if (!m) return null;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}
