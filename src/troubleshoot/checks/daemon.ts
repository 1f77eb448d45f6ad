import type { Context, DaemonName } from '../context.js';
import { dropInPath, LAYOUT } from '../layout.js';
import { daemonToForwarder, isLoopback } from '../proc.js';
import { restartDaemon, restartForwarderFix, startDaemonFix } from '../fixes.js';
import type { CheckOutcome, SafeFix, Transport } from '../types.js';
import { protocolMismatch, runProbes, settledHealth } from './e2e.js';
import { formatBytes } from '../advice.js';
import { inspectRsyslogSpool, inspectSyslogNgBuffers } from '../spool.js';
import { comparableRender, stripConfigComments } from '../../install/config-text.js';
import { detectIpv6 } from '../../system/ipv6.js';
import { hasRsyslogModule, scanRsyslogConfig } from '../../install/rsyslog-config.js';
import { insertRsyslogInclude, RSYSLOG_INCLUDE_LINE, RSYSLOG_TEMPLATE_CHANGES } from '../../install/render-rsyslog.js';
import { BACKUP_ROOT, FileTransaction, readState, writeState } from '../../install/transaction.js';
import { HEADER_MARGIN, probeSize, sizeLimits, UDP_MAX_PAYLOAD } from '../facts.js';

const G = 'daemon' as const;

export async function checkDaemonRunning(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.running', title: 'Syslog daemon running', group: G };
  const d = await ctx.daemon();
  if (!d.name) {
    return {
      ...base,
      status: 'fail',
      message: 'neither rsyslog nor syslog-ng is installed',
      fix: 'install one (`apt-get install rsyslog` or `dnf install rsyslog`), then run `sentinel-cef install`',
    };
  }
  if (d.running) {
    const others = d.installed.filter((x) => x !== d.name);
    return {
      ...base,
      status: 'pass',
      message: `${d.name} (pid ${d.pid})${others.length ? `; ${others.join(', ')} also installed, not running` : ''}`,
      details: { daemon: d.name, pid: d.pid, installed: d.installed },
    };
  }
  // Starting the daemon cannot help while another program holds its port (it fails to bind, or exits):
  // that program has to go first, so no start is offered.
  const pids = new Set(await ctx.daemonPids());
  const held = (await ctx.listeners()).filter((s) => s.port === ctx.opts.port && s.pid !== undefined && !pids.has(s.pid));
  if (held.length) {
    const who = [...new Set(held.map((s) => `${s.comm} pid ${s.pid}`))].join(', ');
    return {
      ...base,
      status: 'fail',
      message: `${d.name} is installed but not running, and port ${ctx.opts.port} is held by another program (${who})`,
      fix: `stop ${who} or move it off ${ctx.opts.port} (see daemon.listening), then start ${d.name}`,
      details: { daemon: d.name, installed: d.installed, heldBy: who },
    };
  }
  return {
    ...base,
    status: 'fail',
    message: `${d.name} is installed but not running`,
    fix: (await ctx.systemd()) ? `systemctl start ${d.name}` : `start it: ${d.name === 'rsyslog' ? 'rsyslogd' : 'syslog-ng'}`,
    safeFix: startDaemonFix(ctx, d.name),
    details: { daemon: d.name, installed: d.installed },
  };
}

/** The settings an older install's drop-in lacks, when it equals a render with the latest template changes undone. */
function olderRender(expected: Array<{ content: string }>, onDisk: string): string | null {
  const have = comparableRender(onDisk);
  for (const e of expected) {
    let text = e.content;
    const added: string[] = [];
    for (const change of RSYSLOG_TEMPLATE_CHANGES) {
      text = change.undo(text);
      added.push(change.added);
      if (comparableRender(text) === have) return added.join(', ');
    }
  }
  return null;
}

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) return `line ${i + 1}: on disk "${(x[i] ?? '<end>').trim()}", expected "${(y[i] ?? '<end>').trim()}"`;
  }
  return 'whitespace only';
}

/**
 * Adds the rsyslog.d include to rsyslog.conf, before its first rule, as install does: the original is backed up (and recorded for
 * uninstall when an install state exists), and a failed write puts the file back.
 */
function rsyslogIncludeFix(ctx: Context): SafeFix & { apply(): Promise<void> } {
  const main = LAYOUT.rsyslogMain;
  return {
    description: `add "${RSYSLOG_INCLUDE_LINE}" to ${main} before its first rule (the original is backed up under ${BACKUP_ROOT})`,
    async apply() {
      const before = (await ctx.readText(main)) ?? '';
      const after = insertRsyslogInclude(before);
      const tx = new FileTransaction(ctx.fs);
      const mode = (await ctx.stat(main))?.mode ?? 0o644;
      try {
        await tx.write(main, after, { mode });
      } catch (err) {
        await tx.rollback();
        throw err;
      }
      ctx.deps.progress(`added "${RSYSLOG_INCLUDE_LINE}" to ${main}; the original is in ${tx.backupDir}`);
      const state = await readState(ctx.fs).catch(() => null);
      if (state) {
        for (const t of tx.touched) if (!state.files.some((f) => f.path === t.path)) state.files.push(t);
        await writeState(ctx.fs, state);
      }
    },
  };
}

