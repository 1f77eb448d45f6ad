import { VERSION } from '../version.js';
import { loadTemplate, renderTemplate } from './templates.js';
import { parseRsyslogSize, type RsyslogScan } from './rsyslog-config.js';
import { portValue, rainerString } from './config-escape.js';
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

/** The legacy form: every rsyslog version reads it (include() needs 8.33). */
export const RSYSLOG_INCLUDE_LINE = '$IncludeConfig /etc/rsyslog.d/*.conf';

/** rsyslog.conf with the include of rsyslog.d appended: without it rsyslog never reads our drop-in. */
export function appendRsyslogInclude(main: string): string {
  const body = main.length && !main.endsWith('\n') ? `${main}\n` : main;
  return `${body}\n# Added by sentinel-cef: read the drop-ins in /etc/rsyslog.d (the CEF route is one).\n${RSYSLOG_INCLUDE_LINE}\n`;
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
  const relp = scan.omrelp === true;
  if (relp && !scan.modules.has('omrelp')) modules.push('module(load="omrelp")');
  const queueMax = opts.queueMaxBytes ?? 1024 ** 3;
  const content = renderTemplate(loadTemplate('rsyslog/sentinel-cef.conf'), {
    version: VERSION,
    port,
    forwarderPort,
    outputModule: relp ? 'omrelp' : 'omfwd',
    outputOptions: relp ? '' : ' protocol="tcp" TCP_Framing="octet-counted"',
    modules: modules.join('\n'),
    inputs: inputs.join('\n'),
    queueMaxDiskSpace: `${Math.max(1, Math.round(queueMax / 1024 ** 2))}m`,
    // A disk queue needs a spool directory: the global one when the distribution sets it, else our own.
    spoolDirectory: scan.workDirectory ? '' : ' queue.spoolDirectory="/var/spool/rsyslog"',
    externalStateComment: opts.intakeStateFile ? EXTERNAL_STATE_COMMENT.replace('{{file}}', opts.intakeStateFile) : '',
    externalState: opts.intakeStateFile
      ? `\n           action.resumeInterval="5" action.externalstate.file="${rainerString('the rsyslog drop-in', opts.intakeStateFile)}"`
      : '',
  });
  return { path: RSYSLOG_DROPIN, content, warnings, added: { modules, inputs }, transport: relp ? 'relp' : 'tcp' };
}
