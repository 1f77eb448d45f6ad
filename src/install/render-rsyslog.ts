import { VERSION } from '../version.js';
import { loadTemplate, renderTemplate } from './templates.js';
import { parseRsyslogSize, type RsyslogScan } from './rsyslog-config.js';
import { portValue, rainerString } from './config-escape.js';
import { stripConfigComments } from './config-text.js';
import type { Ipv6Mode } from '../system/ipv6.js';

export type Protocol = 'tcp' | 'udp' | 'both';

export interface DaemonRenderOptions {
  port: number;
  protocol: Protocol;
  forwarderPort: number;
  /** Upper bound of the daemon's on-disk queue for the forwarder, in bytes. */
  queueMaxBytes?: number;
  /** How the host takes IPv6 (detectIpv6); rsyslog's inputs bind every family on their own. Default none. */
  ipv6?: Ipv6Mode;
  /**
   * rsyslog only: the forwarder's intake state file (READY/SUSPENDED), read by the action before each batch
   * (action.externalstate.file, rsyslog 8.1904+). Omitted: the action finds a stopped forwarder by sending.
   */
  intakeStateFile?: string | null;
  /** install --durable: the daemon keeps what it accepted on disk, synced, until the forwarder has it. */
  durable?: boolean;
  /**
   * rsyslog only: the transport install recorded, rendered even when the omrelp module is no longer there (troubleshoot
   * reports that): the forwarder listens for this one. Omitted: RELP when omrelp is installed, else TCP.
   */
  transport?: 'relp' | 'tcp';
}

export interface RenderedDropin {
  path: string;
  content: string;
  warnings: string[];
  /** What the drop-in adds; reused inputs are not repeated. */
  added: { modules: string[]; inputs: string[] };
  /** How the daemon sends to the forwarder: RELP (acknowledged) when rsyslog has omrelp, else TCP. */
  transport?: 'relp' | 'tcp';
}

/** Sorted before Ubuntu's 50-default.conf so `stop` runs before the default rules. */
export const RSYSLOG_DROPIN = '/etc/rsyslog.d/10-sentinel-cef.conf';

const INPUT_MODULE = { udp: 'imudp', tcp: 'imtcp' } as const;
const CEF_MIN_MESSAGE = 8 * 1024;

/** action.externalstate.file arrived in rsyslog 8.1904; older versions reject the parameter. */
export function rsyslogHasExternalState(version: string | null | undefined): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version ?? '');
  return m !== null && (Number(m[1]) > 8 || (Number(m[1]) === 8 && Number(m[2]) >= 1904));
}

/** Rendered only with the state file; resumeInterval="5" is how soon rsyslog notices READY (default 30 s). */
const EXTERNAL_STATE_COMMENT = [
  '#',
  '# The forwarder writes SUSPENDED to {{file}} before it stops (and systemd after it dies), READY once it listens.',
  '# rsyslog reads it before each batch: while SUSPENDED the batch stays in the queue, which is saved when rsyslog',
  '# stops. Without it the first batch after the forwarder stopped is held only in memory by the retrying action',
  '# and lost if rsyslog restarts then (up to 128 events).',
].join('\n');

/**
 * In memory, spilling to disk only past 40,000 (a stopped forwarder): fast, but a power cut loses what it holds.
 * checkpointInterval: the disk part's state is saved every 100 messages it hands on; rsyslog otherwise saves it
 * only at shutdown, and a power cut after a spill made it send again what it had long delivered (measured in
 * docs/RELIABILITY.md, "Scale-out on systemd machines").
 */
const MEMORY_ACTION_QUEUE =
  'queue.type="LinkedList" queue.size="50000" queue.highWatermark="40000" queue.lowWatermark="10000" queue.checkpointInterval="100"';
/**
 * Template changes since drop-ins were first written, newest first; each `undo` turns a render into the one before
 * it. troubleshoot takes a drop-in equal to today's render with the first N undone for an older install's, not a
 * hand edit, and leaves its rewrite (an rsyslog restart) to the operator. The next template change is one entry.
 */
export const RSYSLOG_TEMPLATE_CHANGES: ReadonlyArray<{ added: string; undo(text: string): string }> = [
  { added: 'queue.checkpointInterval', undo: (t) => t.replaceAll(' queue.checkpointInterval="100"', '') },
];

