import { describe, expect, it } from 'vitest';
import {
  cpSync,
  mkdtempSync,
  readFileSync,
  statSync,
  writeFileSync,
  mkdirSync,
  existsSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFsRoot } from '../../src/system/fs-root.js';
import { createPrompter, createScriptedPrompter } from '../../src/system/prompts.js';
import type { Exec } from '../../src/system/exec.js';
import { formatPlan, planFiles, summarizePlan } from '../../src/install/plan.js';
import { FileTransaction, readState, sha256 } from '../../src/install/transaction.js';
import { runInstall, type InstallDeps } from '../../src/install/run-install.js';
import { runUninstall } from '../../src/install/run-uninstall.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { findUnknownKeys } from '../../src/config/unknown-keys.js';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import { CliError, formatError, UsageError } from '../../src/errors.js';
import type { Services } from '../../src/install/service.js';
import { fakeSystemExec } from '../helpers/fake-exec.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');

function copyFixture(c: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `scef-${c}-`));
  cpSync(path.join(fixtures, c), dir, { recursive: true });
  return dir;
}

/** Snapshot of every file under a tree: path -> content + mode, to compare byte for byte. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, n.name);
      if (n.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = `${(statSync(p).mode & 0o7777).toString(8)} ${readFileSync(p, 'base64')}`;
    }
  };
  walk(dir);
  return out;
}

/** The first rsyslog or syslog-ng config file under root with a line the fake daemon rejects. */
function brokenConfigFile(root: string): string | null {
  const files = ['etc/rsyslog.conf', 'etc/syslog-ng/syslog-ng.conf'];
  for (const d of ['etc/rsyslog.d', 'etc/syslog-ng/conf.d'])
    if (existsSync(path.join(root, d)))
      files.push(
        ...readdirSync(path.join(root, d))
          .sort()
          .map((f) => `${d}/${f}`),
      );
  for (const f of files) {
    const p = path.join(root, f);
    if (existsSync(p) && statSync(p).isFile() && /^this is not .*syntax \{$/m.test(readFileSync(p, 'utf8'))) return `/${f}`;
  }
  return null;
}

/** An exec that records calls; the syslog daemon's syntax check answers as told. */
function fakeExec(opts: { syntaxOk?: boolean; root?: string; nodeVersion?: string } = {}) {
  return fakeSystemExec(opts.root, {
    nodeVersion: opts.nodeVersion,
    answer: (_cmd, args) => {
      if (!args.includes('-N1') && !args.includes('--syntax-only')) return undefined;
      // Like the real check: fails on the first daemon config file (in the root) that holds a broken line.
      const bad = opts.root ? brokenConfigFile(opts.root) : null;
      if (opts.syntaxOk !== false && !bad) return undefined;
      return {
        exitCode: 1,
        stdout: '',
        stderr: `rsyslogd: error during parsing file ${bad ?? '/etc/rsyslog.conf'}, on or before line 2: invalid character '{'`,
        failed: true,
      };
    },
  });
}

/** Process control that only records: the fixture root has no processes to start. */
function fakeServices(log: string[]): Services {
  let forwarder: number | null = null;
  return {
    async startForwarder(_ctx, o) {
      log.push(`start forwarder restart=${o.restart}`);
      forwarder = 4242;
      return 'started';
    },
    async stopForwarder() {
      log.push('stop forwarder');
      forwarder = null;
    },
    async restartDaemon(_ctx, daemon) {
      log.push(`restart ${daemon}`);
      return { ok: true, detail: 'restarted' };
    },
    async isForwarderSupervised() {
      return forwarder;
    },
    async runningDaemonPids() {
      return [4343];
    },
  };
}

function deps(root: string, exec: Exec, extra: Partial<InstallDeps> = {}) {
  const out: string[] = [];
  const log: string[] = [];
  const bundle = path.join(mkdtempSync(path.join(tmpdir(), 'scef-bundle-')), 'forwarder.mjs');
  writeFileSync(bundle, '// forwarder bundle\n');
  return {
    out,
    logs: log,
    deps: {
      fs: createFsRoot(root),
      exec,
      prompter: createScriptedPrompter([]),
      log: (l: string) => log.push(l),
      out: (t: string) => out.push(t),
      env: {},
      forwarderBundle: bundle,
      services: fakeServices(log),
      ...extra,
    } satisfies InstallDeps,
  };
}

const opts = (o: Record<string, unknown>) =>
  installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/tmp/scef/rows.ndjson', ...o });

describe('planFiles and FileTransaction', () => {
  it('classifies create/update/unchanged and shows a unified diff, never a secret', async () => {
    const root = copyFixture('debian12-rsyslog');
    const fs = createFsRoot(root);
    const changes = await planFiles(fs, [
      { path: '/etc/rsyslog.conf', content: 'new\n', mode: 0o644, why: 'x' },
      {
        path: '/etc/os-release',
        content: readFileSync(path.join(root, 'etc/os-release')),
        mode: statSync(path.join(root, 'etc/os-release')).mode & 0o7777,
        why: 'y',
      },
      { path: '/etc/sentinel-cef/shared-key', content: 'c2VjcmV0\n', mode: 0o600, secret: true, why: 'z' },
    ]);
    expect(changes.map((c) => c.kind)).toEqual(['update', 'unchanged', 'create']);
    expect(summarizePlan(changes)).toEqual({ create: 1, update: 1, unchanged: 1 });
    const text = formatPlan(changes, { diffs: true });
    expect(text).toContain('--- a/etc/rsyslog.conf');
    expect(text).toContain('+new');
    expect(text).toContain('\n/etc/sentinel-cef/shared-key: secret, content not shown (9 bytes)');
    expect(text).not.toContain('c2VjcmV0');
  });

  it('rolls back to byte-identical files with their modes, removing what it created', async () => {
    const root = copyFixture('ubuntu2204-rsyslog');
    const before = snapshot(root);
    const fs = createFsRoot(root);
    const tx = new FileTransaction(fs, 'test');
    await tx.write('/etc/rsyslog.d/50-default.conf', 'changed\n', { mode: 0o600 });
    await tx.write('/etc/rsyslog.d/10-new.conf', 'new\n', { mode: 0o644 });
    expect(readFileSync(path.join(root, 'etc/rsyslog.d/50-default.conf'), 'utf8')).toBe('changed\n');
    expect(JSON.parse(readFileSync(path.join(root, 'var/lib/sentinel-cef/backup/test/manifest.json'), 'utf8')).files).toHaveLength(2);
    await tx.rollback();
    const after = snapshot(root);
    for (const k of Object.keys(after)) if (k.startsWith('var/lib/sentinel-cef/')) delete after[k];
    expect(after).toEqual(before);
  });
});

describe('runInstall against a fixture root', () => {
  it('--dry-run prints the plan with diffs and changes nothing', async () => {
    const root = copyFixture('rhel9-rsyslog-imtcp');
    const before = snapshot(root);
    const exec = fakeExec({ root });
    const d = deps(root, exec);
    const res = await runInstall(opts({ dryRun: true }), d.deps);
    expect(res.changed).toBe(true);
    const out = d.out.join('');
    expect(out).toContain('create    /etc/rsyslog.d/10-sentinel-cef.conf [0644]');
    expect(out).toContain('+input(type="imudp" port="514")');
    expect(out).not.toContain('+input(type="imtcp"');
    expect(out).toContain('Dry run: nothing was changed.');
    expect(snapshot(root)).toEqual(before);
    // Only read-only questions: the version of the node the service would run, and whether the config is valid now.
    expect(exec.calls).toEqual([
      ['/usr/bin/node', '--version'],
      [expect.stringMatching(/rsyslogd$/), '-N1'],
    ]);
  });

  /** A running rsyslogd as /proc shows it: its comm, and exe naming its program. */
  function runningRsyslog(root: string, exe: string): void {
    rmSync(path.join(root, 'usr/sbin/rsyslogd'));
    mkdirSync(path.join(root, 'proc/77'), { recursive: true });
    writeFileSync(path.join(root, 'proc/77/comm'), 'rsyslogd\n');
    symlinkSync(exe, path.join(root, 'proc/77/exe'));
  }

  it('a running daemon whose program is not on this system: one line, exit 2, before any check runs', async () => {
    const root = copyFixture('debian12-rsyslog');
    runningRsyslog(root, '/usr/sbin/rsyslogd');
    const exec = fakeExec({ root });
    const err = await runInstall(opts({ dryRun: true }), deps(root, exec).deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    expect(formatError(err)).toMatch(
      /^rsyslog is running but its program was not found \(pid 77 runs \/usr\/sbin\/rsyslogd, which is not on this system\) — install the rsyslog package .*--forwarder-only/,
    );
    expect(formatError(err)).not.toContain('\n');
    expect(exec.calls.filter((c) => c[0] !== '/usr/bin/node')).toEqual([]);
  });

  it("a running daemon's program is read from /proc/<pid>/exe under the root, wherever it lives", async () => {
    const root = copyFixture('debian12-rsyslog');
    runningRsyslog(root, '/opt/rsyslog/sbin/rsyslogd');
    mkdirSync(path.join(root, 'opt/rsyslog/sbin'), { recursive: true });
    writeFileSync(path.join(root, 'opt/rsyslog/sbin/rsyslogd'), '');
    const exec = fakeExec({ root });
    await runInstall(opts({ dryRun: true }), deps(root, exec).deps);
    expect(exec.calls).toContainEqual(['/opt/rsyslog/sbin/rsyslogd', '-N1']);
  });

  it('every wait that can take more than a second says what it does before it starts (install, rollback, uninstall)', async () => {
    const root = copyFixture('rhel8-syslog-ng');
    const exec = fakeExec({ root });
    const first = deps(root, exec);
    await runInstall(opts({}), first.deps);
    const before = (line: string, call: string) => {
      expect(first.logs).toContain(line);
      expect(first.logs.indexOf(line)).toBeLessThan(first.logs.indexOf(call));
    };
    before('restarting syslog-ng on the new configuration (up to 90 s, then 15 s to listen)…', 'restart syslog-ng');
    before('starting the forwarder on its new configuration…', 'start forwarder restart=true');
    // A failing restart: the rollback (which restarts the daemon again) is announced before it runs.
    const failingRoot = copyFixture('rhel8-syslog-ng');
    const failing = deps(failingRoot, fakeExec({ root: failingRoot }));
    const failingServices = failing.deps.services;
    failing.deps.services = {
      ...failingServices,
      async restartDaemon(ctx, d, b, l) {
        await failingServices.restartDaemon(ctx, d, b, l);
        return { ok: l.protocols.length === 0, detail: 'timed out after 90 s' };
      },
    };
    await expect(runInstall(opts({}), failing.deps)).rejects.toThrow(/rolled back/);
    const announce = failing.logs.indexOf('restart of syslog-ng failed: rolling back every change…');
    expect(announce).toBeGreaterThan(failing.logs.indexOf('restart syslog-ng'));
    expect(announce).toBeLessThan(failing.logs.findIndex((l) => l.startsWith('rolled back:')));
    const un = deps(root, exec);
    await runUninstall({ yes: true, dryRun: false, root, removeUser: false, purge: false }, un.deps);
    expect(un.logs.indexOf('restarting syslog-ng on its original configuration (up to 90 s)…')).toBeGreaterThan(-1);
    expect(un.logs.indexOf('restarting syslog-ng on its original configuration (up to 90 s)…')).toBeLessThan(
      un.logs.indexOf('restart syslog-ng'),
    );
  });

  it('applies, then a second run changes nothing, then uninstall restores every byte', async () => {
    const root = copyFixture('rhel8-syslog-ng');
    const before = snapshot(root);
    const exec = fakeExec({ root });
    const first = deps(root, exec);
    const r1 = await runInstall(opts({}), first.deps);
    expect(r1.changed).toBe(true);
    // The health wait says what it waits for before it waits.
    expect(first.logs).toContain('waiting for the forwarder to answer (up to 15 s)…');
    expect(exec.calls.some((c) => c[0] === '/usr/sbin/syslog-ng' && c[1] === '--syntax-only')).toBe(true);
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink).toEqual({ type: 'file', path: '/var/tmp/scef/rows.ndjson' });
    // What install writes, the forwarder's unknown-key check accepts.
    expect(findUnknownKeys(cfg, forwarderConfigSchema)).toEqual([]);
    expect(statSync(path.join(root, 'etc/sentinel-cef/forwarder.json')).mode & 0o777).toBe(0o640);
    const installed = snapshot(root);

    const second = deps(root, exec);
    const r2 = await runInstall(opts({}), second.deps);
    expect(r2.changed).toBe(false);
    expect(second.out.join('')).toContain('Nothing to change');
    const again = snapshot(root);
    for (const k of Object.keys(again)) if (k.includes('install-state.json')) delete again[k];
    for (const k of Object.keys(installed)) if (k.includes('install-state.json')) delete installed[k];
    expect(again).toEqual(installed);

    // The supervisor's log (no systemd) is the forwarder's own: --purge deletes it too.
    mkdirSync(path.join(root, 'var/log/sentinel-cef'), { recursive: true });
    writeFileSync(path.join(root, 'var/log/sentinel-cef/forwarder.log'), 'started\n');
    const u = deps(root, exec);
    await runUninstall({ yes: true, dryRun: false, root, removeUser: false, purge: true }, u.deps);
    expect(u.out.join('')).toContain('delete    /var/log/sentinel-cef (forwarder logs)');
    expect(u.logs).toContain('stopping the forwarder (it delivers what it holds first)…');
    const after = snapshot(root);
    for (const k of Object.keys(after))
      if (k.startsWith('var/lib/sentinel-cef/backup/') || k === 'etc/passwd' || k.startsWith('var/tmp/')) delete after[k];
    expect(after).toEqual(before);
  });

  it('the plan diffs the files a person edits and summarises generated ones, unless --diff all', async () => {
    const root = copyFixture('debian12-rsyslog');
    const edited = deps(root, fakeExec({ root }));
    await runInstall(opts({ dryRun: true }), edited.deps);
    const plan = edited.out.join('');
    expect(plan).toMatch(/^\+\+\+ .*sentinel-cef\.conf/m);
    expect(plan).toMatch(/forwarder\.mjs: generated, \d+ bytes \(see it with --diff all\)/);
    expect(plan).not.toContain('+// forwarder bundle');
    const all = deps(root, fakeExec({ root }));
    await runInstall(opts({ dryRun: true, diff: 'all' }), all.deps);
    expect(all.out.join('')).toContain('+// forwarder bundle');
  });

  it('rolls back when the daemon rejects the new config', async () => {
    const root = copyFixture('debian12-rsyslog');
    const before = snapshot(root);
    const exec = fakeExec({ root });
    const d = deps(root, exec, { mutateDropin: (c) => `${c}\nthis is not rsyslog syntax {\n` });
    await expect(runInstall(opts({}), d.deps)).rejects.toThrow(
      /rsyslog rejected the new configuration; nothing was changed \(rolled back\)/,
    );
    const after = snapshot(root);
    for (const k of Object.keys(after))
      if (k.startsWith('var/lib/sentinel-cef/backup/') || k === 'etc/passwd' || k.startsWith('var/tmp/')) delete after[k];
    expect(after).toEqual(before);
    expect(await readState(createFsRoot(root))).toBeNull();
  });

  it.each([
    ['debian12-rsyslog', 'etc/rsyslog.d/50-local.conf'],
    ['debian12-rsyslog', 'etc/rsyslog.conf'],
  ])('%s with %s already broken: refuses before changing anything and says it was broken before', async (fixture, file) => {
    const root = copyFixture(fixture);
    const p = path.join(root, file);
    writeFileSync(p, `${existsSync(p) ? readFileSync(p, 'utf8') : ''}this is not rsyslog syntax {\n`);
    const before = snapshot(root);
    const exec = fakeExec({ root });
    const d = deps(root, exec);
    for (const dryRun of [true, false]) {
      const err = await runInstall(opts({ dryRun }), d.deps).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CliError);
      expect(formatError(err)).toBe(
        `rsyslog's configuration is already invalid before any change (rsyslogd -N1: rsyslogd: error during parsing file /${file}, ` +
          `on or before line 2: invalid character '{') — nothing was changed; fix that file (\`rsyslogd -N1\` shows the errors), then run install again`,
      );
      expect(snapshot(root)).toEqual(before);
    }
    expect(exec.calls.map((c) => c[0])).not.toContain('useradd');
    expect(d.logs.join('\n')).not.toContain('rolled back');
  });

  it('an error in our own drop-in from an earlier install does not stop the install that replaces it', async () => {
    const root = copyFixture('debian12-rsyslog');
    mkdirSync(path.join(root, 'etc/rsyslog.d'), { recursive: true });
    writeFileSync(path.join(root, 'etc/rsyslog.d/10-sentinel-cef.conf'), 'this is not rsyslog syntax {\n');
    const d = deps(root, fakeExec({ root }));
    await runInstall(opts({}), d.deps);
    expect(readFileSync(path.join(root, 'etc/rsyslog.d/10-sentinel-cef.conf'), 'utf8')).toContain('omfwd');
    expect(d.logs).toContain('rsyslog accepted the configuration (rsyslogd -N1)');
  });

  it('stores the workspace key in a 0600 file, never in the config, the plan or a child argv', async () => {
    const root = copyFixture('debian12-rsyslog');
    const exec = fakeExec({ root });
    const key = Buffer.from('k'.repeat(64)).toString('base64');
    const d = deps(root, exec, { env: { SENTINEL_CEF_KEY: key } });
    await runInstall(opts({ sink: undefined, workspaceId: '11111111-2222-3333-4444-555555555555', usGov: true, dryRun: false }), d.deps);
    const keyFile = path.join(root, 'etc/sentinel-cef/shared-key');
    expect(readFileSync(keyFile, 'utf8')).toBe(`${key}\n`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const cfg = readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8');
    expect(cfg).not.toContain(key);
    expect(JSON.parse(cfg).sink).toEqual({
      type: 'log-analytics',
      workspaceId: '11111111-2222-3333-4444-555555555555',
      sharedKeyFile: '/etc/sentinel-cef/shared-key',
      cloud: 'AzureUSGovernment',
    });
    expect(d.out.join('') + d.logs.join('')).not.toContain(key);
    expect(exec.calls.flat().join(' ')).not.toContain(key);
  });

  it('asks for what is missing only on a TTY; without one it is a usage error', async () => {
    const root = copyFixture('debian12-rsyslog');
    const d = deps(root, fakeExec({ root }), { prompter: { ...createScriptedPrompter([]), interactive: false } });
    await expect(runInstall(opts({ sink: undefined }), d.deps)).rejects.toMatchObject({ exitCode: 2, message: 'no destination given' });
    const p = createScriptedPrompter(['legacy', '11111111-2222-3333-4444-555555555555', Buffer.from('x'.repeat(40)).toString('base64')]);
    const d2 = deps(root, fakeExec({ root }), { prompter: p, probeLegacy: async () => ({ url: 'https://x/api/logs', status: 403 }) });
    await runInstall(opts({ sink: undefined, dryRun: true }), d2.deps);
    expect(p.asked).toEqual(['Where should the forwarder send events?', 'Log Analytics workspace id', 'Workspace primary key']);
  });
});

describe('a drop-in edited by hand since the last install', () => {
  const DROPIN = 'etc/rsyslog.d/10-sentinel-cef.conf';
  /** Installed once, then the drop-in edited by hand. */
  async function installedAndEdited() {
    const root = copyFixture('debian12-rsyslog');
    await runInstall(opts({}), deps(root, fakeExec({ root })).deps);
    const ours = readFileSync(path.join(root, DROPIN), 'utf8');
    const edited = ours.replace('queue.size="50000"', 'queue.size="90000" # tuned by hand');
    writeFileSync(path.join(root, DROPIN), edited);
    return { root, ours, edited };
  }

  it('records the hash of every file it owns, and none of a secret', async () => {
    const root = copyFixture('debian12-rsyslog');
    const d = deps(root, fakeExec({ root }), { env: { SENTINEL_CEF_KEY: Buffer.from('k'.repeat(64)).toString('base64') } });
    await runInstall(opts({ sink: undefined, workspaceId: '11111111-2222-3333-4444-555555555555' }), d.deps);
    const state = (await readState(createFsRoot(root)))!;
    expect(Object.keys(state.written!).sort()).toEqual([
      '/etc/rsyslog.d/10-sentinel-cef.conf',
      '/etc/sentinel-cef/forwarder.json',
      '/usr/lib/sentinel-cef/forwarder.mjs',
      '/usr/lib/sentinel-cef/sentinel-cef-supervise.mjs',
    ]);
    for (const [p, h] of Object.entries(state.written!)) expect(sha256(readFileSync(path.join(root, p))), p).toBe(h);
  });

  it('without a TTY and without --yes: one line, exit 2, nothing changed', async () => {
    const { root } = await installedAndEdited();
    const before = snapshot(root);
    const d = deps(root, fakeExec({ root }), { prompter: createPrompter(false) });
    const err = await runInstall(opts({ yes: false, protocol: 'udp' }), d.deps).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    expect(formatError(err)).toBe(
      '/etc/rsyslog.d/10-sentinel-cef.conf was edited by hand since the last install. Replace it (the edited file is backed up)? — cannot ask (no terminal) — pass --yes to accept',
    );
    expect(d.logs.join('\n')).not.toContain('tuned by hand');
    expect(snapshot(root)).toEqual(before);
  });

  it('on a TTY: shows the diff and asks; "no" changes nothing', async () => {
    const { root } = await installedAndEdited();
    const before = snapshot(root);
    const prompter = createScriptedPrompter([false]);
    const d = deps(root, fakeExec({ root }), { prompter });
    await expect(runInstall(opts({ yes: false }), d.deps)).rejects.toThrow(
      /cancelled; nothing was changed \(\/etc\/rsyslog\.d\/10-sentinel-cef\.conf keeps its local edits\)/,
    );
    expect(prompter.asked).toEqual([
      '/etc/rsyslog.d/10-sentinel-cef.conf was edited by hand since the last install. Replace it (the edited file is backed up)?',
    ]);
    expect(d.logs.join('\n')).toMatch(/^-.*queue\.size="90000" # tuned by hand/m);
    expect(d.logs.join('\n')).toMatch(/^\+.*queue\.size="50000"/m);
    expect(snapshot(root)).toEqual(before);
  });

  it('with --yes: says loudly that local edits were replaced and where the edited file is kept', async () => {
    const { root, ours, edited } = await installedAndEdited();
    const d = deps(root, fakeExec({ root }));
    const res = await runInstall(opts({}), d.deps);
    expect(readFileSync(path.join(root, DROPIN), 'utf8')).toBe(ours);
    const loud = res.warnings.filter((w) => w.startsWith('LOCAL EDITS REPLACED'));
    expect(loud).toHaveLength(1);
    const m =
      /^LOCAL EDITS REPLACED: \/etc\/rsyslog\.d\/10-sentinel-cef\.conf had been edited since the last install; the edited file is kept at (\S+)$/.exec(
        loud[0],
      );
    expect(m, loud[0]).not.toBeNull();
    expect(readFileSync(path.join(root, m![1]), 'utf8')).toBe(edited);
    expect(d.logs).toContain(`warning: ${loud[0]}`);
  });

  it('--dry-run warns that local edits would be replaced, asks nothing and changes nothing', async () => {
    const { root } = await installedAndEdited();
    const before = snapshot(root);
    const d = deps(root, fakeExec({ root }), { prompter: createPrompter(false) });
    const res = await runInstall(opts({ yes: false, dryRun: true }), d.deps);
    expect(res.warnings).toContain(
      '/etc/rsyslog.d/10-sentinel-cef.conf has local edits that install would replace (the edited file would be backed up)',
    );
    expect(d.logs.join('\n')).toMatch(/^-.*queue\.size="90000" # tuned by hand/m);
    expect(snapshot(root)).toEqual(before);
  });

  it('an option change to an unedited drop-in asks nothing about edits', async () => {
    const root = copyFixture('debian12-rsyslog');
    await runInstall(opts({}), deps(root, fakeExec({ root })).deps);
    const d = deps(root, fakeExec({ root }));
    const res = await runInstall(opts({ protocol: 'udp' }), d.deps);
    expect(res.changes.find((c) => c.file.path === '/etc/rsyslog.d/10-sentinel-cef.conf')?.kind).toBe('update');
    expect(res.warnings.join('\n')).not.toMatch(/edited|LOCAL EDITS/);
    expect(d.logs.join('\n')).not.toContain('edited by hand');
  });
});

describe('Logs Ingestion destination', () => {
  it('writes a config that validates, with the client secret in its own 0600 file', async () => {
    const root = copyFixture('debian12-rsyslog');
    const secretFile = path.join(mkdtempSync(path.join(tmpdir(), 'scef-sec-')), 'secret');
    writeFileSync(secretFile, 'client-secret-value-123\n', { mode: 0o600 });
    const exec = fakeExec({ root });
    const d = deps(root, exec);
    await runInstall(
      opts({
        sink: undefined,
        dce: 'https://my-dce.eastus-1.ingest.monitor.azure.com',
        dcr: 'dcr-0123456789abcdef0123456789abcdef',
        tenant: 'contoso.onmicrosoft.com',
        clientId: '00000000-0000-4000-8000-0000000000c1',
        clientSecretFile: secretFile,
      }),
      d.deps,
    );
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink).toEqual({
      type: 'logs-ingestion',
      endpoint: 'https://my-dce.eastus-1.ingest.monitor.azure.com',
      dcrImmutableId: 'dcr-0123456789abcdef0123456789abcdef',
      cloud: 'AzureCloud',
      auth: {
        kind: 'client-secret',
        tenantId: 'contoso.onmicrosoft.com',
        clientId: '00000000-0000-4000-8000-0000000000c1',
        clientSecretFile: '/etc/sentinel-cef/client-secret',
      },
    });
    const sec = path.join(root, 'etc/sentinel-cef/client-secret');
    expect(readFileSync(sec, 'utf8')).toBe('client-secret-value-123\n');
    expect(statSync(sec).mode & 0o777).toBe(0o600);
  });

  // Issue 15: a sovereign or private cloud's authority (or the mock's) could only be set by editing the config after
  // install, so install's own probe asked login.microsoftonline.com and failed.
  it('--authority-host: the forwarder asks that authority for its token; refused where it cannot apply', async () => {
    const root = copyFixture('debian12-rsyslog');
    const secretFile = path.join(mkdtempSync(path.join(tmpdir(), 'scef-sec-')), 'secret');
    writeFileSync(secretFile, 'client-secret-value-123\n', { mode: 0o600 });
    const d = deps(root, fakeExec({ root }));
    const li = {
      sink: undefined,
      dce: 'https://my-dce.eastus-1.ingest.monitor.azure.com',
      dcr: 'dcr-0123456789abcdef0123456789abcdef',
      tenant: 'contoso.onmicrosoft.com',
      clientId: '00000000-0000-4000-8000-0000000000c1',
      clientSecretFile: secretFile,
    };
    await runInstall(opts({ ...li, authorityHost: 'https://login.sovcloud.example' }), d.deps);
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink.authorityHost).toBe('https://login.sovcloud.example');
    expect(forwarderConfigSchema.parse(cfg).sink).toMatchObject({ authorityHost: 'https://login.sovcloud.example' });
    const refused = (o: Record<string, unknown>) =>
      installOptionsSchema.safeParse({ yes: true, ...o }).error?.issues.map((i) => i.message) ?? [];
    expect(refused({ sink: 'file:/tmp/x', authorityHost: 'https://a.example' })).toEqual([
      '--authority-host only applies with --dce/--dcr or --workspace',
    ]);
    expect(refused({ ...li, clientSecretFile: undefined, managedIdentity: true, authorityHost: 'https://a.example' })).toEqual([
      '--authority-host does not apply with --managed-identity',
    ]);
    expect(refused({ ...li, authorityHost: 'login.example' })[0]).toMatch(/^--authority-host must be an https URL/);
  });

  it('refuses half a destination in one line', async () => {
    const root = copyFixture('debian12-rsyslog');
    const d = deps(root, fakeExec({ root }));
    await expect(runInstall(opts({ sink: undefined, dce: 'https://x.example.com' }), d.deps)).rejects.toMatchObject({
      exitCode: 2,
      message: '--dce and --dcr go together',
    });
    await expect(
      runInstall(opts({ dce: 'https://x.example.com', dcr: 'dcr-0123456789abcdef0123456789abcdef' }), d.deps),
    ).rejects.toMatchObject({ exitCode: 2 });
  });
});

describe('under systemd', () => {
  it('writes a hardened unit (no MemoryDenyWriteExecute: V8 needs W+X) and enables it', async () => {
    const root = copyFixture('rhel9-rsyslog-imtcp');
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
    // What the kernel would show once rsyslog listens on 514.
    cpSync(path.join(fixtures, 'proc-net/proc/net'), path.join(root, 'proc/net'), { recursive: true });
    const exec = fakeExec({ root });
    const d = deps(root, exec);
    // Real service control against the fake exec: systemctl calls are recorded, not run.
    delete (d.deps as Partial<InstallDeps>).services;
    await runInstall(opts({ sink: 'file:/var/log/sentinel-cef-rows/rows.ndjson' }), d.deps);
    // The unit runs the forwarder: no supervisor file, and the plan does not offer one "(no systemd)".
    expect(existsSync(path.join(root, 'usr/lib/sentinel-cef/sentinel-cef-supervise.mjs'))).toBe(false);
    expect(d.logs.join('\n')).not.toContain('supervisor (no systemd)');
    const unit = readFileSync(path.join(root, 'etc/systemd/system/sentinel-cef-forwarder.service'), 'utf8');
    expect(unit.replace(/sentinel-cef \S+\. /, 'sentinel-cef X.Y.Z. ')).toMatchInlineSnapshot(`
      "# Managed by sentinel-cef X.Y.Z. \`sentinel-cef uninstall\` removes it.
      [Unit]
      Description=sentinel-cef forwarder (CEF to Microsoft Sentinel)
      Documentation=https://www.npmjs.com/package/sentinel-cef
      After=network-online.target
      Wants=network-online.target
      # Started after rsyslog, so stopped before it (at a reboot): rsyslog reads SUSPENDED and keeps its queue, saved
      # when it stops. Stopping with it or after it, rsyslog dropped the batch it was sending (issue 15).
      After=rsyslog.service
      # Stopped and restarted with rsyslog (and so first, as above): \`systemctl restart rsyslog\` under load lost the
      # batch in flight while the forwarder ran on (issue 15). WantedBy= below starts it again with rsyslog.
      PartOf=rsyslog.service

      [Service]
      Type=simple
      User=sentinel-cef
      Group=sentinel-cef
      ExecStart=/usr/bin/node --max-semi-space-size=4 /usr/lib/sentinel-cef/forwarder.mjs --config /etc/sentinel-cef/forwarder.json
      Restart=on-failure
      RestartSec=2
      # Exit 2 is a refusal (a Node out of range, a bad config): it says so once in the journal; restarting cannot fix it.
      RestartPreventExitStatus=2
      TimeoutStopSec=30
      UMask=0077
      # journald tags lines with this, not with \`node\`.
      SyslogIdentifier=sentinel-cef-forwarder
      # Only data/ belongs to the service user: backups and install state beside it stay root's.
      StateDirectory=sentinel-cef/data
      StateDirectoryMode=0750
      RuntimeDirectory=sentinel-cef
      # rsyslog holds its batches while the forwarder is down (action.externalstate.file): the forwarder writes
      # SUSPENDED when it stops; this covers a crash or kill. The file outlives a stop, so the directory is kept.
      RuntimeDirectoryPreserve=yes
      ExecStopPost=/bin/sh -c "echo SUSPENDED >/run/sentinel-cef/intake.state"
      LogsDirectory=sentinel-cef
      LimitNOFILE=65536
      Environment=NODE_ENV=production
      Environment=GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536
      # Hardening. MemoryDenyWriteExecute is left off on purpose: V8's JIT needs writable executable memory.
      NoNewPrivileges=yes
      CapabilityBoundingSet=
      AmbientCapabilities=
      ProtectSystem=strict
      ReadWritePaths=/var/log/sentinel-cef-rows
      ProtectHome=yes
      PrivateTmp=yes
      PrivateDevices=yes
      ProtectKernelTunables=yes
      ProtectKernelModules=yes
      ProtectKernelLogs=yes
      ProtectControlGroups=yes
      ProtectClock=yes
      ProtectHostname=yes
      RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
      RestrictNamespaces=yes
      RestrictRealtime=yes
      RestrictSUIDSGID=yes
      LockPersonality=yes
      SystemCallArchitectures=native
      SystemCallFilter=@system-service
      SystemCallFilter=~@privileged @resources
      # A filtered call fails with EPERM instead of killing the process (Node tries setrlimit at start).
      SystemCallErrorNumber=EPERM
      ProtectProc=invisible
      ProcSubset=pid
      RemoveIPC=yes
      PrivateUsers=yes

      [Install]
      WantedBy=multi-user.target
      WantedBy=rsyslog.service
      "
    `);
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute/m);
    expect(exec.calls).toContainEqual(['systemctl', 'enable', 'sentinel-cef-forwarder.service']);
    expect(exec.calls).toContainEqual(['systemctl', 'restart', 'rsyslog']);
  });

  it('rsyslog: one intake state file in the drop-in, the forwarder config and the unit; the plan shows it; uninstall removes it (issue 15)', async () => {
    const root = copyFixture('debian12-rsyslog');
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
    cpSync(path.join(fixtures, 'proc-net/proc/net'), path.join(root, 'proc/net'), { recursive: true });
    const exec = fakeExec({ root });
    const plan = deps(root, exec);
    await runInstall(opts({ dryRun: true }), plan.deps);
    expect(plan.out.join('')).toMatch(/^\+.*action\.externalstate\.file="\/run\/sentinel-cef\/intake\.state"/m);
    const d = deps(root, exec);
    delete (d.deps as Partial<InstallDeps>).services;
    await runInstall(opts({}), d.deps);
    const read = (p: string) => readFileSync(path.join(root, p), 'utf8');
    expect(read('etc/rsyslog.d/10-sentinel-cef.conf')).toContain('action.externalstate.file="/run/sentinel-cef/intake.state"');
    expect(JSON.parse(read('etc/sentinel-cef/forwarder.json')).intakeStateFile).toBe('/run/sentinel-cef/intake.state');
    const unit = read('etc/systemd/system/sentinel-cef-forwarder.service');
    expect(unit).toContain('ExecStopPost=/bin/sh -c "echo SUSPENDED >/run/sentinel-cef/intake.state"');
    // Stopped before rsyslog at a reboot, in [Unit] (a reboot under load lost rsyslog's batch in flight otherwise).
    expect(unit.slice(0, unit.indexOf('[Service]'))).toMatch(/^After=rsyslog\.service$/m);
    expect(plan.out.join('')).toMatch(/^\+After=rsyslog\.service$/m);
    // Stopped first and started again with rsyslog at `systemctl restart rsyslog` (it lost its batch in flight
    // otherwise), and started when rsyslog starts, so a stop and start of rsyslog does not leave it stopped.
    expect(unit.slice(0, unit.indexOf('[Service]'))).toMatch(/^PartOf=rsyslog\.service$/m);
    expect(
      unit
        .slice(unit.indexOf('[Install]'))
        .split('\n')
        .filter((l) => l.startsWith('WantedBy=')),
    ).toEqual(['WantedBy=multi-user.target', 'WantedBy=rsyslog.service']);
    expect(plan.out.join('')).toMatch(/^\+PartOf=rsyslog\.service$/m);
    expect(plan.out.join('')).toMatch(/^\+WantedBy=rsyslog\.service$/m);
    // As a stopped forwarder leaves it (RuntimeDirectoryPreserve=yes).
    mkdirSync(path.join(root, 'run/sentinel-cef'), { recursive: true });
    writeFileSync(path.join(root, 'run/sentinel-cef/intake.state'), 'SUSPENDED\n');
    await runUninstall({ yes: true, dryRun: false, root, removeUser: false, purge: false }, deps(root, exec).deps);
    expect(existsSync(path.join(root, 'run/sentinel-cef'))).toBe(false);
    expect(existsSync(path.join(root, 'etc/rsyslog.d/10-sentinel-cef.conf'))).toBe(false);
  });
});

