import { mkdtemp, mkdir, writeFile, symlink, rm, chmod } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import type { Health, ProbeStatus } from '../../src/forwarder/admin-types.js';
import { startForwarder, type ForwarderDeps, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { createLogger } from '../../src/forwarder/logger.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';
import type { TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { fakeExec } from '../helpers/fake-exec.js';
import { onFreePorts } from '../helpers/ports.js';

export async function makeRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'ts-root-'));
}

export async function put(root: string, path: string, content: string, mode?: number): Promise<void> {
  const p = join(root, path);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, content);
  if (mode !== undefined) await chmod(p, mode);
}

export async function cleanup(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}

/** Kernel-style hex address:port as in /proc/net/tcp (IPv4 little-endian word). */
export function hexAddr(ip: string, port: number): string {
  const b = ip.split('.').map(Number);
  const word = ((b[3] << 24) | (b[2] << 16) | (b[1] << 8) | b[0]) >>> 0;
  return `${word.toString(16).toUpperCase().padStart(8, '0')}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

export interface SockSpec {
  local: [string, number];
  remote?: [string, number];
  /** 0A LISTEN, 01 ESTABLISHED (tcp); 07 unconnected, 01 connected (udp). */
  st: string;
  inode: number;
}

export function procNet(entries: SockSpec[]): string {
  const head = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  return (
    head +
    entries
      .map(
        (e, i) =>
          `   ${i}: ${hexAddr(...e.local)} ${hexAddr(...(e.remote ?? ['0.0.0.0', 0]))} ${e.st} 00000000:00000000 00:00000000 00000000     0        0 ${e.inode} 1 0000000000000000 100 0 0 10 0`,
      )
      .join('\n') +
    '\n'
  );
}

export async function addProcess(root: string, pid: number, comm: string, cmdline: string[], inodes: number[] = []): Promise<void> {
  await put(root, `/proc/${pid}/comm`, `${comm}\n`);
  await put(root, `/proc/${pid}/cmdline`, cmdline.join('\0') + '\0');
  await put(root, `/proc/${pid}/stat`, `${pid} (${comm}) S 1 ${pid} ${pid} 0 -1 4194560\n`);
  await mkdir(join(root, 'proc', String(pid), 'fd'), { recursive: true });
  let fd = 3;
  for (const ino of inodes) await symlink(`socket:[${ino}]`, join(root, 'proc', String(pid), 'fd', String(fd++)));
}

export function testDeps(root: string, over: Partial<TroubleshootDeps> = {}): TroubleshootDeps {
  const d = createDefaultDeps({ root, env: {} });
  return {
    ...d,
    exec: fakeExec({}),
    services: {
      startForwarder: async () => {
        throw new Error('unexpected service start');
      },
      restartDaemon: async () => {
        throw new Error('unexpected daemon restart');
      },
    },
    renderDropIn: async () => null,
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 20))),
    probeEndpoint: async (url) => ({
      url,
      host: new URL(url).hostname,
      port: 443,
      ok: true,
      httpStatus: 200,
      resolved: ['127.0.0.1'],
      elapsedMs: 1,
    }),
    getToken: async () => ({ expiresOn: Date.now() + 3600_000 }),
    statfs: async () => ({ free: 50 * 1024 ** 3, total: 100 * 1024 ** 3 }),
    confirm: async () => {
      throw new Error('unexpected prompt');
    },
    ...over,
  };
}

export function health(over: Partial<Health> = {}): Health {
  return {
    status: 'ok',
    version: '0.1.0',
    pid: 4242,
    uptimeSec: 120,
    sink: 'file',
    inputs: ['tcp://127.0.0.1:25226', 'udp://127.0.0.1:25226'],
    queue: { bytes: 0, records: 0, maxBytes: 1024 ** 3, oldestAgeSec: null, intakePaused: false },
    counters: { received: 10, parseFailures: 0, delivered: 10, retried: 0, deadLettered: 0, dropped: 0 },
    lastDelivery: { ok: true, at: new Date().toISOString() },
    ...over,
  };
}

/** A fake forwarder admin API on an ephemeral port. */
export interface FakeAdmin {
  port: number;
  health: Health;
  healthStatus: number;
  /** Answer the next /healthz this much later (a busy forwarder on a loaded machine); then at once again. */
  healthDelayMs: number;
  probes: Map<string, ProbeStatus>;
  close(): Promise<void>;
}

export async function startFakeAdmin(h: Health = health()): Promise<FakeAdmin> {
  const state = { health: h, healthStatus: 200, healthDelayMs: 0, probes: new Map<string, ProbeStatus>() };
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/healthz') {
      const answer = () => res.writeHead(state.healthStatus, { 'content-type': 'application/json' }).end(JSON.stringify(state.health));
      const delay = state.healthDelayMs;
      state.healthDelayMs = 0;
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    } else if (url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('sentinel_cef_received_total 10\n');
    } else if (url.startsWith('/probes/')) {
      const id = decodeURIComponent(url.slice('/probes/'.length));
      const p = state.probes.get(id);
      if (p) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(p));
      else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ id, received: false, accepted: false }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return Object.assign(state, {
    port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }) as FakeAdmin;
}

/**
 * A stand-in syslog daemon on real TCP and UDP sockets (ephemeral port, same number for both); `onMessage`
 * decides what happens to each probe (e.g. pass it to the fake forwarder).
 */
export async function startFakeDaemon(onMessage: (msg: string) => void): Promise<{ port: number; close(): Promise<void> }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp: TcpServer = createTcpServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          onMessage(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      s.on('end', () => buf && onMessage(buf));
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    const port = (tcp.address() as { port: number }).port;
    const udp: UdpSocket = createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, '127.0.0.1', () => r(true));
    });
    if (!ok) {
      tcp.close();
      continue;
    }
    udp.on('message', (m) => onMessage(m.toString()));
    return {
      port,
      close: async () => {
        await new Promise<void>((r) => tcp.close(() => r()));
        await new Promise<void>((r) => udp.close(() => r()));
      },
    };
  }
  throw new Error('no free port pair');
}

export function probeIdOf(msg: string): string | undefined {
  return /cs2=(\S+)/.exec(msg)?.[1];
}

/** A minimal healthy installed tree: config, bundle, daemon process owning the listeners. */
export async function healthyTree(
  root: string,
  o: { adminPort: number; daemonPort: number; daemon?: 'rsyslog' | 'syslog-ng'; sink?: object; dropIn?: string },
): Promise<void> {
  const daemon = o.daemon ?? 'rsyslog';
  await put(
    root,
    '/etc/sentinel-cef/forwarder.json',
    JSON.stringify({ sink: o.sink ?? { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' }, admin: `127.0.0.1:${o.adminPort}` }),
  );
  await put(root, '/usr/lib/sentinel-cef/forwarder.mjs', '// bundle\n');
  await put(root, daemon === 'rsyslog' ? '/usr/sbin/rsyslogd' : '/usr/sbin/syslog-ng', '');
  await put(
    root,
    daemon === 'rsyslog' ? '/etc/rsyslog.d/10-sentinel-cef.conf' : '/etc/syslog-ng/conf.d/sentinel-cef.conf',
    o.dropIn ??
      (daemon === 'rsyslog'
        ? '# Managed by sentinel-cef 0.1.0.\nif ($rawmsg contains "CEF:") then {\n  action(type="omfwd" target="127.0.0.1" port="25226" protocol="tcp")\n  stop\n}\n'
        : '# Managed by sentinel-cef 0.1.0.\ndestination d { syslog("127.0.0.1" port(25226) transport("tcp")); };\nlog { source(s); destination(d); flags(flow-control, final); };\n'),
  );
  await put(root, '/etc/rsyslog.conf', 'module(load="imuxsock")\n$IncludeConfig /etc/rsyslog.d/*.conf\n');
  await put(
    root,
    '/proc/net/tcp',
    procNet([
      { local: ['0.0.0.0', o.daemonPort], st: '0A', inode: 1001 },
      { local: ['127.0.0.1', 25226], st: '0A', inode: 2001 },
      { local: ['127.0.0.1', 40000], remote: ['127.0.0.1', 25226], st: '01', inode: 1003 },
    ]),
  );
  await put(root, '/proc/net/udp', procNet([{ local: ['0.0.0.0', o.daemonPort], st: '07', inode: 1002 }]));
  await addProcess(root, 1, 'sh', ['/bin/sh']);
  await addProcess(
    root,
    300,
    daemon === 'rsyslog' ? 'rsyslogd' : 'syslog-ng',
    [daemon === 'rsyslog' ? '/usr/sbin/rsyslogd' : '/usr/sbin/syslog-ng'],
    [1001, 1002, 1003],
  );
  await addProcess(root, 399, 'node', [
    '/usr/bin/node',
    '/usr/lib/sentinel-cef/sentinel-cef-supervise.mjs',
    '--pidfile',
    '/run/sentinel-cef/supervisor.pid',
  ]);
  await addProcess(
    root,
    400,
    'node',
    ['/usr/bin/node', '/usr/lib/sentinel-cef/forwarder.mjs', '--config', '/etc/sentinel-cef/forwarder.json'],
    [2001],
  );
  await put(root, '/run/sentinel-cef/supervisor.pid', '399\n');
  await put(root, '/run/sentinel-cef/forwarder.pid', '400\n');
}

/**
 * The real forwarder in process, listening on one port for both TCP and UDP (troubleshoot probes both on --port),
 * with quick batches and retries, and its config written to DIR/forwarder.json with the admin address it bound.
 * The port is picked again when a test alongside took it.
 */
export async function startProbedForwarder(
  dir: string,
  sink: Record<string, unknown>,
  deps: Omit<ForwarderDeps, 'logger'> = {},
): Promise<{ forwarder: RunningForwarder; port: number }> {
  const started = await onFreePorts(1, async ([port]) => {
    const raw = {
      listen: [`tcp://127.0.0.1:${port}`, `udp://127.0.0.1:${port}`],
      admin: '127.0.0.1:0',
      queue: { dir: join(dir, 'queue') },
      batch: { flushMs: 20 },
      retry: { initialMs: 50, maxMs: 200 },
      sink,
    };
    const forwarder = await startForwarder(forwarderConfigSchema.parse(raw), { logger: createLogger('fatal'), ...deps });
    return { forwarder, port, raw };
  });
  await writeFile(join(dir, 'forwarder.json'), JSON.stringify({ ...started.raw, admin: started.forwarder.adminAddress }));
  return { forwarder: started.forwarder, port: started.port };
}

