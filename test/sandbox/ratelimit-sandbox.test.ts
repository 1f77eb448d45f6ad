import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo, sandbox, sandboxSkipReason } from './sandbox-env.js';

// Whatever input the daemon's config already has on port 514 (rate-limited or not), every message the daemon passes
// on must arrive as a parsed row: the limiter may drop, but nothing that gets through may become a parse failure.
const reason = sandboxSkipReason();
if (reason) console.warn(`sandbox tests skipped: ${reason}`);

const COUNT = 1000;
const BURST = 100; // ratelimit.burst in the scenario's rate-limited inputs
// send-burst.mjs cycles 7 forms; 3 and 4 are bare `CEF:` (no HOSTNAME of the device's own).
const FORMS = 7;
const BARE = new Set([3, 4]);

const CASES = {
  rsyslog: [
    'rsyslog-own-udp',
    'rsyslog-own-tcp',
    'rsyslog-own-udp6',
    'rsyslog-own-tcp6',
    'rsyslog-imudp-limited',
    'rsyslog-imudp-unlimited',
    'rsyslog-imtcp-limited',
    'rsyslog-imtcp-unlimited',
    'rsyslog-imptcp-limited',
    'rsyslog-imptcp-unlimited',
  ],
  'syslog-ng': [
    'syslog-ng-own-udp',
    'syslog-ng-own-tcp',
    'syslog-ng-own-udp6',
    'syslog-ng-own-tcp6',
    'syslog-ng-network-udp',
    'syslog-ng-network-tcp',
    'syslog-ng-syslog-udp',
    'syslog-ng-syslog-tcp',
  ],
} as const;

const read = (dir: string, f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '');
const ndjson = (text: string) =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe.skipIf(reason !== null).each(['rsyslog', 'syslog-ng'] as const)('CEF bursts through every %s input kind', (daemon) => {
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), `scef-sbx-rl-${daemon}-`));
    chmodSync(dir, 0o755);
    const r = await execa(
      sandbox,
      ['run', '--daemon', daemon, '--', 'bash', path.join(repo, 'test/sandbox/ratelimit-scenario.sh'), dir, daemon, String(COUNT)],
      { reject: false, timeout: 660_000 },
    );
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}`);
  }, 700_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(CASES[daemon].map((c) => [c]))('%s: every message passed on is a parsed row, exactly once', (name) => {
    expect(read(dir, `${name}-install.rc`).trim(), read(dir, `${name}-install.err`)).toBe('0');
    expect(read(dir, `${name}-send.rc`).trim(), read(dir, `${name}-send.err`)).toBe('0');
    const dead = ndjson(read(dir, `${name}.dead`));
    expect(dead.map((d) => `${String(d.reason)}: ${String(d.raw)}`).slice(0, 3)).toEqual([]);
    const rows = ndjson(read(dir, `${name}.rows`)).filter((r) => r.DeviceCustomString1Label === 'seq');
    const seqs = rows.map((r) => Number(r.DeviceCustomString1));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const s of seqs) expect(Number.isInteger(s) && s >= 0 && s < COUNT).toBe(true);
    for (const r of rows) expect(r).toMatchObject({ DeviceVendor: 'Acme', DeviceProduct: 'FW', Activity: name });
    if (name.endsWith('-limited')) {
      expect(rows.length).toBeGreaterThanOrEqual(BURST);
      expect(rows.length).toBeLessThanOrEqual(COUNT);
    } else {
      // Every datagram the kernel handed to the daemon (all sent, less those it refused: no socket bound yet or a
      // full buffer, counted in the sandbox's own network namespace) is a row; over TCP that is every message.
      const refused = name.includes('udp') ? Number(read(dir, `${name}.refused`).trim()) : 0;
      expect(Number.isInteger(refused) && refused >= 0, `refused count: ${read(dir, `${name}.refused`)}`).toBe(true);
      expect(rows.length).toBeLessThanOrEqual(COUNT);
      expect(rows.length, `${refused} datagrams refused by the kernel`).toBeGreaterThanOrEqual(COUNT - refused);
      if (refused > 0) console.warn(`${name}: the kernel refused ${refused} of ${COUNT} datagrams before the daemon`);
    }
    // The device's HOSTNAME where its header has one; the sender as the daemon names it for bare `CEF:` lines.
    // A syslog-ng source we reuse keeps no raw message, and Debian's keep-hostname(no) names the sender instead.
    const reused = /^syslog-ng-(network|syslog)-/.test(name);
    for (const r of rows) {
      const form = Number(r.DeviceCustomString1) % FORMS;
      if (BARE.has(form) || reused) expect(r.Computer, `form ${form}`).toMatch(/\S/);
      else expect(r.Computer, `form ${form}`).toBe('fw01');
    }
  });

  it('uninstalls after each case', () => {
    for (const name of CASES[daemon])
      expect(read(dir, `${name}-uninstall.rc`).trim(), `${name}: ${read(dir, `${name}-uninstall.err`)}`).toBe('0');
  });
});
