import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

// Issue 16's fault table, shared by the sandbox matrix (fault-matrix.test.ts) and the VM rows (test/vm): what each
// fault must make `troubleshoot` say, and the judge that reads the reports of one fault from a directory
// (F.json, F.fix.json, F.after.json).

export type Daemon = 'rsyslog' | 'syslog-ng';
export const BOTH: Daemon[] = ['rsyslog', 'syslog-ng'];

export interface Fault {
  id: string;
  daemons: Daemon[];
  /** How fault-matrix.sh injects it. */
  inject: string;
  /** Check ids that must fail (every other check passes, warns or skips). */
  fail: string[];
  /** ... where a daemon differs. */
  failOn?: Partial<Record<Daemon, string[]>>;
  /** Where the probes stop (`e2e.probes` details.stoppedAt); `delivered` when they arrive, `delivered-cut` when cut short. */
  stoppedAt: string;
  /** ... where a daemon differs. */
  stoppedAtOn?: Partial<Record<Daemon, string>>;
  /** The check that names the cause, and what its message and fix must say. */
  check: string;
  cause: RegExp;
  fix: RegExp;
  /** Whether `--fix --yes` can repair it; when not, it must not claim to. */
  fixable: boolean;
  /** Checks that must pass (not only not fail) once `--fix` has run. */
  passAfterFix?: string[];
}

const FWD_DOWN = ['forwarder.running', 'forwarder.admin', 'daemon.forwarding', 'e2e.probes'];

