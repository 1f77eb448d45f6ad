import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex, Writable } from 'node:stream';
import { pino } from 'pino';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startForwarder, type RunningForwarder, type ForwarderDeps } from '../../src/forwarder/forwarder.js';
import { buildProbeMessage, newProbeId } from '../../src/forwarder/send-test.js';
import { cef, makeConfig, readRows, silent, tcpConnect, tempDir, waitFor } from './helpers.js';

let fwd: RunningForwarder | null = null;
afterEach(async () => {
  await fwd?.shutdown();
  fwd = null;
});

let certDir = '';
beforeAll(() => {
  certDir = tempDir('fwd-faults-tls-');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.pem',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { cwd: certDir, stdio: 'pipe' },
  );
});

async function start(over: Record<string, unknown> = {}, deps: ForwarderDeps = {}) {
  const dir = tempDir();
  const config = makeConfig(dir, {
    listen: ['tcp://127.0.0.1:0', 'udp://127.0.0.1:0', 'tls://127.0.0.1:0'],
    tls: { certFile: join(certDir, 'server.pem'), keyFile: join(certDir, 'server.key') },
    ...over,
  });
  fwd = await startForwarder(config, { logger: silent, ...deps });
  const by = (p: string) => fwd!.addresses.find((a) => a.protocol === p)!;
  return { dir, config, f: fwd, tcp: by('tcp'), tls: by('tls'), rowsPath: (config.sink as { path: string }).path };
}

function tlsOpen(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(join(certDir, 'server.pem')) }, () => resolve(s));
    s.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));
const metric = async (f: RunningForwarder, re: RegExp) => Number(re.exec(await f.metrics.registry.metrics())?.[1] ?? 0);

describe('intake: a frame held when a connection closes is kept', () => {
  // Each case sends whole messages, then part of one, then closes the connection some way. Every
  // message must come out exactly once; a partial octet-counted frame as a truncated message.
  type Case = {
    name: string;
    proto: 'tcp' | 'tls';
    octet: boolean;
    reason: string;
    close: (s: Socket, f: RunningForwarder) => Promise<void>;
    over?: Record<string, unknown>;
  };
  const cases: Case[] = [
    {
      name: 'idle close (slow drip), newline framing',
      proto: 'tcp',
      octet: false,
      reason: 'slow_drip',
      over: { limits: { idleTimeoutSec: 0.3 } },
      close: (s) => closed(s),
    },
    {
      name: 'idle close (slow drip), octet-counted',
      proto: 'tcp',
      octet: true,
      reason: 'slow_drip',
      over: { limits: { idleTimeoutSec: 0.3 } },
      close: (s) => closed(s),
    },
    { name: 'peer FIN, octet-counted', proto: 'tcp', octet: true, reason: 'peer_closed', close: async (s) => void s.end() },
    { name: 'peer reset', proto: 'tcp', octet: false, reason: 'error', close: async (s) => void (await sleep(300), s.resetAndDestroy()) },
    { name: 'forwarder shutdown', proto: 'tcp', octet: true, reason: 'shutdown', close: async (_s, f) => (await sleep(300), f.shutdown()) },
    {
      name: 'TLS peer closed mid-frame',
      proto: 'tls',
      octet: true,
      reason: 'peer_closed',
      close: async (s) => void (await sleep(300), s.destroy()),
    },
    {
      name: 'TLS idle close',
      proto: 'tls',
      octet: false,
      reason: 'slow_drip',
      over: { limits: { idleTimeoutSec: 0.3 } },
      close: (s) => closed(s),
    },
  ];

  it.each(cases)('$name', async (c) => {
    const { f, tcp, tls, rowsPath } = await start(c.over);
    const s = c.proto === 'tls' ? await tlsOpen(tls.port) : await tcpConnect(tcp.port);
    const whole = [1, 2, 3].map((i) => (c.octet ? `${Buffer.byteLength(cef(i))} ${cef(i)}` : `${cef(i)}\n`)).join('');
    // The last frame: octet-counted with a count beyond what is sent, or a line without its newline.
    const part = c.octet ? `900 ${cef(4)}` : cef(4);
    s.write(whole + part);
    await c.close(s, f);
    await waitFor(() => readRows(rowsPath).length >= 4, 8000, 'four rows');
    await sleep(100);
    const rows = readRows(rowsPath);
    expect(rows.map((r) => Number(r.DeviceEventClassID)).sort()).toEqual([1, 2, 3, 4]);
    expect(f.metrics.totals.received).toBe(4);
    expect(f.metrics.totals.truncated).toBe(c.octet ? 1 : 0);
    const partial = new RegExp(`sentinel_cef_partial_frames_total\\{input="${c.proto}",reason="${c.reason}"\\} (\\d+)`);
    expect(await metric(f, partial)).toBe(1);
    s.destroy();
  });

  it('keeps a huge line without a newline bounded: cut at the maximum, flagged once, the rest skipped', async () => {
    const { f, tcp, rowsPath } = await start({ limits: { maxMessageBytes: 1000 } });
    const s = await tcpConnect(tcp.port);
    const chunk = 'a'.repeat(64 * 1024);
    s.write(cef(1, 'msg='));
    for (let i = 0; i < 64; i++) s.write(chunk); // 4 MiB with no newline
    s.end();
    await waitFor(() => readRows(rowsPath).length === 1, 8000);
    expect(f.metrics.totals.truncated).toBe(1);
    expect(f.metrics.totals.received).toBe(1);
  });
});

