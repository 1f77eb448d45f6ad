import { posix } from 'node:path';
import { HEALTH_RETRY_MS, HEALTH_TIMEOUT_MS, HUNG_ERROR, type Context } from '../context.js';
import { deadLetterPath } from '../../config/load.js';
import { DEFAULT_DEAD_LETTER_LIMITS, rotatedPath } from '../../forwarder/dead-letter.js';
import { LAYOUT } from '../layout.js';
import { isProcessAlive, processState } from '../../system/processes.js';
import type { CheckOutcome, SafeFix } from '../types.js';
import { restartForwarderFix } from '../fixes.js';
import { fixForDelivery, formatBytes } from '../advice.js';
import { settledHealth } from './e2e.js';
import { clockFault, queueDiskFull } from '../facts.js';
import { lookupUser, SERVICE_USER } from '../../install/service.js';
import { secretRedactor } from '../collect.js';

const G = 'forwarder' as const;

export async function checkInstalled(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.installed', title: 'Forwarder installed', group: G };
  const c = await ctx.config();
  let bundle: string | undefined;
  for (const p of LAYOUT.bundleCandidates) if (await ctx.stat(p)) bundle = p;
  const missing = [!bundle && 'forwarder bundle', !c.exists && `config ${c.path}`].filter(Boolean);
  if (missing.length) {
    return {
      ...base,
      status: 'fail',
      message: `missing: ${missing.join(', ')}`,
      fix: 'run `sentinel-cef install` (or pass --config FILE if the config lives elsewhere)',
      details: { bundleCandidates: LAYOUT.bundleCandidates, config: c.path },
    };
  }
  return { ...base, status: 'pass', message: `bundle ${bundle}, config ${c.path}`, details: { bundle, config: c.path } };
}

export async function checkConfig(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.config', title: 'Forwarder config valid', group: G };
  const c = await ctx.config();
  if (!c.exists) return { ...base, status: 'skip', message: `no config at ${c.path}` };
  if (c.errors) {
    return {
      ...base,
      status: 'fail',
      message: `${c.path}: ${c.errors.slice(0, 3).join('; ')}${c.errors.length > 3 ? ` (+${c.errors.length - 3} more)` : ''}`,
      fix: `correct ${c.path} (check it with \`sentinel-cef forward --check --config ${c.path}\`) or re-run \`sentinel-cef install\``,
      details: { errors: c.errors },
    };
  }
  const sink = c.config!.sink;
  const target =
    sink.type === 'file'
      ? `file ${sink.path}`
      : sink.type === 'log-analytics'
        ? `Data Collector API, workspace ${sink.workspaceId}`
        : `Logs Ingestion API, DCR ${sink.dcrImmutableId} stream ${sink.stream}`;
  const want = ctx.opts.workspaceId?.toLowerCase();
  if (want) {
    if (sink.type === 'log-analytics' && sink.workspaceId.toLowerCase() !== want) {
      return {
        ...base,
        status: 'fail',
        message: `the forwarder sends to workspace ${sink.workspaceId}, not ${ctx.opts.workspaceId}`,
        fix: `re-run \`sentinel-cef install --workspace ${ctx.opts.workspaceId}\` (Logs Ingestion), or troubleshoot the workspace configured`,
        details: { sink: target },
      };
    }
  }
  const details: Record<string, unknown> = { sink: target, listen: c.config!.listen, admin: c.config!.admin };
  if (sink.type === 'log-analytics') {
    return {
      ...base,
      status: 'warn',
      message: `sink: ${target} (Microsoft retired this API on 2026-09-14)`,
      fix: `move to the Logs Ingestion API (creates the DCR and grants the role): \`sentinel-cef install --workspace ${sink.workspaceId}\``,
      details,
    };
  }
  if (want) details.note = 'workspace id not verifiable from this sink type';
  return { ...base, status: 'pass', message: `sink: ${target}`, details };
}

function secretFiles(ctx: Context, sink: NonNullable<Awaited<ReturnType<Context['config']>>['config']>['sink']) {
  const files: Array<{ path: string; what: string }> = [];
  let env: string | undefined;
  if (sink.type === 'log-analytics') {
    if (sink.sharedKeyFile) files.push({ path: sink.sharedKeyFile, what: 'workspace key' });
    else env = 'SENTINEL_CEF_KEY';
  } else if (sink.type === 'logs-ingestion') {
    if (sink.auth.kind === 'client-secret') {
      if (sink.auth.clientSecretFile) files.push({ path: sink.auth.clientSecretFile, what: 'client secret' });
      else env = 'AZURE_CLIENT_SECRET';
    } else if (sink.auth.kind === 'certificate') {
      files.push({ path: sink.auth.certificateFile, what: 'client certificate (with private key)' });
    }
  }
  void ctx;
  return { files, env };
}

