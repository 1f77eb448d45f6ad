import type { SinkConfig } from '../config/schema.js';
import { createFileSink } from './file.js';
import { createLogAnalyticsSink } from './log-analytics.js';
import { createLogsIngestionSink } from './logs-ingestion.js';
import type { SinkOptions } from './options.js';
import type { Sink } from './types.js';

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

const stderrLogger = {
  info() {},
  warn(msg: string) {
    process.stderr.write(`sentinel-cef: warning: ${msg}\n`);
  },
};
