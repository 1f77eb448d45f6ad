import { describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, statSync, writeFileSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFsRoot } from '../../src/system/fs-root.js';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import type { Exec, ExecResult } from '../../src/system/exec.js';
import { formatPlan, planFiles, summarizePlan } from '../../src/install/plan.js';
import { FileTransaction, readState } from '../../src/install/transaction.js';
import { runInstall, type InstallDeps } from '../../src/install/run-install.js';
import { runUninstall } from '../../src/install/run-uninstall.js';
import { installOptionsSchema } from '../../src/install/options.js';
import type { Services } from '../../src/install/service.js';

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

/** An exec that records calls; the syslog daemon's syntax check answers as told. */
function fakeExec(opts: { syntaxOk?: boolean; root?: string } = {}): Exec & { calls: string[][] } {
  const calls: string[][] = [];
  const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', failed: false });
  return {
    calls,
    registerSecret() {},
    async which(cmd) {
      return cmd === 'node' ? '/usr/bin/node' : null;
    },
    async run(cmd, args) {
      calls.push([cmd, ...args]);
      if (cmd === 'useradd' && opts.root) {
        const passwd = path.join(opts.root, 'etc/passwd');
        writeFileSync(passwd, `${existsSync(passwd) ? readFileSync(passwd, 'utf8') : ''}sentinel-cef:x:${process.getuid!()}:${process.getgid!()}::/var/lib/sentinel-cef:/usr/sbin/nologin\n`);
      }
      if ((args.includes('-N1') || args.includes('--syntax-only')) && opts.syntaxOk === false) {
        return { exitCode: 1, stdout: '', stderr: 'error during parsing file /etc/rsyslog.d/10-sentinel-cef.conf', failed: true };
      }
      return ok();
    },
    async spawnDetached(cmd, args) {
      calls.push(['spawn', cmd, ...args]);
      return 99999;
    },
  };
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

const opts = (o: Record<string, unknown>) => installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/tmp/scef/rows.ndjson', ...o });

describe('planFiles and FileTransaction', () => {
  it('classifies create/update/unchanged and shows a unified diff, never a secret', async () => {
    const root = copyFixture('debian12-rsyslog');
    const fs = createFsRoot(root);
    const changes = await planFiles(fs, [
      { path: '/etc/rsyslog.conf', content: 'new\n', mode: 0o644, why: 'x' },
      { path: '/etc/os-release', content: readFileSync(path.join(root, 'etc/os-release')), mode: statSync(path.join(root, 'etc/os-release')).mode & 0o7777, why: 'y' },
      { path: '/etc/sentinel-cef/shared-key', content: 'c2VjcmV0\n', mode: 0o600, secret: true, why: 'z' },
    ]);
    expect(changes.map((c) => c.kind)).toEqual(['update', 'unchanged', 'create']);
    expect(summarizePlan(changes)).toEqual({ create: 1, update: 1, unchanged: 1 });
    const text = formatPlan(changes, { diffs: true });
    expect(text).toContain('--- a/etc/rsyslog.conf');
    expect(text).toContain('+new');
    expect(text).toContain('(secret content not shown: 9 bytes)');
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
    expect(exec.calls).toEqual([]);
  });

  it('applies, then a second run changes nothing, then uninstall restores every byte', async () => {
    const root = copyFixture('rhel8-syslog-ng');
    const before = snapshot(root);
    const exec = fakeExec({ root });
    const first = deps(root, exec);
    const r1 = await runInstall(opts({}), first.deps);
    expect(r1.changed).toBe(true);
    expect(exec.calls.some((c) => c[0] === '/usr/sbin/syslog-ng' && c[1] === '--syntax-only')).toBe(true);
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink).toEqual({ type: 'file', path: '/var/tmp/scef/rows.ndjson' });
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

    const u = deps(root, exec);
    await runUninstall({ yes: true, dryRun: false, root, removeUser: false, purge: true }, u.deps);
    const after = snapshot(root);
    for (const k of Object.keys(after)) if (k.startsWith('var/lib/sentinel-cef/backup/') || k === 'etc/passwd' || k.startsWith('var/tmp/')) delete after[k];
    expect(after).toEqual(before);
  });

  it('rolls back when the daemon rejects the new config', async () => {
    const root = copyFixture('debian12-rsyslog');
    const before = snapshot(root);
    const exec = fakeExec({ root, syntaxOk: false });
    const d = deps(root, exec, { mutateDropin: (c) => `${c}\nthis is not rsyslog syntax {\n` });
    await expect(runInstall(opts({}), d.deps)).rejects.toThrow(/rsyslog rejected the new configuration; nothing was changed \(rolled back\)/);
    const after = snapshot(root);
    for (const k of Object.keys(after)) if (k.startsWith('var/lib/sentinel-cef/backup/') || k === 'etc/passwd' || k.startsWith('var/tmp/')) delete after[k];
    expect(after).toEqual(before);
    expect(await readState(createFsRoot(root))).toBeNull();
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
    expect(JSON.parse(cfg).sink).toEqual({ type: 'log-analytics', workspaceId: '11111111-2222-3333-4444-555555555555', sharedKeyFile: '/etc/sentinel-cef/shared-key', cloud: 'AzureUSGovernment' });
    expect(d.out.join('') + d.logs.join('')).not.toContain(key);
    expect(exec.calls.flat().join(' ')).not.toContain(key);
  });

  it('asks for what is missing only on a TTY; without one it is a usage error', async () => {
    const root = copyFixture('debian12-rsyslog');
    const d = deps(root, fakeExec({ root }), { prompter: { ...createScriptedPrompter([]), interactive: false } });
    await expect(runInstall(opts({ sink: undefined }), d.deps)).rejects.toMatchObject({ exitCode: 2, message: 'no destination given' });
    const p = createScriptedPrompter(['11111111-2222-3333-4444-555555555555', Buffer.from('x'.repeat(40)).toString('base64')]);
    const d2 = deps(root, fakeExec({ root }), { prompter: p });
    await runInstall(opts({ sink: undefined, dryRun: true }), d2.deps);
    expect(p.asked).toEqual(['Log Analytics workspace id', 'Workspace primary key']);
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
      opts({ sink: undefined, dce: 'https://my-dce.eastus-1.ingest.monitor.azure.com', dcr: 'dcr-0123456789abcdef', tenant: 't1', clientId: 'c1', clientSecretFile: secretFile }),
      d.deps,
    );
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink).toEqual({
      type: 'logs-ingestion',
      endpoint: 'https://my-dce.eastus-1.ingest.monitor.azure.com',
      dcrImmutableId: 'dcr-0123456789abcdef',
      cloud: 'AzureCloud',
      auth: { kind: 'client-secret', tenantId: 't1', clientId: 'c1', clientSecretFile: '/etc/sentinel-cef/client-secret' },
    });
    const sec = path.join(root, 'etc/sentinel-cef/client-secret');
    expect(readFileSync(sec, 'utf8')).toBe('client-secret-value-123\n');
    expect(statSync(sec).mode & 0o777).toBe(0o600);
  });

  it('refuses half a destination in one line', async () => {
    const root = copyFixture('debian12-rsyslog');
    const d = deps(root, fakeExec({ root }));
    await expect(runInstall(opts({ sink: undefined, dce: 'https://x.example.com' }), d.deps)).rejects.toMatchObject({ exitCode: 2, message: '--dce and --dcr go together' });
    await expect(runInstall(opts({ dce: 'https://x.example.com', dcr: 'd' }), d.deps)).rejects.toMatchObject({ exitCode: 2 });
  });
});
