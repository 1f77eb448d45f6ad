import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo, sandbox, sandboxSkipReason } from './sandbox-env.js';

// The README's walkthrough, run for real: each `<!-- walk:STEP [DAEMON] -->` block's command is run in the sandbox
// with real rsyslog / syslog-ng, and what it printed must be the block's output line for line once the values that
// differ between runs (times, ids, pids, ports, versions, free space) are normalised. Then the original's legacy form
// `install <workspaceId> <key>` against the mock workspace, through troubleshoot and uninstall.
const reason = sandboxSkipReason();
if (reason) console.warn(`sandbox tests skipped: ${reason}`);

type Daemon = 'rsyslog' | 'syslog-ng';
interface WalkBlock {
  step: string;
  daemon?: Daemon;
  args: string[];
  output: string;
}

/** The marked blocks of the README, in order. */
export function readWalkBlocks(readme: string): WalkBlock[] {
  const blocks: WalkBlock[] = [];
  const re = /<!-- walk:([a-z-]+)(?: (rsyslog|syslog-ng))? -->\n```console\n\$ (?:sudo )?npx sentinel-cef ([^\n]*)\n([\s\S]*?)```/g;
  for (const m of readme.matchAll(re)) {
    blocks.push({ step: m[1], daemon: m[2] as Daemon | undefined, args: m[3].trim().split(/ +/), output: m[4] });
  }
  return blocks;
}

/** Each step once, in README order, with the block for this daemon (or the one for both). */
function stepsFor(blocks: WalkBlock[], daemon: Daemon): WalkBlock[] {
  const names = [...new Set(blocks.map((b) => b.step))];
  return names.map((n) => {
    const b = blocks.find((x) => x.step === n && x.daemon === daemon) ?? blocks.find((x) => x.step === n && !x.daemon);
    if (!b) throw new Error(`README walk step ${n} has no block for ${daemon}`);
    return b;
  });
}

const KEEP_PORTS = new Set(['514', '25226', '25227']);
/** Only what truly varies between runs; every word and every other number must match. */
export function normalise(text: string): string {
  const lines = text
    .replace(/\r/g, '')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/\d{4}-\d\d-\d\dT\d\d[:-]\d\d[:-]\d\d[.-]\d{3}Z/g, '<time>')
    .replace(/\b\d+ ms\b/g, 'N ms')
    .replace(/\bup \d+s\b/g, 'up Ns')
    .replace(/\b(pid|uid|PID) \d+/g, '$1 N')
    .replace(/\b\d+ delivered\b/g, 'N delivered')
    .replace(/\b\d+ GiB free \(\d+%\)/g, 'N GiB free (N%)')
    .replace(/\b(rsyslog|syslog-ng|version) \d+\.\d+(\.\d+)*/g, '$1 <version>')
    .replace(/sentinel-cef-demo-[A-Za-z0-9]{6}/g, 'sentinel-cef-demo-XXXXXX')
    .replace(/127\.0\.0\.1:(\d+)/g, (m, p: string) => (KEEP_PORTS.has(p) ? m : '127.0.0.1:PORT'))
    .split('\n')
    .map((l) => l.trimEnd());
  // The demo's rows arrive over TCP and UDP at once: their order in the table is the order they arrived.
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    out.push(lines[i]);
    if (/^─[─ ]+$/.test(lines[i])) {
      let j = i + 1;
      while (j < lines.length && lines[j] !== '') j++;
      out.push(...lines.slice(i + 1, j).sort());
      i = j - 1;
    }
  }
  return out.join('\n').trim();
}

const read = (dir: string, f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '');
/** The shadow tools (useradd, userdel) keep their own previous copy in /etc/passwd- etc.; not ours to restore. */
const etc = (dir: string, f: string) =>
  read(dir, f)
    .split('\n')
    .filter((l) => !/\/etc\/(passwd|group|shadow|gshadow|subuid|subgid)-(\s|$)/.test(l))
    .join('\n');

const blocks = readWalkBlocks(readFileSync(path.join(repo, 'README.md'), 'utf8'));

describe('the README walkthrough', () => {
  it('has the marked steps, for both daemons', () => {
    for (const d of ['rsyslog', 'syslog-ng'] as const) {
      expect(stepsFor(blocks, d).map((b) => b.step)).toEqual(['demo', 'install', 'troubleshoot', 'uninstall']);
    }
  });
});

