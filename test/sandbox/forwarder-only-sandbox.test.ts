import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo, sandbox, sandboxSkipReason } from './sandbox-env.js';

const reason = sandboxSkipReason();
if (reason) console.warn(`sandbox tests skipped: ${reason}`);
const read = (dir: string, f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '');

describe.skipIf(reason !== null)('install --forwarder-only in the sandbox (no systemd, no syslog daemon)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'scef-sbx-fwdonly-'));
    chmodSync(dir, 0o755);
    const r = await execa(
      sandbox,
      ['run', '--daemon', 'none', '--', 'bash', path.join(repo, 'test/sandbox/forwarder-only-scenario.sh'), dir],
      // A bound for a loaded machine (the sandbox alone took 100 s to start at load ~35), not a wait.
      { reject: false, timeout: 420_000 },
    );
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}`);
  }, 450_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('without systemd, refuses 514 while it is privileged: one line, exit 2, nothing changed', () => {
    expect(read(dir, 'refused.rc').trim()).toBe('2');
    expect(read(dir, 'refused.err').trim().split('\n').pop()).toMatch(
      /^sentinel-cef: --forwarder-only on port 514 needs systemd to grant CAP_NET_BIND_SERVICE to the sentinel-cef user \(PID 1 here is \S+\) — use ports from 1024 up/,
    );
    expect(read(dir, 'refused.sha')).toBe(read(dir, 'pre.sha'));
  });

  it('installs under the supervisor as the service user, proves it with a probe to 514, and takes v4 and v6 senders', () => {
    expect(read(dir, 'install.rc').trim(), read(dir, 'install.err')).toBe('0');
    expect(read(dir, 'install.out')).toMatch(/Probe \S+: port 514\/tcp -> forwarder -> file \S+: accepted after \d+ ms/);
    expect(
      read(dir, 'users.txt')
        .trim()
        .split('\n')
        .filter(Boolean)
        .every((u) => u.trim() === 'sentinel-cef'),
    ).toBe(true);
    const rows = read(dir, 'rows.ndjson')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { Activity: string });
    const got = rows
      .map((r) => r.Activity)
      .filter((a) => /^(udp|tcp) /.test(a))
      .sort();
    expect(got).toEqual(['tcp 127.0.0.1', 'tcp ::1', 'udp 127.0.0.1', 'udp ::1']);
  });

  it('uninstall leaves /etc and /usr/lib/sentinel-cef byte-identical and no forwarder running', () => {
    expect(read(dir, 'uninstall.rc').trim(), read(dir, 'uninstall.err')).toBe('0');
    expect(read(dir, 'post.sha')).toBe(read(dir, 'pre.sha'));
    expect(read(dir, 'forwarder.after').trim()).toBe('');
  });
});
