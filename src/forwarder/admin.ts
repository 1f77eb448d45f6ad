import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { REPLAY_PATH, REPLAY_TOKEN_HEADER, type Health, type ProbeStatus } from './admin-types.js';
import { MAX_PROBE_ID_CHARS } from './probes.js';

export interface AdminHandlers {
  health(): Health;
  probe(id: string): ProbeStatus;
  registry: Registry;
  logger: Logger;
  /** POST /dead-letters/replay: appends the records to the queue. Absent: the endpoint answers 404. */
  replay?: {
    /** The caller must send it in REPLAY_TOKEN_HEADER (the file only root can read; see replay-token.ts). */
    token: string;
    append(body: unknown): { status: number; body: unknown };
  };
}

/** Largest replay request body (the CLI sends ~1 MiB chunks). */
const MAX_REPLAY_BODY = 16 * 1024 * 1024;

function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= max) chunks.push(c);
    });
    req.on('end', () => resolve(size > max ? null : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function tokenMatches(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

const PROBE_PATH = new RegExp(`^/probes/([^/]{1,${MAX_PROBE_ID_CHARS}})$`);

/** Loopback HTTP: /healthz, /metrics, /probes/:id (see admin-types.ts). */
export function startAdminServer(host: string, port: number, h: AdminHandlers): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (path === REPLAY_PATH && h.replay) {
      if (req.method !== 'POST') return send(405, { error: 'method not allowed' });
      // The token keeps other local users (and, with the JSON content type, web pages) from injecting rows.
      if (!tokenMatches(req.headers[REPLAY_TOKEN_HEADER], h.replay.token)) return send(403, { error: 'missing or wrong replay token' });
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return send(415, { error: 'send application/json' });
      const replay = h.replay;
      readBody(req, MAX_REPLAY_BODY)
        .then((body) => {
          if (body === null) return send(413, { error: `body over ${MAX_REPLAY_BODY} bytes` });
          let parsed: unknown;
          try {
            parsed = JSON.parse(body.toString('utf8'));
          } catch {
            return send(400, { error: 'body is not JSON' });
          }
          const r = replay.append(parsed);
          send(r.status, r.body);
        })
        .catch((err: Error) => {
          h.logger.error({ err: err.message }, 'dead-letter replay request failed');
          send(500, { error: 'replay failed' });
        });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method not allowed' });
    if (path === '/healthz') {
      const health = h.health();
      return send(health.status === 'stopping' ? 503 : 200, health);
    }
    if (path === '/metrics') {
      h.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': h.registry.contentType });
          res.end(text);
        })
        .catch((err: Error) => {
          h.logger.error({ err: err.message }, 'metrics collection failed');
          send(500, { error: 'metrics collection failed' });
        });
      return;
    }
    const m = PROBE_PATH.exec(path);
    if (m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1]);
      } catch {
        return send(400, { error: 'bad probe id' });
      }
      const st = h.probe(id);
      return send(st.received ? 200 : 404, st);
    }
    send(404, { error: 'not found', endpoints: ['/healthz', '/metrics', '/probes/:id', ...(h.replay ? [`POST ${REPLAY_PATH}`] : [])] });
  });
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : port });
    });
  });
}