/** rsyslog reads rsyslog.d only when rsyslog.conf includes it; null when it does (or for syslog-ng). */
async function missingRsyslogInclude(ctx: Context, daemon: DaemonName): Promise<string | null> {
  if (daemon !== 'rsyslog') return null;
  const scan = await scanRsyslogConfig(ctx.fs);
  if (scan.includesDropins || (await ctx.readText(LAYOUT.rsyslogMain)) === null) return null;
  return `${LAYOUT.rsyslogMain} does not include ${LAYOUT.rsyslogDir}/*.conf, so rsyslog never reads ${LAYOUT.rsyslogDropIn}`;
}

export async function checkDropIn(ctx: Context): Promise<CheckOutcome> {
  const r = await checkDropInFile(ctx);
  const d = await ctx.daemon();
  const missing = d.name ? await missingRsyslogInclude(ctx, d.name) : null;
  if (!missing) return r;
  const include = rsyslogIncludeFix(ctx);
  const rest = r.status === 'fail' ? r.safeFix : undefined;
  return {
    ...r,
    status: 'fail',
    message: r.status === 'fail' ? `${missing}; ${r.message}` : `${missing} (the file itself is current)`,
    fix: `\`sentinel-cef install\` (or --fix) adds "${RSYSLOG_INCLUDE_LINE}" to ${LAYOUT.rsyslogMain} before its first rule, backed up; or add that line there yourself, then restart rsyslog`,
    safeFix: {
      description: rest ? `${include.description}; ${rest.description}` : `${include.description} and restart rsyslog`,
      async apply() {
        await include.apply();
        if (rest) await rest.apply();
        else await restartDaemon(ctx, 'rsyslog');
      },
    },
    details: { ...r.details, includeMissing: true },
  };
}

/**
 * How rsyslog sends to the forwarder as installed: the install record, else the forwarder's listen (install writes
 * both together), else the drop-in on disk. Never what the system would choose today: that would switch one side only.
 */
function installedTransport(ctx: Context, listen: readonly string[] | undefined, onDisk: string | null): 'relp' | 'tcp' | undefined {
  if (ctx.opts.transport) return ctx.opts.transport;
  const fwd = listen ?? [];
  if (fwd.some((u) => u.startsWith('relp://'))) return 'relp';
  if (fwd.some((u) => u.startsWith('tcp://'))) return 'tcp';
  const text = onDisk === null ? '' : stripConfigComments(onDisk);
  if (/type\s*=\s*"omrelp"/.test(text)) return 'relp';
  if (/type\s*=\s*"omfwd"/.test(text)) return 'tcp';
  return undefined;
}

async function checkDropInFile(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.dropin', title: 'Daemon drop-in present and current', group: G };
  const d = await ctx.daemon();
  if (!d.name) return { ...base, status: 'skip', message: 'no syslog daemon' };
  const path = dropInPath(d.name);
  const onDisk = await ctx.readText(path);
  const fwdPorts = await ctx.forwarderPorts();
  const c = await ctx.config();
  // With the protocol install recorded (or given), only that rendering is current; else any install choice is.
  const protocolKnown = ctx.settings.some((s) => s.name === 'protocol');
  const transport = d.name === 'rsyslog' ? installedTransport(ctx, c.config?.listen, onDisk) : undefined;
  // RELP as installed, but the module is gone: rsyslog cannot load the drop-in, and rewriting it cannot help.
  const relpGone = transport === 'relp' && !(await hasRsyslogModule(ctx.fs, 'omrelp'));
  const relpNew = transport === 'tcp' && (await hasRsyslogModule(ctx.fs, 'omrelp'));
  const expected = await ctx.deps.renderDropIn(d.name, {
    port: ctx.opts.port,
    forwarderPort: fwdPorts[0],
    queueMaxBytes: c.config?.queue.maxBytes,
    // install renders the drop-in and the forwarder config together: the state file is in both or in neither.
    intakeStateFile: ctx.opts.intakeStateFile !== undefined ? ctx.opts.intakeStateFile : (c.config?.intakeStateFile ?? null),
    durable: ctx.opts.durable,
    ...(protocolKnown ? { protocol: ctx.opts.protocol } : {}),
    ...(transport ? { transport } : {}),
  });
  const relpFix =
    'reinstall the omrelp module (`apt-get install rsyslog-relp`, or `dnf install rsyslog-relp`) and restart rsyslog; ' +
    'or re-run `sentinel-cef install` to move rsyslog and the forwarder to TCP together';
  const relpProblem = `it sends over RELP as installed, but rsyslog's omrelp module (package rsyslog-relp) is gone: rsyslog cannot load it`;
  const rerender =
    !relpGone && expected?.length
      ? {
          description: `rewrite ${path} as install renders it and restart ${d.name}`,
          apply: async () => {
            // The recorded protocol's rendering, else install's default choice (both transports).
            await ctx.deps.writeFile(path, expected[0].content, 0o644);
            await restartDaemon(ctx, d.name!);
          },
        }
      : undefined;
  if (onDisk === null) {
    return {
      ...base,
      status: 'fail',
      message: `${path} is missing: ${d.name} does not route CEF to the forwarder${relpGone ? `; the forwarder expects RELP, and rsyslog's omrelp module (package rsyslog-relp) is gone` : ''}`,
      fix: relpGone ? relpFix : `re-run \`sentinel-cef install\` to write ${path}`,
      safeFix: rerender,
    };
  }
  const problems: string[] = [];
  const text = stripConfigComments(onDisk);
  if (!fwdPorts.some((p) => new RegExp(`port\\s*(=\\s*"|\\()\\s*${p}\\b`).test(text))) {
    problems.push(`it does not forward to the forwarder port ${fwdPorts.join('/')}`);
  }
  if (d.name === 'rsyslog' && !/\bstop\b/.test(text))
    problems.push('CEF is not stopped after forwarding (duplicates into /var/log and Syslog)');
  if (d.name === 'syslog-ng' && !/\bfinal\b/.test(text))
    problems.push('the log path lacks flags(final) (duplicates into /var/log and Syslog)');
  let olderInstall: string | null = null;
  if (expected) {
    const match = expected.find((e) => comparableRender(e.content) === comparableRender(onDisk));
    if (!match) olderInstall = d.name === 'rsyslog' ? olderRender(expected, onDisk) : null;
    if (!match && !olderInstall)
      problems.push(
        `it differs from what install renders (${firstDifference(comparableRender(onDisk), comparableRender(expected[0].content))})`,
      );
  }
  if (relpGone) problems.push(relpProblem);
  if (problems.length) {
    return {
      ...base,
      status: 'fail',
      message: `${path}: ${problems.join('; ')}`,
      fix: relpGone ? relpFix : `re-run \`sentinel-cef install\` to rewrite ${path} (local edits there are overwritten)`,
      safeFix: rerender,
      details: { path },
    };
  }
  if (olderInstall) {
    // Healthy, only older: rewriting it restarts rsyslog, which loses the senders' in-flight plain-TCP lines, so
    // no automatic fix; the operator picks a quiet moment.
    const advice = `re-run \`sentinel-cef install\` when quiet to add ${olderInstall} (it restarts ${d.name})`;
    return {
      ...base,
      status: 'warn',
      message: `${path} was written by an older install: ${advice}`,
      fix: advice,
      details: { path, olderInstall },
    };
  }
  return {
    ...base,
    status: 'pass',
    message:
      `${path} ${expected ? 'matches what install renders' : 'forwards CEF to the forwarder'}` +
      (relpNew ? '; rsyslog-relp is installed now: `sentinel-cef install` moves rsyslog and the forwarder to RELP together' : ''),
    details: { path, compared: Boolean(expected), ...(transport ? { transport } : {}) },
  };
}

