import { statfs } from 'node:fs/promises';
import { createExec, type Exec } from '../system/exec.js';
import { createFsRoot, type FsRoot } from '../system/fs-root.js';
import { detectInitSystem } from '../system/processes.js';
import { findDaemonBinary } from '../system/detect-daemon.js';
import { lookupUser, restartDaemon, SERVICE_USER, startForwarder, type Ctx as ServiceCtx } from '../install/service.js';
import { renderRsyslogDropin, RSYSLOG_DROPIN } from '../install/render-rsyslog.js';
import { renderSyslogNgDropin, SYSLOG_NG_DROPIN } from '../install/render-syslog-ng.js';
import { detectIpv6 } from '../system/ipv6.js';
import { scanRsyslogConfig } from '../install/rsyslog-config.js';
import { scanSyslogNgConfig } from '../install/syslog-ng-config.js';
import type { SinkConfig } from '../config/schema.js';
import { probeEndpoint } from './endpoint.js';
import { waitForHealth } from '../install/probe.js';
import { sendSyslog } from '../forwarder/send-test.js';
import { createCredential, scopeFor } from '../sinks/token.js';
import type { DropInRenderOptions, TroubleshootDeps, Transport } from './types.js';
import { createPrompter, isInteractive } from '../system/prompts.js';

function serviceCtx(fs: FsRoot, exec: Exec): Promise<ServiceCtx> {
  return detectInitSystem(fs).then((init) => ({ fs, exec, init: init.kind, log: () => {} }));
}

/** What `install` would render for the daemon today, scanning everything but our own drop-in. */
export async function renderDropIn(
  fs: FsRoot,
  daemon: 'rsyslog' | 'syslog-ng',
  o: DropInRenderOptions,
): Promise<Array<{ path: string; content: string }>> {
  const out: Array<{ path: string; content: string }> = [];
  const ipv6 = await detectIpv6(fs);
  for (const protocol of o.protocol ? [o.protocol] : (['both', 'tcp', 'udp'] as const)) {
    const opts = {
      port: o.port,
      forwarderPort: o.forwarderPort,
      protocol,
      ipv6,
      intakeStateFile: o.intakeStateFile,
      durable: o.durable,
      transport: o.transport,
    };
    const r =
      daemon === 'rsyslog'
        ? renderRsyslogDropin(await scanRsyslogConfig(fs, { exclude: [RSYSLOG_DROPIN] }), opts)
        : renderSyslogNgDropin(await scanSyslogNgConfig(fs, { exclude: [SYSLOG_NG_DROPIN] }), opts);
    // install writes the rendering trimmed, with one final newline.
    out.push({ path: r.path, content: `${r.content.trimEnd()}\n` });
  }
  return out;
}

/** One syslog message: its own TCP connection (newline framing), or one UDP datagram. */
export function sendOneSyslog(target: { host: string; port: number; transport: Transport }, message: string): Promise<void> {
  return sendSyslog([message], { host: target.host, port: target.port, protocol: target.transport, timeoutMs: 3000 });
}

/** Entra ID token for the logs-ingestion sink, with the very credential the forwarder builds. */
export async function getToken(
  env: Record<string, string | undefined>,
  sinkIn: unknown,
  opts: { timeoutMs: number },
): Promise<{ expiresOn: number }> {
  const sink = sinkIn as Extract<SinkConfig, { type: 'logs-ingestion' }>;
  const cred = createCredential(sink, { env: env as NodeJS.ProcessEnv });
  const token = await cred.getToken(scopeFor(sink), { abortSignal: AbortSignal.timeout(opts.timeoutMs) });
  if (!token) throw new Error('the identity service returned no token');
  return { expiresOn: token.expiresOnTimestamp };
}

/** A packet capture (tcpdump) of the given ports through the runner; stop() ends it and returns what it printed. */
export async function startCapture(exec: Exec, ports: number[]): Promise<{ stop(): Promise<string> } | { unavailable: string }> {
  const bin = await exec.which('tcpdump');
  if (!bin) return { unavailable: 'tcpdump is not installed (apt-get install tcpdump)' };
  const filter = [...new Set(ports)].map((p) => `port ${p}`).join(' or ');
  const child = exec.start(bin, ['-i', 'any', '-nn', '-l', '-A', '-s', '0', filter]);
  // Wait until tcpdump says it is listening, or gives up.
  const ready = await new Promise<string | null>((resolve) => {
    let err = '';
    const t = setTimeout(() => resolve(null), 3000);
    child.onStderr((d) => {
      err += d;
      if (/listening on/i.test(err)) {
        clearTimeout(t);
        resolve(null);
      }
    });
    void child.exited.then((r) => {
      clearTimeout(t);
      resolve(String(r.stderr || `tcpdump exited with ${r.exitCode}`).split('\n')[0]);
    });
  });
  if (ready) return { unavailable: `tcpdump failed: ${ready}` };
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300)); // let the last packets through the kernel buffer
      return (await child.stop('SIGINT')).stdout;
    },
  };
}

export interface DefaultDepsOptions {
  root?: string;
  env?: Record<string, string | undefined>;
  progress?: (text: string) => void;
}

export function createDefaultDeps(o: DefaultDepsOptions = {}): TroubleshootDeps {
  const root = o.root ?? '/';
  const env = o.env ?? process.env;
  const fs = createFsRoot(root);
  // Troubleshoot's programs get a shorter default timeout than install's package installs.
  const ex = createExec({ defaultTimeoutMs: 30_000 });
  return {
    root,
    env,
    exec: ex,
    fetch: globalThis.fetch,
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    sendSyslog: sendOneSyslog,
    probeEndpoint,
    getToken: (sink, opts) => getToken(env, sink, opts),
    readbackClient: async (r) =>
      (await import('../azure/readback.js')).createReadbackClient({
        env,
        cloud: r.cloud,
        logsQueryUrl: r.logsQueryUrl,
        armUrl: r.armUrl,
        interactive: isInteractive(),
        prompt: (t) => process.stderr.write(`${t}\n`),
      }),
    async statfs(path) {
      try {
        const s = await statfs(fs.resolve(path));
        return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
      } catch {
        return null;
      }
    },
    startCapture: (ports) => startCapture(ex, ports),
    renderDropIn: (daemon, opts) => renderDropIn(fs, daemon, opts),
    services: {
      async startForwarder(configPath) {
        const ctx = await serviceCtx(fs, ex);
        const user = await lookupUser(fs, SERVICE_USER);
        if (!user) throw new Error(`the ${SERVICE_USER} user is missing: re-run \`sentinel-cef install\``);
        const nodePath = (await ex.which('node')) ?? process.execPath;
        return startForwarder(ctx, { nodePath, configPath, user, restart: true });
      },
      forwarderReady: (adminBase, timeoutMs) => waitForHealth(adminBase.replace(/^http:\/\//, ''), timeoutMs),
      async restartDaemon(daemon, listen) {
        const ctx = await serviceCtx(fs, ex);
        const binary = await findDaemonBinary(fs, daemon);
        if (!binary) throw new Error(`${daemon} is not installed`);
        const r = await restartDaemon(ctx, daemon, binary, listen);
        if (!r.ok) throw new Error(r.detail);
        return r.detail;
      },
    },
    writeFile: (path, content, mode) => fs.writeAtomic(path, content, { mode }),
    confirm: (question) => createPrompter().confirm(question, { default: false }),
    progress: o.progress ?? (() => {}),
    isTTY: isInteractive(),
  };
}
