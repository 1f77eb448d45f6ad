import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHostPort } from '../../src/config/listen.js';
import { startForwarder, type ForwarderDeps, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { READINESS_MAX_CONNECTIONS } from '../../src/forwarder/readiness.js';
import { FakeSink, cef, makeConfig, readRows, silent, tcpConnect, tempDir, waitFor, writeAndEnd } from './helpers.js';

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

async function start(over: Record<string, unknown> = {}, deps: ForwarderDeps = {}) {
  const dir = tmp();
  const config = makeConfig(dir, { readiness: '127.0.0.1:0', drainGraceSec: 0, ...over });
  fwd = await startForwarder(config, { logger: silent, ...deps });
  const tcp = fwd.addresses.find((a) => a.protocol === 'tcp')!;
  return { dir, config, f: fwd, tcp, path: (config.sink as { path: string }).path };
}

/** One raw HTTP exchange, as HAProxy's httpchk or the Azure probe sends it; resolves with all the server wrote. */
function rawHttp(address: string, request: string): Promise<string> {
  const { host, port } = parseHostPort(address, 'address');
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => s.write(request));
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('readiness probe timed out')));
  });
}

function halfOpenConnect(port: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(c));
    c.once('error', reject);
  });
}

const get10 = 'GET /ready HTTP/1.0\r\n\r\n';
const statusOf = (raw: string) => raw.split('\r\n')[0];
const bodyOf = (raw: string) => raw.slice(raw.indexOf('\r\n\r\n') + 4);

