import { pino, type Logger } from 'pino';
import { LogDestination } from './log-destination.js';

/** Paths pino blanks out: a safety net; secrets are never meant to reach a log call. */
export const REDACT_PATHS = [
  'key',
  'sharedKey',
  'secret',
  'clientSecret',
  'password',
  'token',
  'accessToken',
  'authorization',
  '*.key',
  '*.sharedKey',
  '*.secret',
  '*.clientSecret',
  '*.password',
  '*.token',
  '*.accessToken',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
];

/**
 * JSON logs to stdout (journald/systemd or the supervisor's log file collects them). The default
 * destination never blocks nor throws: a full or stalled output drops and counts lines instead.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream | LogDestination): Logger {
  const opts = { level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return pino(opts, destination ?? new LogDestination());
}

/** The LogDestination under a logger (or its parent), when it has one. */
export function logDestinationOf(logger: Logger): LogDestination | null {
  const s = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  return s instanceof LogDestination ? s : null;
}
