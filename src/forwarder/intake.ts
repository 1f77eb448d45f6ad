import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ForwarderConfig } from '../config/schema.js';
import type { ListenAddress } from '../config/listen.js';
import { formatHostPort } from '../config/listen.js';
import type { DiskQueue } from './disk-queue.js';
import { SyslogFramer, trimEnd, type Frame } from './framing.js';
import type { ForwarderMetrics } from './metrics.js';
import { probeIdOfRaw, type ProbeTracker } from './probes.js';
import { RELP_SERVERCLOSE, RelpParser, relpAcks, relpOpenResponse, relpResponse, type RelpCommand } from './relp.js';

interface Conn {
  socket: Socket;
  input: string;
  lastFrameAt: number;
  /** Last time any byte arrived. */
  lastDataAt: number;
  framer: { readonly pendingBytes: number };
}

/** A connection with no traffic at all is closed after this many idle timeouts (default 1 h). */
export const SILENT_FACTOR = 12;

export interface IntakeOptions {
  queue: DiskQueue;
  metrics: ForwarderMetrics;
  probes: ProbeTracker;
  logger: Logger;
  limits: ForwarderConfig['limits'];
  tls?: ForwarderConfig['tls'];
  /** How often to retry writing after a disk error (ENOSPC). */
  diskRetryMs?: number;
}

/**
 * Receives syslog over TCP/TLS/UDP and writes it to the disk queue: one queue write per socket
 * read. When the queue is at its cap or the disk is full, TCP/TLS sockets stop reading
 * (back-pressure reaches the sender through TCP flow control) and UDP datagrams are dropped and
 * counted — UDP has no way to push back.
 */
export class Intake {
  readonly addresses: ListenAddress[] = [];
  private readonly servers: Server[] = [];
  private readonly udpSockets: UdpSocket[] = [];
  private readonly conns = new Set<Conn>();
  private queueFull = false;
  private diskError: string | null = null;
  /** Messages read from TCP while the disk refused writes; written first once it accepts again. */
  private held: Array<{ input: string; frames: Frame[]; receivedAt: number }> = [];
  private diskTimer: NodeJS.Timeout | null = null;
  private resumeTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private udpPending = new Map<string, Frame[]>();
  private udpFlushScheduled = false;
  private stopped = false;

  constructor(private readonly o: IntakeOptions) {}

  get paused(): { queue_full: boolean; disk_full: boolean } {
    return { queue_full: this.queueFull, disk_full: this.diskError !== null };
  }
  get intakePaused(): boolean {
    return this.queueFull || this.diskError !== null;
  }
  get connectionCount(): number {
    return this.conns.size;
  }

  async listen(addrs: ListenAddress[]): Promise<void> {
    for (const a of addrs) {
      if (a.protocol === 'udp') await this.listenUdp(a);
      else await this.listenStream(a);
    }
    const idleMs = this.o.limits.idleTimeoutSec * 1000;
    this.idleTimer = setInterval(() => this.sweepIdle(idleMs), Math.max(50, Math.min(1000, idleMs / 4)));
    this.idleTimer.unref();
  }

