import { z } from 'zod';
import { isLoopback } from '../config/listen.js';

// Pieces shared by the commands' option schemas, so one kind of flag reads the same in every command.
// Messages start with `must`: the one formatter (errors.ts) adds the flag and the value typed.

/** An integer flag, typed as a string or passed as a number by callers of the run functions. */
export function intOption(min: number, max: number) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `must be an integer from ${min} to ${max}` });
      return z.NEVER;
    }
    return n;
  });
}

/** A duration flag in seconds: more than 0 (or 0 too, where 0 turns the wait off), fractions allowed. */
export function secondsOption(max: number, { allowZero = false } = {}) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : v.trim() === '' ? NaN : Number(v);
    // One wording for every seconds flag; a wait of a fraction of a second is a typo, not a choice.
    const min = allowZero ? 0 : 1;
    if (!Number.isFinite(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `must be seconds from ${min} to ${max}` });
      return z.NEVER;
    }
    return n;
  });
}

const URL_CHARS = /^[A-Za-z0-9._~:/?#[\]@!$&'()*+,;=%-]+$/;

/** An http(s) URL with a host and no credentials in it (they would show in logs and process lists). */
export function isHttpUrl(v: string): boolean {
  if (!URL_CHARS.test(v) || v.length > 2048) return false;
  try {
    const u = new URL(v);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.hostname !== '' && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}

/** What an Azure-facing URL must be, in the words every error about one uses (`--dce must be …`, `sink.endpoint: must be …`). */
export const AZURE_URL = 'an https URL (http only to a loopback address, for a local mock or relay)';

/**
 * A URL the product sends a token, a secret, a signed request or the events to: https, or http only to this
 * machine (a local mock, a TLS-terminating relay). Plain http to another host would carry them in clear text.
 */
export function isAzureUrl(v: string): boolean {
  if (!isHttpUrl(v)) return false;
  const u = new URL(v);
  return u.protocol === 'https:' || isLoopbackHost(u.hostname);
}

/**
 * A URL hostname (`new URL(…).hostname`: lowercase, IPv4 dotted decimal, IPv6 in brackets) that names this machine:
 * 127.0.0.0/8, [::1], localhost. Not *.localhost: glibc sends such a name to DNS, which may answer with another host.
 */
export function isLoopbackHost(hostname: string): boolean {
  return isLoopback(hostname.replace(/^\[(.*)\]$/, '$1'));
}

export function azureUrlOption() {
  return z.string().refine(isAzureUrl, { message: `must be ${AZURE_URL}` });
}
