import { lookup } from 'node:dns/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { proxyFor as sinkProxyFor } from '../sinks/http.js';
import type { EndpointProbe } from './types.js';

/**
 * The proxy `url` would go through, or null. The sinks' own rule (HTTPS_PROXY/NO_PROXY like curl), so the check
 * takes the path the forwarder takes.
 */
export function proxyFor(url: URL, env: Record<string, string | undefined>): URL | null {
  const raw = sinkProxyFor(url, env as NodeJS.ProcessEnv);
  if (!raw) return null;
  try {
    return new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    return null;
  }
}

function onceConnected(sock: Socket, timeoutMs: number, event: 'connect' | 'secureConnect'): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    sock.once(event, () => {
      clearTimeout(t);
      resolve();
    });
    sock.once('error', (err) => {
      clearTimeout(t);
      reject(err);
    });
  });
}

/** Reads an HTTP/1.1 response head (status line and headers) from a socket. */
function readHead(sock: Socket, timeoutMs: number): Promise<{ status: number; headers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error(`no HTTP response within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(t);
      sock.off('data', onData);
      const [statusLine, ...lines] = buf.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers });
    };
    sock.on('data', onData);
    sock.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    sock.once('end', () => {
      clearTimeout(t);
      reject(new Error('connection closed before an HTTP response'));
    });
  });
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message;
}

/**
 * Each step separately (DNS, TCP, TLS, one HEAD request) so a failure names its layer; honours HTTPS_PROXY with
 * a CONNECT tunnel, like the forwarder's HTTP client.
 */
export async function probeEndpoint(
  urlText: string,
  opts: { timeoutMs: number; env: Record<string, string | undefined>; /** Extra trusted CA (PEM), for tests. */ ca?: string },
): Promise<EndpointProbe> {
  const url = new URL(urlText);
  const https = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (https ? 443 : 80));
  const proxy = proxyFor(url, opts.env);
  const out: EndpointProbe = { url: urlText, host, port, ok: false };
  const started = Date.now();
  const dialHost = proxy ? proxy.hostname.replace(/^\[|\]$/g, '') : host;
  const dialPort = proxy ? Number(proxy.port || 80) : port;
  if (proxy) out.via = `${dialHost}:${dialPort}`;

  try {
    const addrs = await lookup(dialHost, { all: true });
    if (!proxy) out.resolved = addrs.map((a) => a.address);
  } catch (err) {
    out.dnsError = errText(err);
    return out;
  }

  let sock: Socket = netConnect({ host: dialHost, port: dialPort });
  try {
    await onceConnected(sock, opts.timeoutMs, 'connect');
    if (proxy) {
      const auth = proxy.username
        ? `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}\r\n`
        : '';
      sock.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n${auth}\r\n`);
      const head = await readHead(sock, opts.timeoutMs);
      if (head.status !== 200) throw new Error(`the proxy answered CONNECT with HTTP ${head.status}`);
    }
  } catch (err) {
    sock.destroy();
    out.tcpError = errText(err);
    return out;
  }

  if (https) {
    const tsock = tlsConnect({
      socket: sock,
      servername: isIP(host) ? undefined : host,
      host,
      ALPNProtocols: ['http/1.1'],
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    try {
      await onceConnected(tsock, opts.timeoutMs, 'secureConnect');
    } catch (err) {
      tsock.destroy();
      out.tlsError = errText(err);
      return out;
    }
    sock = tsock;
  }

  try {
    sock.write(`HEAD / HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: sentinel-cef-troubleshoot\r\nConnection: close\r\n\r\n`);
    const head = await readHead(sock, opts.timeoutMs);
    out.localDate = Date.now();
    out.httpStatus = head.status;
    const d = head.headers.date ? Date.parse(head.headers.date) : NaN;
    if (Number.isFinite(d)) out.serverDate = d;
    out.ok = true;
  } catch (err) {
    out.tlsError = `after the handshake: ${errText(err)}`;
  } finally {
    sock.destroy();
    out.elapsedMs = Date.now() - started;
  }
  return out;
}
