import { dirname } from 'node:path';
import type { Context } from '../context.js';
import { LAYOUT } from '../layout.js';
import { deadLetterPath } from '../../config/load.js';
import type { CheckOutcome, SafeFix } from '../types.js';
import { formatBytes } from '../advice.js';
import { stripConfigComments } from '../../install/config-text.js';
import { runProbes } from './e2e.js';
import { detectFirewall, planFirewallFix } from '../../system/firewall.js';
import { detectSelinux, planSelinuxFix } from '../../system/selinux.js';
import { firewallVerdicts } from '../facts.js';

const G = 'system' as const;

interface FirewallFinding {
  kind: 'firewalld' | 'ufw' | 'iptables' | 'nftables' | 'none';
  blocked: string[];
  allowed: string[];
  commands: string[][];
  /** Per blocked port: the rule (or policy) that drops it. */
  droppedBy?: Record<string, string>;
  /** Said when the commands do not survive a reboot, with how to make them. */
  persist?: string;
}

async function inspectFirewall(ctx: Context): Promise<FirewallFinding> {
  const port = ctx.opts.port;
  const want = [`${port}/tcp`, `${port}/udp`];
  const fw = await detectFirewall(ctx.deps.exec);
  if (fw.active && fw.kind !== 'none') {
    const blocked = want.filter((w) => !fw.allowed.includes(w));
    const specs = blocked.map((b) => ({ port: Number(b.split('/')[0]), protocol: b.split('/')[1] as 'tcp' | 'udp' }));
    return { kind: fw.kind, blocked, allowed: fw.allowed, commands: planFirewallFix(fw, specs) };
  }
  // Neither firewalld nor ufw: the first iptables/nftables rule that matches decides.
  const { kind, verdicts } = await firewallVerdicts(ctx);
  if (kind === 'none') return { kind: 'none', blocked: [], allowed: [], commands: [] };
  const ext = verdicts.filter((x) => x.packet.iface === 'ext');
  // One entry per protocol and deciding rule: an inet table's rule drops IPv4 and IPv6 alike and is said once;
  // a rule that drops IPv6 only (ip6tables, an ip6 table) is named "over IPv6".
  const sameInetRule = (x: (typeof ext)[number], y: (typeof ext)[number]) =>
    x.verdict.table?.family === 'inet' && y.verdict.table?.family === 'inet' && x.verdict.by === y.verdict.by;
  const label = (x: (typeof ext)[number]) =>
    x.packet.family === 6 && !ext.some((y) => y.packet.family !== 6 && y.packet.protocol === x.packet.protocol && sameInetRule(x, y))
      ? `${port}/${x.packet.protocol} over IPv6`
      : `${port}/${x.packet.protocol}`;
  const dropped = [...new Map(ext.filter((x) => x.verdict.action === 'drop').map((x) => [label(x), x])).values()];
  const droppedBy = Object.fromEntries(dropped.map((x) => [label(x), x.verdict.by]));
  const commands = dropped.map(({ packet: p, verdict: v }) =>
    v.table
      ? ['nft', 'insert', 'rule', v.table.family, v.table.name, v.chain, p.protocol, 'dport', String(port), 'accept']
      : [p.family === 6 ? 'ip6tables' : 'iptables', '-I', 'INPUT', '1', '-p', p.protocol, '--dport', String(port), '-j', 'ACCEPT'],
  );
  const v6 = commands.some((c) => c[0] === 'ip6tables');
  let persist: string | undefined;
  if (commands.length) {
    // netfilter-persistent saves the IPv4 and the IPv6 rules.
    if (kind === 'iptables' && (await ctx.deps.exec.which('netfilter-persistent'))) commands.push(['netfilter-persistent', 'save']);
    else if (kind === 'iptables' && (await ctx.stat('/etc/sysconfig/iptables'))) {
      if (commands.some((c) => c[0] === 'iptables')) commands.push(['service', 'iptables', 'save']);
      if (v6) commands.push(['service', 'ip6tables', 'save']);
    } else if (kind === 'iptables')
      persist = `rules added with ${v6 ? 'ip6tables' : 'iptables'} are lost at reboot: save them with \`${v6 ? 'ip6tables-save > /etc/iptables/rules.v6' : 'iptables-save > /etc/iptables/rules.v4'}\`${v6 && commands.some((c) => c[0] === 'iptables') ? ' and `iptables-save > /etc/iptables/rules.v4`' : ''} (package iptables-persistent)`;
    else
      persist =
        'rules added with nft are lost at reboot: add the same rule to /etc/nftables.conf (or save with `nft list ruleset > /etc/nftables.conf`)';
  }
  return {
    kind,
    blocked: dropped.map(label),
    allowed: [...new Set(ext.filter((x) => x.verdict.action === 'accept').map(label))],
    commands,
    droppedBy,
    persist,
  };
}

