import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseListenUrl } from '../../src/config/listen.js';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { MAX_V2_BYTES, parseProxyHeader } from '../../src/forwarder/proxy-protocol.js';
import { cef, makeConfig, readRows, type RelpAnswer, RELP_OFFERS, relpAnswers, relpFrame, tempDir, waitFor } from './helpers.js';

let fwd: RunningForwarder | null = null;
const dirs: string[] = [];
const tmp = (prefix?: string) => {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
};
afterEach(async () => {
  await fwd?.shutdown();
  fwd = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A tiny PROXY header writer, as a balancer sends it. */
function v1(src: string, sport: number, dst = '10.0.0.100', dport = 514): Buffer {
  return Buffer.from(`PROXY ${src.includes(':') ? 'TCP6' : 'TCP4'} ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
}
const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
function v2(opts: { src?: string; sport?: number; local?: boolean; tlvs?: Array<[number, Buffer]>; family?: number } = {}): Buffer {
  const src = opts.src ?? '192.0.2.10';
  const six = src.includes(':');
  const ip = (a: string) => (six ? ipv6Bytes(a) : Buffer.from(a.split('.').map(Number)));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(opts.sport ?? 40000, 0);
  ports.writeUInt16BE(514, 2);
  const addr = Buffer.concat([ip(src), ip(six ? '2001:db8::100' : '10.0.0.100'), ports]);
  const tlvs = Buffer.concat((opts.tlvs ?? []).map(([t, v]) => Buffer.concat([Buffer.from([t, v.length >> 8, v.length & 0xff]), v])));
  const body = Buffer.concat([addr, tlvs]);
  const head = Buffer.alloc(4);
  head[0] = opts.local ? 0x20 : 0x21;
  head[1] = opts.family ?? (six ? 0x21 : 0x11);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIG, head, body]);
}
function ipv6Bytes(a: string): Buffer {
  const [l, r = ''] = a.split('::');
  const left = l ? l.split(':') : [];
  const right = r ? r.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _e, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, logger: pino({ level: 'debug' }, stream) };
}

async function start(listen: string[], over: Record<string, unknown> = {}) {
  const dir = tmp('fwd-proxy-');
  const log = capture();
  const config = makeConfig(dir, { listen, ...over });
  fwd = await startForwarder(config, { logger: log.logger });
  return {
    f: fwd,
    dir,
    log,
    path: (config.sink as { path: string }).path,
    port: (p: string) => fwd!.addresses.find((a) => a.protocol === p)!.port,
  };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
}
const closed = (s: Socket) => new Promise<void>((r) => (s.closed ? r() : s.once('close', () => r())));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes in pieces of `step` bytes with pauses, so the reads split the header. */
async function dribble(s: Socket, data: Buffer, step: number): Promise<void> {
  for (let i = 0; i < data.length; i += step) {
    s.write(data.subarray(i, i + step));
    await pause(3);
  }
}

async function rejected(f: RunningForwarder, reason: string): Promise<number> {
  const m = new RegExp(`sentinel_cef_connections_rejected_total\\{input="(?:tcp|tls|relp)",reason="${reason}"\\} (\\d+)`).exec(
    await f.metrics.registry.metrics(),
  );
  return m ? Number(m[1]) : 0;
}

const through = (log: { lines: Array<Record<string, unknown>> }) => log.lines.filter((l) => l.msg === 'connection through a load balancer');

describe('PROXY protocol on TCP', () => {
  it.each([
    ['v1, TCP4', 'v1', v1('198.51.100.7', 51000), '198.51.100.7'],
    ['v1, TCP6', 'v1', v1('2001:db8::7', 51000, '2001:db8::1'), '2001:db8::7'],
    ['v2, TCP4', 'v2', v2({ src: '198.51.100.8', sport: 51001 }), '198.51.100.8'],
    ['v2, TCP6', 'v2', v2({ src: '2001:db8:0:0:0:0:0:8', sport: 51002 }), '2001:db8::8'],
    [
      'v2 with TLVs (authority, unique id, NOOP padding)',
      'v2',
      v2({
        src: '198.51.100.9',
        tlvs: [
          [0x02, Buffer.from('syslog.example.net')],
          [0x05, Buffer.alloc(32, 7)],
          [0x04, Buffer.alloc(40)],
        ],
      }),
      '198.51.100.9',
    ],
  ] as const)(
    '%s: the header split across packets, frames after it in the same reads; the device address is used',
    async (_n, version, header, device) => {
      const { f, log, path, port } = await start([`tcp://127.0.0.1:0?proxy=${version}`]);
      const s = await open(port('tcp'));
      const frames = Buffer.from(Array.from({ length: 20 }, (_, i) => `${cef(i)}\n`).join(''));
      await dribble(s, Buffer.concat([header, frames]), 7);
      s.end();
      await waitFor(() => readRows(path).length === 20, 5000, 'rows');
      expect(readRows(path).map((r) => Number(r.DeviceEventClassID))).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(through(log)).toEqual([expect.objectContaining({ remote: device, via: '127.0.0.1' })]);
      // No header byte leaks into a message.
      expect(readRows(path).every((r) => !JSON.stringify(r).includes('PROXY') && !JSON.stringify(r).includes('QUIT'))).toBe(true);
      expect(f.metrics.totals.parseFailures).toBe(0);
    },
  );

  it.each([
    ["v2 LOCAL (the balancer's own health check)", 'v2', v2({ local: true })],
    ['v2 PROXY with UNSPEC family', 'v2', Buffer.concat([SIG, Buffer.from([0x21, 0x00, 0x00, 0x00])])],
    ['v1 UNKNOWN', 'v1', Buffer.from('PROXY UNKNOWN\r\n')],
  ] as const)('%s: accepted, the peer is the sender', async (_n, version, header) => {
    const { log, path, port } = await start([`tcp://127.0.0.1:0?proxy=${version}`]);
    const s = await open(port('tcp'));
    s.end(Buffer.concat([header, Buffer.from(`${cef(1)}\n`)]));
    await waitFor(() => readRows(path).length === 1, 5000, 'row');
    expect(through(log)).toEqual([]);
  });

  it.each([
    ['no header at all (a sender pointed at the wrong port)', 'v2', Buffer.from(`${cef(1)}\n`)],
    ['a v1 header on a v2 listener', 'v2', v1('198.51.100.7', 1)],
    ['a v2 header on a v1 listener', 'v1', v2()],
    ['an oversized v2 header (length past the bound)', 'v2', Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0xff, 0xff])])],
    ['an oversized v1 line (no CRLF within 107 bytes)', 'v1', Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}`)],
    ['v1 with a bad address', 'v1', Buffer.from('PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n')],
    ['v1 with a port out of range', 'v1', Buffer.from('PROXY TCP4 10.1.1.1 10.0.0.1 65536 2\r\n')],
    ['v1 ended by a bare LF', 'v1', Buffer.from('PROXY TCP4 10.1.1.1 10.0.0.1 1 2\n')],
    ['v2 version 1', 'v2', Buffer.concat([SIG, Buffer.from([0x11, 0x11, 0x00, 0x0c]), Buffer.alloc(12)])],
    ['v2 command 2', 'v2', Buffer.concat([SIG, Buffer.from([0x22, 0x11, 0x00, 0x0c]), Buffer.alloc(12)])],
    ['v2 TCP4 with a short address block', 'v2', Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0x00, 0x04]), Buffer.alloc(4)])],
    [
      'v2 with a TLV running past the header',
      'v2',
      Buffer.concat([v2().subarray(0, 14), Buffer.from([0x00, 15]), v2().subarray(16), Buffer.from([0x02, 0x00, 0x09])]),
    ],
    ['v2 UDP on a stream listener', 'v2', v2({ family: 0x12 })],
  ] as const)('%s: closed at once, counted, nothing queued', async (_n, version, bytes) => {
    const { f, port } = await start([`tcp://127.0.0.1:0?proxy=${version}`], { limits: { proxyHeaderTimeoutSec: 30 } });
    const s = await open(port('tcp'));
    s.on('error', () => {});
    const t0 = Date.now();
    s.write(bytes);
    await closed(s);
    expect(Date.now() - t0).toBeLessThan(3000);
    await waitFor(async () => (await rejected(f, 'proxy_header')) === 1, 3000, 'counted');
    expect(f.metrics.totals.received).toBe(0);
  });

  it('closes and counts a connection whose header does not complete within the timeout', async () => {
    const { f, port } = await start(['tcp://127.0.0.1:0?proxy=v2'], { limits: { proxyHeaderTimeoutSec: 0.5 } });
    const s = await open(port('tcp'));
    s.write(v2().subarray(0, 10));
    const t0 = Date.now();
    await closed(s);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(await rejected(f, 'proxy_timeout')).toBe(1);
    expect(f.health().counters.received).toBe(0);
  });

  it('counts a connect-and-close without a byte (a TCP health check) apart from bad headers', async () => {
    const { f, port } = await start(['tcp://127.0.0.1:0?proxy=v2']);
    const s = await open(port('tcp'));
    s.end();
    await waitFor(async () => (await rejected(f, 'proxy_no_header')) === 1, 3000, 'counted');
    expect(await rejected(f, 'proxy_header')).toBe(0);
  });

  it('a plain listener beside a PROXY one is unchanged', async () => {
    const { path, port, f } = await start(['tcp://127.0.0.1:0', 'udp://127.0.0.1:0']);
    expect(f.addresses.map((a) => a.url)).toEqual([expect.stringMatching(/^tcp:\/\/127\.0\.0\.1:\d+$/), expect.stringMatching(/^udp:/)]);
    const s = await open(port('tcp'));
    s.end(`${cef(1)}\n`);
    await waitFor(() => readRows(path).length === 1, 5000, 'row');
  });
});