/**
 * Durable: a disk-only queue, each message synced and the queue's state saved after each (checkpointInterval 1:
 * rsyslog otherwise saves it only at shutdown, and a power cut orphans everything after the last save). The size
 * in messages is not the limit: maxDiskSpace is (rsyslog warns at start that the size is "very large", a warning
 * meant for memory queues).
 */
const DISK_QUEUE = 'queue.type="Disk" queue.size="10000000" queue.checkpointInterval="1" queue.syncQueueFiles="on"';
/** What --durable adds in front of the action: the main queue, which every input fills, on disk as well. */
const DURABLE_MAIN_QUEUE = [
  '#',
  '# Durable (install --durable): rsyslog writes each message to disk and syncs it before it reads the next, in the',
  '# main queue (every input, before the rules) and in the action queue below, so a power cut loses nothing it',
  '# accepted; in memory it lost 15,266 of a 20,000-line burst. It costs throughput, for every message this rsyslog',
  '# handles (docs/RELIABILITY.md).',
].join('\n');

/** The legacy form: every rsyslog version reads it (include() needs 8.33). */
export const RSYSLOG_INCLUDE_LINE = '$IncludeConfig /etc/rsyslog.d/*.conf';

/** What install adds to rsyslog.conf, whole lines, nothing else changed (uninstall puts the original back). */
export const RSYSLOG_INCLUDE_BLOCK = `# Added by sentinel-cef: read the drop-ins in /etc/rsyslog.d (the CEF route is one) before the rules.\n${RSYSLOG_INCLUDE_LINE}\n`;

/** Statements that configure rather than route: the include goes after them, before the first rule. */
const CONFIG_STATEMENT =
  /^(?:\$(?!RuleSet\b)|(?:module|global|input|main_queue|template|include|lookup_table|timezone|parser|license|dyn_stats|percentile_stats|ratelimit)\s*\()/i;

/** Brackets opened minus closed on one comment-free line, outside quoted strings. */
function bracketBalance(line: string): number {
  let n = 0;
  let quote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === '"') quote = false;
    } else if (c === '"') quote = true;
    else if (c === '(' || c === '{') n++;
    else if (c === ')' || c === '}') n--;
  }
  return n;
}

/**
 * rsyslog.conf with the include of rsyslog.d added: without it rsyslog never reads our drop-in. It goes after the
 * module and global directives and before the first rule, where Debian has it: rsyslog runs rules in the order it
 * reads them, so our filter must stop CEF before the distribution's `*.*` rules write it to /var/log/syslog. The
 * rest of the file is kept byte for byte (RSYSLOG_INCLUDE_BLOCK is inserted at a line start); a file without rules
 * gets it at the end.
 */
export function insertRsyslogInclude(main: string): string {
  const lines = stripConfigComments(main).split('\n');
  let depth = 0;
  let inConfig = false;
  let lastConfig = -1;
  let firstRule = -1;
  for (let i = 0; i < lines.length && firstRule < 0; i++) {
    const t = lines[i].trim();
    const open = depth;
    depth = Math.max(0, depth + bracketBalance(lines[i]));
    // Inside a multi-line statement, or a template's { ... } body starting on its own line.
    if (open > 0 || (inConfig && t.startsWith('{'))) {
      if (inConfig) lastConfig = i;
      continue;
    }
    if (!t) continue;
    inConfig = CONFIG_STATEMENT.test(t);
    if (inConfig) lastConfig = i;
    else firstRule = i;
  }
  if (firstRule < 0) return `${main.length && !main.endsWith('\n') ? `${main}\n` : main}${RSYSLOG_INCLUDE_BLOCK}`;
  const at = lastConfig >= 0 ? lastConfig + 1 : firstRule;
  const offset = main
    .split('\n')
    .slice(0, at)
    .reduce((n, l) => n + l.length + 1, 0);
  return `${main.slice(0, offset)}${RSYSLOG_INCLUDE_BLOCK}${main.slice(offset)}`;
}

export function protocolsOf(p: Protocol): Array<'udp' | 'tcp'> {
  return p === 'both' ? ['udp', 'tcp'] : [p];
}

