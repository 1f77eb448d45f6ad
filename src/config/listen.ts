import { isIP } from 'node:net';
import { UsageError } from '../errors.js';

export type ListenProtocol = 'tcp' | 'udp' | 'tls';
export interface ListenAddress {
  protocol: ListenProtocol;
  host: string;
  port: number;
  /** The URL as written, for logs and metric labels. */
  url: string;
}

/** Parses tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT; IPv6 hosts in brackets ([::1]:25226). */
export function parseListenUrl(url: string): ListenAddress {
  const m = /^(tcp|udp|tls):\/\/(\[[^\]]+\]|[^:/\s]+):(\d{1,5})\/?$/.exec(url.trim());
  if (!m) {
    throw new UsageError(`invalid listen address '${url}'`, {
      suggestion: 'use tcp://HOST:PORT, udp://HOST:PORT or tls://HOST:PORT (IPv6 as [::1])',
    });
  }
  const protocol = m[1] as ListenProtocol;
  let host = m[2];
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6) throw new UsageError(`invalid IPv6 address in listen address '${url}'`);
  }
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`port out of range in listen address '${url}'`, { suggestion: 'use 0-65535' });
  return { protocol, host, port, url: `${protocol}://${formatHostPort(host, port)}` };
}

export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses HOST:PORT ([::1]:PORT for IPv6). */
export function parseHostPort(value: string, what: string, example = '127.0.0.1:25227'): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(value.trim());
  if (!m || Number(m[2]) > 65535) {
    throw new UsageError(`invalid ${what} '${value}'`, { suggestion: `use HOST:PORT, e.g. ${example}` });
  }
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  return { host, port: Number(m[2]) };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return /^::ffff:127\./i.test(host);
}