export async function checkSecret(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.secret', title: 'Secret file private', group: G };
  const c = await ctx.config();
  if (!c.config) return { ...base, status: 'skip', message: 'no valid config' };
  const sink = c.config.sink;
  const { files, env } = secretFiles(ctx, sink);
  if (files.length === 0) {
    if (env) {
      return {
        ...base,
        status: 'warn',
        message: `the secret comes from the environment (${env}) of the forwarder service, not a file`,
        fix: 'prefer a 0600 file: re-run `sentinel-cef install`, which stores the secret in a 0600 file',
      };
    }
    return {
      ...base,
      status: 'skip',
      message: `the ${sink.type} sink (${'auth' in sink ? sink.auth.kind : 'no auth'}) uses no secret file`,
    };
  }
  const problems: string[] = [];
  const fixes: string[] = [];
  for (const f of files) {
    let st: Awaited<ReturnType<Context['stat']>>;
    try {
      st = await ctx.fs.stat(f.path);
    } catch (err) {
      // Not root: the file is there but we may not look (its directory is 0750 root:sentinel-cef).
      problems.push(`cannot inspect ${f.what} file ${f.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      fixes.push('run troubleshoot as root');
      continue;
    }
    if (!st) {
      problems.push(`${f.what} file ${f.path} is missing`);
      fixes.push(`re-run \`sentinel-cef install\` to write ${f.path}`);
      continue;
    }
    const mode = st.mode & 0o777;
    if (mode & 0o077) {
      problems.push(`${f.what} file ${f.path} has mode ${mode.toString(8).padStart(4, '0')} (readable by others)`);
      fixes.push(`chmod 600 ${f.path}`);
    }
    if (st.size === 0) {
      problems.push(`${f.what} file ${f.path} is empty`);
      fixes.push(`re-run \`sentinel-cef install\` to store the secret in ${f.path}`);
    }
  }
  if (problems.length) {
    return { ...base, status: 'fail', message: problems.join('; '), fix: fixes.join('; '), details: { files: files.map((f) => f.path) } };
  }
  return { ...base, status: 'pass', message: files.map((f) => `${f.path} 0600`).join(', ') };
}

/** Process states of a process that exists but cannot work: stopped by a signal or a debugger. */
const STOPPED_STATES: Record<string, string> = { T: 'stopped by a signal (SIGSTOP/SIGTSTP)', t: 'stopped by a debugger' };

export interface ForwarderHang {
  pid: number;
  /** One letter from /proc/PID/stat. */
  state: string;
  /** Why we call it hung, for people. */
  why: string;
}

/**
 * Tells a hung forwarder from a dead one: the process exists, but is stopped (its /proc state), or its admin
 * endpoint accepts the connection and does not answer within the bounded health call.
 */
export function forwarderHang(ctx: Context): Promise<ForwarderHang | null> {
  return ctx.once('forwarder-hang', async () => {
    const stopped = await ctx.stoppedForwarder();
    if (stopped) return { ...stopped, why: `${STOPPED_STATES[stopped.state]} (state ${stopped.state})` };
    for (const pid of await ctx.forwarderPidsNow()) {
      const state = await processState(ctx.fs, pid);
      if (!state) continue;
      const h = await ctx.health();
      if (h.base && !h.reachable && HUNG_ERROR.test(h.error ?? '')) {
        return {
          pid,
          state,
          why: `${h.base}/healthz accepted the connection but gave no answer within ${(HEALTH_TIMEOUT_MS + HEALTH_RETRY_MS) / 1000} s (state ${state})`,
        };
      }
    }
    return null;
  });
}

