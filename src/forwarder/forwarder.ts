import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { deadLetterPath } from '../config/load.js';
import { formatHostPort, parseHostPort, parseListenUrl, type ListenAddress } from '../config/listen.js';
import type { ForwarderConfig } from '../config/schema.js';
import type { ParseResult } from '../parser/types.js';
import { createSink } from '../sinks/index.js';
import type { Sink } from '../sinks/types.js';
import { VERSION } from '../version.js';
import type { Health, ProbeStatus } from './admin-types.js';
import { startAdminServer } from './admin.js';
import { DeadLetterFile } from './dead-letter.js';
import { BatchProcessor, localRunner } from './delivery/batch-processor.js';
import { DeliveryLoop } from './delivery/loop.js';
import type { Sleep } from './delivery/backoff.js';
import { availableParallelism } from 'node:os';
import { PARSE_WORKER_ROLE, ParseWorkerRunner } from './parse-workers.js';
import { DiskQueue } from './disk-queue.js';
import { Intake } from './intake.js';
import { writeIntakeState, type IntakeState } from './intake-state.js';
import { createLogger, logDestinationOf } from './logger.js';
import { ForwarderMetrics } from './metrics.js';
import { ProbeTracker } from './probes.js';
import { startReadinessServer } from './readiness.js';
import { appendReplay, writeReplayToken } from './replay-intake.js';

let workerEntry: URL | null = null;

/**
 * The self-contained bundle registers itself here as the entry of the parse workers. Without it
 * (tests under tsx/vitest) or with an injected sink or parse, parsing runs on the main thread.
 */
export function setWorkerEntry(entry: URL | null): void {
  workerEntry = entry;
}

/** Parse workers for batch.parseWorkers on a machine with `cores` cores. */
export function parseWorkerCount(setting: number | 'auto', cores: number): number {
  if (setting !== 'auto') return setting;
  return Math.max(0, Math.min(4, cores - 1));
}

export interface ForwarderDeps {
  logger?: Logger;
  /** Replaces createSink(config.sink) (tests). */
  sink?: Sink;
  parse?: (raw: Buffer, receivedAt: Date) => ParseResult;
  /** Queue write seam (tests simulate a full disk). */
  queueWriteFn?: (fd: number, buf: Buffer, off: number, len: number) => number;
  diskRetryMs?: number;
  random?: () => number;
  /** Delivery's waits between retries and its monotonic clock (tests: a fake clock instead of real waits). */
  sleep?: Sleep;
  monotonic?: () => number;
  /** How long RELP sessions must be quiet after SUSPENDED is written on shutdown (default INTAKE_STATE_GRACE_MS). */
  intakeStateGraceMs?: number;
  /** The longest intake stays open after SUSPENDED for sessions that keep sending (default INTAKE_STATE_MAX_GRACE_MS). */
  intakeStateMaxGraceMs?: number;
  /** How long intake reads TCP/TLS connections after their FIN on shutdown (default STOP_DRAIN_MS). */
  stopDrainMs?: number;
}

export interface RunningForwarder {
  /** Bound listeners (real ports when the config said port 0). */
  readonly addresses: ListenAddress[];
  /** host:port of the admin endpoint, or null when off. */
  readonly adminAddress: string | null;
  /** host:port of the readiness endpoint, or null when off. */
  readonly readinessAddress: string | null;
  /** Why a load balancer should send nothing here now, or null when ready. */
  notReadyReason(): string | null;
  readonly metrics: ForwarderMetrics;
  readonly deadLetterFile: string;
  health(): Health;
  probe(id: string): ProbeStatus;
  /** Stops intake, drains for up to config.drainTimeoutSec, closes. Idempotent. */
  shutdown(): Promise<void>;
}