export async function checkSyntax(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.syntax', title: 'Daemon config syntax', group: G };
  const d = await ctx.daemon();
  if (!d.name) return { ...base, status: 'skip', message: 'no syslog daemon' };
  const [cmd, args] = d.name === 'rsyslog' ? ['rsyslogd', ['-N1']] : ['syslog-ng', ['--syntax-only']];
  const r = await ctx.deps.exec.run(cmd as string, args as string[], { timeoutMs: 30_000 });
  if (r.notFound) return { ...base, status: 'skip', message: `${cmd} not found on PATH` };
  const out = `${r.stderr}\n${r.stdout}`.trim();
  if (r.exitCode === 0) {
    const warn = out.split('\n').filter((l) => /warning/i.test(l));
    return warn.length
      ? {
          ...base,
          status: 'warn',
          message: `${cmd} ${args.join(' ')}: valid, with warnings: ${warn[0].trim()}`,
          fix: 'see the warning above',
          details: { output: out.slice(0, 4000) },
        }
      : { ...base, status: 'pass', message: `${cmd} ${args.join(' ')} ok` };
  }
  const errLine = out.split('\n').find((l) => /error/i.test(l)) ?? out.split('\n')[0] ?? `exit ${r.exitCode}`;
  return {
    ...base,
    status: 'fail',
    message: `${cmd} ${args.join(' ')} failed: ${errLine.trim().slice(0, 300)}`,
    fix: `fix the file named above; if it is ${dropInPath(d.name)}, re-run \`sentinel-cef install\``,
    details: { output: out.slice(0, 4000) },
  };
}

