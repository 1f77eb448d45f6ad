import { createHmac } from 'node:crypto';
import type { CslRow } from '../parser/types.js';
import type { SinkConfig } from '../config/schema.js';
import { readSecret, redact, validateSharedKey } from '../util/secrets.js';
import { deliver, prepareRow, preparingSink, type PostOutcome, type PreparedRow } from './batch.js';
import type { RowWriter } from './row-writer.js';
import {
  clockSkewMs,
  describeClockSkew,
  describeNetworkError,
  HttpTransport,
  isRetryableStatus,
  parseRetryAfter,
  serviceErrorText,
} from './http.js';
import type { SinkLogger, SinkOptions } from './options.js';
import type { AuthFailure, SendResult, Sink } from './types.js';

type LogAnalyticsConfig = Extract<SinkConfig, { type: 'log-analytics' }>;

export const DATA_COLLECTOR_API_VERSION = '2016-04-01';
/** Documented limits: 30 MB per post, 32 KB per field value, 500 columns per record. */
export const LA_MAX_POST_BYTES = 30 * 1024 * 1024;
export const LA_DEFAULT_CALL_BYTES = 25 * 1024 * 1024;
export const LA_MAX_FIELD_BYTES = 32 * 1024;
export const LA_MAX_COLUMNS = 500;

const EMPTY = Buffer.alloc(0);

/** Rows as the Data Collector API takes them: per-field limit, and the column cap checked before sending. */
export function prepareCollectorRows(rows: CslRow[], maxFieldBytes = LA_MAX_FIELD_BYTES, writer?: RowWriter): PreparedRow[] {
  return rows.map((row) => {
    let columns = 0;
    for (const _ in row) columns++;
    if (columns > LA_MAX_COLUMNS) {
      return {
        buf: EMPTY,
        start: 0,
        bytes: 0,
        original: row,
        rejected: `record has ${columns} columns, over the Data Collector API limit of ${LA_MAX_COLUMNS}`,
      };
    }
    return prepareRow(row, maxFieldBytes, writer);
  });
}
const ODS_SUFFIX = {
  AzureCloud: 'ods.opinsights.azure.com',
  AzureUSGovernment: 'ods.opinsights.azure.us',
  AzureChinaCloud: 'ods.opinsights.azure.cn',
} as const;

/** Codes that apply to every call with these headers: no point sending the rest or bisecting. */
const BATCH_LEVEL_ERRORS = new Set([
  'InactiveCustomer',
  'InvalidApiVersion',
  'InvalidCustomerId',
  'InvalidLogType',
  'MissingApiVersion',
  'MissingContentType',
  'MissingLogType',
  'UnsupportedContentType',
]);

/** The service refuses an x-ms-date more than 15 minutes from its time; the Date header has 1 s resolution. */
const DC_DATE_WINDOW_MS = 15 * 60_000;

/** Why a Data Collector 403 (InvalidAuthorization) probably happened, judged by the clock skew. */
export function forbiddenCause(skewMs: number | undefined): AuthFailure {
  if (skewMs === undefined) {
    return {
      hint: "check the workspace id and shared key (a rotated key must be written to the key file), and that this machine's clock is within 15 minutes of UTC",
    };
  }
  const clock = `this machine's ${describeClockSkew(skewMs)}`;
  if (Math.abs(skewMs) >= DC_DATE_WINDOW_MS - 5_000) {
    return {
      clockSkewMs: skewMs,
      hint: `${clock}: the service refuses requests dated more than 15 minutes from its time; fix time sync (chronyd, systemd-timesyncd)`,
    };
  }
  return {
    clockSkewMs: skewMs,
    hint: `check the workspace id and shared key (a rotated key must be written to the key file); ${clock}, within the 15 minutes allowed`,
  };
}

