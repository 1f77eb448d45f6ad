import { pino, type Logger } from 'pino';

/** Paths pino blanks out: a safety net; secrets are never meant to reach a log call. */
export const REDACT_PATHS = [
  'key', 'sharedKey', 'secret', 'clientSecret', 'password', 'token', 'accessToken', 'authorization',
  '*.key', '*.sharedKey', '*.secret', '*.clientSecret', '*.password', '*.token', '*.accessToken', '*.authorization',
  'headers.authorization', '*.headers.authorization', '*.headers.Authorization',
];

/** JSON logs to stdout (journald/systemd collects them). */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = { level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination ? pino(opts, destination) : pino(opts);
}
