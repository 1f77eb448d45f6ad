import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ForwarderConfig } from '../../src/config/schema.js';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { generateCertificate } from '../helpers/mock-azure.js';
import { cef, makeConfig, readRows, tempDir, waitFor } from './helpers.js';

// Issue 15: a forwarder stopping under load must not reset TCP connections with data unread. Plain TCP has no
// acknowledgement: syslog-ng counts a line as sent once written into the socket.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const line = (n: number) => `${cef(n, `cs2Label=End cs2=end-${n}`)}\n`;

interface LogLine {
  msg: string;
  connections?: number;
  cut?: number;
  cutWhileSending?: number;
  drainMs?: number;
}

const running: RunningForwarder[] = [];
afterEach(async () => {
  for (const f of running.splice(0)) await f.shutdown();
});

let cert = { certPath: '', keyPath: '' };
beforeAll(async () => {
  cert = await generateCertificate(tempDir('fwd-drain-tls-'));
});

type Proto = 'tcp' | 'tls';

function configFor(proto: Proto): ForwarderConfig {
  const tls = { tls: { certFile: cert.certPath, keyFile: cert.keyPath } };
  return makeConfig(tempDir('fwd-drain-'), { listen: [`${proto}://127.0.0.1:0`], admin: false, ...(proto === 'tls' ? tls : {}) });
}

async function start(config: ForwarderConfig, logs: LogLine[], stopDrainMs?: number) {
  const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (logs.push(JSON.parse(String(c))), cb()) }));
  const f = await startForwarder(config, { logger, stopDrainMs });
  running.push(f);
  return { f, port: f.addresses[0]!.port };
}

function open(proto: Proto, port: number): { sock: Socket; event: string } {
  if (proto === 'tcp') return { sock: connect({ host: '127.0.0.1', port, allowHalfOpen: true }), event: 'connect' };
  const ca = readFileSync(cert.certPath);
  return { sock: tlsConnect({ host: '127.0.0.1', port, ca, allowHalfOpen: true } as ConnectionOptions), event: 'secureConnect' };
}

async function stop(f: RunningForwarder): Promise<number> {
  const t0 = Date.now();
  await f.shutdown();
  running.splice(running.indexOf(f), 1);
  return Date.now() - t0;
}

/**
 * A sender like syslog-ng over plain TCP: writes lines without pause and counts a line as sent when the write
 * holding its last byte completes. On the forwarder's FIN it writes no new line, finishes the one in progress and
 * closes (close-on-input); after any close it reconnects and goes on with the first line not counted as sent.
 */
class Sender {
  sent = 0;
  private next = 0;
  private sock: Socket | null = null;
  private peerEnded = false;
  private midLine = false;
  private done = false;
  private pendingSplit: (() => void) | null = null;
  private closed: Promise<void> = Promise.resolve();

  constructor(
    private readonly port: () => number,
    private readonly opts: { closeOnInput: boolean; proto: Proto } = { closeOnInput: true, proto: 'tcp' },
  ) {}

  start(): void {
    if (this.done) return;
    const { sock, event } = open(this.opts.proto, this.port());
    this.sock = sock;
    this.peerEnded = false;
    this.closed = new Promise((resolve) => sock.once('close', () => resolve()));
    sock.on('error', () => {});
    sock.on('end', () => {
      if (this.opts.closeOnInput) this.peerEnded = true;
    });
    sock.on('close', () => {
      this.sock = null;
      this.midLine = false;
      this.next = this.sent;
      if (!this.done) setTimeout(() => this.start(), 20);
    });
    sock.once(event, () => this.pump(sock));
  }

  private pump(sock: Socket): void {
    if (sock !== this.sock || sock.destroyed) return;
    if (this.done || this.peerEnded) {
      if (!this.midLine) sock.end();
      return;
    }
    if (this.pendingSplit) {
      this.writeSplit(sock);
      return;
    }
    for (let i = 0; i < 20 && sock.writableLength < 64 * 1024; i++) this.write(sock, line(this.next++), this.next);
    setTimeout(() => this.pump(sock), 1);
  }

  private write(sock: Socket, data: string, sentWhenDone: number | null): void {
    sock.write(data, (err) => {
      if (!err && sentWhenDone !== null) this.sent = Math.max(this.sent, sentWhenDone);
    });
  }

  /** The first half of the next line now, the rest 300 ms later whatever happens meanwhile. */
  private writeSplit(sock: Socket): void {
    const resolve = this.pendingSplit!;
    this.pendingSplit = null;
    const n = this.next++;
    const text = line(n);
    const cut = text.length - 8;
    this.midLine = true;
    this.write(sock, text.slice(0, cut), null);
    resolve();
    setTimeout(() => {
      if (sock.destroyed || !sock.writable) return;
      this.write(sock, text.slice(cut), n + 1);
      this.midLine = false;
      this.pump(sock);
    }, 300);
  }

  /** Resolves once the first half of a line is written (the forwarder then holds part of a frame). */
  split(): Promise<void> {
    return new Promise((r) => (this.pendingSplit = r));
  }