/** A stopped or wedged process ignores SIGTERM: kill it, then start the service again (the disk queue keeps the rows). */
export function restartHungFix(ctx: Context, hang: ForwarderHang): SafeFix {
  const restart = restartForwarderFix(ctx);
  return {
    description: `kill the hung forwarder (pid ${hang.pid}) and ${restart.description}`,
    async apply() {
      const r = await ctx.deps.exec.run('kill', ['-KILL', String(hang.pid)], { timeoutMs: 10_000 });
      if (r.exitCode !== 0 && (await isProcessAlive(ctx.fs, hang.pid)))
        throw new Error(`kill -KILL ${hang.pid}: ${(r.stderr || r.stdout).trim()}`);
      await restart.apply();
      // Without systemd the supervisor, still alive, starts the next forwarder itself after a short delay:
      // wait for it, so the re-check sees the new process rather than the gap.
      if (await ctx.systemd()) return;
      for (let i = 0; i < 60; i++) {
        const next = Number((await ctx.readText(LAYOUT.forwarderPidFile))?.trim());
        if (Number.isInteger(next) && next > 0 && next !== hang.pid && (await isProcessAlive(ctx.fs, next))) return;
        await ctx.deps.sleep(250);
      }
    },
  };
}

function hungOutcome(base: { id: string; title: string; group: typeof G }, ctx: Context, hang: ForwarderHang): CheckOutcome {
  return {
    ...base,
    status: 'fail',
    message: `the forwarder (pid ${hang.pid}) is alive but hung: ${hang.why}`,
    fix: `restart it: \`sentinel-cef troubleshoot --fix\` kills pid ${hang.pid} (a stopped process ignores SIGTERM) and starts the service again`,
    safeFix: restartHungFix(ctx, hang),
    details: { pid: hang.pid, state: hang.state, hung: true },
  };
}

