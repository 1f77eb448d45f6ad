import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKS } from '../../src/troubleshoot/run.js';
import { renderHuman } from '../../src/troubleshoot/render.js';
import { cleanup, healthyTree, makeRoot, put, startFakeAdmin, type FakeAdmin } from './helpers.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';

// The built binary, as users and CI run it.
const bin = new URL('../../bin/sentinel-cef', import.meta.url).pathname;
const env = { CI: 'true', NO_COLOR: '1', PATH: process.env.PATH ?? '' };

describe('sentinel-cef troubleshoot (built CLI)', () => {
  let root: string;
  let admin: FakeAdmin;
  beforeAll(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    await healthyTree(root, { adminPort: admin.port, daemonPort: 514 });
    // The drop-in exactly as install renders it for this tree.
    const rendered = await createDefaultDeps({ root, env: {} }).renderDropIn('rsyslog', { port: 514, forwarderPort: 25226 });
    await put(root, rendered![0].path, rendered![0].content);
  });
  afterAll(async () => {
    await admin.close();
    await cleanup(root);
  });

  it('--json prints only {ok, checks} on stdout with every check id, exit 0 when nothing failed', async () => {
    const r = await execa(bin, ['troubleshoot', '--root', root, '--json', '--probes', '0'], { env, reject: false });
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout);
    expect(Object.keys(report)).toEqual(['ok', 'checks']);
    expect(report.checks.map((c: { id: string }) => c.id)).toEqual(CHECKS.map((c) => c.id));
    const failed = report.checks.filter((c: { status: string }) => c.status === 'fail');
    expect(failed).toEqual([]);
    expect(report.ok).toBe(true);
    expect(r.exitCode).toBe(0);
  });

  it('a check that does not finish within --timeout makes the run not ok: exit 3, listed in "unfinished"', async () => {
    // A wedged iptables-save on PATH: every other check passes, but the run proved nothing about the firewall.
    const bindir = await makeRoot();
    await put(bindir, '/iptables-save', '#!/bin/sh\nexec sleep 30\n', 0o755);
    const r = await execa(bin, ['troubleshoot', '--root', root, '--json', '--probes', '0', '--timeout', '2'], {
      env: { ...env, PATH: `${bindir}:${env.PATH}` },
      reject: false,
    });
    const report = JSON.parse(r.stdout);
    expect(report.checks.filter((c: { status: string }) => c.status === 'fail')).toEqual([]);
    expect(report.checks.find((c: { id: string }) => c.id === 'system.firewall')).toMatchObject({
      status: 'warn',
      message: expect.stringContaining('did not finish within --timeout 2s'),
    });
    expect(report.ok).toBe(false);
    expect(report.unfinished).toEqual(['system.firewall']);
    expect(r.exitCode).toBe(3);
    const human = await execa(bin, ['troubleshoot', '--root', root, '--probes', '0', '--timeout', '2'], {
      env: { ...env, PATH: `${bindir}:${env.PATH}` },
      reject: false,
    });
    expect(human.stdout).toMatch(/NOT OK: .* \(system\.firewall did not finish within --timeout: nothing proven there\)/);
    await cleanup(bindir);
    expect(human.exitCode).toBe(3);
  });

  it('exits 1 with the fix on a failing check, in plain text without a TTY', async () => {
    // The default config missing is a finding; a --config typed by hand that is missing is a usage error (bad-input.test.ts).
    const empty = await makeRoot();
    const r = await execa(bin, ['troubleshoot', '--root', empty, '--probes', '0'], { env, reject: false });
    await cleanup(empty);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/FAIL Forwarder installed \[forwarder\.installed\]: missing: .*config \/etc\/sentinel-cef\/forwarder\.json/);
    expect(r.stdout).toContain('fix: run `sentinel-cef install`');
    expect(r.stdout).toMatch(/NOT OK: \d+ passed/);
    // No ANSI escapes may be printed.
    expect(r.stdout).not.toContain('\u001b[');
  });

  it.each([
    [['--probes', 'lots'], '--probes must be an integer'],
    [['--port', '70000'], '--port must be an integer from 1 to 65535'],
    [['--timeout', '0'], '--timeout must be seconds'],
    [['--admin', 'localhost'], "--admin must be HOST:PORT, e.g. 127.0.0.1:25227, got 'localhost'"],
    [['not-a-guid'], "<workspaceId> must be a GUID (the workspace id), got 'not-a-guid'"],
    [['--fix'], '--fix needs a terminal to ask before each fix — add --yes'],
  ])('%j is a usage error (exit 2, one line)', async (args, text) => {
    const r = await execa(bin, ['troubleshoot', '--root', root, ...args], { env, reject: false, stdin: 'ignore' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(text);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toBe('');
  });

  it('--fix on a terminal with CI=true refuses to ask, as every command does in CI (one interactivity rule)', async () => {
    // script(1) gives the CLI a real pty on stdin and stderr; CI=true must still win.
    const cmd = `${bin} troubleshoot --root ${root} --probes 0 --fix`;
    const r = await execa('script', ['-qec', cmd, '/dev/null'], {
      env: { ...env, TERM: 'xterm' },
      reject: false,
      input: '',
      timeout: 30_000,
    });
    expect(r.stdout.replace(/\r/g, '')).toContain('--fix needs a terminal to ask before each fix — add --yes');
    expect(r.exitCode).toBe(2);
  });
});

describe('renderHuman', () => {
  it('groups checks and shows the fix under fails and warns only', () => {
    const out = renderHuman(
      {
        ok: false,
        checks: [
          {
            id: 'forwarder.running',
            title: 'Forwarder service running',
            group: 'forwarder',
            status: 'fail',
            message: 'no process',
            fix: 'start it',
          },
          { id: 'daemon.running', title: 'Syslog daemon running', group: 'daemon', status: 'pass', message: 'rsyslog', fix: 'unused' },
        ],
      },
      { colour: false },
    );
    expect(out).toBe(
      'Forwarder\n  FAIL Forwarder service running [forwarder.running]: no process\n      fix: start it\n\nSyslog daemon\n  PASS Syslog daemon running [daemon.running]: rsyslog\n\nNOT OK: 1 passed, 0 warnings, 1 failed, 0 skipped\n',
    );
  });
});
