import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertPrivateFile, readSecret, redact, SecretError, validateSharedKey } from '../../src/util/secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'secrets-test-'));
function file(name: string, content: string, mode: number): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

describe('readSecret', () => {
  it('reads and trims a 0600 file', () => {
    expect(readSecret({ file: file('a', '  s3cret-value \n', 0o600) })).toBe('s3cret-value');
    expect(readSecret({ file: file('b', 'v\n', 0o400) })).toBe('v');
  });

  it.each([0o640, 0o604, 0o660, 0o666, 0o620])('refuses mode %o, naming the file and chmod 600', (mode) => {
    const p = file(`m${mode}`, 'value', mode);
    let err: unknown;
    try {
      readSecret({ file: p, label: 'client secret' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SecretError);
    expect((err as Error).message).toContain(p);
    expect((err as Error).message).toContain('client secret');
    expect((err as SecretError).suggestion).toBe(`run: chmod 600 ${p}`);
    expect((err as Error).message + (err as SecretError).suggestion).not.toContain('value');
  });

  it('says clearly when the file is missing or empty', () => {
    expect(() => readSecret({ file: join(dir, 'nope') })).toThrow(/does not exist/);
    expect(() => readSecret({ file: file('empty', ' \n', 0o600) })).toThrow(/is empty/);
    expect(() => assertPrivateFile(dir)).toThrow(/not a regular file/);
  });

  it('falls back to the environment, and names the variable when it is missing', () => {
    expect(readSecret({ env: 'MY_SECRET' }, { MY_SECRET: ' x-y-z ' })).toBe('x-y-z');
    expect(() => readSecret({ env: 'MY_SECRET', label: 'shared key' }, {})).toThrow(/MY_SECRET/);
  });

  it('prefers the file over the environment', () => {
    expect(readSecret({ file: file('pref', 'from-file', 0o600), env: 'S' }, { S: 'from-env' })).toBe('from-file');
  });
});

describe('validateSharedKey', () => {
  it('accepts base64 (with stray whitespace) and rejects anything else', () => {
    const key = Buffer.alloc(64, 1).toString('base64');
    expect(validateSharedKey(key).length).toBe(64);
    expect(validateSharedKey(`${key.slice(0, 20)}\n${key.slice(20)}`).length).toBe(64);
    expect(() => validateSharedKey('abc$')).toThrow(/not valid base64/);
    expect(() => validateSharedKey('abcde')).toThrow(/not valid base64/);
  });
});

describe('redact', () => {
  it('replaces every occurrence, URL-encoded forms too, longest first', () => {
    const secret = 'ab+/cd==xyz';
    const text = `key=${secret} again ${encodeURIComponent(secret)} and ${secret}`;
    const out = redact(text, [secret, 'ab+/']);
    expect(out).toBe('key=[REDACTED] again [REDACTED] and [REDACTED]');
  });
  it('ignores empty and very short values (they would shred ordinary text)', () => {
    expect(redact('a b c', ['', undefined, null, 'a'])).toBe('a b c');
  });
});
