import { z } from 'zod';

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

export function httpUrlOption() {
  return z.string().refine(isHttpUrl, { message: 'must be an http(s) URL' });
}