describe('readiness endpoint', () => {
  it('is off by default', async () => {
    const dir = tmp();
    fwd = await startForwarder(makeConfig(dir), { logger: silent });
    expect(fwd.readinessAddress).toBeNull();
  });

  it.each([
    ['GET HTTP/1.0', 'GET / HTTP/1.0\r\n\r\n', 'ready\n'],
    ['GET HTTP/1.1 with Host', 'GET /ready HTTP/1.1\r\nHost: node1\r\nUser-Agent: HAProxy\r\n\r\n', 'ready\n'],
    ['HEAD HTTP/1.1 keep-alive', 'HEAD /ready HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n', ''],
    ['HEAD HTTP/1.0', 'HEAD / HTTP/1.0\r\n\r\n', ''],
  ])('answers %s with 200 ready and closes', async (_name, request, body) => {
    const { f } = await start();
    const raw = await rawHttp(f.readinessAddress!, request);
    expect(statusOf(raw)).toMatch(/^HTTP\/1\.[01] 200 OK$/);
    expect(bodyOf(raw)).toBe(body);
    expect(raw.toLowerCase()).toContain('connection: close');
  });

  it('never reads a request body and tells nothing but ready or not', async () => {
    const { f } = await start();
    const post = await rawHttp(f.readinessAddress!, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(10)}`);
    expect(statusOf(post)).toMatch(/ 405 /);
    const raw = await rawHttp(f.readinessAddress!, 'GET /healthz HTTP/1.0\r\n\r\n');
    expect(bodyOf(raw)).toBe('ready\n');
    expect(raw).not.toMatch(/version|queue|sink|pid/i);
  });

  it('says not ready while the sink has failed longer than the threshold, ready again once it delivers', async () => {
    const sink = new FakeSink();
    let failing = true;
    sink.send = async (rows) => {
      sink.sent.push(rows);
      if (failing) return { status: 'retryable', error: 'HTTP 503' };
      sink.accepted.push(...rows);
      return { status: 'success', accepted: rows.length };
    };
    const { f, tcp } = await start({ readinessRules: { sinkFailingSec: 0.3 } }, { sink });
    await writeAndEnd(await tcpConnect(tcp.port), `${cef(1)}\n`);
    await waitFor(() => sink.sent.length >= 1, 5000, 'a failed send');
    expect(f.notReadyReason()).toBeNull();
    await waitFor(() => f.notReadyReason()?.startsWith('sink failing for'), 5000, 'not ready');
    const raw = await rawHttp(f.readinessAddress!, get10);
    expect(statusOf(raw)).toMatch(/ 503 /);
    expect(bodyOf(raw)).toMatch(/^not ready: sink failing for \d+s\n$/);
    failing = false;
    await waitFor(() => f.notReadyReason() === null, 5000, 'ready again');
    expect(statusOf(await rawHttp(f.readinessAddress!, get10))).toMatch(/ 200 /);
  });

  it('says not ready while the queue is above its high-water mark and while intake is paused', async () => {
    const sink = new FakeSink();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const send = sink.send.bind(sink);
    sink.send = async (rows) => {
      await gate;
      return send(rows);
    };
    const { f, tcp } = await start(
      { queue: { maxBytes: 4000 }, readinessRules: { queueHighWater: 0.5, sinkFailingSec: 3600 }, batch: { maxRecords: 1 } },
      { sink },
    );
    const s = await tcpConnect(tcp.port);
    const lines = Array.from({ length: 200 }, (_, i) => `${cef(i)}\n`).join('');
    s.write(lines);
    await waitFor(() => f.notReadyReason() !== null, 5000, 'not ready');
    expect(f.notReadyReason()).toMatch(/^(queue above high-water mark|intake paused: queue full)$/);
    await waitFor(() => f.health().queue.intakePaused, 5000, 'intake paused');
    expect(bodyOf(await rawHttp(f.readinessAddress!, get10))).toBe('not ready: intake paused: queue full\n');
    release();
    await writeAndEnd(s, '');
    await waitFor(() => sink.accepted.length === 200, 10_000, 'all delivered');
    await waitFor(() => f.notReadyReason() === null, 5000, 'ready again');
  });

  it('stays answering under a flood of probes and silent connections, with connections bounded', async () => {
    const { f } = await start();
    const { host, port } = parseHostPort(f.readinessAddress!, 'readiness');
    // Silent connections (slowloris) beyond the cap: the excess is refused, the rest time out.
    const silentSockets: Socket[] = [];
    for (let i = 0; i < READINESS_MAX_CONNECTIONS + 40; i++) {
      const s = connect({ host, port });
      s.on('error', () => {});
      silentSockets.push(s);
    }
    await waitFor(() => silentSockets.filter((s) => s.destroyed || s.closed).length >= 40, 5000, 'excess connections refused');
    // All of them are gone within the socket timeout (2 s) plus margin.
    await waitFor(() => silentSockets.every((s) => s.closed), 10_000, 'silent connections closed');
    // Then a burst of real probes, in waves so the cap is not hit: every one gets an answer.
    let answered = 0;
    for (let wave = 0; wave < 5; wave++) {
      const r = await Promise.all(Array.from({ length: 40 }, () => rawHttp(f.readinessAddress!, get10)));
      answered += r.filter((x) => statusOf(x).includes(' 200 ')).length;
    }
    expect(answered).toBe(200);
    const t0 = Date.now();
    await rawHttp(f.readinessAddress!, get10);
    expect(Date.now() - t0).toBeLessThan(1000);
  }, 30_000);

  it('takes --readiness, --drain-grace and --max-connection-age from flags', async () => {
    const { loadForwarderConfig } = await import('../../src/config/load.js');
    const dir = tmp();
    const c = loadForwarderConfig({
      sink: `file:${dir}/r.ndjson`,
      queueDir: dir,
      readiness: '0.0.0.0:8080',
      drainGrace: '5',
      maxConnectionAge: '600',
      listen: ['tcp://0.0.0.0:6514?proxy=v2'],
    });
    expect(c).toMatchObject({
      readiness: '0.0.0.0:8080',
      drainGraceSec: 5,
      limits: { maxConnectionAgeSec: 600, proxyHeaderTimeoutSec: 5 },
      listen: ['tcp://0.0.0.0:6514?proxy=v2'],
    });
    expect(loadForwarderConfig({ sink: `file:${dir}/r.ndjson`, queueDir: dir, readiness: 'off' }).readiness).toBe(false);
    expect(() => loadForwarderConfig({ sink: `file:${dir}/r.ndjson`, queueDir: dir, drainGrace: 'soon' })).toThrow(
      /^--drain-grace must be a number, 0 or more, got 'soon'$/,
    );
  });

  it('refuses a readiness address that is not HOST:PORT with one line', async () => {
    const { loadForwarderConfig } = await import('../../src/config/load.js');
    const dir = tmp();
    expect(() => loadForwarderConfig({ sink: `file:${dir}/r.ndjson`, queueDir: dir, readiness: 'nonsense' })).toThrow(
      /^--readiness must be HOST:PORT, e.g. \[::\]:8080, got 'nonsense'$/,
    );
  });
});

describe('graceful drain on SIGTERM', () => {
  it('is not ready at once, keeps receiving for the grace period, then stops accepting and delivers every row exactly once', async () => {
    const { f, tcp, path } = await start({ drainGraceSec: 1 });
    const s = await tcpConnect(tcp.port);
    s.write(`${cef(0)}\n`);
    const t0 = Date.now();
    const stopped = f.shutdown();
    expect(f.notReadyReason()).toBe('shutting down');
    expect(bodyOf(await rawHttp(f.readinessAddress!, get10))).toBe('not ready: shutting down\n');
    // During the grace: the open connection and a new one both still deliver.
    s.write(`${cef(1)}\n`);
    const late = await tcpConnect(tcp.port);
    await writeAndEnd(late, `${cef(2)}\n`);
    await waitFor(() => f.health().counters.received === 3, 3000, 'received during grace');
    await stopped;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    const ids = readRows(path)
      .map((r) => Number(r.DeviceEventClassID))
      .sort();
    expect(ids).toEqual([0, 1, 2]);
    await expect(tcpConnect(tcp.port)).rejects.toThrow();
    s.destroy();
  });

  it('defaults to no grace without a readiness endpoint (shutdown as before)', async () => {
    const dir = tmp();
    fwd = await startForwarder(makeConfig(dir), { logger: silent });
    const t0 = Date.now();
    await fwd.shutdown();
    expect(Date.now() - t0).toBeLessThan(900);
  });
});

describe('connection rebalancing (limits.maxConnectionAgeSec)', () => {
  it('never closes mid-frame: a frame in progress at the deadline is finished, then the connection gets a FIN', async () => {
    const { f, tcp, path } = await start({ limits: { maxConnectionAgeSec: 0.3 } });
    // A sender that has not looked at its socket yet: it keeps writing after the forwarder's FIN.
    const s = await halfOpenConnect(tcp.port);
    let ended = false;
    s.on('end', () => (ended = true));
    const m = cef(7, 'msg=long');
    s.write(m.slice(0, 30));
    await new Promise((r) => setTimeout(r, 1500));
    expect(ended).toBe(false);
    s.write(`${m.slice(30)}\n`);
    await waitFor(() => ended, 5000, 'FIN after the frame');
    // Half-closed by the forwarder, still read: what the sender wrote before noticing is kept.
    s.end(`${cef(8)}\n`);
    await waitFor(() => readRows(path).length === 2, 5000, 'rows');
    const rows = readRows(path);
    expect(rows.map((r) => r.DeviceEventClassID)).toEqual(['7', '8']);
    expect(rows[0]!.Message ?? '').not.toContain('truncated');
    expect(f.metrics.totals.truncated).toBe(0);
    const text = await f.metrics.registry.metrics();
    expect(text).toMatch(/sentinel_cef_connections_closed_total\{input="tcp",reason="max_age"\} 1/);
    expect(text).not.toMatch(/sentinel_cef_partial_frames_total\{/);
  });

  it('a sender that reconnects on FIN, writing frames split across packets, loses and duplicates nothing', async () => {
    const { f, tcp, path } = await start({ limits: { maxConnectionAgeSec: 0.4 } });
    const total = 300;
    let next = 0;
    let connections = 0;
    while (next < total) {
      // It finishes the frame in hand after the FIN (as rsyslog and syslog-ng do before they reconnect).
      const s = await halfOpenConnect(tcp.port);
      connections++;
      let ended = false;
      s.on('end', () => (ended = true));
      while (!ended && next < total) {
        // Each frame in three writes, with pauses, so deadlines fall inside frames too.
        const m =
          next % 2
            ? `${cef(next)}\n`
            : (() => {
                const b = cef(next);
                return `${Buffer.byteLength(b)} ${b}`;
              })();
        const cut = [0, 20, 50, m.length];
        for (let k = 0; k < 3; k++) {
          s.write(m.slice(cut[k], cut[k + 1]));
          await new Promise((r) => setTimeout(r, 2));
        }
        next++;
      }
      await writeAndEnd(s, '');
    }
    await waitFor(() => readRows(path).length === total, 10_000, 'all rows');
    const ids = readRows(path).map((r) => Number(r.DeviceEventClassID));
    expect(new Set(ids).size).toBe(total);
    expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(connections).toBeGreaterThan(1);
    expect(f.metrics.totals.truncated).toBe(0);
    expect(await f.metrics.registry.metrics()).not.toMatch(/sentinel_cef_partial_frames_total\{/);
  }, 30_000);

  it('is off by default: an old connection stays open', async () => {
    const { tcp } = await start();
    const s = await tcpConnect(tcp.port);
    let ended = false;
    s.on('end', () => (ended = true));
    await new Promise((r) => setTimeout(r, 1200));
    expect(ended).toBe(false);
    s.destroy();
  });
});
