import { adjustRuns } from '../system/exec.js';
import { Context } from './context.js';
import { applyInstalledOptions } from './install-options.js';
import * as fwd from './checks/forwarder.js';
import * as azure from './checks/azure.js';
import * as daemon from './checks/daemon.js';
import * as system from './checks/system.js';
import * as e2e from './checks/e2e.js';
import { checkReadback } from './checks/readback.js';
import { checkUnit } from './checks/unit.js';
import {
  troubleshootOptionsSchema,
  type CheckOutcome,
  type CheckResult,
  type TroubleshootDeps,
  type TroubleshootOptionsInput,
  type TroubleshootReport,
} from './types.js';

type CheckFn = (ctx: Context) => Promise<CheckOutcome>;

/** Every check, in report order. Ids are stable: scripts and the README refer to them. */
export const CHECKS: Array<{ id: string; run: CheckFn }> = [
  { id: 'forwarder.installed', run: fwd.checkInstalled },
  { id: 'forwarder.unit', run: checkUnit },
  { id: 'forwarder.config', run: fwd.checkConfig },
  { id: 'forwarder.secret', run: fwd.checkSecret },
  { id: 'forwarder.running', run: fwd.checkRunning },
  { id: 'forwarder.admin', run: fwd.checkAdmin },
  { id: 'forwarder.queue', run: fwd.checkQueue },
  { id: 'forwarder.dead-letters', run: fwd.checkDeadLetters },
  { id: 'forwarder.delivery', run: fwd.checkDelivery },
  { id: 'azure.endpoint', run: azure.checkEndpoint },
  { id: 'azure.clock', run: azure.checkClock },
  { id: 'azure.credentials', run: azure.checkCredentials },
  { id: 'daemon.running', run: daemon.checkDaemonRunning },
  { id: 'daemon.dropin', run: daemon.checkDropIn },
  { id: 'daemon.syntax', run: daemon.checkSyntax },
  { id: 'daemon.listening', run: daemon.checkListening },
  { id: 'daemon.forwarding', run: daemon.checkForwarding },
  { id: 'daemon.max-message-size', run: daemon.checkMaxMessageSize },
  { id: 'daemon.rate-limit', run: daemon.checkRateLimit },
  { id: 'daemon.spool', run: daemon.checkSpool },
  { id: 'daemon.intake-state', run: daemon.checkIntakeState },
  { id: 'system.firewall', run: system.checkFirewall },
  { id: 'system.selinux', run: system.checkSelinux },
  { id: 'system.disk', run: system.checkDisk },
  { id: 'system.duplicates', run: system.checkDuplicates },
  { id: 'system.legacy-agents', run: system.checkLegacyAgents },
  { id: 'e2e.probes', run: e2e.checkProbes },
  { id: 'e2e.readback', run: checkReadback },
  { id: 'e2e.capture', run: e2e.checkCapture },
];

/** Fixes run in this order: a daemon must run before its drop-in can be reloaded, and so on. */
const FIX_ORDER = [
  'daemon.running',
  'daemon.dropin',
  'forwarder.unit',
  'forwarder.running',
  'daemon.forwarding',
  'system.firewall',
  'daemon.spool',
  'daemon.intake-state',
];

async function runOne(ctx: Context, c: { id: string; run: CheckFn }): Promise<CheckOutcome> {
  if (ctx.opts.forwarderOnly && c.id.startsWith('daemon.')) {
    // No daemon is in the path by design: its checks would only fail.
    return {
      id: c.id,
      title: c.id,
      group: 'daemon',
      status: 'skip',
      message: `forwarder-only install: the forwarder listens on port ${ctx.opts.port} itself, no syslog daemon is in the path`,
    };
  }
  try {
    return await c.run(ctx);
  } catch (err) {
    // A check that crashes is reported, never hides the others.
    return {
      id: c.id,
      title: c.id,
      group: c.id.split('.')[0] as CheckResult['group'],
      status: 'fail',
      message: `the check itself failed: ${(err as Error).message}`,
      fix: 'report this with the support bundle (--collect FILE)',
    };
  }
}

