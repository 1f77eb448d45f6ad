import { mkdir, rename, rm, statfs, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import type { SinkConfig } from '../config/schema.js';
import { probeEndpoint } from './endpoint.js';
import { sendSyslog } from '../forwarder/send-test.js';
import { createCredential, scopeFor } from '../sinks/token.js';
import type { ExecResult, TroubleshootDeps, Transport } from './types.js';

export async function execProgram(file: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
  const r = await execa(file, args, { reject: false, timeout: opts.timeoutMs ?? 30_000, stdin: 'ignore' });
  const code = (r as { code?: string }).code;
  return {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : code === 'ENOENT' ? 127 : 1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    notFound: code === 'ENOENT',
    timedOut: Boolean(r.timedOut),
  };
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

async function startCapture(ports: number[]): Promise<{ stop(): Promise<string> } | { unavailable: string }> {
  const which = (await import('which')).default;
  const bin = await which('tcpdump', { nothrow: true });
  if (!bin) return { unavailable: 'tcpdump is not installed (apt-get install tcpdump)' };
  const filter = [...new Set(ports)].map((p) => `port ${p}`).join(' or ');
  const child = execa(bin, ['-i', 'any', '-nn', '-l', '-A', '-s', '0', filter], { reject: false, buffer: true });
  // Wait until tcpdump says it is listening, or gives up.
  const ready = await new Promise<string | null>((resolve) => {
    let err = '';
    const t = setTimeout(() => resolve(null), 3000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/i.test(err)) {
        clearTimeout(t);
        resolve(null);
      }
    });
    void child.then((r) => {
      clearTimeout(t);
      resolve(String(r.stderr || `tcpdump exited with ${r.exitCode}`).split('\n')[0]);
    });
  });
  if (ready) return { unavailable: `tcpdump failed: ${ready}` };
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300)); // let the last packets through the kernel buffer
      child.kill('SIGINT');
      const r = await child;
      return String(r.stdout ?? '');
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
  return {
    root,
    env,
    exec: execProgram,
    fetch: globalThis.fetch,
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    sendSyslog: sendOneSyslog,
    probeEndpoint,
    getToken: (sink, opts) => getToken(env, sink, opts),
    async statfs(path) {
      try {
        const s = await statfs(join(root, path));
        return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
      } catch {
        return null;
      }
    },
    startCapture,
    renderDropIn: async () => null,
    async writeFile(path, content, mode) {
      const real = join(root, path);
      await mkdir(dirname(real), { recursive: true });
      const tmp = `${real}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        await writeFile(tmp, content, { mode });
        await chmod(tmp, mode);
        await rename(tmp, real);
      } finally {
        await rm(tmp, { force: true });
      }
    },
    async confirm(question) {
      const { confirm } = await import('@inquirer/prompts');
      return confirm({ message: question, default: false }, { output: process.stderr });
    },
    progress: o.progress ?? (() => {}),
    isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
  };
}