  async finish(): Promise<number> {
    this.done = true;
    this.sock?.end();
    await this.closed;
    return this.sent;
  }
}

function seqs(rowsPath: string) {
  const rows = readRows(rowsPath);
  return {
    ids: rows.map((r) => Number(r.DeviceEventClassID)),
    // A row cut from a line (a partial frame flushed at close) lacks its end marker.
    whole: rows.every((r) => r.DeviceCustomString2 === `end-${r.DeviceEventClassID}`),
  };
}

describe('intake: TCP connections are drained on stop, not reset', () => {
  it.each<Proto>(['tcp', 'tls'])(
    '%s: a sender writing across two forwarder restarts, one stop mid-line: every line sent is in the sink exactly once, whole',
    async (proto) => {
      const config = configFor(proto);
      const rowsPath = (config.sink as { path: string }).path;
      const logs: LogLine[] = [];
      // A bound far above what a closing sender needs: the drain must end because the sender closed.
      let fwd = await start(config, logs, 20_000);
      const sender = new Sender(() => fwd.port, { closeOnInput: true, proto });
      sender.start();

      // Stop 1: while the sender writes without pause (data in flight and in the socket buffers).
      await waitFor(() => fwd.f.metrics.totals.received >= 500, 10_000, 'lines before the first stop');
      const stop1 = await stop(fwd.f);
      fwd = await start(config, logs, 20_000);
      // Stop 2: a line split across it (its first half read before the stop, the rest written after the FIN).
      const base = fwd.f.metrics.totals.received;
      await waitFor(() => fwd.f.metrics.totals.received >= base + 500, 10_000, 'lines before the second stop');
      await sender.split();
      await sleep(100);
      const stop2 = await stop(fwd.f);
      fwd = await start(config, logs, 20_000);
      await waitFor(() => fwd.f.metrics.totals.received >= 500, 10_000, 'lines after the second restart');
      const sent = await sender.finish();

      // Lost lines never come: the assertions below say which.
      await waitFor(() => seqs(rowsPath).ids.length >= sent, 15_000).catch(() => {});
      await sleep(200);
      const { ids, whole } = seqs(rowsPath);
      const counts = new Map<number, number>();
      for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
      const missing = Array.from({ length: sent }, (_, i) => i).filter((i) => !counts.has(i));
      const twice = [...counts].filter(([, c]) => c > 1).map(([id]) => id);
      expect({ missing: missing.length, twice: twice.length, whole }).toEqual({ missing: 0, twice: 0, whole: true });
      // Lines the sender wrote but never counted as sent (written after it saw the end) would be sent again: none.
      expect(ids.length).toBe(sent);

      const drains = logs.filter((l) => l.drainMs !== undefined);
      expect(drains.map((l) => [l.connections, l.cut, l.cutWhileSending])).toEqual([
        [1, 0, 0],
        [1, 0, 0],
      ]);
      // Both ended by the sender's close, far inside the bound; the stop itself includes the delivery drain (2 s).
      for (const d of drains) expect(d.drainMs).toBeLessThan(5000);
      expect(stop1).toBeLessThan(10_000);
      expect(stop2).toBeLessThan(10_000);
    },
    60_000,
  );

  it('a sender that never closes is read until the bound, then cut', async () => {
    const logs: LogLine[] = [];
    const fwd = await start(configFor('tcp'), logs, 500);
    const sender = new Sender(() => fwd.port, { closeOnInput: false, proto: 'tcp' });
    sender.start();
    await waitFor(() => fwd.f.metrics.totals.received >= 500, 10_000, 'lines before the stop');
    const received0 = fwd.f.metrics.totals.received;
    await stop(fwd.f);
    await sender.finish();
    const drain = logs.find((l) => l.drainMs !== undefined)!;
    expect([drain.connections, drain.cut, drain.cutWhileSending]).toEqual([1, 1, 1]);
    expect(drain.drainMs).toBeGreaterThanOrEqual(450);
    expect(drain.drainMs).toBeLessThan(5000);
    // It kept reading until the bound.
    expect(fwd.f.metrics.totals.received).toBeGreaterThan(received0);
  }, 30_000);

  it('an idle sender that does not read (like rsyslog omfwd) is cut at the bound as idle, with an info line', async () => {
    const logs: Array<LogLine & { level: number }> = [];
    const fwd = await start(configFor('tcp'), logs, 500);
    const sock = connect({ host: '127.0.0.1', port: fwd.port, allowHalfOpen: true });
    sock.on('error', () => {});
    sock.write(line(1) + line(2));
    await waitFor(() => fwd.f.metrics.totals.received === 2, 10_000, 'two lines');
    await stop(fwd.f);
    const drain = logs.find((l) => l.drainMs !== undefined)!;
    expect([drain.connections, drain.cut, drain.cutWhileSending, drain.level]).toEqual([1, 1, 0, 30]);
    sock.destroy();
  }, 30_000);
});
