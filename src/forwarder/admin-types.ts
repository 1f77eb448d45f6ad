/**
 * The forwarder's admin API (loopback only, default 127.0.0.1:25227), used by `troubleshoot`,
 * `install` (final probe) and `demo`.
 *   GET /healthz      -> Health (200 when intake and delivery are running, 503 otherwise)
 *   GET /metrics      -> Prometheus text (prom-client)
 *   GET /probes/:id   -> ProbeStatus (404 with received:false when never seen)
 *   POST /dead-letters/replay -> ReplayResponse; body ReplayRequest, header REPLAY_TOKEN_HEADER
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
  /** Bytes of the message as the forwarder received it (first arrival). */
  bytes?: number;
  /** From `cs2=<id>` to the end of the message: its length and sha256, so the sender can tell a cut probe. */
  tailBytes?: number;
  tailSha256?: string;
}

/** Probe messages carry their id in the CEF extension as `cs2=<id>` with `cs2Label=ProbeId`. */
export const PROBE_VENDOR = 'TestCommonEventFormat';
export const PROBE_ID_KEY = 'cs2';
export const PROBE_ID_LABEL = 'ProbeId';

export const REPLAY_PATH = '/dead-letters/replay';
export const REPLAY_TOKEN_HEADER = 'x-sentinel-cef-replay-token';
/** File in the queue directory (0600) holding the token, new at every forwarder start. */
export const REPLAY_TOKEN_FILE = 'replay.token';

/**
 * Dead-letter entries put back on the queue: `raw` goes through the parser again (with its original
 * receive time), `row` is sent as it stands.
 */
export type ReplayRecord = { raw: string; receivedAt?: string } | { row: Record<string, unknown> };
export interface ReplayRequest {
  records: ReplayRecord[];
}
/** 200: every record is on the disk queue. 503/507: none is (queue full or closing, disk error). */
export interface ReplayResponse {
  appended: number;
  error?: string;
}
