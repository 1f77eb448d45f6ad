import type { ForwarderConfig } from '../config/schema.js';

/** workerData of a parse worker (kept apart so the bundle entry can tell its role without loading more). */
export const PARSE_WORKER_ROLE = 'sentinel-cef-parse';

export interface ParseWorkerData {
  role: typeof PARSE_WORKER_ROLE;
  sink: ForwarderConfig['sink'];
  maxMessageBytes: number;
  /** batch.maxBytes: sizes the worker's heap cap. */
  maxBatchBytes: number;
}