describe('PROXY protocol on TLS (the header precedes the handshake)', () => {
  it.each(['v1', 'v2'] as const)('%s: header, then TLS; the device address is used and frames arrive intact', async (version) => {
    const dir = tmp('fwd-proxy-tls-');
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
      { cwd: dir, stdio: 'pipe' },
    );
    const { f, log, path, port } = await start([`tls://127.0.0.1:0?proxy=${version}`], {
      tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
    });
    const raw = await open(port('tls'));
    const header = version === 'v1' ? v1('203.0.113.5', 50505) : v2({ src: '203.0.113.5', tlvs: [[0x01, Buffer.from('syslog')]] });
    await dribble(raw, header, 5);
    const s = tlsConnect({ socket: raw, ca: readFileSync(join(dir, 'server.pem')), servername: 'localhost' });
    await new Promise<void>((r, j) => s.once('secureConnect', () => r()).once('error', j));
    s.end(Array.from({ length: 10 }, (_, i) => `${cef(i)}\n`).join(''));
    await waitFor(() => readRows(path).length === 10, 5000, 'rows');
    expect(through(log)).toEqual([expect.objectContaining({ input: 'tls', remote: '203.0.113.5', via: '127.0.0.1' })]);
    expect(await rejected(f, 'tls_handshake')).toBe(0);
  });
});