export async function checkRunning(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.running', title: 'Forwarder service running', group: G };
  const safeFix = restartForwarderFix(ctx);
  const hang = await forwarderHang(ctx);
  if (hang) return hungOutcome(base, ctx, hang);
  if (await ctx.systemd()) {
    const r = await ctx.deps.exec.run('systemctl', ['is-active', LAYOUT.serviceName]);
    const state = r.stdout.trim() || r.stderr.trim();
    if (r.exitCode === 0) return { ...base, status: 'pass', message: `${LAYOUT.serviceName} is ${state}` };
    // The unit stops and starts with rsyslog (PartOf=, WantedBy=): a stopped rsyslog is the cause, and starting it is the fix.
    if (/^PartOf=rsyslog\.service\s*$/m.test((await ctx.readText(LAYOUT.unitPath)) ?? '')) {
      const d = await ctx.deps.exec.run('systemctl', ['is-active', 'rsyslog.service']);
      if (d.exitCode !== 0) {
        return {
          ...base,
          status: 'fail',
          message: `${LAYOUT.serviceName} is ${state || 'not active'}: it stops with rsyslog (PartOf=rsyslog.service), which is ${d.stdout.trim() || 'not active'}`,
          fix: '`systemctl start rsyslog` starts the forwarder with it (see daemon.running)',
          safeFix,
        };
      }
    }
    // A unit that exits at start-up (Restart=on-failure keeps it "activating", then "failed"): a restart cannot
    // repair it, its own last error says what can.
    const fault = /^(activating|failed)$/.test(state) ? await unitStartupFault(ctx) : null;
    if (fault) {
      const unit = (await ctx.readText(LAYOUT.unitPath)) ?? '';
      const user = /^User=(\S+)\s*$/m.exec(unit)?.[1] ?? SERVICE_USER;
      const queue = await queueDirProblem(ctx, user);
      const restart = `\`systemctl restart ${LAYOUT.serviceName}\``;
      return {
        ...base,
        status: 'fail',
        message: `${LAYOUT.serviceName} is ${state}: the forwarder keeps exiting at start-up, its error: ${fault}${queue ? `; ${queue.message}` : ''}`,
        fix: queue ? queue.fix : `${await startupFaultFix(ctx, fault, user, unit)}, then ${restart}`,
        // Only a fix that removes the cause (our own queue directory) is applied, with the restart after it.
        ...(queue?.safeFix ? { safeFix: queue.safeFix } : {}),
        details: { state, crashLoop: true, user },
      };
    }
    return {
      ...base,
      status: 'fail',
      message: `${LAYOUT.serviceName} is ${state || 'not active'}`,
      fix: `systemctl restart ${LAYOUT.serviceName}; see \`journalctl -u ${LAYOUT.serviceName} -n 50\``,
      safeFix,
    };
  }
  // Without systemd, install runs the forwarder under its supervisor, which writes both pidfiles.
  const pidOf = async (f: string) => {
    const n = Number((await ctx.readText(f))?.trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  };
  const sup = await pidOf(LAYOUT.supervisorPidFile);
  const child = await pidOf(LAYOUT.forwarderPidFile);
  const supAlive = sup !== null && (await isProcessAlive(ctx.fs, sup));
  const childAlive = child !== null && (await isProcessAlive(ctx.fs, child));
  const log = supAlive ? ((await ctx.readText(LAYOUT.logFiles[0])) ?? '') : '';
  const lines = log.trimEnd().split('\n');
  // Only an exit of its own (a code, not a signal such as our own kill of a hung one) counts towards a loop.
  const lastExit = lastIndex(lines, /supervisor: forwarder exited \(code \d+/);
  const lastStart = lastIndex(lines, /"msg":"forwarder started"/);
  // The supervisor restarts a forwarder that exits at startup (bad config, an unwritable sink or queue), so its
  // child is often alive at the moment we look: a last exit with no start after it, and no answer from the
  // admin endpoint, is a crash loop, not a running forwarder.
  const crashLoop = supAlive && lastExit > lastStart && (!childAlive || !(await ctx.health()).reachable);
  if (supAlive && childAlive && !crashLoop) {
    return { ...base, status: 'pass', message: `pid ${child} (supervisor pid ${sup})`, details: { pid: child, supervisor: sup } };
  }
  if (supAlive) {
    // The forwarder's own last words before its last exit say why (its stderr has no level or timestamp);
    // older lines may belong to an earlier run.
    const before = lastExit >= 0 ? lines.slice(0, lastExit) : lines;
    const since = before.slice(lastIndex(before, /supervisor: forwarder exited|"msg":"forwarder started"/) + 1);
    const cause =
      since.filter((l) => l.trim() && !/supervisor/i.test(l)).at(-1) ??
      lines.filter((l) => !/supervisor/i.test(l) && /error|fatal|\bE[A-Z]{3,}\b|"level":\s*[56]0/i.test(l)).at(-1);
    const last = cause ?? lines.filter((l) => /supervisor|error|fatal/i.test(l)).at(-1);
    const queue = await queueDirProblem(ctx);
    const user = SERVICE_USER;
    const unwritable = /cannot write under (\/\S+)/.exec(cause ?? '')?.[1];
    return {
      ...base,
      status: 'fail',
      message: `the supervisor (pid ${sup}) is up but the forwarder keeps exiting${last ? `: ${last.slice(0, 300)}` : ''}${queue ? `; ${queue.message}` : ''}`,
      // As root, `forward --check` finds every directory writable: check as the user the service runs as.
      fix: queue
        ? queue.fix
        : unwritable
          ? `let the service user write there (\`chown ${user}: ${unwritable}\`) or choose a path it can write in "sink.path" of ${ctx.opts.configPath}; the supervisor then starts it on its next attempt`
          : `check the config as the service user: \`runuser -u ${user} -- sentinel-cef forward --check --config ${ctx.opts.configPath}\`; the log: ${LAYOUT.logFiles[0]}`,
      // Restarting does not help a forwarder that cannot start (the supervisor already retries); taking back our
      // own queue directory does.
      ...(queue?.safeFix ? { safeFix: queue.safeFix } : {}),
      details: { supervisor: sup, crashLoop: true },
    };
  }
  if (sup !== null) {
    return {
      ...base,
      status: 'fail',
      message: `the forwarder is not running (stale pidfile ${LAYOUT.supervisorPidFile}: pid ${sup})`,
      fix: `start it: \`sentinel-cef troubleshoot --fix\` or \`sentinel-cef install\`; its log: ${LAYOUT.logFiles[0]}`,
      safeFix,
    };
  }
  const pids = await ctx.forwarderPids();
  if (pids.length) return { ...base, status: 'pass', message: `pid ${pids.join(', ')}`, details: { pids } };
  return {
    ...base,
    status: 'fail',
    message: 'no forwarder process found',
    fix: 'start it: `sentinel-cef troubleshoot --fix` or `sentinel-cef install`',
    safeFix,
  };
}

/** Journal lines read for the unit's last attempt: enough for one start-up and systemd's lines around it. */
const JOURNAL_LINES = 60;
/** systemd's own lines about the unit (as `journalctl -o cat` shows them), not the forwarder's. */
const SYSTEMD_LINE = /^(sentinel-cef-forwarder\.service: |(Started|Starting|Stopped|Stopping) )/;

/**
 * Why the forwarder unit's last attempt exited before it started, from its journal: the forwarder's own error
 * (its stderr line or a pino error line), secrets redacted, or null when the last exit was not at start-up.
 */
async function unitStartupFault(ctx: Context): Promise<string | null> {
  const j = await ctx.deps.exec.run('journalctl', ['-u', LAYOUT.serviceName, '-n', String(JOURNAL_LINES), '-o', 'cat', '--no-pager'], {
    timeoutMs: 15_000,
  });
  if (j.notFound || j.exitCode !== 0) return null;
  const lines = j.stdout.trimEnd().split('\n');
  // An exit of its own, with a code (a kill by a signal is not a start-up fault).
  const lastExit = lastIndex(lines, /: Main process exited, code=exited, status=[1-9]/);
  if (lastExit < 0) return null;
  const before = lines.slice(0, lastExit);
  const attempt = before.slice(lastIndex(before, /^Started |: Main process exited/) + 1);
  if (attempt.some((l) => /"msg":"forwarder started"/.test(l))) return null;
  const own = attempt.filter((l) => l.trim() && !SYSTEMD_LINE.test(l));
  const line = own.filter((l) => /^sentinel-cef forwarder: |"level":\s*[56]0/.test(l)).at(-1) ?? own.at(-1);
  if (!line) return null;
  let text = line.replace(/^sentinel-cef forwarder: /, '');
  try {
    const o = JSON.parse(text) as { msg?: unknown; err?: { message?: unknown } };
    const err = typeof o.err?.message === 'string' ? o.err.message : '';
    if (typeof o.msg === 'string') text = err && !o.msg.includes(err) ? `${o.msg}: ${err}` : o.msg;
  } catch {
    /* the stderr line, as it is */
  }
  return (await secretRedactor(ctx)).redact(text).slice(0, 300);
}

/** The one command that removes a start-up fault the forwarder named (the unit's restart follows it). */
async function startupFaultFix(ctx: Context, fault: string, userName: string, unit: string): Promise<string> {
  const check = `check the config as the service user: \`runuser -u ${userName} -- sentinel-cef forward --check --config ${ctx.opts.configPath}\``;
  const dir = /cannot write under (\/\S+)/.exec(fault)?.[1];
  const file = (/cannot read (\/\S+): E(?:ACCES|PERM)\b/.exec(fault) ?? /\bE(?:ACCES|PERM)\b.*?'(\/[^']+)'/.exec(fault))?.[1];
  const target = dir ?? file;
  if (!target) return check;
  const user = await lookupUser(ctx.fs, userName);
  const denied = user ? await accessProblem(ctx, target, user, dir ? 3 : 4, dir !== undefined) : null;
  if (denied) {
    if (denied.need === 1) return `let ${userName} enter ${denied.path} (${denied.why}): \`chmod o+x ${denied.path}\``;
    // The directory does not exist yet and the user may not create it where it would go.
    if (dir && denied.createIn)
      return `create ${dir} for ${userName} (${denied.why}): \`install -d -o ${userName} ${dir}\`, or choose a path it can write in "sink.path" of ${ctx.opts.configPath}`;
    return dir
      ? `let ${userName} write there (${denied.why}): \`chown ${userName}: ${dir}\`, or choose a path it can write in "sink.path" of ${ctx.opts.configPath}`
      : // The forwarder reads secrets and keys only from 0600 files: the service user must own it.
        `let ${userName} read ${target} (${denied.why}): \`chown ${userName}: ${target} && chmod 600 ${target}\``;
  }
  // The user may, by owner and mode: the unit's ProtectSystem=strict keeps the path read-only to the service.
  if (dir && /^ProtectSystem=strict\s*$/m.test(unit)) {
    return `${dir} is read-only inside the unit (ProtectSystem=strict, not in its ReadWritePaths=): re-run \`sentinel-cef install\` with this sink path (it adds ReadWritePaths=), or choose a path under /var/lib/sentinel-cef/data`;
  }
  return check;
}

function lastIndex(lines: string[], re: RegExp): number {
  for (let i = lines.length - 1; i >= 0; i--) if (re.test(lines[i])) return i;
  return -1;
}

function chownQueueFix(ctx: Context, dir: string, user: { uid: number; gid: number }): SafeFix {
  const restart = restartForwarderFix(ctx);
  return {
    description: `give ${dir} back to ${SERVICE_USER} (chown -R, mode 0750) and ${restart.description}`,
    async apply() {
      for (const [cmd, args] of [
        ['chown', ['-R', `${user.uid}:${user.gid}`, dir]],
        ['chmod', ['0750', dir]],
      ] as const) {
        const r = await ctx.deps.exec.run(cmd, [...args], { timeoutMs: 30_000 });
        if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.exitCode}`}`);
      }
      await restart.apply();
    },
  };
}

