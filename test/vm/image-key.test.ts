import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);

/** Issue 15: images keyed by suite, recipe and the suite's package index; `scripts/vm key` resolves without building. */
describe('scripts/vm key (image keyed by the package index)', () => {
  let dir: string;
  let cache: string;
  let mirror: string;
  const sumA = 'a'.repeat(64);
  const sumB = 'b'.repeat(64);

  async function publish(sum: string, date: string): Promise<void> {
    await mkdir(join(mirror, 'dists/bookworm'), { recursive: true });
    const release = [
      'Origin: Debian',
      'Suite: stable',
      `Date: ${date}`,
      'MD5Sum:',
      ` ${'c'.repeat(32)}  8790396 main/binary-amd64/Packages.xz`,
      'SHA256:',
      ` ${'d'.repeat(64)}  1234 contrib/binary-amd64/Packages.xz`,
      ` ${sum}  8790396 main/binary-amd64/Packages.xz`,
      '',
    ].join('\n');
    await writeFile(join(mirror, 'dists/bookworm/InRelease'), release);
  }

  async function image(name: string, index: string | null, builtAt: Date): Promise<string> {
    const d = join(cache, name);
    await mkdir(d, { recursive: true });
    if (index) await writeFile(join(d, '.index'), `${index}\n`);
    await writeFile(join(d, '.complete'), '');
    await utimes(join(d, '.complete'), builtAt, builtAt);
    return d;
  }

  async function key(): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { ...process.env, SENTINEL_CEF_VM_CACHE: cache, SENTINEL_CEF_VM_MIRROR: `file://${mirror}`, SENTINEL_CEF_VM_NODE: '22' };
    try {
      const r = await run('bash', ['scripts/vm', 'key', 'bookworm'], { env });
      return { code: 0, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, stdout: x.stdout.trim(), stderr: x.stderr.trim() };
    }
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vm-key-'));
    cache = join(dir, 'cache');
    mirror = join(dir, 'mirror');
    await mkdir(cache);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is valid bash', async () => {
    await run('bash', ['-n', 'scripts/vm']);
  });

  it('builds anew when the index changes (a point release) and reuses the image of the current index', async () => {
    await publish(sumA, 'Sat, 11 Jul 2026 10:16:37 UTC');
    const first = await key();
    expect(first.stdout).toMatch(new RegExp(`^${cache}/bookworm-r\\d+-node22-${sumA.slice(0, 12)} to build$`));
    const fam = /bookworm-r\d+-node22/.exec(first.stdout)![0];
    await image(`${fam}-${sumA.slice(0, 12)}`, sumA.slice(0, 12), new Date('2026-07-12T00:00:00Z'));
    expect((await key()).stdout).toBe(`${cache}/${fam}-${sumA.slice(0, 12)} built`);
    await publish(sumB, 'Sat, 12 Sep 2026 10:00:00 UTC');
    expect((await key()).stdout).toBe(`${cache}/${fam}-${sumB.slice(0, 12)} to build`);
  });

  it('keeps an image from before the index key when it was built after the index was published', async () => {
    await publish(sumA, 'Sat, 11 Jul 2026 10:16:37 UTC');
    const fam = /bookworm-r\d+-node22/.exec((await key()).stdout)![0];
    const legacy = await image(fam, null, new Date('2026-12-06T10:20:17Z'));
    expect((await key()).stdout).toBe(`${legacy} built`);
    await utimes(join(legacy, '.complete'), new Date('2026-07-01T00:00:00Z'), new Date('2026-07-01T00:00:00Z'));
    expect((await key()).stdout).toBe(`${legacy}-${sumA.slice(0, 12)} to build`);
  });

  it('without the mirror reuses the newest cached image and says so; with none cached, one line and exit 2', async () => {
    const none = await key();
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^vm: cannot reach file:\/\/\S+ for the bookworm package index and no bookworm image is cached$/);
    await publish(sumA, 'Sat, 11 Jul 2026 10:16:37 UTC');
    const fam = /bookworm-r\d+-node22/.exec((await key()).stdout)![0];
    await rm(mirror, { recursive: true });
    await image(fam, null, new Date('2026-07-01T00:00:00Z'));
    const newest = await image(`${fam}-${sumB.slice(0, 12)}`, sumB.slice(0, 12), new Date('2026-09-13T00:00:00Z'));
    const r = await key();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${newest} built`);
    expect(r.stderr).toBe(`vm: file://${mirror} unreachable: reusing ${newest} for bookworm (package versions not checked)`);
  });
});
