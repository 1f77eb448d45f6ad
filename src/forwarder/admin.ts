import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Health, ProbeStatus } from './admin-types.js';
import { MAX_PROBE_ID_CHARS } from './probes.js';

export interface AdminHandlers {
  health(): Health;
  probe(id: string): ProbeStatus;
  registry: Registry;
  logger: Logger;
}

const PROBE_PATH = new RegExp(`^/probes/([^/]{1,${MAX_PROBE_ID_CHARS}})$`);

/** Loopback HTTP: /healthz, /metrics, /probes/:id (see admin-types.ts). */
export function startAdminServer(host: string, port: number, h: AdminHandlers): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method not allowed' });
    const path = (req.url ?? '/').split('?')[0];
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
    send(404, { error: 'not found', endpoints: ['/healthz', '/metrics', '/probes/:id'] });
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