export async function checkFirewall(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'system.firewall', title: `Firewall allows port ${ctx.opts.port}`, group: G };
  const f = await inspectFirewall(ctx);
  const details = { firewall: f.kind, allowed: f.allowed, blocked: f.blocked, droppedBy: f.droppedBy };
  if (f.kind === 'none')
    return { ...base, status: 'pass', message: 'no active host firewall (firewalld, ufw, iptables, nftables)', details };
  if (f.blocked.length === 0) return { ...base, status: 'pass', message: `${f.kind} allows ${ctx.opts.port}/tcp and /udp`, details };
  const safeFix: SafeFix = {
    description: `open ${f.blocked.join(', ')} in ${f.kind}${f.persist ? ' (until reboot)' : ''}`,
    async apply() {
      for (const [cmd, ...args] of f.commands) {
        const r = await ctx.deps.exec.run(cmd, args, { timeoutMs: 30_000 });
        if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
      }
    },
  };
  const why = f.droppedBy
    ? f.blocked.map((b) => `${b} is dropped by ${f.droppedBy![b]}`).join('; ')
    : `${f.kind} blocks ${f.blocked.join(', ')}`;
  return {
    ...base,
    status: 'fail',
    message: `${why}: remote devices cannot reach the daemon`,
    fix: `${f.commands.map((c) => c.join(' ')).join(' && ')}${f.persist ? `; ${f.persist}` : ''}`,
    safeFix,
    details,
  };
}

export async function checkSelinux(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'system.selinux', title: 'SELinux mode and port labels', group: G };
  const st = await detectSelinux(ctx.fs, ctx.deps.exec);
  const mode = st.mode;
  if (mode === 'disabled') return { ...base, status: 'pass', message: 'SELinux is not enabled', details: { mode } };
  const fwdPorts = await ctx.forwarderPorts();
  if (st.syslogPorts === null) {
    return {
      ...base,
      status: mode === 'enforcing' ? 'warn' : 'pass',
      message: `SELinux ${mode}; port labels unknown (semanage is not installed or failed)`,
      fix: mode === 'enforcing' ? 'install policycoreutils-python-utils to check that syslogd_port_t covers the forwarder port' : undefined,
      details: { mode },
    };
  }
  // rsyslog must bind the CEF port and connect to the forwarder port: both need the syslogd_port_t label.
  const need = [...new Set([ctx.opts.port, ...fwdPorts])];
  const missing = need.filter((p) => !st.syslogPorts!.includes(p));
  const details = { mode, labelled: st.syslogPorts, missing };
  if (missing.length === 0)
    return { ...base, status: 'pass', message: `SELinux ${mode}; syslogd_port_t covers tcp ${need.join(', ')}`, details };
  const cmds = [
    ...missing.filter((p) => !fwdPorts.includes(p)).map((p) => ['semanage', 'port', '-a', '-t', 'syslogd_port_t', '-p', 'tcp', String(p)]),
    ...fwdPorts.flatMap((p) => planSelinuxFix(st, p, [])),
  ];
  return {
    ...base,
    status: mode === 'enforcing' ? 'fail' : 'warn',
    message: `SELinux ${mode}; ${missing.map((p) => `${p}/tcp`).join(', ')} not labelled syslogd_port_t: the daemon ${mode === 'enforcing' ? 'is' : 'would be'} denied`,
    fix: cmds.map((c) => c.join(' ')).join(' && '),
    details,
  };
}