  private listenStream(a: ListenAddress): Promise<void> {
    const input = a.protocol;
    let server: Server;
    if (a.protocol === 'tls') {
      const t = this.o.tls!;
      const ca = t.caFile ? readFileSync(t.caFile) : undefined;
      const ts = createTlsServer({
        cert: readFileSync(t.certFile),
        key: readFileSync(t.keyFile),
        ...(ca ? { ca } : {}),
        requestCert: Boolean(ca) || t.requireClientCert,
        rejectUnauthorized: t.requireClientCert,
      });
      ts.on('secureConnection', (s: TLSSocket) => this.onConnection(s, input));
      ts.on('tlsClientError', (err) => {
        this.o.metrics.connectionsRejected.inc({ input, reason: 'tls_handshake' });
        this.o.logger.warn({ input, err: err.message }, 'TLS handshake failed');
      });
      server = ts;
    } else {
      server = createTcpServer((s) => (a.protocol === 'relp' ? this.onRelpConnection(s, input) : this.onConnection(s, input)));
    }
    server.on('error', (err) => this.o.logger.error({ err: err.message, listen: a.url }, 'listener error'));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: a.host, port: a.port }, () => {
        server.off('error', reject);
        const addr = server.address();
        const port = typeof addr === 'object' && addr ? addr.port : a.port;
        this.addresses.push({ ...a, port, url: `${a.protocol}://${formatHostPort(a.host, port)}` });
        resolve();
      });
    });
  }

  private listenUdp(a: ListenAddress): Promise<void> {
    const rcvbuf = this.o.limits.udpReceiveBufferBytes ?? 8 * 1024 * 1024;
    const sock = createSocket({ type: isIP(a.host) === 6 ? 'udp6' : 'udp4', ...(rcvbuf > 0 ? { recvBufferSize: rcvbuf } : {}) });
    this.udpSockets.push(sock);
    const max = this.o.limits.maxMessageBytes;
    sock.on('message', (msg) => {
      const data = trimEnd(msg);
      if (data.length === 0) return;
      const frame = data.length > max ? { data: data.subarray(0, max), truncated: true } : { data, truncated: false };
      // Coalesce datagrams that arrive in one event-loop turn into one queue write.
      let list = this.udpPending.get(a.url);
      if (!list) this.udpPending.set(a.url, (list = []));
      list.push(frame);
      if (!this.udpFlushScheduled) {
        this.udpFlushScheduled = true;
        setImmediate(() => this.flushUdp());
      }
    });
    sock.on('error', (err) => this.o.logger.error({ err: err.message, listen: a.url }, 'UDP socket error'));
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: a.host, port: a.port }, () => {
        sock.off('error', reject);
        const port = sock.address().port;
        this.addresses.push({ ...a, port, url: `udp://${formatHostPort(a.host, port)}` });
        resolve();
      });
    });
  }

  private flushUdp(): void {
    this.udpFlushScheduled = false;
    const pending = this.udpPending;
    this.udpPending = new Map();
    for (const frames of pending.values()) {
      if (this.diskError !== null) this.o.metrics.addDropped('udp_disk_full', frames.length);
      else if (this.queueFull || this.o.queue.full) this.o.metrics.addDropped('udp_queue_full', frames.length);
      else this.write('udp', frames, Date.now(), true);
    }
  }

  private onConnection(socket: Socket, input: string): void {
    const { metrics, logger, limits } = this.o;
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (this.conns.size >= limits.maxConnections) {
      metrics.connectionsRejected.inc({ input, reason: 'max_connections' });
      logger.warn({ input, remote: socket.remoteAddress, max: limits.maxConnections }, 'connection refused: maximum connections reached');
      socket.destroy();
      return;
    }
    const framer = new SyslogFramer(limits.maxMessageBytes);
    const conn: Conn = { socket, input, lastFrameAt: Date.now(), lastDataAt: Date.now(), framer };
    this.conns.add(conn);
    metrics.connections.inc({ input });
    if (this.intakePaused) socket.pause();
    socket.on('data', (chunk: Buffer) => {
      conn.lastDataAt = Date.now();
      const frames = framer.push(chunk);
      if (frames.length) {
        conn.lastFrameAt = Date.now();
        this.ingest(input, frames, socket);
      }
    });
    socket.on('end', () => {
      const frames = framer.end();
      if (frames.length) this.ingest(input, frames, socket);
      socket.end();
    });
    socket.on('error', (err) => {
      logger.debug({ input, remote: socket.remoteAddress, err: err.message }, 'connection error');
    });
    socket.on('close', () => {
      this.conns.delete(conn);
      metrics.connections.dec({ input });
    });
  }

  /**
   * RELP (rsyslog's omrelp): a `syslog` command is answered only once its message is in the disk
   * queue, so the sender keeps it until then and sends it again after a broken session. When the
   * queue cannot be written, nothing is answered and the session is closed (see relp.ts).
   */
  private onRelpConnection(socket: Socket, input: string): void {
    const { metrics, logger, limits } = this.o;
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (this.conns.size >= limits.maxConnections) {
      metrics.connectionsRejected.inc({ input, reason: 'max_connections' });
      logger.warn({ input, remote: socket.remoteAddress, max: limits.maxConnections }, 'connection refused: maximum connections reached');
      socket.destroy();
      return;
    }
    const parser = new RelpParser(limits.maxMessageBytes);
    const conn: Conn = { socket, input, lastFrameAt: Date.now(), lastDataAt: Date.now(), framer: parser };
    this.conns.add(conn);
    metrics.connections.inc({ input });
    if (this.intakePaused) socket.pause();
    let open = false;
    const cmds: RelpCommand[] = [];
    const frames: Frame[] = [];
    const txnrs: number[] = [];
    const abort = (reason: string, message: string): void => {
      metrics.connectionsClosed.inc({ input, reason });
      logger.warn({ input, remote: socket.remoteAddress, reason }, message);
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      if (this.stopped) return;
      const now = Date.now();
      conn.lastDataAt = now;
      cmds.length = 0;
      frames.length = 0;
      txnrs.length = 0;
      try {
        parser.push(chunk, cmds);
      } catch (err) {
        // Nothing of this read is answered: the sender sends it again on its next session.
        abort('relp_protocol', `closing RELP session: ${(err as Error).message}`);
        return;
      }
      if (cmds.length === 0) return;
      conn.lastFrameAt = now;
      let reply = '';
      // Answers go out in command order: messages before a control command are queued and answered first.
      const flush = (): boolean => {
        if (txnrs.length === 0) return true;
        if (frames.length > 0 && (this.diskError !== null || !this.write(input, frames, now, false, true))) {
          // Unanswered, so kept by the sender; closing makes it resend them once intake resumes.
          metrics.connectionsClosed.inc({ input, reason: 'queue_write_failed' });
          socket.destroy();
          return false;
        }
        reply += relpAcks(txnrs);
        frames.length = 0;
        txnrs.length = 0;
        return true;
      };
      for (const c of cmds) {
        if (c.command === 'syslog' && open) {
          const data = trimEnd(c.data);
          if (data.length > 0) frames.push({ data, truncated: c.truncated });
          txnrs.push(c.txnr);
          continue;
        }
        if (!flush()) return;
        if (c.txnr === 0) continue; // a hint: never answered
        if (c.command === 'open' && !open) {
          const r = relpOpenResponse(c.txnr, c.data);
          if (!r.ok) {
            socket.end(reply + r.response);
            return;
          }
          open = true;
          reply += r.response;
        } else if (c.command === 'close') {
          socket.end(reply + relpResponse(c.txnr, '200 OK') + RELP_SERVERCLOSE);
          return;
        } else if (!open) {
          abort('relp_protocol', `closing RELP session: '${c.command}' before 'open'`);
          return;
        } else {
          reply += relpResponse(c.txnr, '500 command not supported');
        }
      }
      if (!flush()) return;
      if (reply) socket.write(reply);
    });
    socket.on('end', () => socket.end());
    socket.on('error', (err) => {
      logger.debug({ input, remote: socket.remoteAddress, err: err.message }, 'connection error');
    });
    socket.on('close', () => {
      this.conns.delete(conn);
      metrics.connections.dec({ input });
    });
  }

  /**
   * Slow drip: a connection holding part of a message without completing one within the idle
   * timeout is closed. A connection that is simply quiet (rsyslog keeps its connection open between
   * bursts) is left alone much longer: closing it early makes senders lose the first message they
   * write into the dead connection.
   */
  private sweepIdle(idleMs: number): void {
    if (this.intakePaused) return;
    const now = Date.now();
    for (const c of this.conns) {
      const dripping = c.framer.pendingBytes > 0 && now - c.lastFrameAt > idleMs;
      const silent = now - Math.max(c.lastDataAt, c.lastFrameAt) > idleMs * SILENT_FACTOR;
      if (dripping || silent) {
        const reason = dripping ? 'slow_drip' : 'idle_timeout';
        this.o.metrics.connectionsClosed.inc({ input: c.input, reason });
        this.o.logger.info({ input: c.input, remote: c.socket.remoteAddress, reason }, dripping ? 'closing connection: no complete message within the idle timeout' : 'closing silent connection');
        c.socket.destroy();
      }
    }
  }

  /** Writes frames from a TCP/TLS socket read; pauses intake when the queue fills or the disk fails. */
  private ingest(input: string, frames: Frame[], socket: Socket): void {
    const receivedAt = Date.now();
    if (this.diskError !== null) {
      this.hold(input, frames, receivedAt);
      socket.pause();
      return;
    }
    this.write(input, frames, receivedAt, false);
  }

  private hold(input: string, frames: Frame[], receivedAt: number): void {
    // The socket's buffer is reused by nothing, but frames are views; copy to own them.
    this.held.push({ input, frames: frames.map((f) => ({ data: Buffer.from(f.data), truncated: f.truncated })), receivedAt });
  }

  /** refuse: on a failed write keep nothing (the sender still holds the messages: RELP). */
  private write(input: string, frames: Frame[], receivedAt: number, udp: boolean, refuse = false): boolean {
    const { queue, metrics } = this.o;
    try {
      queue.append(frames, receivedAt);
    } catch (err) {
      if (refuse) {
        // The sender keeps what it has not been answered for.
      } else if (udp) metrics.addDropped('udp_disk_full', frames.length);
      else this.hold(input, frames, receivedAt);
      this.enterDiskError(err as NodeJS.ErrnoException);
      return false;
    }
    this.counted(input, frames, receivedAt);
    if (queue.full && !this.queueFull) {
      this.queueFull = true;
      this.o.logger.warn({ queueBytes: queue.bytes }, 'queue is full: pausing TCP intake (UDP datagrams are dropped and counted) until delivery catches up');
      this.pauseAll();
      this.resumeTimer = setInterval(() => this.maybeResume(), 25);
      this.resumeTimer.unref();
    }
    return true;
  }

  private counted(input: string, frames: Frame[], receivedAt: number): void {
    const { metrics, probes } = this.o;
    metrics.addReceived(input, frames.length);
    let truncated = 0;
    for (const f of frames) {
      if (f.truncated) truncated++;
      const id = probeIdOfRaw(f.data);
      if (id) probes.received(id, receivedAt);
    }
    if (truncated) metrics.addTruncated(input, truncated);
  }

  private maybeResume(): void {
    const { queue } = this.o;
    // Hysteresis: resume below 90% so intake does not flap around the cap.
    if (queue.bytes < queue.maxBytes * 0.9) {
      this.queueFull = false;
      if (this.resumeTimer) clearInterval(this.resumeTimer);
      this.resumeTimer = null;
      this.o.logger.info({ queueBytes: queue.bytes }, 'queue below its cap again: resuming intake');
      this.resumeAll();
    }
  }

  private enterDiskError(err: NodeJS.ErrnoException): void {
    const first = this.diskError === null;
    this.diskError = err.code ?? err.message;
    this.o.metrics.backgroundErrors.inc({ where: 'queue_write' });
    if (first) {
      this.o.logger.error(
        { code: err.code, err: err.message },
        err.code === 'ENOSPC'
          ? 'disk full: cannot write the queue; intake paused, retrying — free space on the queue filesystem'
          : 'cannot write the queue; intake paused, retrying',
      );
      this.pauseAll();
    }
    if (!this.diskTimer) {
      this.diskTimer = setInterval(() => this.retryDisk(), this.o.diskRetryMs ?? 1000);
      this.diskTimer.unref();
    }
  }

  private retryDisk(): void {
    while (this.held.length) {
      const h = this.held[0];
      try {
        this.o.queue.append(h.frames, h.receivedAt);
      } catch {
        return;
      }
      this.held.shift();
      this.counted(h.input, h.frames, h.receivedAt);
    }
    if (this.diskTimer) clearInterval(this.diskTimer);
    this.diskTimer = null;
    this.o.logger.info({ previous: this.diskError }, 'queue writes succeed again: resuming intake');
    this.diskError = null;
    if (!this.queueFull) this.resumeAll();
  }

  private pauseAll(): void {
    for (const c of this.conns) c.socket.pause();
  }

  private resumeAll(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const c of this.conns) {
      c.lastFrameAt = now;
      c.lastDataAt = now;
      c.socket.resume();
    }
  }

  /** Stops accepting and reading; what was read is written to the queue (or reported lost). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [this.idleTimer, this.resumeTimer]) if (t) clearInterval(t);
    const closing = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const c of this.conns) {
      // RELP: the serverclose hint tells rsyslog the session is gone before it sends into it.
      // What it sends after this stays unanswered and is sent again.
      if (c.input === 'relp' && c.socket.writable) c.socket.pause().end(RELP_SERVERCLOSE, () => c.socket.destroy());
      else c.socket.destroy();
    }
    for (const u of this.udpSockets) u.close();
    this.flushUdp();
    await Promise.all(closing);
    if (this.held.length) this.retryDisk();
    if (this.diskTimer) clearInterval(this.diskTimer);
    const lost = this.held.reduce((n, h) => n + h.frames.length, 0);
    if (lost) {
      this.o.metrics.addDropped('shutdown_disk_full', lost);
      this.o.logger.error({ lost }, 'shutting down while the disk refuses writes: messages held in memory are lost');
    }
  }
}
