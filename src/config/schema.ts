import { z } from 'zod';
import { azureUrlOption } from '../util/option-schemas.js';

/**
 * The forwarder's config file (/etc/sentinel-cef/forwarder.json). Written by `install`, read by
 * `forward --config`, checked by `forward --check` and `troubleshoot`. Secrets never live here:
 * only the paths of 0600 files that hold them (or the environment, see secretsFromEnv).
 */
export const DEFAULT_FORWARDER_PORT = 25226;
export const DEFAULT_ADMIN = '127.0.0.1:25227';
export const DEFAULT_QUEUE_DIR = '/var/lib/sentinel-cef/queue';
export const DEFAULT_CONFIG_PATH = '/etc/sentinel-cef/forwarder.json';

export const CLOUDS = ['AzureCloud', 'AzureUSGovernment', 'AzureChinaCloud'] as const;
export type Cloud = (typeof CLOUDS)[number];

const fileSink = z.object({
  type: z.literal('file'),
  path: z.string().min(1),
  /** fsync after each batch: survives power loss, costs a disk flush per batch. */
  fsync: z.boolean().optional(),
});

const logAnalyticsSink = z.object({
  type: z.literal('log-analytics'),
  workspaceId: z.string().regex(/^[0-9a-fA-F-]{36}$/, 'workspaceId must be a GUID'),
  /** 0600 file holding the base64 primary/secondary key; else env SENTINEL_CEF_KEY. */
  sharedKeyFile: z.string().optional(),
  cloud: z.enum(CLOUDS).default('AzureCloud'),
  /** Overrides https://{workspaceId}.ods.opinsights.azure.{com,us,cn} (private link, tests); http only to loopback. */
  endpoint: azureUrlOption().optional(),
  logType: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,100}$/, 'logType must be 1-100 letters, digits or _')
    .default('CommonSecurityLog'),
  azureResourceId: z.string().optional(),
});

const ingestionAuth = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('client-secret'),
    tenantId: z.string().min(1),
    clientId: z.string().min(1),
    /** 0600 file holding the secret; else env AZURE_CLIENT_SECRET. */
    clientSecretFile: z.string().optional(),
  }),
  z.object({
    kind: z.literal('certificate'),
    tenantId: z.string().min(1),
    clientId: z.string().min(1),
    certificateFile: z.string().min(1),
  }),
  z.object({ kind: z.literal('managed-identity'), clientId: z.string().optional() }),
  z.object({ kind: z.literal('workload-identity') }),
]);

const logsIngestionSink = z.object({
  type: z.literal('logs-ingestion'),
  /** DCE or DCR logs-ingestion endpoint, e.g. https://my-dce.eastus-1.ingest.monitor.azure.com */
  endpoint: azureUrlOption(),
  dcrImmutableId: z.string().min(1),
  stream: z.string().default('Custom-CommonSecurityLog'),
  cloud: z.enum(CLOUDS).default('AzureCloud'),
  auth: ingestionAuth,
  /** Overrides the Entra ID authority host (sovereign clouds, private link, tests); http only to loopback. */
  authorityHost: azureUrlOption().optional(),
  /** Overrides the token scope (defaults from cloud: https://monitor.azure.com//.default ...). */
  scope: z.string().optional(),
});

export const sinkSchema = z.discriminatedUnion('type', [fileSink, logAnalyticsSink, logsIngestionSink]);
export type SinkConfig = z.infer<typeof sinkSchema>;