function unfinished(id: string, timeoutSec: number): CheckOutcome {
  return {
    id,
    title: id,
    group: id.split('.')[0] as CheckResult['group'],
    status: 'warn',
    message: `did not finish within --timeout ${timeoutSec}s (a program or endpoint it waits on does not answer)`,
    fix: `run again with a longer --timeout, e.g. \`sentinel-cef troubleshoot --timeout ${longerTimeout(timeoutSec)}\``,
    details: { unfinished: true },
  };
}

function strip(o: CheckOutcome): CheckResult {
  const { safeFix: _unused, ...rest } = o;
  return rest;
}

export interface RunHooks {
  /** Called as each check finishes (the human renderer updates its spinners). */
  onResult?(r: CheckResult): void;
  /** Asked before each fix unless --yes. */
  confirmFix?(check: CheckResult, description: string): Promise<boolean>;
}

/**
 * Runs every check (concurrently: independent checks do not wait on each other; the ones that need the probes
 * share one probe run), then, with --fix, applies the safe fixes and re-runs what they touched.
 */
export async function runTroubleshoot(
  options: TroubleshootOptionsInput,
  deps: TroubleshootDeps,
  hooks: RunHooks = {},
): Promise<TroubleshootReport> {
  const resolved = await applyInstalledOptions(options, deps);
  const opts = troubleshootOptionsSchema.parse(resolved.input);
  // While the checks run, no program may outlive the run's deadline (fixes, later, keep their own timeouts).
  let checking = true;
  const deadline = deps.now() + opts.timeoutSec * 1000;
  const bounded: TroubleshootDeps = {
    ...deps,
    // A started child (the capture) has no timeout of its own: the deadline alone bounds it.
    exec: adjustRuns(deps.exec, (o, kind) =>
      checking
        ? { ...o, timeoutMs: Math.min(o.timeoutMs ?? (kind === 'run' ? 30_000 : Infinity), Math.max(500, deadline - deps.now())) }
        : o,
    ),
  };
  const ctx = new Context(opts, bounded, resolved.settings);
  // --timeout is a bound on the whole run: a check still waiting then (a hung program, a silent endpoint) is
  // reported as such instead of stretching the run.
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((r) => {
    timer = setTimeout(r, Math.max(0, ctx.startedAt + opts.timeoutSec * 1000 - deps.now()));
    timer.unref?.();
  });
  // Readback waits for ingestion (minutes) on top of the probes' own time: it has its own bound.
  let readbackTimer: NodeJS.Timeout | undefined;
  const readbackSec = opts.timeoutSec + opts.readbackTimeoutSec + 60;
  const readbackExpired = new Promise<void>((r) => {
    readbackTimer = setTimeout(r, Math.max(0, ctx.startedAt + readbackSec * 1000 - deps.now()));
    readbackTimer.unref?.();
  });
  let outcomes = await Promise.all(
    CHECKS.map(async (c) => {
      const r =
        c.id === 'e2e.readback'
          ? await Promise.race([
              runOne(ctx, c),
              readbackExpired.then(() => ({
                ...unfinished(c.id, opts.timeoutSec),
                message: `did not finish within --timeout plus --readback-timeout (${readbackSec}s with a minute's grace): sign-in or the Logs Query API does not answer; the probes are not proven to be in the table`,
                fix: 'check that this machine reaches api.loganalytics.io and login.microsoftonline.com (HTTPS_PROXY), then run again',
              })),
            ])
          : await Promise.race([runOne(ctx, c), expired.then(() => unfinished(c.id, opts.timeoutSec))]);
      hooks.onResult?.(strip(r));
      return r;
    }),
  );
  clearTimeout(timer);
  clearTimeout(readbackTimer);
  checking = false;

  if (opts.fix) {
    let applied = 0;
    const tried = new Set<string>();
    // A fix can uncover the next fault on the path (a restarted forwarder finds rsyslog's forwarding action
    // suspended): the fresh run after a round may offer fixes the first did not, so there is a second round.
    for (let round = 0; round < 2; round++) {
      const appliedBefore = applied;
      const candidates = outcomes
        .filter((o) => (o.status === 'fail' || o.status === 'warn') && FIX_ORDER.includes(o.id) && !tried.has(o.id))
        .sort((a, b) => rank(a.id) - rank(b.id));
      for (const first of candidates) {
        // An earlier fix may have cured this one, or changed which fix it needs: look again first.
        let o = first;
        if (applied > 0) {
          ctx.invalidate();
          ctx.startedAt = deps.now(); // a re-check after a fix gets its own --timeout
          o = await runOne(
            ctx,
            CHECKS.find((c) => c.id === first.id)!,
          );
          outcomes = outcomes.map((x) => (x.id === o.id ? o : x));
          if (o.status !== 'fail' && o.status !== 'warn') continue;
        }
        const fix = o.safeFix;
        if (!fix) continue;
        const ok =
          opts.yes ||
          (hooks.confirmFix ? await hooks.confirmFix(strip(o), fix.description) : await deps.confirm(`${o.id}: ${fix.description}?`));
        if (!ok) continue;
        tried.add(o.id);
        deps.progress(`fixing ${o.id}: ${fix.description}`);
        let error: string | undefined;
        try {
          await fix.apply();
          applied++;
        } catch (err) {
          error = (err as Error).message;
        }
        // Give restarted services a moment to bind their ports before the check looks again.
        await deps.sleep(error ? 0 : 1000);
        ctx.invalidate();
        ctx.startedAt = deps.now();
        let again = await runOne(
          ctx,
          CHECKS.find((c) => c.id === o.id)!,
        );
        if (!error && (again.status === 'fail' || again.status === 'warn')) {
          // A restarted service may still be starting (the supervisor's restart delay, a slow machine): one more look.
          await deps.sleep(3000);
          ctx.invalidate();
          ctx.startedAt = deps.now();
          again = await runOne(
            ctx,
            CHECKS.find((c) => c.id === o.id)!,
          );
        }
        again.details = { ...again.details, fix: { applied: !error, description: fix.description, error, before: o.status } };
        outcomes = outcomes.map((x) => (x.id === o.id ? again : x));
      }
      if (applied === appliedBefore) break;
      // The fixes changed the path: follow fresh probes through it, and refresh everything else with them.
      ctx.invalidate();
      ctx.startedAt = deps.now();
      outcomes = await Promise.all(
        outcomes.map(async (x) =>
          x.details?.fix
            ? x
            : await runOne(
                ctx,
                CHECKS.find((c) => c.id === x.id)!,
              ),
        ),
      );
    }
  }

  const report = summarize(outcomes.map(strip));
  return resolved.settings.length ? { ...report, settings: resolved.settings } : report;
}

/**
 * The verdict over the checks. A check that did not finish, or could not verify what it checks (a readback whose
 * query failed), proved nothing (probes still on their way are not delivered ones): the run is not ok.
 */
export function summarize(checks: CheckResult[]): TroubleshootReport {
  const unfinishedIds = checks.filter((c) => c.details?.unfinished === true).map((c) => c.id);
  const ok = !checks.some((c) => c.status === 'fail') && unfinishedIds.length === 0;
  return unfinishedIds.length ? { ok, unfinished: unfinishedIds, checks } : { ok, checks };
}

function rank(id: string): number {
  const i = FIX_ORDER.indexOf(id);
  return i < 0 ? FIX_ORDER.length : i;
}

/** A longer --timeout to suggest, within what the flag accepts (600 s). */
function longerTimeout(sec: number): number {
  return Math.min(600, Math.ceil(sec * 3));
}
