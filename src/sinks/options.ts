import type { TokenCredential } from '@azure/identity';

/** pino's Logger satisfies this; so does console. */
export interface SinkLogger {
  info(msg: string): void;
  warn(msg: string): void;
  debug?(msg: string): void;
}

/** Knobs that are not part of the config file: injected by the forwarder, tests and benchmarks. */
export interface SinkOptions {
  logger?: SinkLogger;
  /** Per-request deadline (connect + upload + response). Default 30 s. */
  timeoutMs?: number;
  /** Extra trust anchor (PEM) for HTTPS to Azure endpoints and the token authority. */
  ca?: string | Buffer;
  /** Where env-provided secrets and proxy settings are read. Default process.env. */
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  /** Secrets already in hand (tests); otherwise read from the configured 0600 files or env. */
  secrets?: { sharedKey?: string; clientSecret?: string };
  /** Replaces the credential built from config.auth (tests, embedding). */
  credential?: TokenCredential;
  limits?: {
    /** Largest uncompressed JSON body per call. */
    maxCallBytes?: number;
    /** Longest value per field, in UTF-8 bytes; longer values are truncated and flagged. */
    maxFieldBytes?: number;
  };
  /**
   * Logs Ingestion 403: when set, 403s stay retryable for this long after the first one in a row, then
   * the sink fails them itself. Default: always retryable; the forwarder's delivery loop bounds how long
   * authorization failures hold rows (retry.authFailureMaxSec).
   */
  forbiddenGraceMs?: number;
  /** Calls in flight at once within one send, when a batch spans several calls (default 2 for logs-ingestion, 1 for log-analytics). */
  concurrency?: number;
  /** File sink: fsync after each batch (slower; survives power loss). */
  fsync?: boolean;
}
