import { randomUUID } from 'node:crypto';
import { constants as zlibConstants, gzipSync } from 'node:zlib';
import type { CslRow } from '../parser/types.js';
import type { SinkConfig } from '../config/schema.js';
import { redact } from '../util/secrets.js';
import { BodyPool, deliver, prepareRow, preparingSink, type PostOutcome } from './batch.js';
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
import type { SinkOptions } from './options.js';
import { createCredential, scopeFor, TokenCache } from './token.js';
import type { PreparedRow, SendResult, Sink } from './types.js';

type IngestionConfig = Extract<SinkConfig, { type: 'logs-ingestion' }>;

export const LOGS_INGESTION_API_VERSION = '2023-01-01';
/**
 * "1 MB per call, compressed or not": we cap the uncompressed JSON at 1,000,000 bytes, which keeps
 * both forms under 1 MB (and under 1 MiB) whatever the service measures.
 */
export const LI_MAX_CALL_BYTES = 1_000_000;
export const LI_MAX_FIELD_BYTES = 64 * 1024;
const AUTH_RETRY_MS = 60_000;

/** Rows as the Logs Ingestion API takes them: values cut to the per-field limit (and flagged). */
export function prepareIngestionRows(rows: CslRow[], maxFieldBytes = LI_MAX_FIELD_BYTES, writer?: RowWriter): PreparedRow[] {
  return rows.map((r) => prepareRow(r, maxFieldBytes, writer));
}

