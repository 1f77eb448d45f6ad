import { afterEach, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runInstall, parseAptPolicy } from '../../src/install/run-install.js';
import { installOptionsSchema } from '../../src/install/options.js';
import type { ExecResult } from '../../src/system/exec.js';
import { installDeps, services, snapshot } from './install-helpers.js';
import { fakeSystemExec } from '../helpers/fake-exec.js';

// rsyslog sends to the forwarder over RELP (acknowledged) only with omrelp; install adds its package (issue 18).
const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function temp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

const OMRELP = 'usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so';
const policy = (rsyslog: string | null, relp: string | null) =>
  `rsyslog:\n  Installed: ${rsyslog ?? '(none)'}\n  Candidate: ${rsyslog ?? '8.2302.0-1+deb12u1'}\n` +
  `rsyslog-relp:\n  Installed: (none)\n  Candidate: ${relp ?? '(none)'}\n  Version table:\n     ${relp ?? ''} 500\n`;

/** Debian 12 with rsyslog and no omrelp; apt-get install/remove of rsyslog-relp adds/removes the module file. */
function machine(o: { rsyslog?: string | null; relp?: string | null; noRsyslog?: boolean } = {}) {
  const root = temp('scef-relp-');
  cpSync(path.join(fixtures, 'debian12-rsyslog'), root, { recursive: true });
  if (o.noRsyslog) rmSync(path.join(root, 'usr/sbin/rsyslogd'));
  const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', failed: false });
  const exec = fakeSystemExec(root, {
    answer: (cmd, args) => {
      if (cmd === 'apt-cache' && args[0] === 'policy') {
        const installed = existsSync(path.join(root, 'usr/sbin/rsyslogd')) ? (o.rsyslog ?? '8.2302.0-1+deb12u1') : null;
        return ok(policy(installed, o.relp === undefined ? '8.2302.0-1+deb12u1' : o.relp));
      }
      if (cmd === 'apt-get' && args[0] === 'install' && args.includes('rsyslog')) writeFileSync(path.join(root, 'usr/sbin/rsyslogd'), '');
      if (cmd === 'apt-get' && args[0] === 'install' && args.includes('rsyslog-relp')) {
        mkdirSync(path.dirname(path.join(root, OMRELP)), { recursive: true });
        writeFileSync(path.join(root, OMRELP), '');
      }
      if (cmd === 'apt-get' && args[0] === 'remove' && args.includes('rsyslog-relp')) rmSync(path.join(root, OMRELP));
      return undefined;
    },
  });
  return { root, exec };
}

const opts = (o: Record<string, unknown> = {}) =>
  installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/tmp/scef/rows.ndjson', ...o });
const RELP_CMD = ['apt-get', 'install', '-y', '--no-install-recommends', 'rsyslog-relp'];
const dropinOf = (root: string) => readFileSync(path.join(root, 'etc/rsyslog.d/10-sentinel-cef.conf'), 'utf8');
const listenOf = (root: string) => JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8')).listen;