function createQueueFix(ctx: Context, dir: string, user: { uid: number; gid: number }): SafeFix {
  const restart = restartForwarderFix(ctx);
  const args = ['-d', '-o', String(user.uid), '-g', String(user.gid), '-m', '0750', dir];
  return {
    description: `create ${dir} for ${SERVICE_USER} (install -d, mode 0750) and ${restart.description}`,
    async apply() {
      const r = await ctx.deps.exec.run('install', args, { timeoutMs: 30_000 });
      if (r.exitCode !== 0) throw new Error(`install ${args.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.exitCode}`}`);
      await restart.apply();
    },
  };
}

/**
 * What keeps a user from using a path (bits 4 read, 2|1 write, 1 search), judged by owner, group and mode along
 * the way and through symlinks (a link's own mode says nothing: its target is walked): the first directory it
 * may not enter, the path itself it may not use, or, for a missing path to `create`, the deepest existing
 * directory it may not write in; null when it may (or when the path is missing and not to be created).
 */
async function accessProblem(
  ctx: Context,
  path: string,
  user: { uid: number; gid: number },
  bits: number,
  create: boolean,
): Promise<{ path: string; need: number; createIn: boolean; why: string; owner: string; mode: string } | null> {
  if (user.uid === 0) return null;
  let parts = path.split('/').filter(Boolean);
  let links = 0;
  for (let i = 0; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const st = await ctx.stat(p);
    if (!st) return null;
    const target = st.isSymlink && links++ < 40 ? await ctx.fs.readlink(p) : null;
    if (target !== null) {
      // Walk again from / along the link's target and the rest of the path.
      parts = [...posix.resolve(posix.dirname(p), target).split('/').filter(Boolean), ...parts.slice(i)];
      i = -1;
      continue;
    }
    const last = i === parts.length;
    const missingNext = !last && !(await ctx.stat(`/${parts.slice(0, i + 1).join('/')}`));
    if (missingNext && !create) return null;
    // Every directory on the way must be searchable; the one to create in must also be writable.
    const need = last ? bits : missingNext ? 3 : 1;
    const m = st.uid === user.uid ? (st.mode >> 6) & 7 : st.gid === user.gid ? (st.mode >> 3) & 7 : st.mode & 7;
    if ((m & need) !== need) {
      const owner = `${st.uid === 0 ? 'root' : st.uid}:${st.gid === 0 ? 'root' : st.gid}`;
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      return { path: p, need, createIn: missingNext, owner, mode, why: `${p}: owner ${owner}, mode ${mode}` };
    }
    if (missingNext) return null;
  }
  return null;
}

/** Can the service user create and write the queue directory? Judged by owner, group and mode along the path. */
async function queueDirProblem(ctx: Context, userName = SERVICE_USER): Promise<{ message: string; fix: string; safeFix?: SafeFix } | null> {
  const dir = (await ctx.config()).config?.queue.dir;
  const user = await lookupUser(ctx.fs, userName);
  if (!dir || !user) return null;
  const denied = await accessProblem(ctx, dir, user, 3, true);
  if (!denied) return null;
  const p = denied.path;
  const message = `the service user ${userName} cannot ${denied.need === 3 ? 'write' : 'enter'} ${p} (owner ${denied.owner}, mode ${denied.mode}), so the forwarder cannot open its queue ${dir}`;
  // The queue is missing and its parent is the system's (or our root-owned state): create only the queue for the
  // service user. Handing it the parent would let it choose what root later writes there (uninstall restores backups).
  if (denied.createIn) {
    return {
      message,
      fix: `\`install -d -o ${userName} -g ${user.gid} -m 0750 ${dir}\` (or re-run \`sentinel-cef install\`), then restart the forwarder`,
      safeFix: createQueueFix(ctx, dir, user),
    };
  }
  return {
    message,
    fix:
      denied.need === 3
        ? `\`chown -R ${userName}: ${p}\` (or re-run \`sentinel-cef install\`), then restart the forwarder`
        : `\`chmod o+x ${p}\`, then restart the forwarder`,
    // The queue directory is ours (install made it for the service user): giving it back is safe. Its
    // parents are the system's, so those stay a suggestion.
    ...(p === dir ? { safeFix: chownQueueFix(ctx, dir, user) } : {}),
  };
}

