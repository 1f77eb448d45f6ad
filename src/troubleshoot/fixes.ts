import type { Context, DaemonName } from './context.js';
import { LAYOUT } from './layout.js';
import type { SafeFix } from './types.js';

async function run(ctx: Context, file: string, args: string[]): Promise<void> {
  const r = await ctx.deps.exec(file, args, { timeoutMs: 30_000 });
  if (r.exitCode !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.exitCode}`}`);
  }
}

const SERVICE: Record<DaemonName, string> = { rsyslog: 'rsyslog', 'syslog-ng': 'syslog-ng' };
const BIN: Record<DaemonName, string> = { rsyslog: 'rsyslogd', 'syslog-ng': 'syslog-ng' };

/** Restarting our own service is always safe: it only re-reads its config and drains its queue. */
export function restartForwarderFix(ctx: Context): SafeFix | undefined {
  return {
    description: `restart the forwarder service (${LAYOUT.serviceName})`,
    async apply() {
      if (await ctx.systemd()) return run(ctx, 'systemctl', ['restart', LAYOUT.serviceName]);
      throw new Error('no service manager to restart the forwarder with: run `sentinel-cef install` to start it');
    },
  };
}

export function startDaemonFix(ctx: Context, daemon: DaemonName): SafeFix {
  return {
    description: `start ${daemon}`,
    async apply() {
      if (await ctx.systemd()) return run(ctx, 'systemctl', ['restart', SERVICE[daemon]]);
      // Without a service manager both daemons fork into the background themselves.
      return run(ctx, BIN[daemon], []);
    },
  };
}

export async function reloadDaemon(ctx: Context, daemon: DaemonName): Promise<void> {
  if (await ctx.systemd()) return run(ctx, 'systemctl', ['restart', SERVICE[daemon]]);
  const pids = await ctx.daemonPids();
  if (pids.length === 0) return run(ctx, BIN[daemon], []);
  if (daemon === 'syslog-ng') return run(ctx, 'kill', ['-HUP', String(Math.min(...pids))]);
  // rsyslog v8 does not re-read its config on SIGHUP: stop it and start it again.
  await run(ctx, 'kill', ['-TERM', ...pids.map(String)]);
  for (let i = 0; i < 50; i++) {
    ctx.invalidate(['processes', 'daemon', 'sockets']);
    if ((await ctx.daemonPids()).length === 0) break;
    await ctx.deps.sleep(100);
  }
  return run(ctx, BIN[daemon], []);
}