export async function startForwarder(config: ForwarderConfig, deps: ForwarderDeps = {}): Promise<RunningForwarder> {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const started = Date.now();
  const probes = new ProbeTracker();
  let intake: Intake | null = null;
  let stopping = false;
  const queueStats = () => {
    const oldest = queue.oldestReceivedAt();
    return {
      bytes: queue.bytes,
      records: queue.records,
      oldestAgeSec: oldest === null ? null : Math.max(0, (Date.now() - oldest) / 1000),
      paused: intake?.paused ?? { queue_full: false, disk_full: false },
    };
  };
  const dlPath = deadLetterPath(config);
  const deadLetter = new DeadLetterFile(dlPath, {
    ...config.deadLetter,
    onDropped: (entries, file, why) => {
      metrics.deadLetterDropped.inc({ reason: why }, entries);
      logger.warn(
        { file, entries, ...deadLetter.limits },
        why === 'cap'
          ? 'dead-letter cap reached: deleted the oldest rotated dead-letter file'
          : 'disk full: deleted the oldest rotated dead-letter file to make room',
      );
    },
  });
  const logDestination = logDestinationOf(logger);
  const metrics = new ForwarderMetrics(queueStats, {
    logLinesDropped: () => logDestination?.dropped ?? 0,
    deadLetterBytes: () => deadLetter.bytes,
  });
  const queue = new DiskQueue({
    dir: config.queue.dir,
    maxBytes: config.queue.maxBytes,
    segmentBytes: config.queue.segmentBytes,
    fsyncIntervalMs: config.queue.fsyncIntervalMs,
    writeFn: deps.queueWriteFn,
    onCorruption: (e) => {
      metrics.queueCorruptBytes.inc({ kind: e.kind }, e.bytes);
      metrics.addDropped('queue_corrupt', 1);
      logger.error(e, 'disk queue: skipped a torn or corrupt region; the messages in it are lost');
    },
    onError: (err, where) => {
      metrics.backgroundErrors.inc({ where: `queue_${where}` });
      logger.error({ err: err.message, where }, 'disk queue background error');
    },
  });
  // Built before the queue opens: a bad secret file fails the start with one line and touches nothing.
  const sink = deps.sink ?? createSink(config.sink, { logger: logger.child({ sink: config.sink.type }) });
  queue.open();
  const workers =
    workerEntry !== null && !deps.sink && !deps.parse && sink.prepare && sink.sendPrepared
      ? parseWorkerCount(config.batch.parseWorkers, availableParallelism())
      : 0;
  const delivery = new DeliveryLoop({
    queue,
    metrics,
    probes,
    logger,
    batch: config.batch,
    retry: config.retry,
    random: deps.random,
    sleep: deps.sleep,
    runner: (effects) => {
      const processor = new BatchProcessor({
        sink,
        parse: deps.parse,
        deadLetter,
        logger,
        effects,
        parallelSends: config.batch.parallelSends,
        retry: config.retry,
        maxMessageBytes: config.limits.maxMessageBytes,
        random: deps.random,
        authFailureMaxMs: config.retry.authFailureMaxSec * 1000,
        sleep: deps.sleep,
        monotonic: deps.monotonic,
      });
      if (workers === 0) return localRunner(processor);
      const data = {
        role: PARSE_WORKER_ROLE,
        sink: config.sink,
        maxMessageBytes: config.limits.maxMessageBytes,
        maxBatchBytes: config.batch.maxBytes,
      } as const;
      return new ParseWorkerRunner(workerEntry!, data, processor, logger, workers, (where) => effects.backgroundError(where));
    },
  });

  const health = (): Health => {
    const q = queueStats();
    const t = metrics.totals;
    const degraded = (intake?.intakePaused ?? false) || (delivery.lastDelivery !== null && !delivery.lastDelivery.ok);
    return {
      status: stopping || !delivery.isRunning ? 'stopping' : degraded ? 'degraded' : 'ok',
      version: VERSION,
      pid: process.pid,
      uptimeSec: Math.round((Date.now() - started) / 1000),
      sink: sink.name,
      inputs: intake?.addresses.map((a) => a.url) ?? [],
      queue: {
        bytes: q.bytes,
        records: q.records,
        maxBytes: config.queue.maxBytes,
        oldestAgeSec: q.oldestAgeSec === null ? null : Math.round(q.oldestAgeSec),
        intakePaused: intake?.intakePaused ?? false,
      },
      counters: {
        received: t.received,
        parseFailures: t.parseFailures,
        delivered: t.delivered,
        retried: t.retried,
        deadLettered: t.deadLettered,
        dropped: t.dropped,
        logLinesDropped: logDestination?.dropped ?? 0,
      },
      deadLetters: { file: dlPath, bytes: deadLetter.bytes, ...deadLetter.limits, droppedEntries: deadLetter.droppedEntries },
      lastDelivery: delivery.lastDelivery,
    };
  };

  const rules = config.readinessRules;
  const notReadyReason = (): string | null => {
    if (stopping) return 'shutting down';
    if (!delivery.isRunning) return 'delivery not running';
    if (intake?.paused.disk_full) return 'intake paused: disk full';
    if (intake?.paused.queue_full) return 'intake paused: queue full';
    if (queue.bytes > queue.maxBytes * rules.queueHighWater) return 'queue above high-water mark';
    const since = delivery.failingSince;
    if (since !== null && Date.now() - since >= rules.sinkFailingSec * 1000)
      return `sink failing for ${Math.round((Date.now() - since) / 1000)}s`;
    return null;
  };

  const replayed = <T extends { status: number; body: { appended: number; error?: string } }>(r: T): T => {
    if (r.status === 200) logger.info({ records: r.body.appended }, 'dead-letter replay: records appended to the queue');
    else logger.warn({ status: r.status, error: r.body.error }, 'dead-letter replay refused');
    return r;
  };
  const stateGraceMs = deps.intakeStateGraceMs ?? INTAKE_STATE_GRACE_MS;
  const stateMaxGraceMs = deps.intakeStateMaxGraceMs ?? INTAKE_STATE_MAX_GRACE_MS;
  const setIntakeState = (state: IntakeState): boolean => {
    if (!config.intakeStateFile) return false;
    try {
      writeIntakeState(config.intakeStateFile, state);
      logger.info({ file: config.intakeStateFile, state }, 'intake state written');
      return true;
    } catch (err) {
      metrics.backgroundErrors.inc({ where: 'intake_state' });
      logger.error({ err: (err as Error).message, file: config.intakeStateFile, state }, 'cannot write the intake state file');
      return false;
    }
  };
  let admin: { server: Server; port: number } | null = null;
  let adminHost: string | null = null;
  let readiness: { server: Server; port: number } | null = null;
  let readinessHost: string | null = null;
  try {
    if (sink.start) {
      await sink
        .start()
        .catch((err: Error) => logger.warn({ err: err.message, sink: sink.name }, 'sink start reported a problem; delivery will retry'));
    }
    intake = new Intake({
      queue,
      metrics,
      probes,
      logger,
      limits: config.limits,
      tls: config.tls,
      diskRetryMs: deps.diskRetryMs,
      reclaimDisk: () => deadLetter.reclaim(),
      stopDrainMs: deps.stopDrainMs,
    });
    await intake.listen(config.listen.map((u) => parseListenUrl(u)));
    setIntakeState('READY');
    if (config.admin !== false) {
      const { host, port } = parseHostPort(config.admin, 'admin address');
      adminHost = host;
      let replay: { token: string; append(body: unknown): { status: number; body: unknown } } | undefined;
      try {
        replay = { token: writeReplayToken(config.queue.dir), append: (body: unknown) => replayed(appendReplay(queue, body)) };
      } catch (err) {
        // A full or read-only disk must not stop forwarding; only `dead-letters replay` is unavailable.
        metrics.backgroundErrors.inc({ where: 'replay_token' });
        logger.error(
          { err: (err as Error).message },
          'cannot write the replay token; `sentinel-cef dead-letters replay` is unavailable until the next start',
        );
      }
      admin = await startAdminServer(host, port, { health, probe: (id) => probes.get(id), registry: metrics.registry, logger, replay });
    }
    if (config.readiness !== false) {
      const { host, port } = parseHostPort(config.readiness, 'readiness address');
      readinessHost = host;
      readiness = await startReadinessServer(host, port, notReadyReason);
    }
  } catch (err) {
    if (intake?.addresses.length) setIntakeState('SUSPENDED');
    await intake?.stop();
    if (admin) await closeHttp(admin.server);
    queue.close();
    throw err;
  }
  delivery.start();
  logger.info(
    {
      version: VERSION,
      inputs: intake.addresses.map((a) => a.url),
      sink: sink.name,
      queueDir: config.queue.dir,
      deadLetterFile: dlPath,
      admin: admin ? formatHostPort(adminHost!, admin.port) : 'off',
      readiness: readiness ? formatHostPort(readinessHost!, readiness.port) : 'off',
      queued: queue.records,
      parseWorkers: workers,
    },
    'forwarder started',
  );

  let shutdownPromise: Promise<void> | null = null;
  const shutdown = () =>
    (shutdownPromise ??= (async () => {
      stopping = true;
      const graceSec = config.drainGraceSec ?? (readiness ? DEFAULT_DRAIN_GRACE_SEC : 0);
      if (config.intakeStateFile && setIntakeState('SUSPENDED') && graceSec * 1000 < stateGraceMs) {
        // rsyslog reads the file only when it begins a batch: the one it is sending still needs its answers, and
        // rsyslog drops a batch cut off here when it stops next (a reboot). So intake stays open until the RELP
        // sessions have been quiet for the grace, which they are once rsyslog has read SUSPENDED.
        const suspendedAt = Date.now();
        for (;;) {
          const left = Math.min(Math.max(suspendedAt, intake!.lastRelpDataAt) + stateGraceMs, suspendedAt + stateMaxGraceMs) - Date.now();
          if (left <= 0) break;
          await new Promise((r) => setTimeout(r, left));
        }
        const waitedMs = Date.now() - suspendedAt;
        logger.info({ waitedMs, quiet: waitedMs < stateMaxGraceMs }, 'RELP intake held open after SUSPENDED');
      }
      if (graceSec > 0) {
        // Not ready from here on: the balancer stops sending new connections while current ones finish.
        logger.info(
          { drainGraceSec: graceSec, connections: intake!.connectionCount },
          'not ready: still receiving while the load balancer drains this node',
        );
        await new Promise((r) => setTimeout(r, graceSec * 1000));
      }
      logger.info({ drainTimeoutSec: config.drainTimeoutSec, queued: queue.records }, 'stopping intake and draining the queue');
      await intake!.stop();
      await delivery.stop(config.drainTimeoutSec * 1000);
      queue.close();
      deadLetter.close();
      try {
        await sink.close?.();
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'sink close failed');
      }
      if (admin) await closeHttp(admin.server);
      if (readiness) await closeHttp(readiness.server);
      logger.info({ ...metrics.totals, leftQueued: queue.records }, 'forwarder stopped');
    })());

  return {
    addresses: intake.addresses,
    adminAddress: admin ? formatHostPort(adminHost!, admin.port) : null,
    readinessAddress: readiness ? formatHostPort(readinessHost!, readiness.port) : null,
    notReadyReason,
    metrics,
    deadLetterFile: dlPath,
    health,
    probe: (id) => probes.get(id),
    shutdown,
  };
}

/** After SUSPENDED is written on shutdown, intake stays open until RELP sessions were quiet this long: the batch rsyslog has begun. */
export const INTAKE_STATE_GRACE_MS = 1000;
/** Bounds that wait for a sender that never reads the state file (inside the unit's TimeoutStopSec with the queue drain). */
export const INTAKE_STATE_MAX_GRACE_MS = 10_000;

/** Seconds a node with a readiness endpoint stays not ready but receiving after SIGTERM (2-3 probe intervals). */
export const DEFAULT_DRAIN_GRACE_SEC = 15;

function closeHttp(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
}

/** Runs until the signal aborts (SIGTERM/SIGINT in the CLI), then shuts down. */
export async function runForwarder(
  config: ForwarderConfig,
  opts: { signal: AbortSignal; logger?: Logger; onStarted?: (f: RunningForwarder) => void } & ForwarderDeps,
): Promise<RunningForwarder> {
  const f = await startForwarder(config, opts);
  opts.onStarted?.(f);
  if (!opts.signal.aborted) await new Promise((r) => opts.signal.addEventListener('abort', r, { once: true }));
  await f.shutdown();
  return f;
}
