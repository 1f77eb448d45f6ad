import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The forwarder's Prometheus metrics (own registry, so several forwarders can run in one process in
 * tests and `demo`). Plain counters mirror the totals for /healthz without a registry round-trip.
 */
export class ForwarderMetrics {
  readonly registry = new Registry();
  readonly totals = { received: 0, parseFailures: 0, delivered: 0, retried: 0, deadLettered: 0, dropped: 0, truncated: 0 };

  readonly received: Counter<'input'>;
  readonly parseFailures: Counter;
  readonly delivered: Counter;
  readonly retried: Counter<'reason'>;
  readonly deadLettered: Counter<'reason'>;
  readonly dropped: Counter<'reason'>;
  readonly truncated: Counter<'input'>;
  readonly connections: Gauge<'input'>;
  readonly connectionsRejected: Counter<'input' | 'reason'>;
  readonly connectionsClosed: Counter<'input' | 'reason'>;
  readonly partialFrames: Counter<'input' | 'reason'>;
  readonly relpUnanswered: Counter<'input'>;
  readonly probesUntracked: Counter<'reason'>;
  readonly queueBytes: Gauge;
  readonly queueRecords: Gauge;
  readonly queueOldestAge: Gauge;
  readonly intakePaused: Gauge<'reason'>;
  readonly queueCorruptBytes: Counter<'kind'>;
  readonly deliveryLatency: Histogram;
  readonly sinkRequestDuration: Histogram<'sink' | 'result'>;
  readonly batchSize: Histogram;
  readonly backgroundErrors: Counter<'where'>;
  readonly sinkTruncated: Counter;
  readonly logLinesDropped: Counter;
  readonly deadLetterBytes: Gauge;
  readonly deadLetterDropped: Counter<'reason'>;