export async function checkAdmin(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.admin', title: 'Forwarder admin endpoint healthy', group: G };
  const h = await settledHealth(ctx);
  if (h.base === null) {
    return {
      ...base,
      status: 'warn',
      message: 'the admin endpoint is disabled in the config; queue, delivery and probe checks cannot run',
      fix: `set "admin": "127.0.0.1:25227" in ${ctx.opts.configPath} and restart the forwarder`,
    };
  }
  if (!h.reachable) {
    const hang = await forwarderHang(ctx);
    if (hang) {
      return {
        ...base,
        status: 'fail',
        message: `${h.base}/healthz: ${h.error ?? `HTTP ${h.httpStatus}`}: the forwarder (pid ${hang.pid}) is hung, not down: ${hang.why}`,
        fix: 'restart it (see forwarder.running): `sentinel-cef troubleshoot --fix`',
        details: { pid: hang.pid, state: hang.state, hung: true },
      };
    }
    return {
      ...base,
      status: 'fail',
      message: `${h.base}/healthz: ${h.error ?? `HTTP ${h.httpStatus}`}`,
      fix: 'start the forwarder (see forwarder.running), or pass --admin HOST:PORT if it listens elsewhere',
    };
  }
  const hh = h.health!;
  const info = `${hh.status}, version ${hh.version}, pid ${hh.pid}, up ${hh.uptimeSec}s, sink ${hh.sink}, inputs ${hh.inputs.join(' ')}`;
  const details = { status: hh.status, version: hh.version, pid: hh.pid, inputs: hh.inputs, counters: hh.counters };
  if (hh.status === 'ok' && h.httpStatus === 200) return { ...base, status: 'pass', message: info, details };
  return {
    ...base,
    status: hh.status === 'stopping' ? 'fail' : 'warn',
    message: `${info} (HTTP ${h.httpStatus})`,
    fix: 'see forwarder.queue and forwarder.delivery for the cause; the forwarder log has details',
    details,
  };
}

