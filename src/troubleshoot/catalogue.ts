/**
 * What each check id and each `stoppedAt` value means, for the README tables (scripts/gen-troubleshoot-docs.ts
 * writes them; a test fails when the README is stale or an id has no entry).
 */
import type { ProbeStage } from './checks/e2e.js';
import { CHECK_GROUPS } from './types.js';
import { HEALTH_RETRY_MS, HEALTH_TIMEOUT_MS } from './context.js';

/** Every stage a probe run can stop at; the type makes a new stage without an entry a compile error. */
export const STOPPED_AT_DOCS: Record<Exclude<ProbeStage, 'delivered'>, string> = {
  'daemon-not-receiving':
    'never reached the syslog daemon: nothing listens, another program holds the port (named with its pid), or a firewall rule drops it (named: "rule N of chain C")',
  'daemon-not-forwarding':
    'the daemon took it but did not pass it on: no connection to the forwarder port, or it sends on a transport the forwarder does not listen on',
  'forwarder-down': 'nothing listens on the forwarder port (the daemon queues CEF meanwhile)',
  'forwarder-hung': 'the forwarder process exists but is stopped or does not answer its admin endpoint in time',
  'forwarder-not-delivering':
    "the forwarder received it; the sink refused it or has not accepted it yet (with the sink's error and HTTP status)",
  'delivered-cut':
    'every probe was delivered, but a hop cut some short (what arrived differs from what was sent): `daemon.max-message-size` names the hop and the setting',
  unknown: 'the admin endpoint could not be asked (disabled in the config, or answering errors), so the probe could not be followed',
};

export const CHECK_DOCS: Record<string, string> = {
  'forwarder.installed': 'the forwarder bundle and its config exist',
  'forwarder.unit':
    'under systemd, the installed unit is what install renders from its record (an older install lacks the ordering against rsyslog); `--fix` rewrites it, reloads systemd and re-enables it, rolled back on failure',
  'forwarder.config': 'the config parses and validates; names the sink (warns on the retired Data Collector API)',
  'forwarder.secret': 'the key, client secret or certificate file is present, non-empty and 0600',
  'forwarder.running':
    'the service or supervised process runs; a stopped (SIGSTOP) or unresponsive process is reported as hung, and `--fix` kills and restarts it',
  'forwarder.admin': `the admin endpoint answers \`/healthz\` within ${HEALTH_TIMEOUT_MS / 1000} s, or within ${HEALTH_RETRY_MS / 1000} s more on a second try after a timeout (a hung forwarder fails both)`,
  'forwarder.queue': 'queue depth and oldest record age; fails when intake pauses',
  'forwarder.dead-letters': 'rows the sink refused for good, with the last reason',
  'forwarder.delivery': 'the last delivery to the sink, with the fix for its error (a refusal caused by the clock points at `azure.clock`)',
  'azure.endpoint': 'DNS, TCP and TLS to the sink endpoint, through HTTPS_PROXY unless NO_PROXY covers it',
  'azure.clock':
    "skew against the endpoint's Date header; over 5 min fails, and the 401/403s of the other checks are said to follow from it",
  'azure.credentials': 'Azure accepts the key or token (proven by an accepted delivery or probe)',
  'daemon.running': 'rsyslog or syslog-ng runs',
  'daemon.dropin': 'our drop-in is present and the same as install renders',
  'daemon.syntax': "the daemon's own config check passes",
  'daemon.listening': 'the daemon listens on the CEF port, TCP and UDP, on all addresses',
  'daemon.forwarding': 'the daemon is connected to the forwarder, on a transport the forwarder listens on',
  'daemon.max-message-size': "the daemon's maximum message size fits CEF",
  'daemon.rate-limit': 'no rate limit drops CEF bursts',
  'daemon.spool':
    "CEF left in rsyslog's disk queue or syslog-ng's reliable disk buffer; warns when it waits for a down forwarder or sits unchanged while the forwarder is up (rsyslog issue #2646)",
  'daemon.intake-state':
    "rsyslog only: the forwarder's intake state file (action.externalstate.file) does not say SUSPENDED while the forwarder runs, which would hold all CEF in rsyslog's queue; `--fix` restarts the forwarder",
  'system.firewall': 'firewalld, ufw, or the first matching iptables/nftables rule (with jumps) lets the CEF port in, per protocol',
  'system.selinux': 'SELinux labels the CEF and forwarder ports `syslogd_port_t`',
  'system.disk': 'free space for the queue and /var/log',
  'system.duplicates': 'CEF is not also collected as Syslog or written to a local log, naming the rule that does it',
  'system.legacy-agents': 'no OMS agent or AMA leftovers, no other program on 25226 or 28330',
  'e2e.probes': 'probes over TCP and UDP followed to the sink; `details.stoppedAt` says where they stopped',
  'e2e.readback':
    "with `--workspace`, the accepted probes read back from CommonSecurityLog (Logs Query API) with each hop's latency; a probe missing after `--readback-timeout` fails with the DCR's reason (undeclared columns, output stream, transform), copies in Syslog warn; a query that fails (no reader role, sign-in, throttled, 5xx, partial answer) could not verify the probes: listed in `unfinished`, exit 3",
  'e2e.capture': 'with `--capture`, tcpdump evidence of the probes on both ports',
};

const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The README tables, from the registry order of `ids` (run.ts CHECKS). */
export function renderTroubleshootTables(ids: string[]): string {
  const lines = ['Where a probe stops (`e2e.probes` → `details.stoppedAt`):', '', '| stoppedAt | meaning |', '| --- | --- |'];
  for (const [k, v] of Object.entries(STOPPED_AT_DOCS)) lines.push(`| \`${k}\` | ${cell(v)} |`);
  lines.push('', 'Check ids (stable):', '', '| id | checks |', '| --- | --- |');
  for (const g of CHECK_GROUPS) {
    for (const id of ids.filter((i) => i.startsWith(`${g}.`))) lines.push(`| \`${id}\` | ${cell(CHECK_DOCS[id] ?? '')} |`);
  }
  return `${lines.join('\n')}\n`;
}

export const README_MARKERS = [
  '<!-- troubleshoot-tables:start (scripts/gen-troubleshoot-docs.ts) -->',
  '<!-- troubleshoot-tables:end -->',
] as const;

/** The README with the section between the markers replaced. */
export function spliceReadme(readme: string, tables: string): string {
  const [a, b] = README_MARKERS;
  const i = readme.indexOf(a);
  const j = readme.indexOf(b);
  if (i < 0 || j < i) throw new Error(`README has no ${a} ... ${b} section`);
  return `${readme.slice(0, i + a.length)}\n${tables}${readme.slice(j)}`;
}