export async function checkDisk(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'system.disk', title: 'Free disk for the queue and /var/log', group: G };
  const c = await ctx.config();
  const queueDir = c.config?.queue.dir ?? '/var/lib/sentinel-cef/queue';
  const dlDir = c.config ? dirname(deadLetterPath(c.config)) : undefined;
  const paths = [queueDir, '/var/log'];
  const results: Array<{ path: string; free: number; total: number; pct: number }> = [];
  const measure = async (p: string) => {
    // The queue dir may not exist yet: measure the filesystem that will hold it.
    let probe = p;
    let st = await ctx.deps.statfs(probe);
    while (!st && probe !== '/') {
      probe = dirname(probe);
      st = await ctx.deps.statfs(probe);
    }
    return st && st.total > 0 ? { path: p, ...st, pct: Math.round((st.free / st.total) * 100) } : null;
  };
  for (const p of paths) {
    const r = await measure(p);
    if (r) results.push(r);
  }
  if (results.length === 0) return { ...base, status: 'skip', message: 'could not measure free space' };
  // The dead-letter files (bounded by deadLetter.maxBytes) share the queue's budget when they share its filesystem.
  const queueFs = results.find((r) => r.path === queueDir);
  const dlFs = dlDir ? await measure(dlDir) : null;
  const sameFs = (a: { free: number; total: number }, b: { free: number; total: number }) =>
    a.total === b.total && Math.abs(a.free - b.free) < 64 * 1024 ** 2;
  const dlShared = Boolean(dlFs && queueFs && sameFs(dlFs, queueFs));
  if (dlFs && !dlShared && !results.some((r) => sameFs(r, dlFs))) results.push(dlFs);
  const text = results.map((r) => `${r.path} ${formatBytes(r.free)} free (${r.pct}%)`).join(', ');
  const low = results.filter((r) => r.pct < 5 || r.free < 256 * 1024 ** 2);
  const tight = results.filter((r) => r.pct < 15);
  const queueMax = c.config?.queue.maxBytes;
  const dlMax = c.config?.deadLetter.maxBytes ?? 0;
  const budget = queueMax ? queueMax + (dlShared ? dlMax : 0) : undefined;
  const queueShort = budget ? results.find((r) => r.path === queueDir && r.free < budget) : undefined;
  const dlShort = dlFs && !dlShared && dlFs.free < dlMax;
  const budgetText = dlShared
    ? `queue.maxBytes + deadLetter.maxBytes (${formatBytes(budget!)})`
    : `queue.maxBytes (${formatBytes(queueMax ?? 0)})`;
  const details = { filesystems: results };
  if (low.length) {
    const logFix = 'rotate and compress /var/log (logrotate), check that CEF is not also written to /var/log/syslog (system.duplicates)';
    // The queue's own filesystem: name it and its command, not /var/log's remedies (unless /var/log is low too).
    const queueLow = low.some((r) => r.path === queueDir);
    const queueFix = `the queue's filesystem is full: free space there (\`df -h ${queueDir}\`) or move "queue.dir" in ${ctx.opts.configPath} to a larger one`;
    return {
      ...base,
      status: 'fail',
      message: `${text}: too little space; a full disk stops the queue and the daemon's spool`,
      fix: queueLow
        ? low.some((r) => r.path !== queueDir && !sameFs(r, queueFs!))
          ? `${queueFix}; ${logFix}`
          : queueFix
        : `free space: ${logFix}`,
      details,
    };
  }
  if (tight.length || queueShort || dlShort) {
    return {
      ...base,
      status: 'warn',
      message: `${text}${queueShort ? `; less than ${budgetText} is free for the queue${dlShared ? ' and the dead-letter files' : ''}` : ''}${dlShort ? `; less than deadLetter.maxBytes (${formatBytes(dlMax)}) is free for the dead-letter files` : ''}`,
      fix: 'free space or lower queue.maxBytes / deadLetter.maxBytes so an outage or a flood of malformed input cannot fill the disk',
      details,
    };
  }
  return { ...base, status: 'pass', message: text, details };
}

/** Rules that send plain Syslog to the Azure agents (AMA: 28330 or its socket; OMS: 25224). */
const AGENT_SYSLOG_TARGETS = [
  /port\s*=\s*"?28330\b/,
  /@@?127\.0\.0\.1:(28330|25224)\b/,
  /port\s*=\s*"?25224\b/,
  /azuremonitoragent\/[\w.]*syslog[\w.]*\.socket/,
  /default_syslog\.socket/,
];