/**
 * One secret per source the forwarder may echo (shaped so that only the known-value set, not a pattern, removes
 * it), with the files and config that hold it: the support bundle and the start-up error must both redact each.
 */
export const SECRET_SOURCES: Array<{ source: string; secret: string; files: Record<string, string>; config: object }> = [
  {
    source: 'workspace shared key',
    secret: 'Sh4redK3y-0123456789abcdef',
    files: { '/etc/sentinel-cef/workspace.key': 'Sh4redK3y-0123456789abcdef\n' },
    config: {
      sink: {
        type: 'log-analytics',
        workspaceId: '11111111-2222-3333-4444-555555555555',
        sharedKeyFile: '/etc/sentinel-cef/workspace.key',
      },
    },
  },
  {
    source: 'client secret',
    secret: 'Zq8~cl1ent-s3cret-0123456789',
    files: { '/etc/sentinel-cef/client-secret': 'Zq8~cl1ent-s3cret-0123456789\n' },
    config: {
      sink: {
        type: 'logs-ingestion',
        endpoint: 'https://dce.example.ingest.monitor.azure.com',
        dcrImmutableId: 'dcr-00000000000000000000000000000000',
        auth: { kind: 'client-secret', tenantId: 't', clientId: 'c', clientSecretFile: '/etc/sentinel-cef/client-secret' },
      },
    },
  },
  {
    source: 'TLS listener key',
    secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC',
    files: {
      '/etc/sentinel-cef/tls/key.pem': '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n',
    },
    config: {
      sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' },
      tls: { certFile: '/etc/sentinel-cef/tls/cert.pem', keyFile: '/etc/sentinel-cef/tls/key.pem' },
    },
  },
];
