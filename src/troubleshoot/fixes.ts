import { restartUnit } from '../install/service.js';
import type { Context, DaemonName } from './context.js';
import { dropInPath, LAYOUT } from './layout.js';
import type { SafeFix } from './types.js';

async function run(ctx: Context, file: string, args: string[]): Promise<void> {
  const r = await ctx.deps.exec.run(file, args, { timeoutMs: 90_000 });
  if (r.exitCode !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.exitCode}`}`);
  }
}

const UNIT: Record<DaemonName, string> = { rsyslog: 'rsyslog', 'syslog-ng': 'syslog-ng' };

/** The transports our drop-in (or, failing that, the daemon config) opens, to wait for after a restart. */
async function protocolsOf(ctx: Context, daemon: DaemonName): Promise<Array<'tcp' | 'udp'>> {
  const text = (await ctx.readText(dropInPath(daemon))) ?? '';
  const out: Array<'tcp' | 'udp'> = [];
  if (/imtcp|imptcp|transport\("?tcp/.test(text)) out.push('tcp');
  if (/imudp|transport\("?udp/.test(text)) out.push('udp');
  return out;
}

/** How long a restarted forwarder may take to listen (node start-up and queue recovery on a loaded machine). */
export const FORWARDER_READY_MS = 30_000;

/**
 * Restarting our own service is always safe: it re-reads its config and resumes from its disk queue. Done means
 * listening: the unit is Type=simple and the supervisor returns at once, so wait for the admin endpoint.
 */
export function restartForwarderFix(ctx: Context): SafeFix {
  return {
    description: `restart the forwarder (${LAYOUT.serviceName})`,
    async apply() {
      if (await ctx.systemd()) await run(ctx, 'systemctl', ['restart', LAYOUT.serviceName]);
      else await ctx.deps.services.startForwarder(ctx.opts.configPath);
      const base = await ctx.adminBase();
      const ready = ctx.deps.services.forwarderReady;
      if (base && ready && !(await ready(base, FORWARDER_READY_MS))) {
        throw new Error(`the forwarder was started but its admin endpoint ${base} did not answer within ${FORWARDER_READY_MS / 1000} s`);
      }
    },
  };
}

/**
 * Whether restarting the daemon brings the forwarder unit tied to it back: it runs now (the restart is propagated to
 * it) or it is enabled (the WantedBy= link starts it). Else nothing starts it, and waiting would only hold --fix.
 */
async function forwarderFollowsDaemon(ctx: Context): Promise<boolean> {
  const active = await ctx.deps.exec.run('systemctl', ['is-active', LAYOUT.serviceName]);
  if (/^(active|activating|reloading)$/.test(active.stdout.trim())) return true;
  return (await ctx.deps.exec.run('systemctl', ['is-enabled', LAYOUT.serviceName])).exitCode === 0;
}

/** (Re)starts the daemon and waits until it listens again. */
export async function restartDaemon(ctx: Context, daemon: DaemonName): Promise<void> {
  if (await ctx.systemd()) {
    // A forwarder unit that is PartOf= the daemon is stopped and started with it, after it: systemctl returns once
    // the daemon is up, before node listens, and a check run at once would see the forwarder down. Not listening in
    // time is the forwarder's own fault, which forwarder.running reports, so this fix does not fail on it.
    const partOf = new RegExp(`^PartOf=${UNIT[daemon]}\\.service\\s*$`, 'm');
    const base = await ctx.adminBase();
    const ready = ctx.deps.services.forwarderReady;
    const tied = Boolean(base && ready) && partOf.test((await ctx.readText(LAYOUT.unitPath)) ?? '');
    const follows = tied && (await forwarderFollowsDaemon(ctx));
    const r = await restartUnit(ctx.deps.exec, UNIT[daemon]);
    if (!r.ok) throw new Error(`systemctl restart ${UNIT[daemon]} failed: ${r.detail}`);
    if (follows) await ready!(base!, FORWARDER_READY_MS);
    return;
  }
  await ctx.deps.services.restartDaemon(daemon, { port: ctx.opts.port, protocols: await protocolsOf(ctx, daemon) });
}

export function startDaemonFix(ctx: Context, daemon: DaemonName): SafeFix {
  return { description: `start ${daemon}`, apply: () => restartDaemon(ctx, daemon) };
}