describe('PROXY protocol behind a relaying balancer', () => {
  it('a header sent in the same packet as the TLS ClientHello is split off and the handshake completes', async () => {
    const dir = tmp('fwd-proxy-tls-');
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
      { cwd: dir, stdio: 'pipe' },
    );
    const { log, path, port } = await start(['tls://127.0.0.1:0?proxy=v2'], {
      tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
    });
    // A tiny balancer: prepends the header to the client's first bytes in one write, then relays.
    const relay = createServer((client) => {
      client.once('data', (first: Buffer) => {
        const up = connect({ port: port('tls'), host: '127.0.0.1' }, () => {
          up.write(Buffer.concat([v2({ src: '203.0.113.77' }), first]));
          client.pipe(up).pipe(client);
        });
        up.on('error', () => client.destroy());
      });
      client.on('error', () => {});
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    try {
      const relayPort = (relay.address() as { port: number }).port;
      const s = tlsConnect({ host: '127.0.0.1', port: relayPort, ca: readFileSync(join(dir, 'server.pem')), servername: 'localhost' });
      await new Promise<void>((r, j) => s.once('secureConnect', () => r()).once('error', j));
      s.end(`${cef(1)}\n${cef(2)}\n`);
      await waitFor(() => readRows(path).length === 2, 5000, 'rows');
      expect(through(log)).toEqual([expect.objectContaining({ remote: '203.0.113.77' })]);
    } finally {
      relay.close();
    }
  });
});

/** An omrelp session: open, `n` CEF messages, close. */
const relpSession = (n: number): Buffer =>
  Buffer.from(
    relpFrame(1, 'open', RELP_OFFERS) +
      Array.from({ length: n }, (_, i) => relpFrame(i + 2, 'syslog', cef(i))).join('') +
      relpFrame(n + 2, 'close'),
  );
/** The answers as `[TXNR, first line]`: the open answer's offers are not this test's business. */
const firstLines = (answers: RelpAnswer[]): Array<[number, string]> => answers.map((a) => [a.txnr, a.text.split('\n')[0]!]);

describe('PROXY protocol on RELP (HAProxy send-proxy in front of omrelp senders)', () => {
  it.each([
    ['v1, TCP4', 'v1', v1('198.51.100.17', 52000), '198.51.100.17'],
    ['v1, TCP6', 'v1', v1('2001:db8::17', 52000, '2001:db8::1'), '2001:db8::17'],
    ['v2, TCP4', 'v2', v2({ src: '198.51.100.18', sport: 52001 }), '198.51.100.18'],
    ['v2, TCP6 with TLVs', 'v2', v2({ src: '2001:db8:0:0:0:0:0:18', tlvs: [[0x05, Buffer.alloc(16, 3)]] }), '2001:db8::18'],
  ] as const)(
    '%s: the header split across packets, the RELP session after it in the same reads; every message answered once, the device address used',
    async (_n, version, header, device) => {
      const { f, log, path, port } = await start([`relp://127.0.0.1:0?proxy=${version}`]);
      expect(f.addresses[0]!.url).toMatch(new RegExp(`^relp://127\\.0\\.0\\.1:\\d+\\?proxy=${version}$`));
      const s = await open(port('relp'));
      const { answers } = relpAnswers(s);
      await dribble(s, Buffer.concat([header, relpSession(20)]), 7);
      await closed(s);
      expect(firstLines(answers)).toEqual([
        [1, '200 OK'],
        ...Array.from({ length: 20 }, (_, i) => [i + 2, '200 OK']),
        [22, '200 OK'],
        [0, 'serverclose'],
      ]);
      await waitFor(() => readRows(path).length === 20, 5000, 'rows');
      expect(readRows(path).map((r) => Number(r.DeviceEventClassID))).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(through(log)).toEqual([expect.objectContaining({ input: 'relp', remote: device, via: '127.0.0.1' })]);
      expect(readRows(path).every((r) => !JSON.stringify(r).includes('PROXY') && !JSON.stringify(r).includes('QUIT'))).toBe(true);
      expect(f.metrics.totals.parseFailures).toBe(0);
    },
  );

  it.each([
    ["v2 LOCAL (the balancer's own health check)", 'v2', v2({ local: true })],
    ['v1 UNKNOWN', 'v1', Buffer.from('PROXY UNKNOWN\r\n')],
  ] as const)('%s: accepted, the peer is the sender', async (_n, version, header) => {
    const { log, path, port } = await start([`relp://127.0.0.1:0?proxy=${version}`]);
    const s = await open(port('relp'));
    const { answers } = relpAnswers(s);
    s.write(Buffer.concat([header, relpSession(1)]));
    await closed(s);
    expect(firstLines(answers).map((a) => a[1])).toEqual(['200 OK', '200 OK', '200 OK', 'serverclose']);
    await waitFor(() => readRows(path).length === 1, 5000, 'row');
    expect(through(log)).toEqual([]);
  });

  it.each([
    ['no header (omrelp pointed straight at the port)', 'v2', relpSession(2)],
    ['a v1 header on a v2 listener', 'v2', Buffer.concat([v1('198.51.100.7', 1), relpSession(2)])],
    ['a v2 header on a v1 listener', 'v1', Buffer.concat([v2(), relpSession(2)])],
    ['v1 with a bad address', 'v1', Buffer.concat([Buffer.from('PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n'), relpSession(2)])],
  ] as const)('%s: closed at once without an answer, counted and logged once, nothing queued', async (_n, version, bytes) => {
    const { f, log, port } = await start([`relp://127.0.0.1:0?proxy=${version}`], { limits: { proxyHeaderTimeoutSec: 30 } });
    const refused = () => log.lines.filter((l) => l.msg === 'connection closed: no valid PROXY protocol header');
    for (let i = 0; i < 2; i++) {
      const s = await open(port('relp'));
      s.on('error', () => {});
      const { answers } = relpAnswers(s);
      const t0 = Date.now();
      s.write(bytes);
      await closed(s);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(answers).toEqual([]);
    }
    await waitFor(async () => (await rejected(f, 'proxy_header')) === 2, 3000, 'counted');
    // The same policy as TCP: the first refusal logged at once, the next counted into the interval's summary.
    expect(refused()).toEqual([expect.objectContaining({ input: 'relp', remote: '127.0.0.1' })]);
    expect(f.metrics.totals.received).toBe(0);
  });

  it('closes and counts a RELP connection whose header does not complete within the timeout', async () => {
    const { f, port } = await start(['relp://127.0.0.1:0?proxy=v2'], { limits: { proxyHeaderTimeoutSec: 0.5 } });
    const s = await open(port('relp'));
    s.write(v2().subarray(0, 10));
    await closed(s);
    expect(await rejected(f, 'proxy_timeout')).toBe(1);
    expect(f.health().counters.received).toBe(0);
  });

  it('counts a connect-and-close without a byte (a TCP health check on the RELP port) apart from bad headers', async () => {
    const { f, port } = await start(['relp://127.0.0.1:0?proxy=v2']);
    const s = await open(port('relp'));
    s.end();
    await waitFor(async () => (await rejected(f, 'proxy_no_header')) === 1, 3000, 'counted');
    expect(await rejected(f, 'proxy_header')).toBe(0);
  });
});

describe('listen URL ?proxy=', () => {
  it('parses v1/v2 on tcp and tls and keeps it in the URL', () => {
    expect(parseListenUrl('tcp://0.0.0.0:514?proxy=v2')).toMatchObject({
      protocol: 'tcp',
      port: 514,
      proxy: 'v2',
      url: 'tcp://0.0.0.0:514?proxy=v2',
    });
    expect(parseListenUrl('tls://[::]:6514?proxy=v1')).toMatchObject({
      protocol: 'tls',
      host: '::',
      proxy: 'v1',
      url: 'tls://[::]:6514?proxy=v1',
    });
    expect(parseListenUrl('relp://127.0.0.1:2514?proxy=v2')).toMatchObject({
      protocol: 'relp',
      proxy: 'v2',
      url: 'relp://127.0.0.1:2514?proxy=v2',
    });
    expect(parseListenUrl('tcp://0.0.0.0:514').proxy).toBeUndefined();
    expect(parseListenUrl('relp://0.0.0.0:2514').proxy).toBeUndefined();
  });
  it.each([
    ['udp://0.0.0.0:514?proxy=v2', /needs a tcp:\/\/, tls:\/\/ or relp:\/\/ listener/],
    ['tcp://0.0.0.0:514?proxy=v3', /invalid option in listen address/],
    ['tcp://0.0.0.0:514?proxy=v2&x=1', /invalid option in listen address/],
    ['relp://0.0.0.0:2514?proxy=v3', /invalid option in listen address/],
    ['relp://0.0.0.0:2514?proxy=', /invalid option in listen address/],
  ])('refuses %s with one line', (url, msg) => {
    expect(() => parseListenUrl(url)).toThrow(msg);
  });
});

describe('parseProxyHeader', () => {
  it('asks for more on every strict prefix of a valid header and fails at the first wrong byte', () => {
    for (const [version, h] of [
      ['v1', v1('198.51.100.7', 1)],
      ['v2', v2({ tlvs: [[0x02, Buffer.from('x')]] })],
    ] as const) {
      for (let n = 1; n < h.length; n++) expect(parseProxyHeader(h.subarray(0, n), version).status).toBe('more');
      expect(parseProxyHeader(h, version)).toMatchObject({ status: 'done', length: h.length });
    }
    expect(parseProxyHeader(Buffer.from('PROXX'), 'v1').status).toBe('invalid');
    expect(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b]), 'v2').status).toBe('invalid');
  });
  it('bounds v2 at MAX_V2_BYTES as soon as the length field arrives', () => {
    const head = Buffer.alloc(4);
    head[0] = 0x21;
    head[1] = 0x11;
    head.writeUInt16BE(MAX_V2_BYTES - 16 + 1, 2);
    expect(parseProxyHeader(Buffer.concat([SIG, head]), 'v2').status).toBe('invalid');
    head.writeUInt16BE(MAX_V2_BYTES - 16, 2);
    expect(parseProxyHeader(Buffer.concat([SIG, head]), 'v2').status).toBe('more');
  });
});
