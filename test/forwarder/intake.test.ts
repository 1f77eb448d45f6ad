import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { writeSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder, type RunningForwarder, type ForwarderDeps } from '../../src/forwarder/forwarder.js';
import { buildProbeMessage, newProbeId, sendSyslog } from '../../src/forwarder/send-test.js';
import type { Health, ProbeStatus } from '../../src/forwarder/admin-types.js';
import { FakeSink, cef, makeConfig, readRows, silent, tcpConnect, tempDir, waitFor, writeAndEnd } from './helpers.js';

let fwd: RunningForwarder | null = null;
afterEach(async () => {
  await fwd?.shutdown();
  fwd = null;
});

async function start(over: Record<string, unknown> = {}, deps: ForwarderDeps = {}) {
  const dir = tempDir();
  const config = makeConfig(dir, over);
  fwd = await startForwarder(config, { logger: silent, ...deps });
  const by = (p: string) => fwd!.addresses.find((a) => a.protocol === p)!;
  return { dir, config, f: fwd, tcp: by('tcp'), udp: by('udp'), tls: by('tls') };
}

const ids = (rows: Array<Record<string, unknown>>) => rows.map((r) => Number(r.DeviceEventClassID)).sort((a, b) => a - b);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('intake', () => {
  it('accepts newline and octet-counted frames on one TCP connection, split across packets', async () => {
    const { tcp, f, config } = await start();
    const s = await tcpConnect(tcp.port);
    const parts: string[] = [];
    for (let i = 0; i < 40; i++) {
      const m = cef(i);
      parts.push(i % 2 ? `${Buffer.byteLength(m)} ${m}` : `${m}\n`);
    }
    const stream = Buffer.from(parts.join(''));
    for (let off = 0; off < stream.length; off += 97) {
      s.write(stream.subarray(off, off + 97));
      await new Promise((r) => setTimeout(r, 1));
    }
    await writeAndEnd(s, '');
    const path = (config.sink as { path: string }).path;
    await waitFor(() => readRows(path).length === 40, 5000);
    expect(ids(readRows(path))).toEqual(range(40));
    expect(f.health().counters.received).toBe(40);
  });

  it('receives UDP datagrams, and TCP and UDP over IPv6', async () => {
    const { udp, config } = await start({ listen: ['udp://127.0.0.1:0', 'udp://[::1]:0', 'tcp://[::1]:0'] });
    const v6 = fwd!.addresses.find((a) => a.host === '::1' && a.protocol === 'udp')!;
    const v6tcp = fwd!.addresses.find((a) => a.host === '::1' && a.protocol === 'tcp')!;
    expect(v6tcp.url).toBe(`tcp://[::1]:${v6tcp.port}`);
    await sendSyslog([cef(1), cef(2)], { host: '127.0.0.1', port: udp.port, protocol: 'udp' });
    await sendSyslog([cef(3)], { host: '::1', port: v6.port, protocol: 'udp' });
    await sendSyslog([cef(4)], { host: '::1', port: v6tcp.port, protocol: 'tcp' });
    const path = (config.sink as { path: string }).path;
    await waitFor(() => readRows(path).length === 4, 5000);
    expect(fwd!.metrics.totals.received).toBe(4);
    expect(await fwd!.metrics.registry.metrics()).toMatch(/sentinel_cef_received_total\{input="udp"\} 3/);
  });

  it('refuses connections beyond the maximum and counts them', async () => {
    const { tcp, f } = await start({ limits: { maxConnections: 2 } });
    const a = await tcpConnect(tcp.port);
    const b = await tcpConnect(tcp.port);
    await waitFor(async () => (await f.metrics.connections.get()).values.reduce((n, v) => n + v.value, 0) === 2, 2000);
    const c = await tcpConnect(tcp.port);
    await new Promise((r) => c.once('close', r));
    const m = await f.metrics.registry.metrics();
    expect(m).toMatch(/sentinel_cef_connections_rejected_total\{input="tcp",reason="max_connections"\} 1/);
    a.destroy();
    b.destroy();
  });

  it('closes a slow-drip connection that never completes a message within the idle timeout', async () => {
    const { tcp, f } = await start({ limits: { idleTimeoutSec: 0.3 } });
    const s = await tcpConnect(tcp.port);
    const drip = setInterval(() => s.write('x'), 50);
    const t0 = Date.now();
    await new Promise((r) => s.once('close', r));
    clearInterval(drip);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await f.metrics.registry.metrics()).toMatch(/sentinel_cef_connections_closed_total\{input="tcp",reason="slow_drip"\} 1/);
  });

  it('keeps a quiet connection open past the idle timeout, closes it when silent much longer', async () => {
    const { tcp, f, config } = await start({ limits: { idleTimeoutSec: 0.1 } });
    const s = await tcpConnect(tcp.port);
    s.write(cef(1) + '\n');
    let closedAt = 0;
    s.on('close', () => (closedAt = Date.now()));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    expect(closedAt).toBe(0);
    s.write(cef(2) + '\n');
    await waitFor(() => closedAt > 0, 5000, 'silent close');
    expect(closedAt - t0).toBeGreaterThanOrEqual(500 + 100 * 12 - 50);
    const path = (config.sink as { path: string }).path;
    await waitFor(() => readRows(path).length === 2, 5000);
    expect(await f.metrics.registry.metrics()).toMatch(/reason="idle_timeout"\} 1/);
  });

  it('truncates oversize messages and counts them', async () => {
    const { tcp, config, f } = await start({ limits: { maxMessageBytes: 300 } });
    await sendSyslog([cef(1, `msg=${'a'.repeat(5000)}`), cef(2)], { host: '127.0.0.1', port: tcp.port, protocol: 'tcp' });
    const path = (config.sink as { path: string }).path;
    await waitFor(() => readRows(path).length === 2, 5000);
    expect(f.metrics.totals.truncated).toBe(1);
  });

  it('accepts TLS with a client certificate check and refuses clients without one', async () => {
    const dir = tempDir('fwd-tls-');
    const ossl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
    ossl(
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
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    );
    ossl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'client.key',
      '-out',
      'client.pem',
      '-days',
      '1',
      '-subj',
      '/CN=client',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
    );
    const { tls, config, f } = await start({
      listen: ['tls://127.0.0.1:0'],
      tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key'), caFile: join(dir, 'ca.pem'), requireClientCert: true },
    });
    const ca = readFileSync(join(dir, 'ca.pem'));
    const m = cef(7);
    await new Promise<void>((resolve, reject) => {
      const s = tlsConnect(
        { host: '127.0.0.1', port: tls.port, ca, cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) },
        () => {
          s.end(`${Buffer.byteLength(m)} ${m}`, () => resolve());
        },
      );
      s.once('error', reject);
    });
    const path = (config.sink as { path: string }).path;
    await waitFor(() => readRows(path).length === 1, 5000);
    const refused = await new Promise<boolean>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: tls.port, ca }, () => s.write('x'));
      s.once('error', () => resolve(true));
      s.once('close', () => resolve(true));
    });
    expect(refused).toBe(true);
    await waitFor(async () => /reason="tls_handshake"\} [1-9]/.test(await f.metrics.registry.metrics()), 3000);
  });

  it('stops reading TCP when the queue is full and drops (and counts) UDP; resumes after delivery', async () => {
    const sink = new FakeSink();
    let open = false;
    sink.script = Array.from(
      { length: 10_000 },
      () => (rows) => (open ? { status: 'success', accepted: rows.length } : { status: 'retryable', error: 'down' }),
    );
    const { tcp, udp, f } = await start(
      { queue: { maxBytes: 20_000, fsyncIntervalMs: 50 }, retry: { initialMs: 20, maxMs: 40 } },
      { sink },
    );
    const s = await tcpConnect(tcp.port);
    const total = 1000;
    const payload = range(total)
      .map((i) => cef(i) + '\n')
      .join('');
    s.write(payload);
    await waitFor(() => f.health().queue.intakePaused, 5000, 'intake pause');
    const receivedAtPause = f.health().counters.received;
    expect(receivedAtPause).toBeLessThan(total);
    await sendSyslog([cef(99999)], { host: '127.0.0.1', port: udp.port, protocol: 'udp' });
    await waitFor(() => f.health().counters.dropped === 1, 3000, 'udp drop');
    expect(await f.metrics.registry.metrics()).toMatch(/sentinel_cef_dropped_total\{reason="udp_queue_full"\} 1/);
    await new Promise((r) => setTimeout(r, 200));
    expect(f.health().counters.received).toBe(receivedAtPause);
    open = true;
    s.end();
    await waitFor(() => sink.accepted.length === total, 15_000, 'all delivered').catch((err) => {
      const b = sink.sent.map((x) => `${x.length}:${x[0]?.DeviceEventClassID}-${x.at(-1)?.DeviceEventClassID}`).join(' ');
      throw new Error(`${(err as Error).message}: batches ${b} accepted ${sink.accepted.length}, health ${JSON.stringify(f.health())}`);
    });
    expect(ids(sink.accepted)).toEqual(range(total));
  });

  it('pauses on a full disk, keeps what it read, and resumes when writes succeed', async () => {
    let diskFull = false;
    const { tcp, config, f } = await start(
      {},
      {
        diskRetryMs: 50,
        queueWriteFn: (fd, b, off, len) => {
          if (diskFull) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return writeSync(fd, b, off, len);
        },
      },
    );
    diskFull = true;
    await sendSyslog([cef(1), cef(2)], { host: '127.0.0.1', port: tcp.port, protocol: 'tcp' });
    await waitFor(() => f.health().queue.intakePaused, 3000);
    expect(f.health().counters.received).toBe(0);
    diskFull = false;
    const path = (config.sink as { path: string }).path;
    await waitFor(() => readRows(path).length === 2, 5000);
    expect(f.health().queue.intakePaused).toBe(false);
  });
});

