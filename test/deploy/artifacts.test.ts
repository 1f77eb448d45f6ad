import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_READINESS } from '../../src/install/run-install.js';
import { parseHostPort } from '../../src/config/listen.js';

const repo = path.resolve(import.meta.dirname, '../..');
const read = (p: string) => readFileSync(path.join(repo, p), 'utf8');

/** Containerfile instructions, continuation lines joined, comments dropped; `stage` counts FROM lines. */
function instructions(text: string): Array<{ stage: number; op: string; args: string }> {
  const out: Array<{ stage: number; op: string; args: string }> = [];
  let stage = -1;
  for (const raw of text.replace(/\\\n\s*/g, ' ').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [op, ...rest] = line.split(/\s+/);
    if (op.toUpperCase() === 'FROM') stage++;
    out.push({ stage, op: op.toUpperCase(), args: rest.join(' ') });
  }
  return out;
}

// There is no container engine on the build machines: the image is checked as text, for the properties it promises.
describe('deploy/Containerfile (checked statically: no container engine here)', () => {
  const ins = instructions(read('deploy/Containerfile'));
  const last = Math.max(...ins.map((i) => i.stage));
  const final = ins.filter((i) => i.stage === last);

  it('every stage is the official Node image, pinned by tag (node:22-bookworm-slim)', () => {
    for (const f of ins.filter((i) => i.op === 'FROM')) expect(f.args).toMatch(/^node:22-bookworm-slim( AS \w+)?$/);
  });

  it('the final stage installs runtime dependencies only (npm ci --omit=dev) and runs as the non-root node user', () => {
    expect(final.filter((i) => i.op === 'RUN').some((i) => /\bnpm ci\b.*--omit=dev/.test(i.args))).toBe(true);
    const users = final.filter((i) => i.op === 'USER');
    expect(users.map((u) => u.args)).toEqual(['node']);
    // Nothing runs after USER as root, and ENTRYPOINT/CMD come after it.
    const userAt = final.indexOf(users[0]);
    expect(final.findIndex((i) => i.op === 'ENTRYPOINT')).toBeGreaterThan(userAt);
  });

  it('read-only root friendly: the only writable path is a VOLUME, and it holds the queue', () => {
    const vol = final.filter((i) => i.op === 'VOLUME').map((v) => v.args);
    expect(vol).toEqual(['/var/lib/sentinel-cef']);
    expect(read('deploy/kubernetes/configmap.yaml')).toContain('"dir": "/var/lib/sentinel-cef/queue"');
    expect(final.some((i) => i.op === 'RUN' && i.args.includes('chown node:node /var/lib/sentinel-cef'))).toBe(true);
  });

  it('HEALTHCHECK asks the readiness endpoint (no curl in the slim image: node fetch)', () => {
    const hc = final.find((i) => i.op === 'HEALTHCHECK')!;
    const url = /fetch\('http:\/\/127\.0\.0\.1:(\d+)\/[^']*'\)/.exec(hc.args);
    expect(url).not.toBeNull();
    expect(final.find((i) => i.op === 'EXPOSE')!.args.split(' ')).toContain(`${url![1]}/tcp`);
    expect(read('deploy/kubernetes/configmap.yaml')).toContain(`"readiness": "0.0.0.0:${url![1]}"`);
  });

  it("the entrypoint is the self-contained forwarder bundle with the unit's node flags", () => {
    const ep = JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    expect(ep).toEqual(['node', '--max-semi-space-size=4', '/opt/sentinel-cef/dist/forwarder.mjs']);
    expect(JSON.parse(final.find((i) => i.op === 'CMD')!.args)).toEqual(['--config', '/etc/sentinel-cef/forwarder.json']);
  });

  it(
    "the build stage builds from exactly what it copies: scripts/build.mjs on the COPY set alone, in a temp dir",
    () => {
      const build = ins.filter((i) => i.stage === 0);
      const work = build.find((i) => i.op === 'WORKDIR')!.args;
      const dir = mkdtempSync(path.join(tmpdir(), 'scef-image-build-'));
      try {
        for (const c of build.filter((i) => i.op === 'COPY')) {
          expect(c.args, 'a build-stage COPY takes files from the context').not.toMatch(/^--/);
          const words = c.args.split(/\s+/);
          const rawDest = words.pop()!;
          const dest = path.posix.resolve(work, rawDest);
          for (const src of words) {
            // Docker's rule: into a directory when the destination ends in / or there are several sources.
            const to = words.length > 1 || rawDest.endsWith('/') ? path.posix.join(dest, path.basename(src)) : dest;
            cpSync(path.join(repo, src), path.join(dir, path.posix.relative(work, to)), { recursive: true });
          }
        }
        // `npm ci` in the image; the same packages here.
        symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
        const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
        expect(r.status, r.stderr).toBe(0);
        // The final stage copies dist/ from here and runs the bundle: it starts and checks its flags.
        const v = spawnSync(process.execPath, [path.join(dir, 'dist/forwarder.mjs'), '--version'], { encoding: 'utf8', timeout: 60_000 });
        expect(v.stdout.trim(), v.stderr).toBe(JSON.parse(read('package.json')).version);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    180_000,
  );
});

describe('deploy/haproxy/haproxy.cfg', () => {
  const cfg = read('deploy/haproxy/haproxy.cfg');
  const lines = cfg
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);

  it('mode tcp, health checks against the readiness endpoint, PROXY v2 as install --forwarder-only --proxy v2 expects', () => {
    expect(lines).toContain('mode tcp');
    expect(lines).toContain('option httpchk');
    expect(lines).toContain('http-check expect status 200');
    const ds = lines.find((l) => l.startsWith('default-server'))!;
    expect(ds).toContain(`port ${parseHostPort(DEFAULT_READINESS, 'readiness').port}`);
    expect(ds.split(/\s+/)).toContain('send-proxy-v2');
    // The health check itself carries no PROXY header (the readiness endpoint is plain HTTP).
    expect(ds).not.toContain('check-send-proxy');
    expect(cfg).toContain('install --forwarder-only --proxy v2');
  });

  // The distribution's haproxy, unpacked from its .deb into a cache (scripts/haproxy-check), not installed.
  const probe = spawnSync('bash', ['-c', 'command -v apt-get && command -v dpkg'], { encoding: 'utf8' });
  it.skipIf(probe.status !== 0)(
    'haproxy -c accepts it, and refuses a broken copy (the check is real)',
    () => {
      const ok = spawnSync(path.join(repo, 'scripts/haproxy-check'), [path.join(repo, 'deploy/haproxy/haproxy.cfg')], {
        encoding: 'utf8',
        timeout: 170_000,
      });
      if (ok.status === 3) return void console.warn(`haproxy -c skipped: ${ok.stderr.trim()}`);
      expect(ok.status, ok.stdout + ok.stderr).toBe(0);
      expect(ok.stdout + ok.stderr).toContain('Configuration file is valid');
      const dir = mkdtempSync(path.join(tmpdir(), 'haproxy-'));
      try {
        writeFileSync(path.join(dir, 'bad.cfg'), cfg.replace(/^(\s*default-server .*)send-proxy-v2/m, '$1send-proxy-v9'));
        const bad = spawnSync(path.join(repo, 'scripts/haproxy-check'), [path.join(dir, 'bad.cfg')], { encoding: 'utf8', timeout: 60_000 });
        expect(bad.status).not.toBe(0);
        expect(bad.stderr).toMatch(/send-proxy-v9/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    180_000,
  );
});