export async function checkDuplicates(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'system.duplicates', title: 'CEF not also collected as Syslog', group: G };
  const findings: string[] = [];
  const d = await ctx.daemon();
  for (const f of await ctx.daemonConfigFiles()) {
    if (f.path === LAYOUT.rsyslogDropIn || f.path === LAYOUT.syslogNgDropIn) continue;
    const t = stripConfigComments(f.text);
    for (const line of t.split('\n')) {
      if (!AGENT_SYSLOG_TARGETS.some((re) => re.test(line))) continue;
      findings.push(`${f.path}: "${line.trim().slice(0, 120)}" sends Syslog to an Azure agent (${d.name})`);
    }
  }
  // The agents' own syslog configs name the facilities they collect.
  for (const f of await ctx.list('/etc/opt/microsoft/azuremonitoragent/config-cache/configchunks')) {
    const t = await ctx.readText(`/etc/opt/microsoft/azuremonitoragent/config-cache/configchunks/${f}`);
    if (t && /local4/i.test(t) && /syslog/i.test(t)) findings.push(`Azure Monitor agent config ${f} collects local4 as Syslog`);
  }
  const omsSyslog = await ctx.list('/etc/opt/microsoft/omsagent');
  for (const ws of omsSyslog) {
    const t = await ctx.readText(`/etc/opt/microsoft/omsagent/${ws}/conf/omsagent.d/syslog.conf`);
    if (t) findings.push(`OMS agent workspace ${ws} collects Syslog (${ws}/conf/omsagent.d/syslog.conf)`);
  }
  // Evidence from the probes: our drop-in stops CEF, so a probe in /var/log/syslog means another rule caught it first.
  let ruleFix: string | undefined;
  if (ctx.opts.probes > 0) {
    const run = await runProbes(ctx);
    const logged = run.results.find((r) => r.evidence.some((e) => e.startsWith('the daemon logged it')));
    const hit =
      logged ??
      (await probeInLogs(
        ctx,
        run.results.map((r) => r.id),
      ));
    const journal = hit
      ? undefined
      : await probeInJournal(
          ctx,
          run.results.map((r) => r.id),
        );
    if (journal) {
      findings.push(journal.finding);
      ruleFix = journal.fix;
    }
    if (hit) {
      const file = typeof hit === 'string' ? /landed in (\S+)/.exec(hit)?.[1] : /logged it to (\S+)/.exec(hit.evidence.join(' '))?.[1];
      const rules = file ? await rulesWriting(ctx, file) : [];
      const by = rules.length ? `, written there by ${rules.map((r) => `${r.path} line ${r.line} (\`${r.text}\`)`).join(', ')}` : '';
      findings.push(`${typeof hit === 'string' ? hit : `probe ${hit.id} was also written to ${file ?? 'the local log'}`}${by}`);
      if (rules.length) ruleFix = await fixForLocalRule(ctx, rules[0], d.name);
    }
  }
  if (findings.length) {
    return {
      ...base,
      status: 'warn',
      message: `CEF may be ingested twice (Syslog and CommonSecurityLog) or fill /var/log: ${findings.join('; ')}`,
      fix:
        ruleFix ??
        'exclude local4 (or your CEF facility) from the Syslog data collection rule, and keep our drop-in first so its `stop` applies',
      details: { findings },
    };
  }
  return { ...base, status: 'pass', message: 'no other rule collects CEF as plain Syslog' };
}

/** Daemon config lines that write to `file` (rsyslog legacy and omfile actions, syslog-ng file destinations). */
async function rulesWriting(ctx: Context, file: string): Promise<Array<{ path: string; line: number; text: string }>> {
  const esc = file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const re = new RegExp(`(\\s-?${esc}\\s*$)|(file\\s*=\\s*"${esc}")|(file\\s*\\(\\s*"${esc}")`, 'i');
  const out: Array<{ path: string; line: number; text: string }> = [];
  for (const f of await ctx.daemonConfigFiles()) {
    f.text.split('\n').forEach((l, i) => {
      if (!l.trim().startsWith('#') && re.test(l)) out.push({ path: f.path, line: i + 1, text: l.trim().slice(0, 120) });
    });
  }
  return out;
}

/** Where the rule sits decides the fix: before our drop-in is read, its action sees CEF before our `stop`. */
async function fixForLocalRule(ctx: Context, rule: { path: string; line: number; text: string }, daemon: string | null): Promise<string> {
  const restart = `\`systemctl restart ${daemon ?? 'rsyslog'}\``;
  if (daemon === 'syslog-ng') {
    // A log path that takes our own source (s_sentinel_cef) to that destination is the rule to remove.
    const files = await ctx.daemonConfigFiles();
    const upTo =
      files
        .find((f) => f.path === rule.path)
        ?.text.split('\n')
        .slice(0, rule.line)
        .join('\n') ?? '';
    const name = [...upTo.matchAll(/destination\s+(\w+)\s*\{/g)].at(-1)?.[1];
    if (name) {
      const uses = new RegExp(`destination\\s*\\(\\s*${name}\\s*\\)`);
      for (const f of files) {
        const i = f.text
          .split('\n')
          .findIndex((l) => !l.trim().startsWith('#') && uses.test(l) && /source\s*\(\s*s_sentinel_cef\s*\)/.test(l));
        if (i >= 0)
          return `${f.path} line ${i + 1} sends our CEF source (s_sentinel_cef) to ${name} (${rule.path} line ${rule.line}): remove that log path, then ${restart}`;
      }
    }
    return `in ${rule.path} line ${rule.line}, the log path using this destination runs before ours: move the \`@include "/etc/syslog-ng/conf.d/*.conf"\` line above it, then ${restart}`;
  }
  const ours = LAYOUT.rsyslogDropIn.split('/').pop()!;
  if (rule.path === '/etc/rsyslog.conf') {
    const text = (await ctx.readText(rule.path)) ?? '';
    const inc = text.split('\n').findIndex((l) => /^\s*(\$IncludeConfig|include\s*\()/.test(l)) + 1;
    if (inc > rule.line || inc === 0) {
      return `${rule.path} line ${rule.line} logs CEF before ${inc ? `the include of /etc/rsyslog.d (line ${inc})` : 'our drop-in is read'}: move that line below it (or guard it with \`if not ($rawmsg contains "CEF:") then\`), then ${restart}`;
    }
  }
  if (rule.path.startsWith(`${LAYOUT.rsyslogDir}/`) && rule.path.split('/').pop()! < ours) {
    return `${rule.path} sorts before ${ours}, so its line ${rule.line} logs CEF before our \`stop\`: rename it to sort after (e.g. 50-${rule.path.split('/').pop()}), then ${restart}`;
  }
  return `${rule.path} line ${rule.line} logs CEF although our drop-in stops it: check that ${LAYOUT.rsyslogDropIn} is loaded (daemon.dropin), or guard that line with \`if not ($rawmsg contains "CEF:") then\`, then ${restart}`;
}

async function probeInLogs(ctx: Context, ids: string[]): Promise<string | undefined> {
  for (const f of LAYOUT.systemLogs) {
    const t = await ctx.readText(f);
    if (!t) continue;
    const tail = t.slice(-4 * 1024 * 1024);
    const id = ids.find((i) => tail.includes(i));
    if (id) return `probe ${id} also landed in ${f} (CEF is logged locally besides being forwarded)`;
  }
  return undefined;
}

/** Journal entries read for the probes: a copy per probe is a handful; more is a flood not worth reading. */
const JOURNAL_PROBE_LINES = 20;

/**
 * On journald-only systems (no daemon writing /var/log/syslog) a copy of CEF lands in the journal: a daemon action
 * writing to it (rsyslog omjournal, syslog-ng systemd-journal()) or a program logging the message to /dev/log.
 * Searched for this run's probe ids only, since the run began; skipped when journalctl is absent or cannot search.
 */
async function probeInJournal(ctx: Context, ids: string[]): Promise<{ finding: string; fix: string } | undefined> {
  if (!ids.length) return undefined;
  const since = `@${Math.floor(ctx.startedAt / 1000) - 5}`;
  const args = ['--since', since, '-g', ids.join('|'), '-n', String(JOURNAL_PROBE_LINES), '-o', 'json', '--no-pager'];
  const j = await ctx.deps.exec.run('journalctl', args, { timeoutMs: 15_000 });
  if (j.notFound || j.exitCode !== 0) return undefined;
  for (const line of j.stdout.split('\n')) {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const msg = typeof e.MESSAGE === 'string' ? e.MESSAGE : '';
    const id = ids.find((i) => msg.includes(i));
    if (!id) continue;
    const str = (k: string) => (typeof e[k] === 'string' ? (e[k] as string) : undefined);
    const comm = str('_COMM') ?? str('SYSLOG_IDENTIFIER') ?? 'an unknown program';
    const transport = str('_TRANSPORT') ?? 'unknown';
    const unit = str('_SYSTEMD_UNIT');
    const from = `${comm}${unit ? ` (${unit})` : ''} via ${transport === 'syslog' ? '/dev/log' : transport === 'stdout' ? 'its stdout' : `the ${transport} API`}`;
    const fix =
      comm === 'rsyslogd'
        ? 'rsyslog writes CEF into the journal: guard that omjournal action (or the rule sending to /dev/log) with `if not ($rawmsg contains "CEF:") then`, keep our drop-in first so its `stop` applies, then `systemctl restart rsyslog`'
        : comm === 'syslog-ng'
          ? 'syslog-ng writes CEF into the journal: remove our source (s_sentinel_cef) from the log path with the systemd-journal() or /dev/log destination, then `systemctl restart syslog-ng`'
          : `${comm} writes CEF into the journal: stop it logging the CEF messages, or exclude local4 (or your CEF facility) from the Syslog data collection rule that reads the journal`;
    return { finding: `probe ${id} was also written to the journal by ${from} (CEF is logged locally besides being forwarded)`, fix };
  }
  return undefined;
}

export async function checkLegacyAgents(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'system.legacy-agents', title: 'No OMS agent or AMA leftovers on our ports', group: G };
  const findings: string[] = [];
  const fixes: string[] = [];
  for (const p of ['/opt/microsoft/omsagent', '/etc/opt/microsoft/omsagent']) {
    if (await ctx.stat(p)) {
      findings.push(`OMS agent files at ${p}`);
      fixes.push('remove the retired OMS agent (`/opt/microsoft/omsagent/bin/uninstall` or purge the omsagent package)');
    }
  }
  for (const f of await ctx.list(LAYOUT.rsyslogDir)) {
    if (/security-config-omsagent|omsagent/.test(f)) {
      findings.push(`${LAYOUT.rsyslogDir}/${f} (the old CEF installer's rule)`);
      fixes.push(`delete ${LAYOUT.rsyslogDir}/${f} and restart rsyslog`);
    }
  }
  for (const f of await ctx.list(LAYOUT.syslogNgDir)) {
    if (/security-config-omsagent|omsagent/.test(f)) {
      findings.push(`${LAYOUT.syslogNgDir}/${f} (the old CEF installer's rule)`);
      fixes.push(`delete ${LAYOUT.syslogNgDir}/${f} and restart syslog-ng`);
    }
  }
  const amaInstalled = Boolean(await ctx.stat('/opt/microsoft/azuremonitoragent'));
  const procs = await ctx.processes();
  const ama = procs.filter((p) => /^(azuremonitorag|mdsd|amacoreagent)/.test(p.comm));
  const listeners = await ctx.listeners();
  const fwdPids = new Set(await ctx.forwarderPids());
  const fwdPorts = await ctx.forwarderPorts();
  for (const s of listeners) {
    if (s.port === 28330) {
      findings.push(
        `${s.comm ?? 'a process'}${s.pid ? ` (pid ${s.pid})` : ''} listens on ${s.protocol}/28330 (Azure Monitor agent syslog input)`,
      );
    }
    if (fwdPorts.includes(s.port) && s.pid !== undefined && !fwdPids.has(s.pid) && !/^node/.test(s.comm ?? '')) {
      findings.push(`${s.comm} (pid ${s.pid}) holds ${s.protocol}/${s.port}, the forwarder's port`);
      fixes.push(`stop ${s.comm} (an old OMS agent?) so the forwarder can bind ${s.port}`);
    }
  }
  if (amaInstalled || ama.length) {
    // AMA is fine on its own; it double-sends only when its syslog DCR also covers the CEF facility (system.duplicates).
    findings.push(`Azure Monitor agent ${ama.length ? `running (pid ${ama.map((p) => p.pid).join(', ')})` : 'installed'}`);
    fixes.push('if its data collection rule collects Syslog, exclude the CEF facility from it, or remove AMA');
  }
  if (findings.length === 0) return { ...base, status: 'pass', message: 'none found' };
  const serious = findings.some((f) => /holds|OMS agent|old CEF installer/.test(f));
  return {
    ...base,
    status: serious ? 'fail' : 'warn',
    message: findings.join('; '),
    fix: [...new Set(fixes)].join('; '),
    details: { findings },
  };
}