export async function checkListening(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.listening', title: `Listening on port ${ctx.opts.port}`, group: G };
  const port = ctx.opts.port;
  const sockets = (await ctx.listeners()).filter((s) => s.port === port);
  const pids = new Set(await ctx.daemonPids());
  const d = await ctx.daemon();
  const found: string[] = [];
  const foreign: string[] = [];
  for (const t of ['tcp', 'udp'] as Transport[]) {
    for (const s of sockets.filter((x) => x.protocol === t)) {
      const who = s.pid ? `${s.comm} pid ${s.pid}` : 'owner unknown';
      const entry = `${t} ${s.family === 6 ? `[${s.address}]` : s.address}:${port} (${who})`;
      if (s.pid !== undefined && !pids.has(s.pid)) foreign.push(entry);
      else found.push(entry);
    }
  }
  const details = { listeners: [...found, ...foreign] };
  if (foreign.length) {
    return {
      ...base,
      status: 'fail',
      message: `port ${port} is held by another program: ${foreign.join(', ')}`,
      fix: `stop that program or move it off ${port}, then restart ${d.name ?? 'the syslog daemon'} (or use \`sentinel-cef install --port N\`)`,
      details,
    };
  }
  const wanted: Transport[] = ctx.opts.protocol === 'both' ? ['tcp', 'udp'] : [ctx.opts.protocol];
  const missing = wanted.filter((t) => !sockets.some((s) => s.protocol === t));
  if (found.length === 0) {
    return {
      ...base,
      status: 'fail',
      message: `nothing listens on ${wanted.map((t) => `${port}/${t}`).join(' or ')}`,
      fix: d.running
        ? `re-run \`sentinel-cef install\` so ${d.name} opens port ${port}`
        : `start ${d.name ?? 'the syslog daemon'} (see daemon.running)`,
      details,
    };
  }
  const local = sockets.every((s) => isLoopback(s.address));
  if (local) {
    return {
      ...base,
      status: 'warn',
      message: `${found.join(', ')}: loopback only, remote devices cannot send`,
      fix: `bind the input to all addresses (re-run \`sentinel-cef install\`)`,
      details,
    };
  }
  if (missing.length) {
    return {
      ...base,
      status: 'warn',
      message: `${found.join(', ')}; not on ${missing[0]}`,
      fix: `senders using ${missing[0]} are not heard: \`sentinel-cef install --protocol both\``,
      details,
    };
  }
  // Both address families: a [::] socket takes IPv4 too unless v6 sockets are v6-only (bindv6only=1).
  const ipv6 = await detectIpv6(ctx.fs);
  const gaps: string[] = [];
  for (const t of ['tcp', 'udp'] as Transport[]) {
    const of = sockets.filter((s) => s.protocol === t);
    if (of.length === 0) continue;
    const v6 = of.some((s) => s.family === 6);
    const v4 = of.some((s) => s.family === 4) || (ipv6 === 'dual-stack' && of.some((s) => s.family === 6 && s.address === '::'));
    if (!v4) gaps.push(`${t}/IPv4`);
    if (!v6 && ipv6 !== 'none') gaps.push(`${t}/IPv6`);
  }
  if (gaps.length) {
    return {
      ...base,
      status: 'warn',
      message: `${found.join(', ')}; not on ${gaps.join(', ')}: senders using ${gaps.length > 1 ? 'them' : 'it'} are not heard`,
      fix: `re-run \`sentinel-cef install\` so ${d.name ?? 'the syslog daemon'} listens on both IPv4 and IPv6`,
      details,
    };
  }
  return { ...base, status: 'pass', message: found.join(', '), details };
}

export async function checkForwarding(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.forwarding', title: 'Daemon forwards to the forwarder', group: G };
  const d = await ctx.daemon();
  if (!d.running) return { ...base, status: 'skip', message: 'the daemon is not running' };
  const fwdPorts = await ctx.forwarderPorts();
  // The daemon connects lazily on its first CEF message: look after the probes have been sent.
  const run = ctx.opts.probes > 0 ? await runProbes(ctx) : undefined;
  const mine = run ? run.daemonToForwarder : daemonToForwarder(await ctx.sockets(), fwdPorts, new Set(await ctx.daemonPids()));
  const configured = (await ctx.daemonConfigFiles()).some((f) =>
    fwdPorts.some((p) => new RegExp(`port\\s*(=\\s*"|\\()\\s*${p}\\b|@@?127\\.0\\.0\\.1:${p}\\b`).test(stripConfigComments(f.text))),
  );
  const fwdListening = (await ctx.listeners()).some((s) => fwdPorts.includes(s.port));
  const details = {
    connections: mine.map(
      (s) => `${s.transport} ${s.localAddress}:${s.localPort} -> ${s.remoteAddress}:${s.remotePort} (pid ${s.pid ?? '?'})`,
    ),
    configured,
    forwarderListening: fwdListening,
  };
  // RELP and TCP share a TCP socket: a connection proves nothing when the forwarder speaks the other one.
  const mismatch = await protocolMismatch(ctx);
  if (mine.length && !mismatch)
    return { ...base, status: 'pass', message: `${d.name} is connected to 127.0.0.1:${mine[0].remotePort}`, details };
  if (!configured) {
    return {
      ...base,
      status: 'fail',
      message: `no ${d.name} rule sends to 127.0.0.1:${fwdPorts.join('/')}`,
      fix: 're-run `sentinel-cef install` (see daemon.dropin)',
      details,
    };
  }
  if (mismatch) return { ...base, status: 'fail', ...mismatch, details };
  if (!fwdListening) {
    return {
      ...base,
      status: 'fail',
      message: `${d.name} is configured to forward, but nothing listens on 127.0.0.1:${fwdPorts.join('/')}`,
      fix: 'start the forwarder (see forwarder.running); the daemon keeps CEF in its disk queue meanwhile',
      details,
    };
  }
  if (ctx.opts.probes === 0) {
    return { ...base, status: 'pass', message: 'configured (no connection yet: the daemon connects on its first CEF message)', details };
  }
  // Probes the daemon never received give it nothing to forward: no connection then says nothing about this hop,
  // and restarting the daemon would not help (see daemon.listening).
  if (run && run.results.length > 0 && run.results.every((r) => r.stage === 'daemon-not-receiving')) {
    return {
      ...base,
      status: 'skip',
      message: `configured; no probe reached ${d.name}, so its forwarding could not be seen (see daemon.listening)`,
      details,
    };
  }
  // Typically the forwarder was down and the daemon suspended its forwarding action: it retries on its own
  // (rsyslog every action.resumeInterval, 30 s and growing), a restart reconnects now.
  return {
    ...base,
    status: 'fail',
    message: `configured, but ${d.name} holds no connection to the forwarder even after the probes (its forwarding is suspended or the drop-in is not loaded)`,
    fix: `restart ${d.name} to reconnect now (it otherwise retries on its own); its own log says why the action is suspended`,
    safeFix: {
      description: `restart ${d.name} so it reconnects to the forwarder (the daemon's disk queue keeps pending CEF)`,
      apply: () => restartDaemon(ctx, d.name!),
    },
    details,
  };
}