  constructor(
    queueStats: () => { bytes: number; records: number; oldestAgeSec: number | null; paused: Record<string, boolean> },
    sources: { logLinesDropped?: () => number; deadLetterBytes?: () => number } = {},
  ) {
    const r = [this.registry];
    const p = 'sentinel_cef_';
    this.received = new Counter({
      name: `${p}received_total`,
      help: 'Messages received and written to the disk queue, by input',
      labelNames: ['input'],
      registers: r,
    });
    this.parseFailures = new Counter({
      name: `${p}parse_failures_total`,
      help: 'Messages that are neither CEF nor Cisco ASA (kept in the dead-letter file)',
      registers: r,
    });
    this.delivered = new Counter({ name: `${p}delivered_total`, help: 'Rows accepted by the sink', registers: r });
    this.retried = new Counter({
      name: `${p}retried_total`,
      help: 'Batch send attempts that failed transiently and are retried',
      labelNames: ['reason'],
      registers: r,
    });
    this.deadLettered = new Counter({
      name: `${p}dead_lettered_total`,
      help: 'Events written to the dead-letter file, by reason',
      labelNames: ['reason'],
      registers: r,
    });
    this.dropped = new Counter({
      name: `${p}dropped_total`,
      help: 'Messages lost, by reason (udp_queue_full, udp_disk_full, queue_corrupt)',
      labelNames: ['reason'],
      registers: r,
    });
    this.truncated = new Counter({
      name: `${p}truncated_total`,
      help: 'Messages longer than the maximum message size, cut and flagged',
      labelNames: ['input'],
      registers: r,
    });
    this.connections = new Gauge({
      name: `${p}connections`,
      help: 'Open TCP/TLS connections, counted from accept (TLS ones in their handshake too)',
      labelNames: ['input'],
      registers: r,
    });
    this.connectionsRejected = new Counter({
      name: `${p}connections_rejected_total`,
      help: 'Connections refused (max_connections, tls_handshake; on ?proxy= listeners proxy_header: invalid PROXY header, proxy_timeout: none in time, proxy_no_header: closed before one)',
      labelNames: ['input', 'reason'],
      registers: r,
    });
    this.connectionsClosed = new Counter({
      name: `${p}connections_closed_total`,
      help: 'Connections closed by the forwarder (slow_drip: partial message older than the idle timeout; idle_timeout: silent for 12 idle timeouts; max_age: limits.maxConnectionAgeSec reached, closed between frames)',
      labelNames: ['input', 'reason'],
      registers: r,
    });
    this.partialFrames = new Counter({
      name: `${p}partial_frames_total`,
      help: 'Frames held without their end when a connection closed, kept as messages (octet-counted ones flagged truncated), by close reason',
      labelNames: ['input', 'reason'],
      registers: r,
    });
    this.relpUnanswered = new Counter({
      name: `${p}relp_unanswered_total`,
      help: 'RELP messages read but neither queued nor answered (after the session ended: aged, closed, refused, stopped, a failed queue write or a bad frame); the sender resends them on its next session',
      labelNames: ['input'],
      registers: r,
    });
    this.probesUntracked = new Counter({
      name: `${p}probes_untracked_total`,
      help: 'Probe messages delivered but not tracked for /probes (id_too_long: over 200 characters)',
      labelNames: ['reason'],
      registers: r,
    });
    this.queueCorruptBytes = new Counter({
      name: `${p}queue_corrupt_bytes_total`,
      help: 'Queue bytes skipped as torn or corrupt',
      labelNames: ['kind'],
      registers: r,
    });
    this.sinkTruncated = new Counter({
      name: `${p}sink_truncated_total`,
      help: 'Rows the sink accepted with a value cut to the service field limit (originals kept in the dead-letter file)',
      registers: r,
    });
    this.backgroundErrors = new Counter({
      name: `${p}background_errors_total`,
      help: 'Errors in background work (fsync, dead-letter writes, sink exceptions)',
      labelNames: ['where'],
      registers: r,
    });
    this.logLinesDropped = new Counter({
      name: `${p}log_lines_dropped_total`,
      help: 'Log lines dropped because the log output failed or stalled (full filesystem, blocked or closed pipe)',
      registers: r,
      collect() {
        const v = sources.logLinesDropped?.() ?? 0;
        this.reset();
        if (v > 0) this.inc(v);
      },
    });
    this.deadLetterBytes = new Gauge({
      name: `${p}dead_letter_bytes`,
      help: 'Bytes in the dead-letter file and its rotated files',
      registers: r,
      collect() {
        this.set(sources.deadLetterBytes?.() ?? 0);
      },
    });
    this.deadLetterDropped = new Counter({
      name: `${p}dead_letter_dropped_total`,
      help: 'Dead-letter entries deleted with the oldest rotated file, by reason (cap: the dead-letter cap was reached; disk_full: room for the queue or new dead letters)',
      labelNames: ['reason'],
      registers: r,
    });
    this.queueBytes = new Gauge({
      name: `${p}queue_bytes`,
      help: 'Bytes waiting in the disk queue',
      registers: r,
      collect() {
        this.set(queueStats().bytes);
      },
    });
    this.queueRecords = new Gauge({
      name: `${p}queue_records`,
      help: 'Messages waiting in the disk queue',
      registers: r,
      collect() {
        this.set(queueStats().records);
      },
    });
    this.queueOldestAge = new Gauge({
      name: `${p}queue_oldest_age_seconds`,
      help: 'Age of the oldest queued message (0 when empty)',
      registers: r,
      collect() {
        this.set(queueStats().oldestAgeSec ?? 0);
      },
    });
    this.intakePaused = new Gauge({
      name: `${p}intake_paused`,
      help: '1 while intake is paused (queue_full, disk_full)',
      labelNames: ['reason'],
      registers: r,
      collect() {
        for (const [reason, v] of Object.entries(queueStats().paused)) this.set({ reason }, v ? 1 : 0);
      },
    });
    this.deliveryLatency = new Histogram({
      name: `${p}delivery_latency_seconds`,
      help: 'Time from receipt to acceptance by the sink',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
      registers: r,
    });
    this.sinkRequestDuration = new Histogram({
      name: `${p}sink_request_duration_seconds`,
      help: 'Duration of sink.send calls, by result',
      labelNames: ['sink', 'result'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: r,
    });
    this.batchSize = new Histogram({
      name: `${p}batch_rows`,
      help: 'Rows per batch sent',
      buckets: [1, 10, 100, 500, 1000, 2500, 5000, 10000],
      registers: r,
    });
    collectDefaultMetrics({ register: this.registry, prefix: p });
  }

  addReceived(input: string, n: number): void {
    this.totals.received += n;
    this.received.inc({ input }, n);
  }
  addDropped(reason: string, n: number): void {
    this.totals.dropped += n;
    this.dropped.inc({ reason }, n);
  }
  addTruncated(input: string, n: number): void {
    this.totals.truncated += n;
    this.truncated.inc({ input }, n);
  }
  addDeadLettered(reason: string, n: number): void {
    this.totals.deadLettered += n;
    this.deadLettered.inc({ reason }, n);
  }
}