describe('intake: probe tracking', () => {
  it('delivers a probe with an over-long id without tracking it, counts it, and still tracks a normal probe', async () => {
    const { f, tcp, rowsPath } = await start();
    const long = `${'L'.repeat(60 * 1024)}`;
    const id = newProbeId();
    const s = await tcpConnect(tcp.port);
    s.end([buildProbeMessage(long), buildProbeMessage(id)].map((m) => m + '\n').join(''));
    await waitFor(() => readRows(rowsPath).length === 2 && f.probe(id).accepted, 8000, 'both probes delivered');
    expect(readRows(rowsPath).map((r) => r.DeviceCustomString2)).toEqual([long, id]);
    expect(f.probe(long).received).toBe(false);
    expect(await metric(f, /sentinel_cef_probes_untracked_total\{reason="id_too_long"\} (\d+)/)).toBe(1);
  });
});

describe('intake: TLS connections that never finish a handshake', () => {
  it('counts them from accept against maxConnections, closes them after the handshake timeout, and logs a summary, not a line each', async () => {
    const lines: Array<{ msg: string; count?: number }> = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
    const max = 50;
    const { f, tcp, tls, rowsPath } = await start({ limits: { maxConnections: max, tlsHandshakeTimeoutSec: 4 } }, { logger });
    const gauge = async () => (await f.metrics.connections.get()).values.reduce((n, v) => n + v.value, 0);
    const n = 300;
    const closedAt: number[] = [];
    const t0 = Date.now();
    const socks = Array.from({ length: n }, () => {
      const s = netConnect({ host: '127.0.0.1', port: tls.port });
      s.on('error', () => {});
      s.on('close', () => closedAt.push(Date.now() - t0));
      return s;
    });
    // Everything over the limit is refused at once; the rest are held, and counted, until the timeout.
    await waitFor(() => closedAt.length >= n - max, 8000, 'refusals over the limit');
    expect(await gauge()).toBe(max);
    expect(closedAt.length).toBe(n - max);
    expect(await metric(f, /connections_rejected_total\{input="tls",reason="max_connections"\} (\d+)/)).toBe(n - max);
    await waitFor(() => closedAt.length === n, 15_000, 'handshake timeouts');
    expect(Math.max(...closedAt)).toBeGreaterThanOrEqual(3500);
    expect(await metric(f, /connections_rejected_total\{input="tls",reason="tls_handshake"\} (\d+)/)).toBe(max);
    await waitFor(async () => (await gauge()) === 0, 5000, 'gauge back to 0');
    // The plain listener still takes messages.
    const s = await tcpConnect(tcp.port);
    s.end(cef(1) + '\n');
    await waitFor(() => readRows(rowsPath).length === 1, 5000);
    const refusedLines = lines.filter((l) => /maximum connections/.test(l.msg));
    const handshakeLines = lines.filter((l) => /TLS handshake failed/.test(l.msg));
    expect(refusedLines).toHaveLength(1);
    expect(handshakeLines).toHaveLength(1);
    await f.shutdown();
    // At shutdown the rest are summed up in one line each, with their count.
    expect(lines.filter((l) => /maximum connections/.test(l.msg)).map((l) => l.count)).toEqual([undefined, n - max - 1]);
    expect(lines.filter((l) => /TLS handshake failed/.test(l.msg)).map((l) => l.count)).toEqual([undefined, max - 1]);
    for (const x of socks) x.destroy();
  }, 40_000);

  it('closes a client that dribbles its ClientHello a byte at a time at the handshake timeout', async () => {
    const { f, tls } = await start({ limits: { tlsHandshakeTimeoutSec: 1 } });
    // A real ClientHello, captured from a TLS client writing into a stream that goes nowhere.
    const hello: Buffer[] = [];
    const sink = new Duplex({ read() {}, write: (c, _e, cb) => (hello.push(c), cb()) });
    tlsConnect({ socket: sink, rejectUnauthorized: false }).on('error', () => {});
    await waitFor(() => hello.length > 0, 2000, 'ClientHello');
    const bytes = Buffer.concat(hello);
    const s = netConnect({ host: '127.0.0.1', port: tls.port });
    s.on('error', () => {});
    let i = 0;
    const drip = setInterval(() => i < bytes.length && s.write(bytes.subarray(i, ++i)), 100);
    const t0 = Date.now();
    await closed(s);
    clearInterval(drip);
    expect(i).toBeLessThan(bytes.length);
    expect(Date.now() - t0).toBeLessThan(6000);
    expect(await metric(f, /connections_rejected_total\{input="tls",reason="tls_handshake"\} (\d+)/)).toBe(1);
    sink.destroy();
  });

  it('closes sockets still in their handshake at shutdown, without waiting for the timeout', async () => {
    const { f, tls } = await start({ limits: { tlsHandshakeTimeoutSec: 60 } });
    const s = netConnect({ host: '127.0.0.1', port: tls.port });
    s.on('error', () => {});
    await waitFor(async () => (await f.metrics.connections.get()).values.some((v) => v.value === 1), 5000, 'accepted');
    const t0 = Date.now();
    await f.shutdown();
    expect(Date.now() - t0).toBeLessThan(5000);
    await closed(s);
  });

  it('warns at start when maxConnections does not fit under the open-file limit', async () => {
    const lines: Array<{ msg: string; openFileLimit?: number }> = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
    const limit = Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1]);
    await start({ limits: { maxConnections: limit } }, { logger });
    expect(lines.filter((l) => /open-file limit/.test(l.msg)).map((l) => l.openFileLimit)).toEqual([limit]);
  });

  it.each([0, -1, 'ten', 301])('refuses limits.tlsHandshakeTimeoutSec = %s', (v) => {
    const r = forwarderConfigSchema.safeParse({ sink: { type: 'file', path: '/tmp/x' }, limits: { tlsHandshakeTimeoutSec: v } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(/tlsHandshakeTimeoutSec/);
  });

  it('defaults the handshake timeout to 10 s', () => {
    expect(forwarderConfigSchema.parse({ sink: { type: 'file', path: '/tmp/x' } }).limits.tlsHandshakeTimeoutSec).toBe(10);
  });
});