function kib(n: number): string {
  return n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

export async function checkMaxMessageSize(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.max-message-size', title: 'Maximum message size', group: G };
  const l = await sizeLimits(ctx);
  if (!l) return { ...base, status: 'skip', message: 'no syslog daemon' };
  const size = await probeSize(ctx);
  const explicit = ctx.opts.probeSize !== undefined;
  const details: Record<string, unknown> = {
    daemonMax: l.daemonMax,
    forwarderMax: l.forwarderMax,
    probeSize: size,
    daemonSetting: l.daemonSetting,
  };
  const msg =
    `${l.daemon} accepts ${kib(l.daemonMax)} per message (${l.daemonWhere ? `${l.daemonSetting} in ${l.daemonWhere}` : 'its default'}), ` +
    `the forwarder ${kib(l.forwarderMax)}`;
  // Evidence first: probes of that size that arrived shorter than sent.
  const run = ctx.opts.probes > 0 ? await runProbes(ctx) : undefined;
  const cut = run?.results.filter((r) => r.intact === false) ?? [];
  const want = Math.max(64 * 1024, Math.ceil((size + HEADER_MARGIN) / 1024) * 1024);
  const daemonFix =
    l.daemon === 'rsyslog'
      ? l.daemonSetting
        ? `change ${l.daemonSetting} in ${l.daemonWhere} to ${l.daemonSetting.startsWith('$') ? `$MaxMessageSize ${want / 1024}k` : `maxMessageSize="${want / 1024}k"`} (it must stay before any input), then restart rsyslog`
        : `add global(maxMessageSize="${want / 1024}k") at the top of ${LAYOUT.rsyslogMain}, before any input, then restart rsyslog`
      : l.daemonSetting
        ? `change ${l.daemonSetting} in ${l.daemonWhere} to log-msg-size(${want}), then restart syslog-ng`
        : `add log-msg-size(${want}) to options {} in ${LAYOUT.syslogNgMain}, then restart syslog-ng`;
  const fwdFix = `set "limits": {"maxMessageBytes": ${want}} in ${ctx.opts.configPath}, then restart the forwarder`;
  // The hop that cuts: the first one on the way whose limit is below the size.
  const hop = size > l.daemonMax - (explicit ? 0 : HEADER_MARGIN) ? 'daemon' : size + HEADER_MARGIN > l.forwarderMax ? 'forwarder' : null;
  if (cut.length || (explicit && hop)) {
    const p = cut[0];
    const seen = p ? `: a ${p.sentBytes}-byte ${p.transport} probe arrived as ${p.arrivedBytes ?? '?'} bytes` : '';
    const who = hop === 'forwarder' ? 'the forwarder' : l.daemon;
    return {
      ...base,
      status: 'fail',
      message: `${msg}; ${who} cuts ${kib(size)} messages${seen}, without a truncation flag`,
      fix: hop === 'forwarder' ? fwdFix : daemonFix,
      details: { ...details, hop: hop ?? 'unknown', cut: cut.map((r) => ({ id: r.id, sent: r.sentBytes, arrived: r.arrivedBytes })) },
    };
  }
  if (l.daemonWhere && l.daemonMax < 8 * 1024) {
    // Lowered below rsyslog's own default: CEF events of firewalls and proxies are often longer.
    return {
      ...base,
      status: 'warn',
      message: `${msg}: lowered below 8 KiB, longer CEF events are cut without a truncation flag (run with --probe-size N to test your devices' size)`,
      fix: daemonFix,
      details,
    };
  }
  if (size > UDP_MAX_PAYLOAD && ctx.opts.protocol !== 'tcp') {
    return {
      ...base,
      status: 'warn',
      message: `${msg}; ${size}-byte messages do not fit in a UDP datagram`,
      fix: 'send such devices over TCP',
      details,
    };
  }
  return {
    ...base,
    status: 'pass',
    message: `${msg}${run ? `; ${kib(size)} probes arrived whole` : ''}${explicit ? '' : ' (--probe-size N tests the longest line your devices send)'}`,
    details,
  };
}

/** Default burst of imudp/imtcp/imptcp inputs when only ratelimit.interval is set. */
const RSYSLOG_DEFAULT_BURST = 10_000;

/**
 * Limits on the rsyslog inputs that carry the CEF port: input() parameters, else the module's. Legacy
 * $UDPServerRun/$InputTCPServerRun inputs have no rate limit ($SystemLogRateLimit* is the local socket's).
 */
async function rsyslogPortLimits(ctx: Context): Promise<string[][]> {
  const scan = await scanRsyslogConfig(ctx.fs);
  const wanted = ctx.opts.protocol === 'both' ? ['tcp', 'udp'] : [ctx.opts.protocol];
  const out: string[][] = [];
  for (const i of scan.inputs) {
    if (i.port !== ctx.opts.port) continue;
    const transport = i.type === 'imudp' ? 'udp' : i.type === 'imtcp' || i.type === 'imptcp' ? 'tcp' : null;
    if (!transport || !wanted.includes(transport)) continue;
    const mod = scan.moduleRateLimits?.[i.type];
    const interval = i.rateLimit?.interval ?? mod?.interval ?? 0;
    if (interval <= 0) continue;
    const burst = i.rateLimit?.burst ?? mod?.burst ?? RSYSLOG_DEFAULT_BURST;
    const where = i.rateLimit?.interval !== undefined ? i.file : `${mod!.file}, module(load="${i.type}")`;
    out.push([
      `the ${i.type} input on port ${i.port} keeps ${burst} messages per ${interval} s and drops the rest (${where})`,
      i.rateLimit?.interval !== undefined
        ? `set ratelimit.interval="0" on input(type="${i.type}" port="${i.port}") in ${i.file} (or raise ratelimit.burst above your devices' peak per ${interval} s), then restart rsyslog`
        : `set ratelimit.interval="0" on module(load="${i.type}") in ${mod!.file} (or raise ratelimit.burst), then restart rsyslog`,
    ]);
  }
  return out;
}

/**
 * syslog-ng's throttle() in our drop-in (a source or destination of the CEF log path) limits every device, not
 * only local senders.
 */
async function syslogNgPathLimits(ctx: Context): Promise<string[][]> {
  const path = dropInPath('syslog-ng');
  const text = await ctx.readText(path);
  if (!text) return [];
  const out: string[][] = [];
  for (const m of stripConfigComments(text).matchAll(/\bthrottle\s*\(\s*(\d+)\s*\)/g)) {
    if (Number(m[1]) <= 0) continue;
    out.push([
      `throttle(${m[1]}) on the CEF path keeps ${m[1]} messages per second and drops the rest (${path})`,
      `remove throttle(${m[1]}) from ${path} (re-run \`sentinel-cef install\` renders it without), then restart syslog-ng`,
    ]);
  }
  return out;
}

export async function checkRateLimit(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.rate-limit', title: 'Rate limiting', group: G };
  const d = await ctx.daemon();
  if (!d.name) return { ...base, status: 'skip', message: 'no syslog daemon' };
  const network = d.name === 'rsyslog' ? await rsyslogPortLimits(ctx) : await syslogNgPathLimits(ctx);
  const found: string[] = [];
  for (const f of await ctx.daemonConfigFiles()) {
    const t = stripConfigComments(f.text);
    if (d.name === 'rsyslog') {
      for (const m of t.matchAll(/\b(?:module|input)\s*\(([^)]*)\)/g)) {
        const body = m[1];
        const mod = /\b(?:load|type)\s*=\s*"(\w+)"/.exec(body)?.[1];
        // Network inputs are reported above, by the port they carry.
        if (mod === 'imudp' || mod === 'imtcp' || mod === 'imptcp') continue;
        const interval = /ratelimit\.interval\s*=\s*"?(\d+)/i.exec(body)?.[1];
        const burst = /ratelimit\.burst\s*=\s*"?(\d+)/i.exec(body)?.[1];
        if (mod && interval && Number(interval) > 0)
          found.push(`${mod} drops above ${burst ?? 'default burst'} messages per ${interval}s (${f.path})`);
        if (mod === 'imjournal' && !interval) found.push(`imjournal is loaded with its default rate limit (20000 per 600 s) (${f.path})`);
      }
      const legacy = /^\s*\$(SystemLogRateLimitInterval|IMUXSockRateLimitInterval|imjournalRatelimitInterval)\s+(\d+)/im.exec(t);
      if (legacy && Number(legacy[2]) > 0) found.push(`$${legacy[1]} ${legacy[2]} (${f.path})`);
    } else {
      if (f.path === dropInPath('syslog-ng')) continue;
      for (const m of t.matchAll(/\bthrottle\s*\(\s*(\d+)\s*\)/g)) if (Number(m[1]) > 0) found.push(`throttle(${m[1]}) (${f.path})`);
    }
  }
  const journald = await ctx.readText('/etc/systemd/journald.conf');
  const jm = journald && /^\s*RateLimitBurst\s*=\s*(\d+)/m.exec(journald);
  if (jm && Number(jm[1]) > 0 && Number(jm[1]) < 10000) found.push(`journald RateLimitBurst=${jm[1]}`);
  if (network.length) {
    return {
      ...base,
      status: 'warn',
      message: `${network.map((n) => n[0]).join('; ')}: CEF from devices above that rate is lost${found.length ? `; local senders too: ${found.join('; ')}` : ''}`,
      fix: network.map((n) => n[1]).join('; '),
      details: { network: network.map((n) => n[0]), limits: found },
    };
  }
  if (found.length) {
    return {
      ...base,
      status: 'warn',
      message: `${found.join('; ')}: local senders (logger, apps on /dev/log) lose messages above the limit; the inputs on port ${ctx.opts.port} are not limited`,
      fix: 'raise or remove the limit (rsyslog: ratelimit.interval="0" on imuxsock/imjournal) if CEF comes from local programs',
      details: { limits: found },
    };
  }
  return { ...base, status: 'pass', message: 'no rate limit on the CEF path' };
}