export function dataCollectorUrl(config: Pick<LogAnalyticsConfig, 'workspaceId' | 'cloud' | 'endpoint'>): URL {
  const base = config.endpoint ?? `https://${config.workspaceId}.${ODS_SUFFIX[config.cloud ?? 'AzureCloud']}`;
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/logs`;
  url.search = `api-version=${DATA_COLLECTOR_API_VERSION}`;
  return url;
}

/** The string to sign (protocols.md §4); Content-Length is the body's UTF-8 byte count. */
export function dataCollectorStringToSign(contentLength: number, date: string): string {
  return `POST\n${contentLength}\napplication/json\nx-ms-date:${date}\n/api/logs`;
}

export function dataCollectorSignature(sharedKeyBase64: string, contentLength: number, date: string): string {
  const key = Buffer.from(sharedKeyBase64.replace(/\s+/g, ''), 'base64');
  return createHmac('sha256', key).update(dataCollectorStringToSign(contentLength, date), 'utf8').digest('base64');
}

/** The headers of a signed Data Collector post; the sink and install's probe of the endpoint share them. */
export function dataCollectorHeaders(
  workspaceId: string,
  sharedKeyBase64: string,
  contentLength: number,
  date: string,
  logType: string,
): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    'Content-Length': String(contentLength),
    'Log-Type': logType,
    'x-ms-date': date,
    Authorization: `SharedKey ${workspaceId}:${dataCollectorSignature(sharedKeyBase64, contentLength, date)}`,
    'time-generated-field': 'TimeGenerated',
  };
}

export function createLogAnalyticsSink(config: LogAnalyticsConfig, opts: SinkOptions = {}): Sink {
  const env = opts.env ?? process.env;
  const sharedKey =
    opts.secrets?.sharedKey ?? readSecret({ file: config.sharedKeyFile, env: 'SENTINEL_CEF_KEY', label: 'workspace shared key' }, env);
  validateSharedKey(sharedKey);
  const url = dataCollectorUrl(config);
  const transport = new HttpTransport({ timeoutMs: opts.timeoutMs, ca: opts.ca, env });
  const now = opts.now ?? Date.now;
  const maxCallBytes = Math.min(opts.limits?.maxCallBytes ?? LA_DEFAULT_CALL_BYTES, LA_MAX_POST_BYTES);
  const maxFieldBytes = opts.limits?.maxFieldBytes ?? LA_MAX_FIELD_BYTES;
  const logType = config.logType ?? 'CommonSecurityLog';
  const log: SinkLogger | undefined = opts.logger;
  const clean = (text: string) => redact(text, [sharedKey]);

  async function post(bytes: Buffer, _rows: PreparedRow[], signal?: AbortSignal): Promise<PostOutcome> {
    const date = new Date(now()).toUTCString();
    const headers = dataCollectorHeaders(config.workspaceId, sharedKey, bytes.length, date, logType);
    if (config.azureResourceId) headers['x-ms-AzureResourceId'] = config.azureResourceId;
    let res;
    try {
      res = await transport.request(url, { method: 'POST', headers, body: bytes, signal });
    } catch (err) {
      return { kind: 'retry', error: clean(`cannot reach ${url.host}: ${describeNetworkError(err)}`) };
    }
    if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
    const text = clean(serviceErrorText(res.body)) || `HTTP ${res.status}`;
    const error = `Data Collector API HTTP ${res.status}: ${text}`;
    if (res.status === 413) return { kind: 'too-large', error };
    if (isRetryableStatus(res.status))
      return { kind: 'retry', error, retryAfterMs: parseRetryAfter(res.headers, now()), httpStatus: res.status };
    if (res.status === 403) {
      // Retryable for a while (the delivery loop bounds it): a skewed clock or a key just rotated heals.
      const auth = forbiddenCause(clockSkewMs(res.headers, now()));
      return { kind: 'retry', httpStatus: 403, error: `${error} (${auth.hint})`, auth };
    }
    if (res.status === 404) return { kind: 'fatal', httpStatus: 404, error: `${error} (no such workspace at ${url.host})` };
    let code = '';
    try {
      code = String((JSON.parse(res.body) as { Error?: string }).Error ?? '');
    } catch {
      // plain-text body
    }
    if (BATCH_LEVEL_ERRORS.has(code)) return { kind: 'fatal', httpStatus: res.status, error };
    return { kind: 'reject', httpStatus: res.status, error, isolate: true };
  }

  function prepare(rows: CslRow[], writer?: RowWriter): PreparedRow[] {
    return prepareCollectorRows(rows, maxFieldBytes, writer);
  }

  async function sendPrepared(rows: PreparedRow[], sendOpts?: { signal?: AbortSignal }): Promise<SendResult<PreparedRow>> {
    if (rows.length === 0) return { status: 'success', accepted: 0 };
    return deliver(rows, {
      maxCallBytes,
      concurrency: opts.concurrency ?? 1,
      signal: sendOpts?.signal,
      post: (body, group) => post(body, group, sendOpts?.signal),
    });
  }

  return preparingSink({
    name: 'log-analytics',
    async start() {
      log?.warn(
        'the HTTP Data Collector API (sink type log-analytics) was retired by Microsoft on 2026-09-14; ' +
          'it writes to the custom table ' +
          `${logType}_CL, not CommonSecurityLog. Move to sink type logs-ingestion (see \`sentinel-cef dcr\`).`,
      );
    },
    prepare,
    rowLimits: { maxFieldBytes, maxColumns: LA_MAX_COLUMNS },
    sendPrepared,
    async close() {
      transport.close();
    },
  });
}
