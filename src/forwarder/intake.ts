import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ForwarderConfig } from '../config/schema.js';
import type { ListenAddress } from '../config/listen.js';
import { formatHostPort, listenUrlOf } from '../config/listen.js';
import type { DiskQueue } from './disk-queue.js';
import { SyslogFramer, trimEnd, type Frame } from './framing.js';
import type { ForwarderMetrics } from './metrics.js';
import { probeIdOfRaw, type ProbeTracker } from './probes.js';
import { parseProxyHeader, type ProxySource, type ProxyVersion } from './proxy-protocol.js';
import { RELP_SERVERCLOSE, RelpParser, relpAcks, relpOpenResponse, relpResponse, type RelpCommand } from './relp.js';

interface Conn {
  socket: Socket;
  input: string;
  /** The sender: the peer, or the device's address from a PROXY header. */
  remote: string | undefined;
  /** The balancer's address when `remote` came from a PROXY header. */
  via?: string;
  lastFrameAt: number;
  /** Last time any byte arrived. */
  lastDataAt: number;
  /** A RELP session's parser: its partial frames are never flushed (the sender keeps what was not answered). */
  framer: SyslogFramer | RelpParser;
  relp?: boolean;
  /** A RELP session the forwarder ended (serverclose sent): what arrives after is left unanswered, for the sender to resend. */
  serverClosed?: boolean;
  /** Why the forwarder closed it, for the partial frame flushed on close. */
  closeReason?: string;
  /** When limits.maxConnectionAgeSec runs out (ms; Infinity when off). */
  expiresAt: number;
  /** Past its age: closed as soon as no frame is in progress. */
  expired: boolean;
  lingerTimer?: NodeJS.Timeout;
}

/** A connection with no traffic at all is closed after this many idle timeouts (default 1 h). */
export const SILENT_FACTOR = 12;

/** Failures that can come by the thousand (refused connections, failed handshakes) log once per this. */
export const FAILURE_LOG_INTERVAL_MS = 10_000;

/**
 * After closing an aged connection (FIN), data already on its way is still read for this long; a
 * sender that reads notices the FIN and reconnects well before.
 */
export const AGED_LINGER_MS = 30_000;

/**
 * On stop, a TCP/TLS connection gets a FIN and is read until the sender closes its side, for at most this long.
 * Plain TCP has no acknowledgement: a sender counts a line as sent once written (syslog-ng then deletes it from its
 * reliable disk buffer), so closing with data still unread sends a reset and loses what was in flight. syslog-ng
 * closes within milliseconds of the FIN (close-on-input); a sender that never reads is cut after this. The unit's
 * TimeoutStopSec (30) covers it with the readiness grace (15 s) and the delivery drain (10 s).
 */
export const STOP_DRAIN_MS = 3000;

/** Descriptors the forwarder needs besides connections: node itself, queue segments, dead letters, admin API, workers. */
const RESERVED_FDS = 100;

/** The soft limit on open files, or null where /proc does not tell it. */
function openFileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** One log line per interval for a repeated failure: the first at once, then a count of the rest. */
class FailureLog {
  private suppressed = 0;
  private last: Record<string, unknown> = {};
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly msg: string,
    private readonly level: 'warn' | 'error' = 'warn',
  ) {}

  note(fields: Record<string, unknown>): void {
    if (this.timer) {
      this.suppressed++;
      this.last = fields;
      return;
    }
    this.logger[this.level](fields, this.msg);
    this.arm();
  }

  private arm(): void {
    this.timer = setTimeout(() => this.flush(), FAILURE_LOG_INTERVAL_MS);
    this.timer.unref();
  }

  /** Logs the count since the last line; `final` at shutdown, when no more lines follow. */
  flush(final = false): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.suppressed === 0) return;
    this.logger[this.level](
      { ...this.last, count: this.suppressed, intervalSec: FAILURE_LOG_INTERVAL_MS / 1000 },
      `${this.msg} (${this.suppressed} more since the last line; last one shown)`,
    );
    this.suppressed = 0;
    if (!final) this.arm();
  }
}