/** Upstream record of the slow/stuck disk-queue drain, cited by daemon.spool. */
export const RSYSLOG_DA_DRAIN_REFERENCES = [
  'https://github.com/rsyslog/rsyslog/issues/2646',
  'https://github.com/rsyslog/rsyslog/pull/6495',
  'https://github.com/rsyslog/rsyslog/pull/6498',
];

/**
 * The intake state file (action.externalstate.file): SUSPENDED makes rsyslog keep every batch queued. Right while
 * the forwarder is down; while it accepts, a leftover SUSPENDED (its last stop) holds all CEF back.
 */
export async function checkIntakeState(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.intake-state', title: 'rsyslog may send to the forwarder', group: G };
  const d = await ctx.daemon();
  const file = (await ctx.config()).config?.intakeStateFile;
  if (d.name !== 'rsyslog' || !file)
    return { ...base, status: 'skip', message: 'no intake state file (rsyslog before 8.1904, or syslog-ng)' };
  const text = await ctx.readText(file);
  const state = text?.trim() ?? null;
  const details = { file, state };
  if (state !== 'SUSPENDED') {
    return {
      ...base,
      status: 'pass',
      message: `${file} ${state === null ? 'is absent' : `says ${state}`}: rsyslog sends to the forwarder`,
      details,
    };
  }
  const h = await settledHealth(ctx);
  if (!h.health || h.health.status === 'stopping') {
    return {
      ...base,
      status: 'pass',
      message: `${file} says SUSPENDED and the forwarder is down: rsyslog keeps CEF in its queue until it starts`,
      details,
    };
  }
  return {
    ...base,
    status: 'fail',
    message: `${file} says SUSPENDED while the forwarder runs: rsyslog holds every CEF event in its queue`,
    fix: `restart the forwarder, which writes READY when it listens (${(await ctx.systemd()) ? `systemctl restart ${LAYOUT.serviceName}` : '`sentinel-cef troubleshoot --fix`'})`,
    safeFix: restartForwarderFix(ctx),
    details,
  };
}