describe('with no syslog daemon', () => {
  it('offers rsyslog through the package manager and installs it with --yes', async () => {
    const root = copyFixture('debian12-rsyslog');
    rmSync(path.join(root, 'usr/sbin/rsyslogd'));
    const exec = fakeExec({ root });
    const run = exec.run.bind(exec);
    exec.run = async (cmd, args, o) => {
      if (cmd === 'apt-get') writeFileSync(path.join(root, 'usr/sbin/rsyslogd'), '');
      return run(cmd, args, o);
    };
    const d = deps(root, exec);
    const res = await runInstall(opts({ dryRun: false }), d.deps);
    expect(res.daemon).toBe('rsyslog');
    // The service's node is checked before anything is installed.
    expect(exec.calls.slice(0, 2)).toEqual([
      ['/usr/bin/node', '--version'],
      ['apt-get', 'install', '-y', 'rsyslog'],
    ]);
    expect(d.logs).toContain('running apt-get install -y rsyslog (this can take a minute)');
  });

  it('runs apt-get update and tries again when the package lists are empty (a fresh image)', async () => {
    const root = copyFixture('debian12-rsyslog');
    rmSync(path.join(root, 'usr/sbin/rsyslogd'));
    const exec = fakeExec({ root });
    const run = exec.run.bind(exec);
    let updated = false;
    exec.run = async (cmd, args, o) => {
      if (cmd === 'apt-get' && args[0] === 'update') updated = true;
      if (cmd === 'apt-get' && args[0] === 'install') {
        if (!updated) {
          exec.calls.push([cmd, ...args]);
          return { exitCode: 100, stdout: '', stderr: 'E: Unable to locate package rsyslog', failed: true };
        }
        writeFileSync(path.join(root, 'usr/sbin/rsyslogd'), '');
      }
      return run(cmd, args, o);
    };
    const d = deps(root, exec);
    const res = await runInstall(opts({ dryRun: false }), d.deps);
    expect(res.daemon).toBe('rsyslog');
    expect(exec.calls.filter((c) => c[0] === 'apt-get')).toEqual([
      ['apt-get', 'install', '-y', 'rsyslog'],
      ['apt-get', 'update'],
      ['apt-get', 'install', '-y', 'rsyslog'],
    ]);
    expect(d.logs.some((l) => l.includes('running apt-get update'))).toBe(true);
  });

  it('--dry-run prints the package commands and the drop-in it would render, and changes nothing', async () => {
    const root = copyFixture('debian12-rsyslog');
    rmSync(path.join(root, 'usr/sbin/rsyslogd'));
    // As on a machine that never had rsyslog: the package brings its rsyslog.conf (which includes rsyslog.d).
    rmSync(path.join(root, 'etc/rsyslog.conf'));
    const before = snapshot(root);
    const exec = fakeExec({ root });
    const d = deps(root, exec);
    const res = await runInstall(opts({ dryRun: true, yes: false }), d.deps);
    expect(d.logs).toContain('syslog daemon: rsyslog (not installed: the plan is for the package it would install)');
    expect(res).toMatchObject({ changed: true, dryRun: true, daemon: 'rsyslog' });
    const out = d.out.join('');
    expect(out).toContain('create    /etc/rsyslog.d/10-sentinel-cef.conf [0644]');
    expect(out).not.toContain('/etc/rsyslog.conf [');
    // The drop-in for the rsyslog-relp it would install: acknowledged RELP to the forwarder.
    expect(out).toMatch(/^\+.*type="omrelp"/m);
    const would = out.split('\n').filter((l) => l.startsWith('would run: '));
    expect(would.slice(0, 3)).toEqual([
      'would run: apt-get update',
      'would run: apt-get install -y rsyslog',
      'would run: apt-get install -y --no-install-recommends rsyslog-relp',
    ]);
    expect(out).toContain('Dry run: nothing was changed.');
    expect(snapshot(root)).toEqual(before);
    // Only read-only questions: nothing installed, and no config check by a program not there yet.
    expect(exec.calls).toEqual([['/usr/bin/node', '--version']]);
    // With package lists present, no `apt-get update`.
    mkdirSync(path.join(root, 'var/lib/apt/lists'), { recursive: true });
    writeFileSync(path.join(root, 'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages'), '');
    const again = deps(root, fakeExec({ root }));
    await runInstall(opts({ dryRun: true, yes: false }), again.deps);
    expect(again.out.join('')).not.toContain('would run: apt-get update');
    expect(again.out.join('')).toContain('would run: apt-get install -y rsyslog\n');
  });

  // Review finding 6: the same for syslog-ng; its package's syslog-ng.conf includes conf.d.
  it('--dry-run --daemon syslog-ng where it is not installed plans the drop-in only, not a syslog-ng.conf of one include', async () => {
    const root = copyFixture('debian12-rsyslog');
    rmSync(path.join(root, 'usr/sbin/rsyslogd'));
    rmSync(path.join(root, 'etc/rsyslog.conf'));
    const before = snapshot(root);
    const d = deps(root, fakeExec({ root }));
    const res = await runInstall(opts({ dryRun: true, yes: false, daemon: 'syslog-ng' }), d.deps);
    expect(res).toMatchObject({ dryRun: true, daemon: 'syslog-ng' });
    const out = d.out.join('');
    expect(out).toMatch(/create {4}\/etc\/syslog-ng\/conf\.d\/\S+\.conf \[0644\]/);
    expect(out).not.toContain('/etc/syslog-ng/syslog-ng.conf [');
    expect(out).toContain('would run: apt-get install -y syslog-ng');
    expect(snapshot(root)).toEqual(before);
  });

  it('without --yes and without a TTY it stops with the command to run', async () => {
    const root = copyFixture('debian12-rsyslog');
    rmSync(path.join(root, 'usr/sbin/rsyslogd'));
    const d = deps(root, fakeExec({ root }), {
      prompter: { ...createScriptedPrompter([]), interactive: false, confirm: createPrompter(false).confirm },
    });
    await expect(runInstall(opts({ yes: false }), d.deps)).rejects.toMatchObject({ exitCode: 2, suggestion: 'pass --yes to accept' });
  });
});