export interface IntakeOptions {
  queue: DiskQueue;
  metrics: ForwarderMetrics;
  probes: ProbeTracker;
  logger: Logger;
  limits: ForwarderConfig['limits'];
  tls?: ForwarderConfig['tls'];
  /** How often to retry writing after a disk error (ENOSPC). */
  diskRetryMs?: number;
  /** On ENOSPC, before pausing: frees space held by less valuable files (old dead letters); true when it did. */
  reclaimDisk?: () => boolean;
  /** How long stop() reads TCP/TLS connections after their FIN (default STOP_DRAIN_MS). */
  stopDrainMs?: number;
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
  /** Sockets held from accept to close, TLS ones still in their handshake too. */
  private readonly sockets = new Set<Socket>();
  private readonly refusedLog: FailureLog;
  private readonly handshakeLog: FailureLog;
  private readonly listenerLog: FailureLog;
  private readonly proxyLog: FailureLog;
  /** Device addresses from PROXY headers of TLS connections, by the balancer's address:port, until the TLS socket exists. */
  private readonly proxiedTls = new Map<string, ProxySource>();
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
  /** Set by stop() while it waits for the connections to close. */
  private onAllClosed: (() => void) | null = null;

  constructor(private readonly o: IntakeOptions) {
    this.refusedLog = new FailureLog(o.logger, 'connection refused: maximum connections reached');
    this.handshakeLog = new FailureLog(o.logger, 'TLS handshake failed');
    this.listenerLog = new FailureLog(o.logger, 'listener error', 'error');
    this.proxyLog = new FailureLog(o.logger, 'connection closed: no valid PROXY protocol header');
  }

  get paused(): { queue_full: boolean; disk_full: boolean } {
    return { queue_full: this.queueFull, disk_full: this.diskError !== null };
  }
  get intakePaused(): boolean {
    return this.queueFull || this.diskError !== null;
  }
  get connectionCount(): number {
    return this.sockets.size;
  }
  /** When a byte last arrived on an open RELP session (0 when none is open). */
  get lastRelpDataAt(): number {
    let t = 0;
    for (const c of this.conns) if (c.relp && c.lastDataAt > t) t = c.lastDataAt;
    return t;
  }