/** How long spool files must stay unchanged, with the forwarder up, before the queue counts as stuck. */
export const SPOOL_STUCK_AFTER_MS = 60_000;

export async function checkSpool(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'daemon.spool', title: 'Daemon disk queue drained', group: G };
  const d = await ctx.daemon();
  if (!d.name) return { ...base, status: 'skip', message: 'no syslog daemon' };
  const s = d.name === 'rsyslog' ? await inspectRsyslogSpool(ctx) : await inspectSyslogNgBuffers(ctx);
  if ('missing' in s) return { ...base, status: 'skip', message: s.missing };
  const what = d.name === 'rsyslog' ? "rsyslog's disk queue" : "syslog-ng's reliable disk buffer";
  const data = s.files.filter((f) => !f.path.endsWith('.qi'));
  const now = ctx.deps.now();
  const newest = data.length ? Math.max(...data.map((f) => f.mtimeMs)) : null;
  const oldest = data.length ? Math.min(...data.map((f) => f.mtimeMs)) : null;
  const unchangedMs = newest === null ? null : Math.max(0, now - newest);
  const details: Record<string, unknown> = {
    daemon: d.name,
    dir: s.dir,
    dirSource: s.dirSource,
    files: s.files.map((f) => ({ path: f.path, bytes: f.size, mtime: new Date(f.mtimeMs).toISOString() })),
    fileCount: data.length,
    fileBytes: data.reduce((n, f) => n + f.size, 0),
    pendingBytes: s.pendingBytes,
    pendingMessages: s.pendingMessages,
    oldestMtime: oldest === null ? null : new Date(oldest).toISOString(),
    unchangedSec: unchangedMs === null ? null : Math.round(unchangedMs / 1000),
    notes: s.notes,
  };
  const notes = s.notes.length ? ` (${s.notes.join('; ')})` : '';
  if (s.pendingBytes === 0) {
    const kept = data.length
      ? d.name === 'rsyslog'
        ? `; ${formatBytes(details.fileBytes as number)} in ${data.length} spool file${data.length > 1 ? 's' : ''} already read (rsyslog keeps its last spool file until it stops)`
        : ''
      : '';
    return { ...base, status: 'pass', message: `nothing waits in ${what} (${s.dir})${kept}`, details };
  }
  if (s.pendingBytes === null) {
    return {
      ...base,
      status: 'skip',
      message: `${data.length} spool file(s), ${formatBytes(details.fileBytes as number)} in ${s.dir}; how much is already sent is unknown${notes}`,
      details,
    };
  }
  const amount = `${s.pendingBytes} bytes${s.pendingMessages ? ` (${s.pendingMessages} messages)` : ''} of CEF`;
  if (s.orphaned) {
    return {
      ...base,
      status: 'warn',
      message: `${amount} sit in ${s.dir} without ${s.orphaned}: ${d.name} will not read these spool files when it starts${notes}`,
      fix: `while ${d.name} is stopped, rebuild ${s.orphaned} with rsyslog's tools/recover_qi.pl (-w ${s.dir} -f ${s.orphaned.replace(/\.qi$/, '')} -d 8), then start it`,
      details: { ...details, orphaned: true },
    };
  }
  if (!d.running) {
    return {
      ...base,
      status: 'warn',
      message: `${amount} wait in ${what} (${s.dir}) while ${d.name} is stopped; it sends them after it starts${notes}`,
      fix: `start ${d.name} (see daemon.running)`,
      details,
    };
  }
  const h = await settledHealth(ctx);
  let fwdUp: boolean;
  let why: string;
  if (h.health) {
    fwdUp = h.health.status !== 'stopping' && !h.health.queue.intakePaused;
    why = h.health.queue.intakePaused ? 'its intake is paused' : `status ${h.health.status}`;
  } else if (h.base === null) {
    // No admin endpoint to ask: a listener on the intake port is the best sign that it accepts.
    const ports = await ctx.forwarderPorts();
    fwdUp = (await ctx.listeners()).some((l) => l.protocol === 'tcp' && ports.includes(l.port));
    why = `nothing listens on 127.0.0.1:${ports.join('/')}`;
  } else {
    fwdUp = false;
    why = `${h.base}/healthz: ${h.error ?? `HTTP ${h.httpStatus}`}`;
  }
  details.forwarderUp = fwdUp;
  if (!fwdUp) {
    return {
      ...base,
      status: 'warn',
      message: `${amount} wait in ${what} (${s.dir}) for the forwarder, which is not accepting (${why}); ${d.name} sends them once it reconnects${notes}`,
      fix: `bring the forwarder back (see forwarder.running, forwarder.admin and forwarder.queue); ${d.name} keeps queuing meanwhile, up to its disk-queue limit`,
      details,
    };
  }
  if (unchangedMs! < SPOOL_STUCK_AFTER_MS) {
    return {
      ...base,
      status: 'pass',
      message: `${amount} in ${what}, last written ${Math.round(unchangedMs! / 1000)}s ago: draining to the forwarder (run again in a minute if it does not shrink)${notes}`,
      details,
    };
  }
  const age = `${Math.round(unchangedMs! / 1000)} s`;
  if (d.name === 'rsyslog') {
    // Seen on rsyslog 8.2302: after the forwarder was down, the omfwd action stays suspended until its next
    // retry (action.resumeInterval, 30 s and growing), and its spool files do not change meanwhile. Without a
    // connection to the forwarder that is the wait, not the undrained disk part of #2646.
    const connected = daemonToForwarder(await ctx.sockets(), await ctx.forwarderPorts(), new Set(await ctx.daemonPids())).length > 0;
    details.daemonConnected = connected;
    const restart = (await ctx.systemd()) ? '`systemctl restart rsyslog`' : '`sentinel-cef troubleshoot --fix` does it';
    const restartFix = (why: string) => ({
      description: `restart rsyslog so it ${why} (queue.saveOnShutdown keeps every queued message)`,
      apply: () => restartDaemon(ctx, 'rsyslog'),
    });
    if (!connected) {
      return {
        ...base,
        status: 'warn',
        message:
          `${amount} wait in rsyslog's disk queue (${s.dir}), files unchanged for ${age}: the forwarder is up but rsyslog holds no ` +
          `connection to it, so its forwarding action is suspended; rsyslog retries on its own every action.resumeInterval ` +
          `(30 s by default, longer after repeated failures)${notes}`,
        fix: `restart rsyslog to reconnect now (${restart}); queue.saveOnShutdown="on" keeps the queued messages`,
        safeFix: restartFix('reconnects to the forwarder now'),
        details,
      };
    }
    details.references = RSYSLOG_DA_DRAIN_REFERENCES;
    return {
      ...base,
      status: 'warn',
      message:
        `${amount} wait in rsyslog's disk queue (${s.dir}) while the forwarder is up, files unchanged for ${age}: ` +
        `rsyslog can leave the disk part of a disk-assisted queue undrained (rsyslog issue #2646, open)${notes}`,
      fix:
        `restart rsyslog (${restart}): ` +
        'our drop-in sets queue.saveOnShutdown="on", so rsyslog saves the queue on the way down and processes the saved ' +
        'disk queue when it starts; then run troubleshoot again. No rsyslog release fixes the cause: PR #6495 (merged ' +
        '2026-01-29) was reverted the same day by PR #6498, and a large backlog can still drain slowly after a restart',
      safeFix: restartFix('processes its saved disk queue'),
      details,
    };
  }
  return {
    ...base,
    status: 'warn',
    message: `${amount} wait in syslog-ng's reliable disk buffer (${s.dir}) while the forwarder is up, files unchanged for ${age}${notes}`,
    fix: "`syslog-ng-ctl stats | grep d_sentinel_cef` shows what the destination holds and whether it is connected; syslog-ng's own log says why it does not send",
    details,
  };
}
