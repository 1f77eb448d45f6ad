import { createServer, type Server } from 'node:http';

/** Probe connections held at once; more are refused at accept (a balancer needs a handful). */
export const READINESS_MAX_CONNECTIONS = 64;
/** A probe connection that has not been answered by then is closed (a slow or silent client). */
export const READINESS_SOCKET_TIMEOUT_MS = 2000;

/**
 * The load balancer's readiness endpoint: any path, GET or HEAD, HTTP/1.0 or 1.1, answers
 * `200 ready` or `503 not ready: <reason>` and closes. It tells nothing else (it may face the
 * network), never reads a request body and never waits on the sink: `state` must be cheap and sync.
 */
export function startReadinessServer(host: string, port: number, state: () => string | null): Promise<{ server: Server; port: number }> {
  const server = createServer({ maxHeaderSize: 4096, keepAlive: false }, (req, res) => {
    res.shouldKeepAlive = false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD', connection: 'close' });
      res.end('method not allowed\n');
      return;
    }
    const reason = state();
    const body = reason === null ? 'ready\n' : `not ready: ${reason}\n`;
    res.writeHead(reason === null ? 200 : 503, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      connection: 'close',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.maxConnections = READINESS_MAX_CONNECTIONS;
  // Node's own header/request timeouts are checked only every 30 s; a silent probe must not hold a slot that long.
  server.on('connection', (s) => s.setTimeout(READINESS_SOCKET_TIMEOUT_MS, () => s.destroy()));
  server.on('clientError', (_err, s) => {
    if (s.writable) s.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else s.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : port });
    });
  });
}