export const FAULTS: Fault[] = [
  {
    id: 'forwarder-down',
    daemons: BOTH,
    inject: 'forwarder and its supervisor killed',
    fail: FWD_DOWN,
    stoppedAt: 'forwarder-down',
    check: 'forwarder.running',
    cause: /no forwarder process|not running/,
    fix: /troubleshoot --fix|sentinel-cef install/,
    fixable: true,
  },
  {
    id: 'forwarder-frozen',
    daemons: BOTH,
    inject: 'forwarder stopped with SIGSTOP',
    fail: ['forwarder.running', 'forwarder.admin', 'e2e.probes'],
    stoppedAt: 'forwarder-hung',
    check: 'forwarder.running',
    cause: /alive but hung: stopped by a signal/,
    fix: /kills pid \d+/,
    fixable: true,
  },
  {
    id: 'forwarder-misconfigured',
    daemons: BOTH,
    inject: 'an unparsable listen address in forwarder.json, forwarder restarted on it',
    fail: ['forwarder.config', ...FWD_DOWN],
    stoppedAt: 'forwarder-down',
    check: 'forwarder.config',
    cause: /a listen address must be tcp:/,
    fix: /correct \/etc\/sentinel-cef\/forwarder\.json/,
    fixable: false,
  },
  {
    id: 'protocol-mismatch',
    daemons: BOTH,
    inject: 'forwarder listens on UDP only; the daemon sends TCP',
    fail: ['daemon.forwarding', 'e2e.probes'],
    stoppedAt: 'daemon-not-forwarding',
    check: 'daemon.forwarding',
    cause: /sends tcp to 127\.0\.0\.1:25226, but the forwarder listens there on udp only/,
    fix: /add "tcp:\/\/127\.0\.0\.1:25226" to "listen"/,
    fixable: false,
  },
  {
    id: 'daemon-down',
    daemons: BOTH,
    inject: 'syslog daemon stopped',
    fail: ['daemon.running', 'daemon.listening', 'e2e.probes'],
    stoppedAt: 'daemon-not-receiving',
    check: 'daemon.running',
    cause: /installed but not running/,
    fix: /start it/,
    fixable: true,
  },
  {
    id: 'dropin-missing',
    daemons: BOTH,
    inject: 'our drop-in deleted, daemon restarted',
    fail: ['daemon.dropin', 'daemon.listening', 'daemon.forwarding', 'e2e.probes'],
    stoppedAt: 'daemon-not-receiving',
    check: 'daemon.dropin',
    cause: /is missing/,
    fix: /sentinel-cef install/,
    fixable: true,
  },
  {
    id: 'dropin-altered',
    daemons: BOTH,
    inject: 'our drop-in edited to forward to 25299, daemon restarted',
    fail: ['daemon.dropin', 'daemon.forwarding', 'e2e.probes'],
    stoppedAt: 'daemon-not-forwarding',
    check: 'daemon.dropin',
    cause: /does not forward to the forwarder port 25226|differs from what install renders/,
    fix: /re-run `sentinel-cef install`/,
    fixable: true,
  },
  {
    id: 'include-removed',
    daemons: ['rsyslog'],
    inject: 'the $IncludeConfig of rsyslog.d removed from rsyslog.conf, rsyslog restarted',
    fail: ['daemon.dropin', 'daemon.listening', 'e2e.probes'],
    stoppedAt: 'daemon-not-receiving',
    check: 'daemon.dropin',
    cause: /does not include \/etc\/rsyslog\.d\/\*\.conf/,
    fix: /adds "\$IncludeConfig \/etc\/rsyslog\.d\/\*\.conf" to \/etc\/rsyslog\.conf before its first rule/,
    // Before the distribution's rules: after --fix, CEF no longer lands in /var/log/syslog as well.
    passAfterFix: ['system.duplicates'],
    fixable: true,
  },
  {
    id: 'port-taken',
    daemons: BOTH,
    inject: 'another program binds 514/tcp+udp before the daemon starts',
    fail: ['daemon.listening', 'e2e.probes'],
    failOn: { 'syslog-ng': ['daemon.running', 'daemon.listening', 'e2e.probes'] },
    stoppedAt: 'daemon-not-receiving',
    check: 'daemon.listening',
    cause: /held by another program: .*node pid \d+/,
    fix: /stop that program/,
    fixable: false,
  },
  {
    id: 'sink-eisdir',
    daemons: BOTH,
    inject: 'a directory where the file sink writes (EISDIR)',
    fail: ['forwarder.delivery', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'forwarder.delivery',
    cause: /EISDIR/,
    fix: /is a directory, not a file/,
    fixable: false,
  },
  {
    id: 'sink-eperm',
    daemons: BOTH,
    inject: "the file sink's directory owned by root, 0755: the forwarder exits at startup",
    fail: FWD_DOWN,
    stoppedAt: 'forwarder-down',
    check: 'forwarder.running',
    cause: /keeps exiting\b.*cannot write under/,
    fix: /chown sentinel-cef: /,
    fixable: false,
  },
  {
    id: 'queue-unwritable',
    daemons: BOTH,
    inject: 'the queue directory chowned to root, 0700: the forwarder exits at startup',
    fail: FWD_DOWN,
    stoppedAt: 'forwarder-down',
    check: 'forwarder.running',
    cause: /cannot write \/var\/lib\/sentinel-cef\/\S*queue/,
    fix: /chown -R sentinel-cef: /,
    fixable: true,
  },
  {
    id: 'rate-limit',
    daemons: BOTH,
    inject: 'a rate limit edited into our drop-in (rsyslog ratelimit.* on imudp, syslog-ng throttle(100))',
    fail: ['daemon.dropin'],
    stoppedAt: 'delivered',
    check: 'daemon.rate-limit',
    cause: /keeps 100 messages per/,
    fix: /ratelimit\.interval="0"|remove throttle\(100\)/,
    fixable: true,
  },
  {
    id: 'message-size',
    daemons: BOTH,
    inject: 'the daemon limits messages to 2 KiB; probes of 4000 bytes (--probe-size 4000)',
    fail: ['daemon.max-message-size', 'e2e.probes'],
    stoppedAt: 'delivered-cut',
    check: 'daemon.max-message-size',
    cause: /2 KiB/,
    fix: /\$MaxMessageSize|log-msg-size\(65536\)/,
    fixable: false,
  },
  {
    id: 'duplicates',
    daemons: BOTH,
    inject: 'a rule that writes everything, CEF too, to /var/log/syslog',
    fail: [],
    stoppedAt: 'delivered',
    check: 'system.duplicates',
    cause: /also landed in \/var\/log\/syslog/,
    fix: /05-everything\.conf|guard/,
    fixable: false,
  },
  {
    id: 'legacy-agent',
    daemons: BOTH,
    inject: "an OMS agent's leftovers: /etc/opt/microsoft/omsagent and its CEF rule",
    fail: ['system.legacy-agents'],
    stoppedAt: 'delivered',
    check: 'system.legacy-agents',
    cause: /OMS agent files/,
    fix: /remove the retired OMS agent/,
    fixable: false,
  },
  {
    id: 'custom-port',
    daemons: BOTH,
    inject: 'installed with --port 1514 --protocol tcp, then the drop-in edited to 1515',
    fail: ['daemon.dropin', 'daemon.listening', 'e2e.probes'],
    stoppedAt: 'daemon-not-receiving',
    check: 'daemon.dropin',
    cause: /differs from what install renders/,
    fix: /re-run `sentinel-cef install`/,
    fixable: true,
  },
  {
    id: 'firewall-iptables',
    daemons: BOTH,
    inject: 'iptables: ACCEPT 22/tcp, then DROP 514/tcp and DROP 514/udp in INPUT',
    fail: ['system.firewall', 'e2e.probes'],
    // Probes go over each family the daemon listens on: the IPv4 ones stop at these rules on both daemons.
    stoppedAt: 'daemon-not-receiving',
    check: 'system.firewall',
    cause: /dropped by rule 2 of chain INPUT/,
    fix: /iptables -I INPUT .*514.* ACCEPT.*lost at reboot/,
    fixable: true,
  },
  {
    id: 'firewall-nft',
    daemons: BOTH,
    inject: 'nftables: table inet filter, chain input: accept 22/tcp, drop 514/tcp, drop 514/udp',
    fail: ['system.firewall', 'e2e.probes'],
    stoppedAt: 'daemon-not-receiving',
    check: 'system.firewall',
    cause: /dropped by rule handle \d+ of chain input in table inet filter/,
    fix: /nft insert rule inet filter input tcp dport 514 accept.*lost at reboot/,
    fixable: true,
  },
  {
    id: 'firewall-ip6tables',
    daemons: BOTH,
    inject: 'ip6tables only: ACCEPT 22/tcp, then DROP 514/tcp and DROP 514/udp in INPUT (IPv4 open)',
    fail: ['system.firewall', 'e2e.probes'],
    // Both daemons listen on IPv6 too and are probed over ::1, which these rules drop.
    stoppedAt: 'daemon-not-receiving',
    check: 'system.firewall',
    cause: /514\/tcp over IPv6 is dropped by rule 2 of chain INPUT/,
    fix: /ip6tables -I INPUT 1 -p tcp --dport 514 -j ACCEPT.*lost at reboot/,
    fixable: true,
  },
  {
    id: 'sink-disk-full',
    daemons: BOTH,
    inject: "the file sink's filesystem full (a 1 MiB tmpfs, filled), forwarder restarted",
    fail: ['forwarder.delivery', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'forwarder.delivery',
    cause: /ENOSPC/,
    fix: /free space/,
    fixable: false,
  },
  {
    id: 'queue-disk-full',
    daemons: BOTH,
    inject: "the queue's filesystem full (a 1 MiB tmpfs over the queue directory, filled), forwarder restarted",
    // The forwarder pauses its intake (ENOSPC): the daemon keeps the probes.
    fail: ['forwarder.queue', 'system.disk', 'e2e.probes'],
    stoppedAt: 'daemon-not-forwarding',
    check: 'system.disk',
    cause: /\/var\/lib\/sentinel-cef\/\S*queue 0 B free/,
    fix: /the queue's filesystem is full: free space there \(`df -h \/var\/lib\/sentinel-cef\/\S*queue`\)/,
    fixable: false,
  },
  {
    id: 'sink-403',
    daemons: BOTH,
    inject: 'Data Collector sink (mock workspace): every post refused with 403 (a rotated key)',
    fail: ['forwarder.delivery', 'azure.credentials', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'azure.credentials',
    cause: /refused with HTTP 403/,
    fix: /store the current primary key with `sentinel-cef install`/,
    fixable: false,
  },
  {
    id: 'sink-503',
    daemons: BOTH,
    inject: 'Data Collector sink (mock workspace): every post answered 503 with Retry-After: 30',
    fail: ['forwarder.delivery', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'forwarder.delivery',
    cause: /503/,
    fix: /server error: the forwarder keeps the rows queued and retries/,
    fixable: false,
  },
  {
    id: 'clock-skew',
    daemons: BOTH,
    inject: "Data Collector sink (mock workspace): this machine's clock 20 minutes behind the service's",
    fail: ['azure.clock', 'forwarder.delivery', 'azure.credentials', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'azure.clock',
    cause: /local clock is \d+s behind .*refused deliveries .* follow from it/,
    fix: /sync the clock with NTP/,
    fixable: false,
  },
  // Logs Ingestion (the mock's token authority and endpoint): the sink's faults do not depend on the daemon.
  {
    id: 'li-token-refused',
    daemons: ['rsyslog'],
    inject: 'Logs Ingestion: the client secret in its file rotated away (the authority answers invalid_client)',
    fail: ['forwarder.delivery', 'azure.credentials', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'azure.credentials',
    cause: /AADSTS7000215/,
    fix: /client secret is wrong or expired/,
    fixable: false,
  },
  {
    id: 'li-401',
    daemons: ['rsyslog'],
    inject: 'Logs Ingestion: the endpoint refuses the token with 401',
    fail: ['forwarder.delivery', 'azure.credentials', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'forwarder.delivery',
    cause: /HTTP 401\): .*InvalidToken/,
    fix: /the token was refused: check tenant, client id and secret/,
    fixable: false,
  },
  {
    id: 'li-403',
    daemons: ['rsyslog'],
    inject: 'Logs Ingestion: 403 OperationFailed, the app has no role on the DCR',
    fail: ['forwarder.delivery', 'azure.credentials', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'forwarder.delivery',
    cause: /HTTP 403\): .*OperationFailed/,
    fix: /grant the app "Monitoring Metrics Publisher" on the DCR/,
    fixable: false,
  },
  {
    id: 'li-wrong-dcr',
    daemons: ['rsyslog'],
    inject: 'Logs Ingestion: a DCR immutable id the endpoint does not know (404 NotFound)',
    fail: ['forwarder.delivery', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'forwarder.delivery',
    cause: /HTTP 404\): .*NotFound: Data collection rule with immutable Id not found/,
    fix: /wrong DCR immutable id, stream or endpoint: compare the config with `sentinel-cef dcr`/,
    fixable: false,
  },
  {
    id: 'li-wrong-stream',
    daemons: ['rsyslog'],
    inject: 'Logs Ingestion: a stream the DCR does not declare (404 InvalidStream)',
    fail: ['forwarder.delivery', 'e2e.probes'],
    stoppedAt: 'forwarder-not-delivering',
    check: 'forwarder.delivery',
    cause: /HTTP 404\): .*InvalidStream: Stream Custom-NotInTheDcr is not declared/,
    fix: /wrong DCR immutable id, stream or endpoint: compare the config with `sentinel-cef dcr`/,
    fixable: false,
  },
];

export interface Check {
  id: string;
  status: 'pass' | 'warn' | 'fail' | 'skip';
  message: string;
  fix?: string;
  details?: Record<string, unknown> & { stoppedAt?: string; fix?: { applied: boolean; description: string; error?: string } };
}
export interface Report {
  ok: boolean;
  checks: Check[];
}

/** What the matrix concluded for one fault on one daemon. */
export interface Verdict {
  fault: string;
  daemon: Daemon;
  /** Failing checks, stoppedAt, cause and fix all as expected. */
  diagnosed: boolean;
  /** --fix applied at least one fix. */
  offered: boolean;
  /** ... and the following troubleshoot was green with its probes delivered. */
  repaired: boolean;
  /** A check reported fixed (passing after its fix) that fails again in the following run, or a green --fix run on an unfixable fault. */
  lies: string[];
  problems: string[];
  ms: number;
}

export function judge(dir: string, daemon: Daemon, f: Fault): Verdict {
  const read = (name: string): Report => {
    const text = readFileSync(path.join(dir, `${name}.json`), 'utf8');
    try {
      return JSON.parse(text) as Report;
    } catch {
      const err = existsSync(path.join(dir, `${name}.err`)) ? readFileSync(path.join(dir, `${name}.err`), 'utf8') : '';
      throw new Error(`${daemon} ${name}.json is not JSON (stderr: ${err.slice(0, 500)}): ${text.slice(0, 300)}`);
    }
  };
  const has = (name: string) => existsSync(path.join(dir, `${name}.json`));
  const ms = ['', '.fix', '.after']
    .filter((x) => has(`${f.id}${x}`))
    .reduce((a, x) => a + Number(readFileSync(path.join(dir, `${f.id}${x}.ms`), 'utf8')), 0);
  const r = read(f.id);
  const fixed = read(`${f.id}.fix`);
  // fault-matrix.sh runs no third troubleshoot after a --fix run that still fails: its final state is the answer.
  const after = has(`${f.id}.after`) ? read(`${f.id}.after`) : fixed;
  const problems: string[] = [];
  const failing = r.checks
    .filter((c) => c.status === 'fail')
    .map((c) => c.id)
    .sort();
  const want = [...(f.failOn?.[daemon] ?? f.fail)].sort();
  if (JSON.stringify(failing) !== JSON.stringify(want)) {
    // A check cut off by --timeout is a warning, not a failure: name it, so a slow machine is told from a wrong verdict.
    const cut = r.checks.filter((c) => c.details?.unfinished).map((c) => c.id);
    problems.push(
      `failing checks ${failing.join(', ') || 'none'}; expected ${want.join(', ') || 'none'}${cut.length ? ` (unfinished within --timeout: ${cut.join(', ')})` : ''}`,
    );
  }
  const probes = r.checks.find((c) => c.id === 'e2e.probes');
  // Every failing probe run names its stage (probes that all arrived, some cut short: `delivered-cut`).
  const stopped = probes?.status === 'pass' ? 'delivered' : (probes?.details?.stoppedAt ?? probes?.status);
  const wantStop = f.stoppedAtOn?.[daemon] ?? f.stoppedAt;
  if (stopped !== wantStop) problems.push(`stoppedAt ${stopped}; expected ${wantStop}`);
  const c = r.checks.find((x) => x.id === f.check);
  if (!c || c.status === 'pass' || c.status === 'skip') problems.push(`${f.check} is ${c?.status ?? 'missing'}: ${c?.message}`);
  else {
    if (!f.cause.test(c.message)) problems.push(`${f.check} cause "${c.message}" does not match ${f.cause}`);
    if (!f.fix.test(c.fix ?? '')) problems.push(`${f.check} fix "${c.fix}" does not match ${f.fix}`);
  }
  const diagnosed = problems.length === 0;

  const attempted = fixed.checks.filter((x) => x.details?.fix);
  const offered = attempted.length > 0;
  const afterProbes = after.checks.find((x) => x.id === 'e2e.probes');
  const repaired = offered && after.ok && afterProbes?.status === 'pass' && after.checks.every((x) => x.status !== 'fail');
  const lies: string[] = [];
  for (const a of attempted) {
    const later = after.checks.find((x) => x.id === a.id);
    if (a.details!.fix!.applied && a.status === 'pass' && later?.status === 'fail')
      lies.push(`${a.id} reported fixed, fails again: ${later.message}`);
  }
  if (fixed.ok && !after.ok)
    lies.push(
      `--fix run says ok, the next run fails: ${after.checks
        .filter((x) => x.status === 'fail')
        .map((x) => x.id)
        .join(', ')}`,
    );
  // (A fault that is only a warning leaves every run ok: nothing is claimed there.)
  if (!f.fixable && fixed.ok && !r.ok) lies.push('--fix run says ok on a fault it cannot fix');
  if (f.fixable && !repaired)
    problems.push(
      `not repaired by --fix (offered: ${attempted.map((a) => `${a.id}: ${a.details!.fix!.description}${a.details!.fix!.error ? ` (${a.details!.fix!.error})` : ''}`).join('; ') || 'nothing'}); after: ${after.checks
        .filter((x) => x.status === 'fail')
        .map((x) => `${x.id}: ${x.message}`)
        .join('; ')}`,
    );
  for (const id of f.passAfterFix ?? []) {
    const later = after.checks.find((x) => x.id === id);
    if (later?.status !== 'pass') problems.push(`${id} is ${later?.status ?? 'missing'} after --fix: ${later?.message}`);
  }
  if (!f.fixable && repaired) problems.push('repaired by --fix, but the table says it cannot be: update the table');
  problems.push(...lies);
  return { fault: f.id, daemon, diagnosed, offered, repaired, lies, problems, ms };
}
