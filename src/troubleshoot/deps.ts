import { createSocket } from 'node:dgram';
import { isIPv6, connect as netConnect } from 'node:net';
import { mkdir, readFile, rename, rm, statfs, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import type { SinkConfig } from '../config/schema.js';
import { probeEndpoint } from './endpoint.js';
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

/** One syslog message: a TCP connection per message (newline framing), or one UDP datagram. */
export function sendSyslog(target: { host: string; port: number; transport: Transport }, message: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (target.transport === 'udp') {
      const s = createSocket(isIPv6(target.host) ? 'udp6' : 'udp4');
      s.once('error', (e) => {
        s.close();
        reject(e);
      });
      s.send(Buffer.from(message), target.port, target.host, (err) => {
        s.close();
        if (err) reject(err);
        else resolve();
      });
      return;
    }
    const sock = netConnect({ host: target.host, port: target.port });
    const t = setTimeout(() => sock.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), 3000);
    sock.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    sock.once('connect', () => {
      clearTimeout(t);
      sock.end(`${message}\n`, () => resolve());
    });
  });
}

const SCOPES: Record<string, string> = {
  AzureCloud: 'https://monitor.azure.com//.default',
  AzureUSGovernment: 'https://monitor.azure.us//.default',
  AzureChinaCloud: 'https://monitor.azure.cn//.default',
};

/** Entra ID token for the logs-ingestion sink, with the credential kind the forwarder uses. */
export async function getToken(
  root: string,
  env: Record<string, string | undefined>,
  sinkIn: unknown,
  opts: { timeoutMs: number },
): Promise<{ expiresOn: number }> {
  const sink = sinkIn as Extract<SinkConfig, { type: 'logs-ingestion' }>;
  const id = await import('@azure/identity');
  const common = { authorityHost: sink.authorityHost, disableInstanceDiscovery: Boolean(sink.authorityHost) };
  let cred: import('@azure/identity').TokenCredential;
  const a = sink.auth;
  if (a.kind === 'client-secret') {
    const secret = a.clientSecretFile ? (await readFile(join(root, a.clientSecretFile), 'utf8')).trim() : env.AZURE_CLIENT_SECRET;
    if (!secret) throw new Error('no client secret: clientSecretFile is not set and AZURE_CLIENT_SECRET is empty');
    cred = new id.ClientSecretCredential(a.tenantId, a.clientId, secret, common);
  } else if (a.kind === 'certificate') {
    cred = new id.ClientCertificateCredential(a.tenantId, a.clientId, { certificatePath: join(root, a.certificateFile) }, common);
  } else if (a.kind === 'managed-identity') {
    cred = a.clientId ? new id.ManagedIdentityCredential({ clientId: a.clientId }) : new id.ManagedIdentityCredential();
  } else {
    cred = new id.WorkloadIdentityCredential(common);
  }
  const scope = sink.scope ?? SCOPES[sink.cloud] ?? SCOPES.AzureCloud;
  const token = await cred.getToken(scope, { abortSignal: AbortSignal.timeout(opts.timeoutMs) });
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
    sendSyslog,
    probeEndpoint,
    getToken: (sink, opts) => getToken(root, env, sink, opts),
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