describe('install adds rsyslog-relp with the rsyslog it installs', () => {
  it('an rsyslog already there without omrelp: its packages are left alone; the warning names the package', async () => {
    const { root, exec } = machine();
    const before = snapshot(root);
    const d = installDeps(temp, root, { exec });
    await runInstall(opts({ dryRun: true }), d.deps);
    const text = d.text();
    expect(text).not.toContain('would run: apt-get');
    expect(text).toMatch(/^\+.*type="omfwd"/m);
    expect(text).toContain('forwards over plain TCP');
    expect(text).toContain('install rsyslog-relp');
    expect(exec.calls.filter((c) => c[0].startsWith('apt'))).toEqual([]);
    expect(snapshot(root)).toEqual(before);
  });

  it('applies: the package first (before rsyslogd -N1 checks the drop-in that loads it), then RELP end to end', async () => {
    const { root, exec } = machine({ noRsyslog: true });
    const d = installDeps(temp, root, { exec });
    await runInstall(opts(), d.deps);
    const at = (p: (c: string[]) => boolean) => exec.calls.findIndex(p);
    const pkg = at((c) => c.join(' ') === RELP_CMD.join(' '));
    expect(pkg).toBeGreaterThan(-1);
    // The plan checks the current config first; the check of the new one comes after the package.
    expect(pkg).toBeLessThan(exec.calls.map((c) => c.join(' ').includes('rsyslogd') && c.includes('-N1')).lastIndexOf(true));
    expect(dropinOf(root)).toContain('type="omrelp"');
    expect(dropinOf(root)).toContain('module(load="omrelp")');
    expect(listenOf(root)).toContain('relp://127.0.0.1:25226');
    expect(d.text()).not.toContain('forwards over plain TCP');
    // Installed now: a second run plans no package and changes nothing.
    exec.calls.length = 0;
    const again = installDeps(temp, root, { exec });
    expect((await runInstall(opts(), again.deps)).changed).toBe(false);
    expect(exec.calls.filter((c) => c[0] === 'apt-get')).toEqual([]);
  });

  it('a failed install rolls back the package too, after every file is back: the machine is byte-identical', async () => {
    const { root, exec } = machine({ noRsyslog: true });
    const before = snapshot(root);
    const d = installDeps(temp, root, {
      exec,
      services: { ...services, restartDaemon: async () => ({ ok: false, detail: 'rsyslog failed to start' }) },
    });
    await expect(runInstall(opts(), d.deps)).rejects.toMatchObject({ message: expect.stringContaining('rolled back') });
    const apt = exec.calls.filter((c) => c[0] === 'apt-get');
    expect(apt).toEqual([['apt-get', 'install', '-y', 'rsyslog'], RELP_CMD, ['apt-get', 'remove', '-y', 'rsyslog-relp']]);
    const after = snapshot(root);
    // The daemon the operator agreed to install stays (asked before the plan, not part of it).
    delete after['usr/sbin/rsyslogd'];
    delete after['etc/passwd'];
    delete before['etc/passwd'];
    for (const k of Object.keys(after)) if (k.startsWith('var/lib/sentinel-cef/') || k.startsWith('var/tmp/')) delete after[k];
    expect(after).toEqual(before);
  });

  it.each([
    ['no candidate (empty package lists)', { relp: null, noRsyslog: true }, null],
    [
      'a candidate for another rsyslog (apt would upgrade rsyslog)',
      { relp: '8.2302.0-1+deb12u2', rsyslog: '8.2302.0-1+deb12u1', noRsyslog: true },
      'rsyslog-relp 8.2302.0-1+deb12u2 needs rsyslog',
    ],
  ] as const)('%s: no package step, TCP with the warning', async (_name, o, warning) => {
    const { root, exec } = machine(o);
    const d = installDeps(temp, root, { exec });
    await runInstall(opts(), d.deps);
    expect(exec.calls.filter((c) => c[0] === 'apt-get')).toEqual([['apt-get', 'install', '-y', 'rsyslog']]);
    expect(dropinOf(root)).toContain('type="omfwd"');
    expect(d.text()).toContain('forwards over plain TCP');
    if (warning) expect(d.text()).toContain(warning);
  });

  it('--no-install-relp: apt is not even asked', async () => {
    const { root, exec } = machine();
    const d = installDeps(temp, root, { exec });
    await runInstall(opts({ installRelp: false }), d.deps);
    expect(exec.calls.filter((c) => c[0].startsWith('apt'))).toEqual([]);
    expect(dropinOf(root)).toContain('type="omfwd"');
  });

  it('no daemon at all (Debian 12+ ships none): rsyslog, then rsyslog-relp in the plan; the drop-in sends over omrelp', async () => {
    const { root, exec } = machine({ noRsyslog: true });
    const d = installDeps(temp, root, { exec });
    const r = await runInstall(opts(), d.deps);
    expect(r.daemon).toBe('rsyslog');
    expect(exec.calls.filter((c) => c[0] === 'apt-get')).toEqual([['apt-get', 'install', '-y', 'rsyslog'], RELP_CMD]);
    expect(dropinOf(root)).toContain('type="omrelp"');
    expect(listenOf(root)).toContain('relp://127.0.0.1:25226');
  });

  it('parses apt-cache policy', () => {
    expect(Object.fromEntries(parseAptPolicy(policy('8.2302.0-1+deb12u1', null)))).toEqual({
      rsyslog: { installed: '8.2302.0-1+deb12u1', candidate: '8.2302.0-1+deb12u1' },
      'rsyslog-relp': {},
    });
  });
});