export async function checkQueue(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.queue', title: 'Queue depth and age', group: G };
  const h = await settledHealth(ctx);
  if (!h.health) return { ...base, status: 'skip', message: 'admin endpoint unavailable' };
  const q = h.health.queue;
  const pct = q.maxBytes > 0 ? Math.round((q.bytes / q.maxBytes) * 100) : 0;
  const age = q.oldestAgeSec ?? 0;
  const msg = `${q.records} records, ${formatBytes(q.bytes)} (${pct}% of ${formatBytes(q.maxBytes)}), oldest ${q.oldestAgeSec === null ? '-' : `${Math.round(age)}s`}`;
  const details = { ...q };
  // Paused with room left in the queue: the disk under it is full, not the queue (see system.disk).
  const disk = q.intakePaused ? await queueDiskFull(ctx) : null;
  if (disk) {
    return {
      ...base,
      status: 'fail',
      message: `${msg}; intake paused: the queue's filesystem is full (${disk.dir}: ${formatBytes(disk.free)} free of ${formatBytes(disk.total)}), so the daemon's queue is filling up instead`,
      fix: `free space on the queue's filesystem (\`df -h ${disk.dir}\`) or move "queue.dir" in ${ctx.opts.configPath} to a larger one; the forwarder resumes intake by itself once it can write`,
      details: { ...details, queueFilesystem: disk },
    };
  }
  if (q.intakePaused || pct >= 95) {
    return {
      ...base,
      status: 'fail',
      message: `${msg}; intake ${q.intakePaused ? 'paused' : 'about to pause'}: the daemon's queue is filling up instead`,
      fix: 'fix delivery first (forwarder.delivery); raise queue.maxBytes only if the backlog is expected to drain',
      details,
    };
  }
  if (age > 300 || pct >= 50) {
    return {
      ...base,
      status: 'warn',
      message: `${msg}: delivery is falling behind`,
      fix: 'check forwarder.delivery and azure.endpoint; a growing backlog means the sink is failing or too slow',
      details,
    };
  }
  return { ...base, status: 'pass', message: msg, details };
}