export function renderRsyslogDropin(scan: RsyslogScan, opts: DaemonRenderOptions): RenderedDropin {
  const port = portValue('the rsyslog drop-in', opts.port);
  const forwarderPort = rainerString('the rsyslog drop-in', String(portValue('the rsyslog drop-in', opts.forwarderPort)));
  const warnings: string[] = [];
  const modules: string[] = [];
  const inputs: string[] = [];
  for (const proto of protocolsOf(opts.protocol)) {
    const existing = scan.inputs.find(
      (i) => i.port === opts.port && (proto === 'udp' ? i.type === 'imudp' : i.type === 'imtcp' || i.type === 'imptcp'),
    );
    if (existing) {
      if (existing.ruleset) {
        warnings.push(
          `${existing.file} binds its ${proto} input on port ${opts.port} to ruleset "${existing.ruleset}": CEF arriving there ` +
            `bypasses our filter unless that ruleset calls RSYSLOG_DefaultRuleset`,
        );
      }
      continue; // Reused: a second input on the same port would fail to bind.
    }
    const mod = INPUT_MODULE[proto];
    if (!scan.modules.has(mod)) modules.push(`module(load="${mod}")`);
    inputs.push(`input(type="${mod}" port="${rainerString('the rsyslog drop-in', String(port))}")`);
  }
  const maxSize = parseRsyslogSize(scan.maxMessageSize);
  if (maxSize === null || maxSize < 64 * 1024) {
    warnings.push(
      `rsyslog's maximum message size is ${scan.maxMessageSize ?? '8k (default)'}: longer CEF events are truncated. ` +
        `Add global(maxMessageSize="64k") at the top of ${scan.mainFile}, before any input (we do not edit the main file)`,
    );
  }
  if (maxSize !== null && maxSize < CEF_MIN_MESSAGE) warnings.push(`maxMessageSize ${scan.maxMessageSize} is below 8k`);
  const relp = opts.transport ? opts.transport === 'relp' : scan.omrelp === true;
  if (relp && !scan.modules.has('omrelp')) modules.push('module(load="omrelp")');
  const queueMax = opts.queueMaxBytes ?? 1024 ** 3;
  const queueMaxDiskSpace = `${Math.max(1, Math.round(queueMax / 1024 ** 2))}m`;
  // A disk queue needs a spool directory: the global one when the distribution sets it, else our own.
  const spoolDirectory = scan.workDirectory ? '' : ' queue.spoolDirectory="/var/spool/rsyslog"';
  const content = renderTemplate(loadTemplate('rsyslog/sentinel-cef.conf'), {
    version: VERSION,
    port,
    forwarderPort,
    outputModule: relp ? 'omrelp' : 'omfwd',
    outputOptions: relp ? '' : ' protocol="tcp" TCP_Framing="octet-counted"',
    modules: modules.join('\n'),
    inputs: inputs.join('\n'),
    queueMaxDiskSpace,
    spoolDirectory,
    externalStateComment: opts.intakeStateFile ? EXTERNAL_STATE_COMMENT.replace('{{file}}', opts.intakeStateFile) : '',
    durableMainQueue: opts.durable ? durableMainQueue(scan, spoolDirectory, queueMaxDiskSpace, warnings) : '',
    actionQueue: opts.durable ? DISK_QUEUE : MEMORY_ACTION_QUEUE,
    externalState: opts.intakeStateFile
      ? `\n           action.resumeInterval="5" action.externalstate.file="${rainerString('the rsyslog drop-in', opts.intakeStateFile)}"`
      : '',
  });
  return { path: RSYSLOG_DROPIN, content, warnings, added: { modules, inputs }, transport: relp ? 'relp' : 'tcp' };
}

/** The main queue on disk, unless the configuration already sets one (rsyslog accepts a single main_queue()). */
function durableMainQueue(scan: RsyslogScan, spoolDirectory: string, maxDiskSpace: string, warnings: string[]): string {
  if (scan.mainQueue) {
    warnings.push(
      `${scan.mainQueue} configures rsyslog's main queue, so --durable leaves it as it is: only the forwarder's action queue ` +
        `is on disk, and what the main queue holds in memory at a power cut is lost`,
    );
    return '';
  }
  return (
    `${DURABLE_MAIN_QUEUE}\nmain_queue(${DISK_QUEUE} queue.filename="sentinel-cef-main"\n` +
    `           queue.saveOnShutdown="on" queue.maxDiskSpace="${maxDiskSpace}"${spoolDirectory})`
  );
}