describe('restart failure', () => {
  it('rolls every file back and restarts the daemon on its old config', async () => {
    const root = copyFixture('centos7-legacy');
    const before = snapshot(root);
    const exec = fakeExec({ root });
    const d = deps(root, exec);
    const svc = d.deps.services!;
    let restarts = 0;
    d.deps.services = {
      ...svc,
      async restartDaemon(ctx, daemon, binary, listen) {
        restarts++;
        // The first restart (new config) fails; the one after the rollback (old config) works.
        if (restarts === 1) return { ok: false, detail: 'rsyslogd exited right after start' };
        return svc.restartDaemon(ctx, daemon, binary, listen);
      },
    };
    await expect(runInstall(opts({}), d.deps)).rejects.toThrow(/restart of rsyslog failed; nothing was changed \(rolled back\)/);
    expect(restarts).toBe(2);
    expect(d.logs).toContain('rsyslog restarted on its previous config');
    const after = snapshot(root);
    for (const k of Object.keys(after))
      if (k.startsWith('var/lib/sentinel-cef/backup/') || k === 'etc/passwd' || k.startsWith('var/tmp/')) delete after[k];
    expect(after).toEqual(before);
  });

  it('uninstall --remove-user deletes the user install created', async () => {
    const root = copyFixture('debian12-rsyslog');
    const exec = fakeExec({ root });
    await runInstall(opts({}), deps(root, exec).deps);
    await runUninstall({ yes: true, dryRun: false, root, removeUser: true, purge: false }, deps(root, exec).deps);
    expect(exec.calls).toContainEqual(['userdel', '--root', root, 'sentinel-cef']);
  });
});

describe('lock', () => {
  it('refuses a second install while one runs, and takes over a lock whose process is gone', async () => {
    const root = copyFixture('debian12-rsyslog');
    mkdirSync(path.join(root, 'var/lib/sentinel-cef'), { recursive: true });
    const lock = path.join(root, 'var/lib/sentinel-cef/install.lock');
    writeFileSync(lock, `${process.ppid}\n`);
    await expect(runInstall(opts({}), deps(root, fakeExec({ root })).deps)).rejects.toThrow(
      /another sentinel-cef install or uninstall is running/,
    );
    writeFileSync(lock, '999999999\n');
    await runInstall(opts({}), deps(root, fakeExec({ root })).deps);
    expect(existsSync(lock)).toBe(false);
  });
});