export async function checkDeadLetters(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.dead-letters', title: 'Dead letters', group: G };
  const h = await settledHealth(ctx);
  const c = await ctx.config();
  const file = c.config ? deadLetterPath(c.config) : h.health?.deadLetters?.file;
  const cap = c.config?.deadLetter.maxBytes ?? h.health?.deadLetters?.maxBytes;
  const keep = c.config?.deadLetter.files ?? h.health?.deadLetters?.files ?? DEFAULT_DEAD_LETTER_LIMITS.files;
  let fileCount = 0;
  let lastReason: string | undefined;
  let bytes = 0;
  let rotated = 0;
  let oldestEntry: string | undefined;
  if (file) {
    const text = await ctx.readText(file);
    if (text) {
      const lines = text.split('\n').filter((l) => l.trim());
      fileCount = lines.length;
      const last = lines.at(-1);
      if (last) {
        try {
          const o = JSON.parse(last) as Record<string, unknown>;
          const r = o.reason ?? o.error;
          if (typeof r === 'string') lastReason = r;
        } catch {
          /* not JSON: keep the count only */
        }
      }
    }
    // Live file, then <file>.1 (newest) … <file>.N (oldest); a lowered count can leave more behind.
    const present: string[] = [];
    for (let k = 0; k <= keep + 100; k++) {
      const p = k === 0 ? file : rotatedPath(file, k);
      const st = await ctx.stat(p);
      if (!st) {
        if (k >= keep) break;
        continue;
      }
      bytes += st.size;
      if (k > 0) rotated++;
      present.push(p);
    }
    const oldest = present.at(-1);
    if (oldest) {
      const head = await ctx.fs.readHead(oldest, 64 * 1024).catch(() => null);
      const first = head?.toString('utf8').split('\n')[0];
      try {
        const t = first ? (JSON.parse(first) as Record<string, unknown>).time : undefined;
        if (typeof t === 'string') oldestEntry = t;
      } catch {
        /* a line longer than the head or not JSON: no date */
      }
    }
  }
  const count = h.health?.counters.deadLettered ?? 0;
  const dropped = h.health?.deadLetters?.droppedEntries ?? 0;
  if (!h.health && !file) return { ...base, status: 'skip', message: 'no admin endpoint and no config' };
  const details = {
    deadLettered: count,
    file,
    fileCount,
    rotatedFiles: rotated,
    bytes,
    maxBytes: cap,
    droppedEntries: dropped,
    oldestEntry,
    lastReason,
  };
  if (count === 0 && fileCount === 0 && bytes === 0 && dropped === 0) return { ...base, status: 'pass', message: 'none', details };
  const size = `${formatBytes(bytes)}${cap ? ` of ${formatBytes(cap)}` : ''}${rotated ? ` in ${rotated + 1} files` : ''}`;
  const parts = [`${count} since start`, `${fileCount} in ${file}`, size];
  if (dropped) parts.push(`${dropped} oldest deleted at the cap`);
  if (oldestEntry) parts.push(`oldest from ${oldestEntry}`);
  return {
    ...base,
    status: 'warn',
    message: `${parts.join(', ')}${lastReason ? `; last reason: ${lastReason}` : ''}`,
    fix: dropped
      ? `the dead-letter cap was reached and the oldest entries were deleted: fix the cause in ${file} (each line holds an event and why), or raise deadLetter.maxBytes`
      : `read ${file} and its rotated ${file}.1…: each line holds a refused row and why; fix that cause (the newest rows are kept up to deadLetter.maxBytes)`,
    details,
  };
}

export async function checkDelivery(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.delivery', title: 'Last delivery', group: G };
  const h = await settledHealth(ctx);
  if (!h.health) return { ...base, status: 'skip', message: 'admin endpoint unavailable' };
  const ld = h.health.lastDelivery;
  const counters = h.health.counters;
  const details = { lastDelivery: ld, counters };
  if (!ld) {
    return {
      ...base,
      status: counters.received > 0 ? 'warn' : 'skip',
      message: counters.received > 0 ? `${counters.received} received, no delivery attempted yet` : 'nothing sent yet',
      details,
    };
  }
  if (ld.ok) {
    return { ...base, status: 'pass', message: `ok at ${ld.at}; ${counters.delivered} delivered, ${counters.retried} retried`, details };
  }
  const sink = (await ctx.config()).config?.sink;
  const sinkType = sink?.type;
  const skew = ld.httpStatus === 401 || ld.httpStatus === 403 ? await clockFault(ctx) : null;
  return {
    ...base,
    status: 'fail',
    message: `failed at ${ld.at}${ld.httpStatus ? ` (HTTP ${ld.httpStatus})` : ''}: ${ld.error ?? 'unknown error'}${skew !== null ? ' (this follows from the clock: see azure.clock)' : ''}`,
    fix: fixForDelivery(sinkType, ld.httpStatus, ld.error ?? '', skew, sink?.type === 'file' ? sink.path : undefined),
    details,
  };
}