export const forwarderConfigSchema = z.object({
  /** tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, relp://HOST:PORT */
  listen: z
    .array(z.string())
    .min(1)
    .default([`tcp://127.0.0.1:${DEFAULT_FORWARDER_PORT}`, `udp://127.0.0.1:${DEFAULT_FORWARDER_PORT}`]),
  tls: z
    .object({
      certFile: z.string(),
      keyFile: z.string(),
      caFile: z.string().optional(),
      requireClientCert: z.boolean().default(false),
    })
    .optional(),
  limits: z
    .object({
      maxMessageBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024),
      maxConnections: z.number().int().positive().default(1024),
      idleTimeoutSec: z.number().positive().default(300),
      /** A TLS connection that has not finished its handshake by then is closed (it holds a slot and a descriptor). */
      tlsHandshakeTimeoutSec: z.number().positive().max(300).default(10),
      /** SO_RCVBUF asked for on UDP listeners (the kernel caps it at net.core.rmem_max); 0 = kernel default. */
      udpReceiveBufferBytes: z
        .number()
        .int()
        .nonnegative()
        .default(8 * 1024 * 1024),
      /**
       * Behind a load balancer: a TCP/TLS connection older than this is closed between frames, so the
       * sender reconnects and the balancer spreads connections again (each gets up to 10% jitter); 0 = never.
       */
      maxConnectionAgeSec: z.number().nonnegative().default(0),
      /** A connection on a ?proxy= listener that has not sent its whole PROXY header by then is closed. */
      proxyHeaderTimeoutSec: z.number().positive().max(60).default(5),
    })
    .prefault({}),
  queue: z
    .object({
      dir: z.string().default(DEFAULT_QUEUE_DIR),
      maxBytes: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024 * 1024),
      /** Segment file size before rotation. */
      segmentBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024 * 1024),
      /** Group fsync interval: writes reach the page cache at once (survive kill -9), the disk within this. */
      fsyncIntervalMs: z.number().int().nonnegative().default(1000),
    })
    .prefault({}),
  batch: z
    .object({
      /**
       * Memory scales with maxRecords x inFlight (parsed rows stay alive until accepted). 1000 rows of
       * 500-byte CEF make one Logs Ingestion call of ~0.8 MB, under the 1 MB limit.
       */
      maxRecords: z.number().int().positive().default(1000),
      /** Raw message bytes per batch; the sink splits a batch into calls that fit the API limit. */
      maxBytes: z
        .number()
        .int()
        .positive()
        .default(2 * 1024 * 1024),
      flushMs: z.number().int().nonnegative().default(1000),
      /** A batch is sent as up to this many concurrent sink calls. */
      parallelSends: z.number().int().positive().max(16).default(1),
      /**
       * Batches being parsed or on the wire at once; the queue cursor still moves over them strictly in
       * order (a crash re-sends at most this many batches). Throughput to a distant region is bounded by
       * rows in flight per round trip; on loopback 8 keeps the parse worker busy while earlier batches
       * wait for their answers (figures: docs/BENCHMARKS.md, "8 batches in flight by default").
       */
      inFlight: z.number().int().positive().max(32).default(8),
      /**
       * Worker threads that parse and serialize batches while the main thread receives, queues and
       * sends. 'auto': one per core beyond the first, at most 4 (none on one core). Only sinks that
       * serialize ahead (logs-ingestion, log-analytics) use them.
       */
      parseWorkers: z.union([z.literal('auto'), z.number().int().min(0).max(8)]).default('auto'),
    })
    .prefault({}),
  /** Delivery retry backoff: exponential with full jitter between initialMs and maxMs. */
  retry: z
    .object({
      initialMs: z.number().int().positive().default(1000),
      maxMs: z.number().int().positive().default(60_000),
      /**
       * How long authorization refusals (401/403: clock skew, a role assignment still propagating, a
       * rotated key) keep rows queued and retried before they are dead-lettered; 0 dead-letters at once.
       */
      authFailureMaxSec: z
        .number()
        .int()
        .nonnegative()
        .max(7 * 24 * 3600)
        .default(3600),
    })
    .prefault({}),
  /**
   * HOST:PORT of the load-balancer readiness endpoint (HTTP GET/HEAD answers `200 ready` or `503 not
   * ready: <reason>`), or false (default). Unlike the admin API it may listen on any address.
   */
  readiness: z.union([z.string(), z.literal(false)]).default(false),
  /** When the readiness endpoint says not ready (besides paused intake and shutdown). */
  readinessRules: z
    .object({
      /** Not ready once every delivery attempt has failed for this long. */
      sinkFailingSec: z.number().positive().default(60),
      /** Not ready while the queue holds more than this fraction of queue.maxBytes. */
      queueHighWater: z.number().positive().max(1).default(0.8),
    })
    .prefault({}),
  /**
   * On SIGTERM/SIGINT: seconds to stay not ready while still receiving, so the balancer stops sending
   * first; then intake stops and the drain below starts. Default: 15 with a readiness endpoint, else 0.
   */
  drainGraceSec: z.number().nonnegative().max(3600).optional(),
  /**
   * A file kept at READY while the inputs listen and set to SUSPENDED first thing on SIGTERM/SIGINT (then intake
   * stays open 1 s more for the batch rsyslog is sending). rsyslog's drop-in reads it (action.externalstate.file)
   * and keeps its batches queued while it says SUSPENDED.
   */
  intakeStateFile: z.string().optional(),
  /** On SIGTERM/SIGINT: seconds to keep delivering queued events before exiting (the rest stays queued). */
  drainTimeoutSec: z.number().nonnegative().default(10),
  sink: sinkSchema,
  /** Defaults to <queue.dir>/../dead-letter.ndjson */
  deadLetterFile: z.string().optional(),
  /**
   * Bound on the dead-letter file: it rotates to <file>.1 … <file>.<files> (newest first) and the oldest
   * rotated file is deleted (its entries counted) once live + rotated would pass maxBytes. Counted in the
   * disk budget beside queue.maxBytes.
   */
  deadLetter: z
    .object({
      maxBytes: z
        .number()
        .int()
        .min(1024 * 1024, 'deadLetter.maxBytes must be at least 1 MiB (1048576)')
        .default(256 * 1024 * 1024),
      files: z.number().int().min(1).max(100).default(4),
    })
    .prefault({}),
  /** HOST:PORT on loopback, or false to disable. */
  admin: z.union([z.string(), z.literal(false)]).default(DEFAULT_ADMIN),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
});
export type ForwarderConfig = z.infer<typeof forwarderConfigSchema>;