describe.skipIf(reason !== null).each(['rsyslog', 'syslog-ng'] as const)('the README walkthrough on real %s in the sandbox', (daemon) => {
  let dir: string;
  const steps = stepsFor(blocks, daemon);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), `scef-walk-${daemon}-`));
    chmodSync(dir, 0o755);
    writeFileSync(path.join(dir, 'steps'), steps.map((s) => `${s.step}\t${s.args.join(' ')}\n`).join(''));
    const r = await execa(
      sandbox,
      ['run', '--daemon', daemon, '--', 'bash', path.join(repo, 'test/sandbox/walk-scenario.sh'), dir, daemon, path.join(dir, 'steps')],
      { reject: false, timeout: 420_000 },
    );
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}`);
  }, 450_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(steps.map((s) => [s.step, s] as const))('`%s` prints what the README shows', (name, s) => {
    expect(read(dir, `${name}.rc`).trim(), read(dir, `${name}.out`)).toBe('0');
    expect(normalise(read(dir, `${name}.out`))).toBe(normalise(s.output));
  });

  it('uninstall leaves /etc byte-identical (content, mode, owner)', () => {
    expect(etc(dir, 'walk.pre.sha')).not.toBe('');
    expect(etc(dir, 'walk.post.sha')).toBe(etc(dir, 'walk.pre.sha'));
    expect(etc(dir, 'walk.post.stat')).toBe(etc(dir, 'walk.pre.stat'));
  });

  describe('the legacy form `install <workspaceId> <primaryKey>` against the mock workspace', () => {
    const key = () => read(dir, 'ws.key').trim();

    it('installs, says the API is retired and what to do, and the mock receives the rows in CommonSecurityLog_CL', () => {
      expect(read(dir, 'legacy-install.rc').trim(), read(dir, 'legacy-install.out')).toBe('0');
      const out = read(dir, 'legacy-install.out');
      expect(out).toContain('the key on the command line is visible to other local users in /proc');
      expect(out).toContain('the Data Collector API (workspace id + key) was retired by Microsoft on 2026-09-14');
      expect(out).toMatch(/a signed probe to POST http:\/\/127\.0\.0\.1:\d+\/api\/logs\?api-version=2016-04-01 answered HTTP 200/);
      expect(out).toContain('rows sent this way go to the custom table CommonSecurityLog_CL, not to CommonSecurityLog');
      expect(out).toContain('`sentinel-cef install --workspace 0b5e7c1a-3f1d-4c2e-9a8b-1234567890ab`');
      expect(out).toMatch(new RegExp(`-> ${daemon} -> forwarder -> workspace 0b5e7c1a-.*accepted after \\d+ ms`));
      const rows = JSON.parse(read(dir, 'legacy-rows.json')) as Array<{ api: string; table: string; row: Record<string, string> }>;
      expect(rows.find((r) => r.row.Activity === 'legacy walk')).toMatchObject({
        api: 'log-analytics',
        table: 'CommonSecurityLog_CL',
        row: { SourceIP: '10.9.9.9', DeviceVendor: 'Acme' },
      });
    });

    it('keeps the key out of every child process and every output, and stores it 0600 for the service user', () => {
      expect(key().length).toBeGreaterThan(40);
      // Only install itself holds it (the user typed it there); no child's argv, no process's environment.
      const seen = read(dir, 'key-seen').trim().split('\n').filter(Boolean);
      expect(seen.length, 'the watcher saw install itself').toBeGreaterThan(0);
      for (const s of seen) expect(s).toMatch(/^cmdline node \S+\/bin\/sentinel-cef install /);
      for (const f of ['legacy-install.out', 'legacy-troubleshoot.out', 'legacy-uninstall.out']) expect(read(dir, f)).not.toContain(key());
      expect(read(dir, 'legacy.files')).toContain('/etc/sentinel-cef/shared-key 600 sentinel-cef:sentinel-cef');
      expect(read(dir, 'legacy.files')).toContain('/etc/sentinel-cef/forwarder.json 640 root:sentinel-cef');
    });

    it('troubleshoot passes with the retirement as a warning that names the way out', () => {
      const out = read(dir, 'legacy-troubleshoot.out');
      expect(read(dir, 'legacy-troubleshoot.rc').trim(), out).toBe('0');
      expect(out).toMatch(/WARN Forwarder config valid \[forwarder\.config\]: sink: Data Collector API, .*retired this API on 2026-09-14/);
      expect(out).toContain(
        'fix: move to the Logs Ingestion API (creates the DCR and grants the role): `sentinel-cef install --workspace ',
      );
      expect(out).toMatch(/PASS Azure accepts the credentials \[azure\.credentials\]: shared key accepted/);
      expect(out).toMatch(/PASS End-to-end probes \[e2e\.probes\]: 6\/6 probes delivered/);
      expect(out).not.toMatch(/pass --workspace/);
    });

    it('uninstall --purge leaves /etc byte-identical', () => {
      expect(read(dir, 'legacy-uninstall.rc').trim(), read(dir, 'legacy-uninstall.out')).toBe('0');
      expect(etc(dir, 'legacy.post.sha')).toBe(etc(dir, 'legacy.pre.sha'));
      expect(etc(dir, 'legacy.post.stat')).toBe(etc(dir, 'legacy.pre.stat'));
    });
  });
});
