/**
 * The forwarder's admin API (loopback only, default 127.0.0.1:25227), used by `troubleshoot`,
 * `install` (final probe) and `demo`.
 *   GET /healthz      -> Health (200 when intake and delivery are running, 503 otherwise)
 *   GET /metrics      -> Prometheus text (prom-client)
 *   GET /probes/:id   -> ProbeStatus (404 with received:false when never seen)
 */
export interface Health {
  status: 'ok' | 'degraded' | 'stopping';
  version: string;
  pid: number;
  uptimeSec: number;
  sink: string;
  inputs: string[];
  queue: { bytes: number; records: number; maxBytes: number; oldestAgeSec: number | null; intakePaused: boolean };
  counters: {
    received: number;
    parseFailures: number;
    delivered: number;
    retried: number;
    deadLettered: number;
    dropped: number;
    /** Log lines lost because the log output failed (full filesystem, stalled or closed pipe). */
    logLinesDropped?: number;
  };
  /** The dead-letter file and its rotated siblings. */
  deadLetters?: { file: string; bytes: number; maxBytes: number; files: number; droppedEntries: number };
  lastDelivery: { ok: boolean; at: string; error?: string; httpStatus?: number } | null;
}

export interface ProbeStatus {
  id: string;
  received: boolean;
  receivedAt?: string;
  /** The batch holding the probe was accepted by the sink. */
  accepted: boolean;
  acceptedAt?: string;
  latencyMs?: number;
  /** Last delivery error for the probe's batch, when not accepted yet. */
  error?: string;
  deadLettered?: boolean;
}

/** Probe messages carry their id in the CEF extension as `cs2=<id>` with `cs2Label=ProbeId`. */
export const PROBE_VENDOR = 'TestCommonEventFormat';
export const PROBE_ID_KEY = 'cs2';
export const PROBE_ID_LABEL = 'ProbeId';
