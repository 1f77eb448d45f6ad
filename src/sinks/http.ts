import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { isLoopbackHost } from '../util/option-schemas.js';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface TransportOptions {
  /** Whole-request deadline (connect + send + response). */
  timeoutMs?: number;
  /** Extra trust anchors for HTTPS (private CAs, the mock service). Appended to the system CAs. */
  ca?: string | Buffer;
  maxSockets?: number;
  env?: NodeJS.ProcessEnv;
}

export class HttpTimeoutError extends Error {
  constructor(ms: number) {
    super(`no response within ${ms} ms`);
    this.name = 'HttpTimeoutError';
  }
}

/** Honour HTTPS_PROXY/NO_PROXY like curl, because forwarders often sit behind an egress proxy. */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv): string | undefined {
  // Plain http is allowed only to this machine (a local mock or relay); through a proxy the request, token and
  // all, would cross the network in clear text.
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return undefined;
  const proxy =
    url.protocol === 'https:'
      ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.ALL_PROXY ?? env.all_proxy)
      : (env.HTTP_PROXY ?? env.http_proxy ?? env.ALL_PROXY ?? env.all_proxy);
  if (!proxy) return undefined;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  for (const entry of noProxy) {
    if (entry === '*') return undefined;
    const bare = entry.replace(/^\*?\./, '').replace(/:\d+$/, '');
    if (host === bare || host.endsWith(`.${bare}`)) return undefined;
  }
  return proxy;
}

/**
 * One keep-alive connection pool per sink. node:https rather than fetch because fetch cannot take a
 * per-client CA, and the mock service and private-link setups need one.
 */
export class HttpTransport {
  private readonly timeoutMs: number;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly proxyAgents = new Map<string, http.Agent>();
  private readonly env: NodeJS.ProcessEnv;
  private readonly ca?: (string | Buffer)[];

  constructor(opts: TransportOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.env = opts.env ?? process.env;
    const maxSockets = opts.maxSockets ?? 8;
    // Appending keeps the public roots trusted while adding the private one.
    this.ca = opts.ca ? [...tls.rootCertificates, opts.ca] : undefined;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, ca: this.ca });
  }

  private agentFor(url: URL): http.Agent {
    const proxy = proxyFor(url, this.env);
    if (proxy) {
      let agent = this.proxyAgents.get(proxy);
      if (!agent) {
        agent = new HttpsProxyAgent(proxy, { keepAlive: true });
        this.proxyAgents.set(proxy, agent);
      }
      return agent;
    }
    return url.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
  }

  async request(
    url: URL,
    init: { method: string; headers: Record<string, string>; body?: Buffer; signal?: AbortSignal; timeoutMs?: number },
  ): Promise<HttpResponse> {
    try {
      return await this.once(url, init);
    } catch (err) {
      // The server closed an idle keep-alive socket just as we reused it: the request never reached
      // it, so one fresh attempt is part of the same call (Node docs, http "request.reusedSocket").
      if ((err as { staleSocket?: boolean }).staleSocket && !init.signal?.aborted) return this.once(url, init);
      throw err;
    }
  }

  private once(
    url: URL,
    init: { method: string; headers: Record<string, string>; body?: Buffer; signal?: AbortSignal; timeoutMs?: number },
  ): Promise<HttpResponse> {
    const timeoutMs = init.timeoutMs ?? this.timeoutMs;
    return new Promise<HttpResponse>((resolve, reject) => {
      if (init.signal?.aborted) return reject(init.signal.reason ?? new Error('aborted'));
      const mod = url.protocol === 'https:' ? https : http;
      // `ca` on the request too: a proxy agent takes the target's TLS options from the request.
      const req = mod.request(url, {
        method: init.method,
        headers: init.headers,
        agent: this.agentFor(url),
        ...(this.ca ? { ca: this.ca } : {}),
      });
      let settled = false;
      const finish = (err: Error | null, res?: HttpResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        init.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(res!);
      };
      const timer = setTimeout(() => {
        const err = new HttpTimeoutError(timeoutMs);
        req.destroy(err);
        finish(err);
      }, timeoutMs);
      timer.unref?.();
      const onAbort = () => {
        const err = init.signal?.reason instanceof Error ? init.signal.reason : new Error('aborted');
        req.destroy(err);
        finish(err);
      };
      init.signal?.addEventListener('abort', onAbort, { once: true });
      let gotResponse = false;
      req.on('error', (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        if (!gotResponse && req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE')) {
          Object.assign(err, { staleSocket: true });
        }
        finish(err);
      });
      req.on('response', (res) => {
        gotResponse = true;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          // Error bodies are short; cap what we keep so a misbehaving proxy cannot balloon memory.
          if (size < 64 * 1024) chunks.push(c);
          size += c.length;
        });
        res.on('error', (err) => finish(err));
        res.on('end', () =>
          finish(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      req.end(init.body);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    for (const a of this.proxyAgents.values()) a.destroy();
    this.proxyAgents.clear();
  }
}

/**
 * Milliseconds to wait from `retry-after-ms` / `x-ms-retry-after-ms` (ms) or `Retry-After`
 * (delta-seconds or an HTTP-date, RFC 9110 §10.2.3). Undefined when absent or unparsable.
 */
export function parseRetryAfter(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const v = headerValue(headers, name);
    if (v !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.max(0, Math.ceil(Number(v)));
  }
  const ra = headerValue(headers, 'retry-after');
  if (ra === undefined) return undefined;
  const trimmed = ra.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.max(0, Math.ceil(Number(trimmed) * 1000));
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The service's own words from an error body: Data Collector `{"Error","Message"}`, Logs Ingestion
 * `{"error":{"code","message"}}`, OAuth `{"error","error_description"}`, else the trimmed text.
 */
export function serviceErrorText(body: string, max = 500): string {
  let text = body.trim();
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    if (j && typeof j === 'object') {
      const e = j.error as Record<string, unknown> | string | undefined;
      if (e && typeof e === 'object') text = [e.code, e.message].filter(Boolean).join(': ');
      else if (typeof j.Error === 'string') text = [j.Error, j.Message].filter(Boolean).join(': ');
      else if (typeof e === 'string') text = [e, j.error_description].filter(Boolean).join(': ');
    }
  } catch {
    // not JSON: keep the text
  }
  text = text.replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Statuses where the same request may succeed later (RFC 9110 + Azure's documented throttling). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A network-level failure worth retrying (every transport error is: the request never completed). */
export function describeNetworkError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e instanceof HttpTimeoutError) return e.message;
  return e?.code ? `${e.code}: ${e.message}` : String(e?.message ?? err);
}

/**
 * This machine's clock minus the server's, from the response's `Date` header (RFC 9110 §6.6.1;
 * one-second resolution). Undefined when the header is absent or unparsable.
 */
export function clockSkewMs(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const d = headerValue(headers, 'date');
  if (d === undefined) return undefined;
  const at = Date.parse(d);
  return Number.isNaN(at) ? undefined : now - at;
}

/** "clock is 1800 s off (behind the service's Date header)", for auth failure hints. */
export function describeClockSkew(skewMs: number): string {
  const s = Math.round(skewMs / 1000);
  if (s === 0) return "clock is 0 s off (matches the service's Date header)";
  return `clock is ${Math.abs(s)} s off (${s < 0 ? 'behind' : 'ahead of'} the service's Date header)`;
}