export function ingestionUrl(config: Pick<IngestionConfig, 'endpoint' | 'dcrImmutableId' | 'stream'>): URL {
  const url = new URL(config.endpoint);
  const stream = config.stream ?? 'Custom-CommonSecurityLog';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/dataCollectionRules/${encodeURIComponent(config.dcrImmutableId)}/streams/${encodeURIComponent(stream)}`;
  url.search = `api-version=${LOGS_INGESTION_API_VERSION}`;
  return url;
}

/*
 * Why not @azure/monitor-ingestion's LogsIngestionClient.upload: it retries inside the call with
 * core-rest-pipeline's in-memory policy and reports failures only as an aggregate of failed logs.
 * Our durable queue needs each call's own outcome (retryable vs refused, Retry-After, 403 vs 413)
 * under the forwarder's retry loop, so the one POST is made here. Tokens still come from @azure/identity.
 */
export function createLogsIngestionSink(config: IngestionConfig, opts: SinkOptions = {}): Sink {
  const env = opts.env ?? process.env;
  const now = opts.now ?? Date.now;
  const scope = scopeFor(config);
  const url = ingestionUrl(config);
  const transport = new HttpTransport({ timeoutMs: opts.timeoutMs, ca: opts.ca, env });
  const maxCallBytes = opts.limits?.maxCallBytes ?? LI_MAX_CALL_BYTES;
  // post() is done with the JSON once gzip has read it, so call bodies are reused.
  const bodies = new BodyPool(maxCallBytes, (opts.concurrency ?? 2) + 1);
  const maxFieldBytes = opts.limits?.maxFieldBytes ?? LI_MAX_FIELD_BYTES;
  // The delivery loop bounds how long auth failures hold rows (retry.authFailureMaxSec); the sink only
  // gives up on its own when told to.
  const graceMs = opts.forbiddenGraceMs ?? Infinity;
  const secrets: string[] = [];
  const makeCredential = () => {
    if (opts.credential) return opts.credential;
    return createCredential(config, { env, ca: opts.ca, clientSecret: opts.secrets?.clientSecret });
  };
  if (opts.secrets?.clientSecret) secrets.push(opts.secrets.clientSecret);
  const tokens = new TokenCache(scope, makeCredential, now);
  let forbiddenSince: number | undefined;
  const clean = (text: string) => redact(text, secrets);

  async function call(body: Buffer, signal: AbortSignal | undefined, token: string) {
    return transport.request(url, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/json',
        'Content-Encoding': 'gzip',
        'Content-Length': String(body.length),
        'x-ms-client-request-id': randomUUID(),
      },
      body,
      signal,
    });
  }

  async function getToken(signal?: AbortSignal): Promise<string | PostOutcome> {
    try {
      return await tokens.get(signal);
    } catch (err) {
      // A token failure is not the data's fault: keep it queued. A refusal by the authority (wrong
      // secret, unknown app) will not fix itself soon, so wait a minute; a network blip gets the
      // forwarder's normal backoff.
      // @azure/identity wraps the authority's answer (AuthenticationRequiredError), so look for
      // its AADSTS code / OAuth error rather than a status.
      const refused = /AADSTS\d+|invalid_client|unauthorized_client|invalid_tenant|invalid_scope/.test(
        String((err as Error)?.message ?? err),
      );
      const error = clean(`cannot get an Entra ID token for ${scope}: ${tokenErrorText(err)}`);
      if (!refused) return { kind: 'retry', error };
      // AADSTS700024/700027: a client assertion outside its validity window, i.e. this clock is off.
      const hint = /AADSTS7000(24|27)\b/.test(error)
        ? "the authority refused the client assertion's time window: check this machine's clock (chronyd, systemd-timesyncd)"
        : 'the authority refused the credentials: check the tenant, client id and secret or certificate (a rotated secret must be written to its file)';
      return { kind: 'retry', retryAfterMs: AUTH_RETRY_MS, error, auth: { hint } };
    }
  }

  /** Reads `json` only until gzip is done with it (its buffer is reused after post settles: BodyPool). */
  async function post(json: Buffer, signal?: AbortSignal): Promise<PostOutcome> {
    // Level 1: about a third of level 6's CPU per event for a slightly larger body; the 1 MB call
    // limit is applied to the uncompressed JSON, so the level never changes how many calls we make.
    // Synchronous: less CPU than handing 16 KB steps to the thread pool and back (figures:
    // docs/BENCHMARKS.md, "Call bodies").
    const body = gzipSync(json, { level: zlibConstants.Z_BEST_SPEED, chunkSize: 64 * 1024 });
    let res;
    for (let attempt = 0; ; attempt++) {
      const token = await getToken(signal);
      if (typeof token !== 'string') return token;
      try {
        res = await call(body, signal, token);
      } catch (err) {
        return { kind: 'retry', error: clean(`cannot reach ${url.host}: ${describeNetworkError(err)}`) };
      }
      // One refresh per call: a token revoked or rotated early gets replaced, a bad setup does not loop.
      if (res.status === 401 && attempt === 0) {
        tokens.invalidate();
        continue;
      }
      break;
    }
    if (res.status >= 200 && res.status < 300) {
      forbiddenSince = undefined;
      return { kind: 'ok' };
    }
    const text = clean(serviceErrorText(res.body)) || `HTTP ${res.status}`;
    const error = `Logs Ingestion API HTTP ${res.status}: ${text}`;
    const skew = res.status === 401 || res.status === 403 ? clockSkewMs(res.headers, now()) : undefined;
    const clock = skew === undefined ? '' : `; this machine's ${describeClockSkew(skew)}`;
    switch (res.status) {
      case 401: {
        const hint = `a fresh token was refused too: check the tenant, app registration and cloud${clock}`;
        return {
          kind: 'retry',
          httpStatus: 401,
          retryAfterMs: AUTH_RETRY_MS,
          error: `${error} (${hint})`,
          auth: { hint, ...(skew !== undefined ? { clockSkewMs: skew } : {}) },
        };
      }
      case 403: {
        forbiddenSince ??= now();
        const hint = `the identity needs the "Monitoring Metrics Publisher" role on the data collection rule; a new assignment can take up to 30 minutes to apply${clock}`;
        if (now() - forbiddenSince < graceMs)
          return {
            kind: 'retry',
            httpStatus: 403,
            retryAfterMs: AUTH_RETRY_MS,
            error: `${error} (${hint})`,
            auth: { hint, ...(skew !== undefined ? { clockSkewMs: skew } : {}) },
          };
        return { kind: 'fatal', httpStatus: 403, error: `${error} (${hint})` };
      }
      case 404:
        return { kind: 'fatal', httpStatus: 404, error: `${error} (check dcrImmutableId, stream and endpoint: ${url.origin})` };
      case 413:
        return { kind: 'too-large', error };
    }
    if (isRetryableStatus(res.status))
      return { kind: 'retry', httpStatus: res.status, retryAfterMs: parseRetryAfter(res.headers, now()), error };
    return { kind: 'reject', httpStatus: res.status, error, isolate: res.status === 400 };
  }

  function prepare(rows: CslRow[], writer?: RowWriter): PreparedRow[] {
    return prepareIngestionRows(rows, maxFieldBytes, writer);
  }

  async function sendPrepared(rows: PreparedRow[], sendOpts?: { signal?: AbortSignal }): Promise<SendResult<PreparedRow>> {
    if (rows.length === 0) return { status: 'success', accepted: 0 };
    return deliver(rows, {
      maxCallBytes,
      concurrency: opts.concurrency ?? 2,
      signal: sendOpts?.signal,
      post: (body) => post(body, sendOpts?.signal),
      bodies,
    });
  }

  return preparingSink({
    name: 'logs-ingestion',
    async start() {
      // Fetch a first token so credential problems show at start; never throw for them.
      try {
        await tokens.get();
        opts.logger?.info(`logs-ingestion: token acquired for ${scope}`);
      } catch (err) {
        opts.logger?.warn(clean(`logs-ingestion: cannot get a token yet (will retry while sending): ${tokenErrorText(err)}`));
      }
    },
    prepare,
    rowLimits: { maxFieldBytes, maxColumns: Infinity },
    sendPrepared,
    async close() {
      transport.close();
    },
  });
}

function tokenErrorText(err: unknown): string {
  const text = firstLine(err);
  // MSAL's code for "could not fetch the authority's OpenID metadata" says nothing about why.
  if (/endpoints_resolution_error/.test(text)) {
    return `${text} (the authority could not be reached: check DNS, proxy (HTTPS_PROXY) and authorityHost)`;
  }
  return text;
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (
    msg
      .split('\n')
      .find((l) => l.trim())
      ?.trim() ?? msg
  );
}