  async listen(addrs: ListenAddress[]): Promise<void> {
    const { maxConnections } = this.o.limits;
    const nofile = openFileLimit();
    if (nofile !== null && maxConnections + RESERVED_FDS > nofile) {
      // Past the descriptor limit every accept fails: the plain listener and the admin API go dark too.
      this.o.logger.warn(
        { maxConnections, openFileLimit: nofile, reserved: RESERVED_FDS },
        'limits.maxConnections is too close to the open-file limit: connections could use every descriptor; raise LimitNOFILE or lower maxConnections',
      );
    }
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
      // Not listening itself: it gets the sockets the TCP listener accepted, so a socket is counted
      // against maxConnections from accept, not from the end of its handshake.
      const ts = createTlsServer({
        cert: readFileSync(t.certFile),
        key: readFileSync(t.keyFile),
        ...(ca ? { ca } : {}),
        requestCert: Boolean(ca) || t.requireClientCert,
        rejectUnauthorized: t.requireClientCert,
        handshakeTimeout: this.o.limits.tlsHandshakeTimeoutSec * 1000,
      });
      ts.on('secureConnection', (s: TLSSocket) => {
        const key = `${s.remoteAddress}|${s.remotePort}`;
        const source = a.proxy ? this.proxiedTls.get(key) : undefined;
        this.onConnection(s, input, source);
      });
      ts.on('tlsClientError', (err, s) => {
        // Node reports a handshake timeout here but leaves the socket open.
        s.destroy();
        this.o.metrics.connectionsRejected.inc({ input, reason: 'tls_handshake' });
        this.handshakeLog.note({ input, remote: s.remoteAddress, err: err.message });
      });
      server = createTcpServer((raw) => {
        if (!this.admit(raw, input)) return;
        if (!a.proxy) return void ts.emit('connection', raw);
        // The header precedes the TLS handshake; what follows it is handed to TLS unread.
        this.readProxyHeader(raw, input, a.proxy, (source) => {
          if (source) {
            const key = `${raw.remoteAddress}|${raw.remotePort}`;
            this.proxiedTls.set(key, source);
            raw.once('close', () => this.proxiedTls.delete(key));
          }
          ts.emit('connection', raw);
        });
      });
    } else {
      server = createTcpServer((raw) => {
        if (!this.admit(raw, input)) return;
        const open = (source?: ProxySource) =>
          a.protocol === 'relp' ? this.onRelpConnection(raw, input, source) : this.onConnection(raw, input, source);
        if (!a.proxy) return open();
        // The header precedes the RELP stream too (HAProxy send-proxy-v2 in front of omrelp senders).
        this.readProxyHeader(raw, input, a.proxy, (source) => open(source ?? undefined));
      });
    }
    server.on('error', (err) => this.listenerLog.note({ err: err.message, listen: a.url }));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: a.host, port: a.port }, () => {
        server.off('error', reject);
        const addr = server.address();
        const port = typeof addr === 'object' && addr ? addr.port : a.port;
        this.addresses.push({ ...a, port, url: listenUrlOf(a.protocol, a.host, port, a.proxy) });
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

  /** Counts an accepted socket until it closes, or refuses it over the limit; false when refused. */
  private admit(raw: Socket, input: string): boolean {
    const { metrics, limits } = this.o;
    if (this.stopped) {
      raw.destroy();
      return false;
    }
    if (this.sockets.size >= limits.maxConnections) {
      metrics.connectionsRejected.inc({ input, reason: 'max_connections' });
      this.refusedLog.note({ input, remote: raw.remoteAddress, max: limits.maxConnections });
      raw.destroy();
      return false;
    }
    this.sockets.add(raw);
    metrics.connections.inc({ input });
    raw.once('close', () => {
      this.sockets.delete(raw);
      metrics.connections.dec({ input });
    });
    return true;
  }

  /**
   * Reads a PROXY header (bounded in size and time) and calls `then` with the device's address (null
   * for LOCAL/UNKNOWN: the peer is the sender), the socket paused with the bytes after the header
   * pushed back. A connection without a valid header is closed and counted.
   */
  private readProxyHeader(raw: Socket, input: string, version: ProxyVersion, then: (source: ProxySource | null) => void): void {
    let buf: Buffer = Buffer.alloc(0);
    const fail = (reason: string, detail: string) => {
      cleanup();
      this.o.metrics.connectionsRejected.inc({ input, reason });
      this.proxyLog.note({ input, remote: raw.remoteAddress, err: detail });
      raw.destroy();
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf, version);
      if (r.status === 'more') return;
      if (r.status === 'invalid') return fail('proxy_header', r.reason);
      cleanup();
      raw.pause();
      if (buf.length > r.length) raw.unshift(buf.subarray(r.length));
      then(r.source);
    };
    const onClose = () => {
      cleanup();
      if (this.stopped) return;
      // Bytes but no whole header is a broken sender; nothing at all is a TCP health check.
      this.o.metrics.connectionsRejected.inc({ input, reason: buf.length ? 'proxy_header' : 'proxy_no_header' });
    };
    const timer = setTimeout(
      () => fail('proxy_timeout', `no complete PROXY ${version} header within ${this.o.limits.proxyHeaderTimeoutSec}s`),
      this.o.limits.proxyHeaderTimeoutSec * 1000,
    );
    timer.unref();
    const cleanup = () => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('close', onClose);
    };
    raw.on('data', onData);
    raw.on('close', onClose);
    // A reset during the header: 'close' follows and counts it.
    raw.on('error', () => {});
  }

  private onConnection(socket: Socket, input: string, source?: ProxySource): void {
    const { logger, limits } = this.o;
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const framer = new SyslogFramer(limits.maxMessageBytes);
    const now = Date.now();
    // Jitter spreads the reconnects of senders that all connected at once (after a restart).
    const maxAgeMs = limits.maxConnectionAgeSec * 1000 * (1 - 0.1 * Math.random());
    const conn: Conn = {
      socket,
      input,
      remote: source?.address ?? socket.remoteAddress,
      ...(source ? { via: socket.remoteAddress } : {}),
      lastFrameAt: now,
      lastDataAt: now,
      framer,
      expiresAt: maxAgeMs > 0 ? now + maxAgeMs : Infinity,
      expired: false,
    };
    this.conns.add(conn);
    if (source) logger.debug({ input, remote: conn.remote, remotePort: source.port, via: conn.via }, 'connection through a load balancer');
    if (this.intakePaused) socket.pause();
    socket.on('data', (chunk: Buffer) => {
      conn.lastDataAt = Date.now();
      const frames = framer.push(chunk);
      if (frames.length) {
        conn.lastFrameAt = Date.now();
        this.ingest(input, frames, socket);
      }
      if (conn.expired && framer.pendingBytes === 0) this.closeAged(conn);
    });
    // A socket handed over after its PROXY header was left paused.
    if (!this.intakePaused && socket.isPaused()) socket.resume();
    socket.on('end', () => {
      this.flushPartial(conn, conn.closeReason ?? 'peer_closed');
      socket.end();
    });
    socket.on('error', (err) => {
      conn.closeReason ??= 'error';
      logger.debug({ input, remote: conn.remote, via: conn.via, err: err.message }, 'connection error');
    });
    socket.on('close', () => {
      if (conn.lingerTimer) clearTimeout(conn.lingerTimer);
      this.flushPartial(conn, conn.closeReason ?? 'closed');
      this.connClosed(conn);
    });
  }

  /**
   * RELP (rsyslog's omrelp): a `syslog` command is answered only once its message is in the disk
   * queue, so the sender keeps it until then and sends it again after a broken session. When the
   * queue cannot be written, nothing is answered and the session is closed (see relp.ts).
   */
  private onRelpConnection(socket: Socket, input: string, source?: ProxySource): void {
    // admit() has counted the socket against maxConnections.
    const { metrics, logger, limits } = this.o;
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const parser = new RelpParser(limits.maxMessageBytes);
    const now0 = Date.now();
    const maxAgeMs = limits.maxConnectionAgeSec * 1000 * (1 - 0.1 * Math.random());
    const conn: Conn = {
      socket,
      input,
      remote: source?.address ?? socket.remoteAddress,
      ...(source ? { via: socket.remoteAddress } : {}),
      lastFrameAt: now0,
      lastDataAt: now0,
      framer: parser,
      relp: true,
      expiresAt: maxAgeMs > 0 ? now0 + maxAgeMs : Infinity,
      expired: false,
    };
    this.conns.add(conn);
    if (source) logger.debug({ input, remote: conn.remote, remotePort: source.port, via: conn.via }, 'connection through a load balancer');
    if (this.intakePaused) socket.pause();
    let open = false;
    const cmds: RelpCommand[] = [];
    const frames: Frame[] = [];
    const txnrs: number[] = [];
    const abort = (reason: string, message: string): void => {
      metrics.connectionsClosed.inc({ input, reason });
      logger.warn({ input, remote: conn.remote, via: conn.via, reason }, message);
      socket.destroy();
    };
    /** Messages read and neither queued nor answered: the sender keeps them and sends them again. */
    const unanswered = (n: number, from = cmds.length): void => {
      for (let i = from; i < cmds.length; i++) if (cmds[i]!.command === 'syslog') n++;
      if (n > 0) metrics.relpUnanswered.inc({ input }, n);
    };
    socket.on('data', (chunk: Buffer) => {
      const now = Date.now();
      conn.lastDataAt = now;
      cmds.length = 0;
      frames.length = 0;
      txnrs.length = 0;
      try {
        parser.push(chunk, cmds);
      } catch (err) {
        // Nothing of this read is answered: the sender sends it again on its next session.
        unanswered(0, 0);
        if (conn.serverClosed || this.stopped) socket.destroy();
        else abort('relp_protocol', `closing RELP session: ${(err as Error).message}`);
        return;
      }
      if (conn.serverClosed || this.stopped) {
        // Sent before the sender read the serverclose hint (or after stop): librelp reads no answer after it and
        // resends these on its next session, so appending them here would queue them twice.
        unanswered(0, 0);
        return;
      }
      if (cmds.length === 0) return;
      conn.lastFrameAt = now;
      let reply = '';
      // The index of the first command not yet taken up, for what is left unanswered when the session ends mid-read.
      let next = 0;
      // Answers go out in command order: messages before a control command are queued and answered first.
      const flush = (): boolean => {
        if (txnrs.length === 0) return true;
        if (frames.length > 0 && (this.diskError !== null || !this.write(input, frames, now, false, true))) {
          // Unanswered, so kept by the sender; closing makes it resend them once intake resumes. The answers
          // of this read's earlier flushes still go out (a reset could drop them and cause resends of queued frames).
          metrics.connectionsClosed.inc({ input, reason: 'queue_write_failed' });
          this.endRelp(conn, reply);
          unanswered(txnrs.length, next);
          return false;
        }
        reply += relpAcks(txnrs);
        frames.length = 0;
        txnrs.length = 0;
        return true;
      };
      for (const c of cmds) {
        next++;
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
            this.endRelp(conn, reply + r.response);
            unanswered(0, next);
            return;
          }
          open = true;
          reply += r.response;
        } else if (c.command === 'close') {
          this.endRelp(conn, reply + relpResponse(c.txnr, '200 OK') + RELP_SERVERCLOSE);
          unanswered(0, next);
          return;
        } else if (!open) {
          abort('relp_protocol', `closing RELP session: '${c.command}' before 'open'`);
          unanswered(0, next - 1);
          return;
        } else {
          reply += relpResponse(c.txnr, '500 command not supported');
        }
      }
      if (!flush()) return;
      if (reply) socket.write(reply);
      // Aged: every complete frame read so far is answered. A partial one is not, so the sender sends it again on
      // its next session: a busy session ages even when its reads end mid-frame.
      if (conn.expired) this.closeAged(conn);
    });
    // A socket handed over after its PROXY header was left paused.
    if (!this.intakePaused && socket.isPaused()) socket.resume();
    socket.on('end', () => socket.end());
    socket.on('error', (err) => {
      logger.debug({ input, remote: conn.remote, via: conn.via, err: err.message }, 'connection error');
    });
    socket.on('close', () => {
      if (conn.lingerTimer) clearTimeout(conn.lingerTimer);
      this.connClosed(conn);
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
      if (!c.expired && now >= c.expiresAt) {
        c.expired = true;
        // Between frames only: one in progress is finished first (the data handler closes after it). RELP need not
        // wait: a partial frame is unanswered and sent again.
        if (c.relp || c.framer.pendingBytes === 0) this.closeAged(c);
      }
      const dripping = c.framer.pendingBytes > 0 && now - c.lastFrameAt > idleMs;
      const silent = now - Math.max(c.lastDataAt, c.lastFrameAt) > idleMs * SILENT_FACTOR;
      if (dripping || silent) {
        const reason = dripping ? 'slow_drip' : 'idle_timeout';
        this.o.metrics.connectionsClosed.inc({ input: c.input, reason });
        this.o.logger.info(
          { input: c.input, remote: c.remote, via: c.via, reason },
          dripping ? 'closing connection: no complete message within the idle timeout' : 'closing silent connection',
        );
        c.closeReason = reason;
        c.socket.destroy();
      }
    }
  }

  /**
   * Rebalancing: a FIN, not a reset, so the sender reconnects (through the balancer) and loses
   * nothing; what it sent before noticing is still read until it closes or AGED_LINGER_MS passes.
   */
  private closeAged(c: Conn): void {
    c.expired = false;
    c.expiresAt = Infinity;
    if (c.serverClosed) return; // a RELP session already ending (close command, failed write)
    this.o.metrics.connectionsClosed.inc({ input: c.input, reason: 'max_age' });
    this.o.logger.debug({ input: c.input, remote: c.remote, via: c.via }, 'closing connection: maximum connection age reached');
    if (c.relp) {
      // RELP: the serverclose hint right after the last answer; omrelp then reconnects at its next message.
      this.endRelp(c, RELP_SERVERCLOSE, 'max_age');
      return;
    }
    c.socket.end();
    c.lingerTimer = setTimeout(() => {
      c.closeReason = 'max_age';
      c.socket.destroy();
    }, AGED_LINGER_MS);
    c.lingerTimer.unref();
  }

  /**
   * Ends a RELP session with a FIN after `text`, never a reset: what arrives later is read and left unanswered
   * (the sender sends it again), and a reset could drop answers still in our send queue (queued frames resent).
   */
  private endRelp(c: Conn, text: string, reason?: string): void {
    if (c.serverClosed) return;
    c.serverClosed = true;
    if (c.socket.writable) c.socket.end(text);
    if (this.stopped) return; // stop() cuts what is left after its drain
    c.lingerTimer = setTimeout(() => {
      if (reason) c.closeReason = reason;
      c.socket.destroy();
    }, AGED_LINGER_MS);
    c.lingerTimer.unref();
  }

  /**
   * A connection closing (for any reason) with part of a frame held: the part is kept as a message
   * (truncated when octet-counted) and counted, never dropped. Idempotent: the framer is emptied.
   */
  private flushPartial(c: Conn, reason: string): void {
    if (c.framer instanceof RelpParser || c.framer.pendingBytes === 0) return;
    const frames = c.framer.end();
    if (!frames.length) return;
    this.o.metrics.partialFrames.inc({ input: c.input, reason }, frames.length);
    this.ingest(c.input, frames, c.socket);
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
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOSPC' || code === 'EDQUOT') && this.o.reclaimDisk?.()) return this.write(input, frames, receivedAt, udp, refuse);
      if (refuse) {
        // The sender keeps what it has not been answered for.
      } else if (udp) metrics.addDropped('udp_disk_full', frames.length);
      else this.hold(input, frames, receivedAt);
      this.enterDiskError(err as NodeJS.ErrnoException);
      return false;
    }
    this.counted(input, frames, receivedAt);
    // Not while stopping: a paused connection cannot be drained (the overshoot is bounded by STOP_DRAIN_MS).
    if (queue.full && !this.queueFull && !this.stopped) {
      this.queueFull = true;
      this.o.logger.warn(
        { queueBytes: queue.bytes },
        'queue is full: pausing TCP intake (UDP datagrams are dropped and counted) until delivery catches up',
      );
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
      if (id && !probes.received(id, receivedAt, f.data)) metrics.probesUntracked.inc({ reason: 'id_too_long' });
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
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'ENOSPC' || code === 'EDQUOT') && this.o.reclaimDisk?.()) continue;
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

  private connClosed(c: Conn): void {
    this.conns.delete(c);
    if (this.conns.size === 0) this.onAllClosed?.();
  }

  /**
   * Stops accepting; sends every TCP/TLS connection a FIN and reads on until its sender closes (or STOP_DRAIN_MS
   * passes), so what a sender wrote before it saw the FIN reaches the queue; RELP sessions get the serverclose
   * hint. What was read is written to the queue (or reported lost).
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of [this.idleTimer, this.resumeTimer]) if (t) clearInterval(t);
    for (const l of [this.refusedLog, this.handshakeLog, this.listenerLog, this.proxyLog]) l.flush(true);
    const closing = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    let streams = 0;
    for (const c of this.conns) {
      if (c.relp) {
        // RELP: the serverclose hint tells rsyslog the session is gone before it sends into it. What it sends
        // after this is read, left unanswered and sent again; the session is drained like a TCP one.
        this.endRelp(c, RELP_SERVERCLOSE);
        if (c.socket.isPaused()) c.socket.resume();
        continue;
      }
      // A FIN, never a reset with data unread: the sender stops and closes, and what it had written is read.
      streams++;
      c.closeReason = 'shutdown';
      c.socket.end();
      if (c.socket.isPaused()) c.socket.resume();
    }
    for (const u of this.udpSockets) u.close();
    this.flushUdp();
    const started = Date.now();
    if (this.conns.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.o.stopDrainMs ?? STOP_DRAIN_MS);
        this.onAllClosed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.onAllClosed = null;
    }
    let cut = 0;
    let cutWhileSending = 0;
    // Bytes in the drain's last second: the sender had not stopped (what arrived right after the FIN was in flight).
    const sendingSince = Math.max(started, Date.now() - 1000);
    for (const c of this.conns) {
      if (!c.relp) cut++;
      if (!c.relp && c.lastDataAt >= sendingSince) cutWhileSending++;
      // Before destroy: 'close' comes a tick later, and what it would flush must reach the queue now.
      this.flushPartial(c, 'shutdown');
      c.socket.destroy();
    }
    // Besides those: TLS sockets still in their handshake, connections still sending their PROXY header (in no
    // conn), and the TCP sockets under TLS connections (a TLS socket sits on the socket admit() counted).
    for (const s of this.sockets) s.destroy();
    if (streams > 0) {
      // A sender that does not read (rsyslog's omfwd notices the FIN only when it next sends) is cut idle, losing nothing.
      const fields = { connections: streams, cut, drainMs: Date.now() - started, cutWhileSending };
      if (cutWhileSending)
        this.o.logger.warn(fields, 'stopping intake: cut connections still sending after the drain; what was in flight is lost');
      else this.o.logger.info(fields, 'stopping intake: connections drained');
    }
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