describe('admin API', () => {
  it('serves /healthz, /metrics and /probes/:id', async () => {
    const { tcp, f } = await start();
    const base = `http://${f.adminAddress}`;
    const id = newProbeId();
    const missing = await fetch(`${base}/probes/${id}`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ id, received: false, accepted: false });
    await sendSyslog([buildProbeMessage(id)], { host: '127.0.0.1', port: tcp.port, protocol: 'tcp' });
    const st = await waitFor(async () => {
      const r = await fetch(`${base}/probes/${encodeURIComponent(id)}`);
      const j = (await r.json()) as ProbeStatus;
      return r.status === 200 && j.accepted ? j : null;
    }, 5000);
    expect(st).toMatchObject({ id, received: true, accepted: true });
    if (!st) throw new Error('no probe status');
    expect(st.latencyMs).toBeGreaterThanOrEqual(0);
    const h = (await (await fetch(`${base}/healthz`)).json()) as Health;
    expect(h).toMatchObject({ status: 'ok', sink: 'file', counters: { received: 1, delivered: 1 } });
    const m = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      'received_total',
      'parse_failures_total',
      'delivered_total',
      'dead_lettered_total',
      'dropped_total',
      'truncated_total',
      'connections',
      'queue_bytes',
      'queue_oldest_age_seconds',
      'delivery_latency_seconds_bucket',
      'sink_request_duration_seconds_bucket',
      'process_resident_memory_bytes',
    ]) {
      expect(m).toContain(`sentinel_cef_${name}`);
    }
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
