import type { SinkConfig } from '../config/schema.js';
import type { CslRow } from '../parser/types.js';
import type { RowWriter } from './row-writer.js';
import { createFileSink, FILE_ROW_LIMITS, prepareFileRows } from './file.js';
import { createLogAnalyticsSink, LA_MAX_COLUMNS, LA_MAX_FIELD_BYTES, prepareCollectorRows } from './log-analytics.js';
import { createLogsIngestionSink, LI_MAX_FIELD_BYTES, prepareIngestionRows } from './logs-ingestion.js';
import type { SinkOptions } from './options.js';
import type { PreparedRow, RowLimits, Sink } from './types.js';

export type { Sink, SendResult, RowNote, SendProgress } from './types.js';
export type { SinkOptions, SinkLogger } from './options.js';

/**
 * Builds the sink named by config.type. Throws a CliError (SecretError) for unreadable or unsafe
 * secret files and bad keys, so a misconfigured forwarder fails at start with one clear line.
 */
export function createSink(config: SinkConfig, opts: SinkOptions = {}): Sink {
  // Without a logger, warnings (the retired-API notice, token trouble at start) still reach stderr.
  opts = { ...opts, logger: opts.logger ?? stderrLogger };
  switch (config.type) {
    case 'file':
      return createFileSink(config, { fsync: opts.fsync });
    case 'log-analytics':
      return createLogAnalyticsSink(config, opts);
    case 'logs-ingestion':
      return createLogsIngestionSink(config, opts);
  }
}

export interface RowPreparer {
  prepare: (rows: CslRow[], writer?: RowWriter) => PreparedRow[];
  limits: RowLimits;
}

/**
 * The prepare step of the sink config.type names, without the sink (no secrets, no connections):
 * what a parse worker runs. Same result as createSink(config).prepare and .rowLimits with default limits.
 */
export function rowPreparer(config: SinkConfig): RowPreparer {
  switch (config.type) {
    case 'file':
      return { prepare: (rows, writer) => prepareFileRows(rows, writer), limits: FILE_ROW_LIMITS };
    case 'log-analytics':
      return {
        prepare: (rows, writer) => prepareCollectorRows(rows, undefined, writer),
        limits: { maxFieldBytes: LA_MAX_FIELD_BYTES, maxColumns: LA_MAX_COLUMNS },
      };
    case 'logs-ingestion':
      return {
        prepare: (rows, writer) => prepareIngestionRows(rows, undefined, writer),
        limits: { maxFieldBytes: LI_MAX_FIELD_BYTES, maxColumns: Infinity },
      };
  }
}

const stderrLogger = {
  info() {},
  warn(msg: string) {
    process.stderr.write(`sentinel-cef: warning: ${msg}\n`);
  },
};
