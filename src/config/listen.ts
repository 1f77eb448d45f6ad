import { isIP } from 'node:net';
import { z } from 'zod';
import { UsageError, showValue } from '../errors.js';

export type ListenProtocol = 'tcp' | 'udp' | 'tls' | 'relp';
export interface ListenAddress {
  protocol: ListenProtocol;
  host: string;
  port: number;
  /** The URL as written, for logs and metric labels. */
  url: string;
  /** TCP/TLS/RELP behind a load balancer: each connection starts with this PROXY protocol header version. */
  proxy?: 'v1' | 'v2';
}

/**
 * Parses tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, relp://HOST:PORT; IPv6 hosts in brackets ([::1]:25226).
 * `?proxy=v1` or `?proxy=v2` on tcp/tls/relp: connections must start with that PROXY protocol header.
 */
export function parseListenUrl(url: string, what = 'a listen address'): ListenAddress {
  const [base, query] = splitQuery(url.trim());
  const m = /^(tcp|udp|tls|relp):\/\/(\[[^\]]+\]|[^:/\s]+):(\d{1,5})\/?$/.exec(base);
  if (!m) throw new UsageError(listenMessage(what, url));
  const protocol = m[1] as ListenProtocol;
  let host = m[2];
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6) throw new UsageError(`invalid IPv6 address in listen address '${url}'`);
  }
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(listenMessage(what, url, 'with a port from 0 to 65535'));
  const proxy = query === undefined ? undefined : parseProxyQuery(url, protocol, query);
  return { protocol, host, port, url: listenUrlOf(protocol, host, port, proxy), ...(proxy ? { proxy } : {}) };
}

/** The one wording for a bad listen URL, from --listen or the config's `listen`: what a valid one looks like. */
function listenMessage(what: string, url: string, detail = ''): string {
  return `${what} must be tcp://, udp://, tls:// or relp://HOST:PORT${detail ? ` ${detail}` : ''}, e.g. tcp://0.0.0.0:514 or udp://[::]:514, got ${showValue(url)}`;
}

export function listenUrlOf(protocol: string, host: string, port: number, proxy?: 'v1' | 'v2'): string {
  return `${protocol}://${formatHostPort(host, port)}${proxy ? `?proxy=${proxy}` : ''}`;
}

function splitQuery(url: string): [string, string | undefined] {
  const i = url.indexOf('?');
  return i < 0 ? [url, undefined] : [url.slice(0, i), url.slice(i + 1)];
}

function parseProxyQuery(url: string, protocol: string, query: string): 'v1' | 'v2' {
  const m = /^proxy=(v1|v2)$/.exec(query);
  if (!m)
    throw new UsageError(`invalid option in listen address '${url}'`, {
      suggestion: 'the only option is ?proxy=v1 or ?proxy=v2 (PROXY protocol from a load balancer)',
    });
  if (protocol === 'udp') {
    throw new UsageError(`?proxy= needs a tcp://, tls:// or relp:// listener, not '${url}'`, {
      suggestion: 'UDP carries no PROXY header: the balancer must preserve the source address instead',
    });
  }
  return m[1] as 'v1' | 'v2';
}

export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses HOST:PORT ([::1]:PORT for IPv6). */
const HOST_PORT = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/;

function matchHostPort(value: string): { host: string; port: number } | null {
  const m = HOST_PORT.exec(value.trim());
  if (!m || Number(m[2]) > 65535) return null;
  return { host: m[1].startsWith('[') ? m[1].slice(1, -1) : m[1], port: Number(m[2]) };
}

/** The one wording for a bad HOST:PORT, from a flag or a config field. */
function hostPortMessage(what: string, value: string, example: string): string {
  return `${what} must be HOST:PORT, e.g. ${example}, got ${showValue(value)}`;
}

export function parseHostPort(value: string, what: string, example = '127.0.0.1:25227'): { host: string; port: number } {
  const r = matchHostPort(value);
  if (!r) throw new UsageError(hostPortMessage(what, value, example));
  return r;
}

/** A HOST:PORT flag in an options schema (the message names the flag, as every option error does). */
export function hostPortOption(flag: string, example: string) {
  return z.string().superRefine((v, ctx) => {
    if (!matchHostPort(v)) ctx.addIssue({ code: 'custom', message: hostPortMessage(flag, v, example) });
  });
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return /^::ffff:127\./i.test(host);
}
