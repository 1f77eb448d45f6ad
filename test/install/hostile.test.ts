// Issue 14: install and uninstall on a machine in any state — links planted at the paths they write, parents
// others can write, a full disk or a signal at any step, a crash half-way. The invariant throughout: after a failed
// install (or after uninstall) every entry of the tree is as it was, content, mode and owner; nothing not ours
// changed owner or mode.
import { afterAll, describe, expect, it } from 'vitest';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFsRoot, type FsOp } from '../../src/system/fs-root.js';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import { fakeSystemExec, type FakeExec } from '../helpers/fake-exec.js';
import { readState } from '../../src/install/transaction.js';
import { inverseCommands, runInstall, type InstallDeps } from '../../src/install/run-install.js';
import { runUninstall } from '../../src/install/run-uninstall.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { systemServices, type Services } from '../../src/install/service.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const isRoot = process.getuid?.() === 0;
const SHADOW = 'root:$6$saltsalt$0123456789abcdefHASHHASHHASH:19000:0:99999:7:::\n';

/** Every temp directory made here, removed at the end (the fault loops make hundreds). */
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

/** A fixture copy with an /etc/passwd (useradd appends to it) and an /etc/shadow that must never leak. */
function tree(c = 'debian12-rsyslog'): string {
  const dir = tempDir(`scef-hostile-${c}-`);
  cpSync(path.join(fixtures, c), dir, { recursive: true });
  writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n', { mode: 0o644 });
  writeFileSync(path.join(dir, 'etc/shadow'), SHADOW, { mode: 0o640 });
  return dir;
}

/** Every entry under dir: type, mode, owner, and content or link target. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      const st = lstatSync(p);
      const head = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      const rel = path.relative(dir, p);
      if (st.isSymbolicLink()) out[rel] = `link ${head} -> ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[rel] = `dir ${head}`;
        walk(p);
      } else out[rel] = `file ${head} ${readFileSync(p, 'base64')}`;
    }
  };
  walk(dir);
  return out;
}

interface Faults {
  /** Called before each change the installer makes, on the tree or through a program. */
  onStep?: (what: string) => void;
}

/** An exec standing in for useradd/userdel and systemctl; the syntax check passes. */
function fakeExec(root: string, faults: Faults): FakeExec {
  return fakeSystemExec(root, {
    nodeVersion: 'v22.13.0',
    // A real system uid as root (so ownership is exercised), our own otherwise.
    ids: isRoot ? '998:998' : undefined,
    answer: (cmd) => {
      if (cmd === 'useradd' || cmd === 'userdel') faults.onStep?.(cmd);
      return undefined;
    },
  });
}

function fakeServices(faults: Faults, health = true): Services {
  let forwarder: number | null = null;
  return {
    async startForwarder() {
      faults.onStep?.('start forwarder');
      forwarder = 4242;
      return 'started';
    },
    async stopForwarder() {
      faults.onStep?.('stop forwarder');
      forwarder = null;
    },
    async restartDaemon() {
      faults.onStep?.('restart daemon');
      return { ok: true, detail: 'restarted' };
    },
    async isForwarderSupervised() {
      return forwarder;
    },
    async runningDaemonPids() {
      return [4343];
    },
    async forwarderHealthy() {
      return health;
    },
  };
}

function deps(root: string, faults: Faults = {}, extra: Partial<InstallDeps> = {}) {
  const out: string[] = [];
  const logs: string[] = [];
  const bundle = path.join(tempDir('scef-bundle-'), 'forwarder.mjs');
  writeFileSync(bundle, '// forwarder bundle\n');
  const fs = createFsRoot(root);
  fs.faultHook = (op: FsOp, p: string) => faults.onStep?.(`${op} ${p}`);
  const d: InstallDeps = {
    fs,
    exec: fakeExec(root, faults),
    prompter: createScriptedPrompter([]),
    log: (l) => logs.push(l),
    out: (t) => out.push(t),
    env: {},
    forwarderBundle: bundle,
    services: fakeServices(faults),
    ...extra,
  };
  return { out, logs, deps: d };
}

const KEY1 = Buffer.from('1'.repeat(48)).toString('base64');
const KEY2 = Buffer.from('2'.repeat(48)).toString('base64');
const WS = '11111111-2222-3333-4444-555555555555';
const fileSink = (o: Record<string, unknown> = {}) =>
  installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/tmp/scef/rows.ndjson', ...o });
const workspace = (o: Record<string, unknown> = {}) => installOptionsSchema.parse({ yes: true, verify: false, workspaceId: WS, ...o });
const uninstallOpts = (root: string, o: Record<string, unknown> = {}) => ({
  yes: true,
  dryRun: false,
  root,
  removeUser: false,
  purge: false,
  ...o,
});

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected fault`), { code });
}

/** Counts the changing steps of a successful run, so a fault can be put at each one. */
async function countSteps(make: () => string, run: (root: string, faults: Faults) => Promise<unknown>): Promise<number> {
  let n = 0;
  await run(make(), { onStep: () => void n++ });
  return n;
}

describe('links planted at the paths install writes', () => {
  it('a drop-in linked to /etc/shadow: --dry-run refuses in one line and never prints the target', async () => {
    const root = tree();
    symlinkSync(path.join(root, 'etc/shadow'), path.join(root, 'etc/rsyslog.d/10-sentinel-cef.conf'));
    const before = snapshot(root);
    const d = deps(root);
    const err = await runInstall(fileSink({ dryRun: true }), d.deps).catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `refusing to write /etc/rsyslog.d/10-sentinel-cef.conf: it is a symbolic link to ${path.join(root, 'etc/shadow')}; install never writes through a link`,
    );
    expect((err as Error).message).not.toContain('\n');
    expect(d.out.join('') + d.logs.join('')).not.toContain('saltsalt');
    expect(snapshot(root)).toEqual(before);
  });

  it('a syslog-ng.conf that is a link (0777 on the link) is refused, and its target keeps its mode', async () => {
    const root = tree('rhel-syslog-ng-noinclude');
    const main = path.join(root, 'etc/syslog-ng/syslog-ng.conf');
    renameSync(main, path.join(root, 'etc/syslog-ng/managed.conf'));
    chmodSync(path.join(root, 'etc/syslog-ng/managed.conf'), 0o640);
    symlinkSync('managed.conf', main);
    const before = snapshot(root);
    await expect(runInstall(fileSink({ daemon: 'syslog-ng' }), deps(root).deps)).rejects.toThrow(
      /^refusing to write \/etc\/syslog-ng\/syslog-ng\.conf: it is a symbolic link to managed\.conf/,
    );
    expect(snapshot(root)).toEqual(before);
    await expect(runInstall(fileSink({ daemon: 'syslog-ng', dryRun: true }), deps(root).deps)).rejects.toThrow(/symbolic link/);
  });

  // Every path a clean install writes, and every directory above one: a link there (to a copy of what was there,
  // or to an empty place outside the tree) makes install fail with nothing changed, here or at the target.
  const written = [
    '/etc',
    '/etc/rsyslog.d',
    '/etc/rsyslog.d/10-sentinel-cef.conf',
    '/etc/sentinel-cef',
    '/etc/sentinel-cef/forwarder.json',
    '/usr',
    '/usr/lib',
    '/usr/lib/sentinel-cef',
    '/usr/lib/sentinel-cef/forwarder.mjs',
    '/usr/lib/sentinel-cef/sentinel-cef-supervise.mjs',
    '/var',
    '/var/lib',
    '/var/lib/sentinel-cef',
    '/var/lib/sentinel-cef/data',
    '/var/lib/sentinel-cef/install-state.json',
    '/var/lib/sentinel-cef/install.lock',
    '/var/tmp',
    '/var/tmp/scef',
    '/var/tmp/scef/rows.ndjson',
  ];
  it.each(written)('a link at %s', async (p) => {
    const root = tree();
    const outside = tempDir('scef-outside-');
    const real = path.join(root, p);
    const isDir = !/\.(conf|json|mjs|lock|ndjson)$|passwd$/.test(p);
    mkdirSync(path.dirname(real), { recursive: true });
    const target = path.join(outside, 'target');
    if (existsSync(real)) renameSync(real, target);
    else if (isDir) mkdirSync(target);
    else writeFileSync(target, 'not ours\n');
    symlinkSync(target, real);
    const before = { tree: snapshot(root), outside: snapshot(outside) };
    await expect(runInstall(fileSink({}), deps(root).deps)).rejects.toThrow(/symbolic link/);
    expect({ tree: snapshot(root), outside: snapshot(outside) }).toEqual(before);
  });
});

describe('parents others can write', () => {
  it('a world-writable drop-in directory is refused and keeps its mode', async () => {
    const root = tree();
    chmodSync(path.join(root, 'etc/rsyslog.d'), 0o777);
    const before = snapshot(root);
    await expect(runInstall(fileSink({ dryRun: true }), deps(root).deps)).rejects.toThrow(
      'refusing to write /etc/rsyslog.d/10-sentinel-cef.conf: /etc/rsyslog.d is writable by every user (mode 0777)',
    );
    expect(snapshot(root)).toEqual(before);
  });

  it.skipIf(!isRoot)('a directory owned by a login user is refused', async () => {
    const root = tree();
    mkdirSync(path.join(root, 'etc/sentinel-cef'), { mode: 0o755 });
    chownSync(path.join(root, 'etc/sentinel-cef'), 1000, 1000);
    const before = snapshot(root);
    await expect(runInstall(fileSink({}), deps(root).deps)).rejects.toThrow(/\/etc\/sentinel-cef belongs to uid 1000, not root/);
    expect(snapshot(root)).toEqual(before);
  });

  it.skipIf(!isRoot)('a sticky world-writable /var/tmp is fine, unless a user already made the sink directory in it', async () => {
    const root = tree();
    mkdirSync(path.join(root, 'var/tmp'), { recursive: true });
    chmodSync(path.join(root, 'var/tmp'), 0o1777);
    await runInstall(fileSink({}), deps(root).deps);
    expect((await readState(createFsRoot(root)))?.status).toBe('installed');

    const hostile = tree();
    mkdirSync(path.join(hostile, 'var/tmp/scef'), { recursive: true });
    chmodSync(path.join(hostile, 'var/tmp'), 0o1777);
    chmodSync(path.join(hostile, 'var/tmp/scef'), 0o777);
    chownSync(path.join(hostile, 'var/tmp/scef'), 1000, 1000);
    const before = snapshot(hostile);
    await expect(runInstall(fileSink({}), deps(hostile).deps)).rejects.toThrow(/var\/tmp\/scef/);
    expect(snapshot(hostile)).toEqual(before);
  });

  it('a read-only /usr: install fails and rolls back everything', async () => {
    const root = tree();
    const before = snapshot(root);
    const faults: Faults = {
      onStep: (s) => {
        if (/^(write|mkdir|rename) \/usr\//.test(s)) throw errnoError('EROFS');
      },
    };
    await expect(runInstall(fileSink({}), deps(root, faults).deps)).rejects.toThrow(/EROFS.*nothing was changed \(rolled back\)/);
    expect(snapshot(root)).toEqual(before);
  });
});

describe('a fault at each step', () => {
  const codes = ['ENOSPC', 'EACCES', 'EIO'];

  it('first install: any fault at any step leaves the tree as it was, content, modes and owners', { timeout: 120_000 }, async () => {
    const total = await countSteps(tree, (root, f) => runInstall(workspace(), deps(root, f, { env: { SENTINEL_CEF_KEY: KEY1 } }).deps));
    expect(total).toBeGreaterThan(20);
    for (let n = 1; n <= total; n++) {
      const root = tree();
      const before = snapshot(root);
      let i = 0;
      let hit = '';
      const faults: Faults = {
        onStep: (s) => {
          if (++i === n) {
            hit = s;
            throw errnoError(codes[n % codes.length]);
          }
        },
      };
      const res = await runInstall(workspace(), deps(root, faults, { env: { SENTINEL_CEF_KEY: KEY1 } }).deps).then(
        () => 'installed',
        (e: Error) => e.message,
      );
      // A fault in the clean-up after the state says "installed" leaves an installed system, never a broken one.
      if (res === 'installed') {
        expect((await readState(createFsRoot(root)))?.status, `step ${n} (${hit})`).toBe('installed');
        continue;
      }
      // Before the lock is taken nothing is changed, so there is nothing to roll back.
      expect(res, `step ${n} (${hit})`).toMatch(/rolled back|^E[A-Z]+: injected fault$/);
      expect(snapshot(root), `step ${n} (${hit})`).toEqual(before);
    }
  });

  it(
    'reinstall with a new key: any fault goes back to the first install exactly, and the old key stays the live one',
    { timeout: 120_000 },
    async () => {
      const base = () => {
        const root = tree();
        return root;
      };
      const installed = async () => {
        const root = base();
        await runInstall(workspace(), deps(root, {}, { env: { SENTINEL_CEF_KEY: KEY1 } }).deps);
        return root;
      };
      let total = 0;
      {
        const root = await installed();
        await runInstall(workspace(), deps(root, { onStep: () => void total++ }, { env: { SENTINEL_CEF_KEY: KEY2 } }).deps);
      }
      for (let n = 1; n <= total; n++) {
        const root = await installed();
        const before = snapshot(root);
        let i = 0;
        const faults: Faults = {
          onStep: () => {
            if (++i === n) throw errnoError(codes[n % codes.length]);
          },
        };
        const res = await runInstall(workspace(), deps(root, faults, { env: { SENTINEL_CEF_KEY: KEY2 } }).deps).then(
          () => 'installed',
          (e: Error) => e.message,
        );
        if (res === 'installed') continue;
        expect(res, `step ${n}`).toMatch(/rolled back/);
        const after = snapshot(root);
        // The state file's updatedAt is the only field a rollback rewrites from its saved copy: compare it whole.
        expect(after, `step ${n}`).toEqual(before);
      }
    },
  );

  it('a signal at any step rolls everything back (exit 143), or arrives after the install is complete', { timeout: 120_000 }, async () => {
    const total = await countSteps(tree, (root, f) => runInstall(fileSink(), deps(root, f).deps));
    for (let n = 1; n <= total; n++) {
      const root = tree();
      const before = snapshot(root);
      let i = 0;
      const faults: Faults = {
        onStep: () => {
          if (++i === n) process.emit('SIGTERM', 'SIGTERM');
        },
      };
      const res = await runInstall(fileSink(), deps(root, faults).deps).then(
        () => null,
        (e: { message: string; exitCode: number }) => e,
      );
      if (res === null) {
        expect((await readState(createFsRoot(root)))?.status, `step ${n}`).toBe('installed');
        continue;
      }
      expect(res, `step ${n}`).toMatchObject({
        exitCode: 143,
        message: expect.stringMatching(/^interrupted by SIGTERM; nothing was changed \(rolled back\)$/),
      });
      expect(snapshot(root), `step ${n}`).toEqual(before);
    }
  });

  it('a crash at any step (nothing runs after it): uninstall --purge puts the tree back as it was', { timeout: 120_000 }, async () => {
    const total = await countSteps(tree, (root, f) => runInstall(fileSink(), deps(root, f).deps));
    for (let n = 1; n <= total; n++) {
      const root = tree();
      const before = snapshot(root);
      let i = 0;
      // The process dies at step n: that step and every later one fail, the rollback included.
      const faults: Faults = {
        onStep: () => {
          if (++i >= n) throw errnoError('EIO');
        },
      };
      await runInstall(fileSink(), deps(root, faults).deps).catch(() => {});
      const state = await readState(createFsRoot(root));
      if (state?.status === 'installed') continue;
      await runUninstall(uninstallOpts(root, { purge: true }), deps(root).deps);
      const after = snapshot(root);
      if (state === null) {
        // Died before the state was written: nothing that was there changed; only empty directories and the
        // state directory's lock can be left (`uninstall` has no state to go by).
        for (const [k, v] of Object.entries(after))
          if (!(k in before) && (v.startsWith('dir ') || k.startsWith('var/lib/sentinel-cef'))) delete after[k];
      }
      expect(after, `crash at step ${n}`).toEqual(before);
    }
  });
});

describe('the forwarder does not start', () => {
  it('rolls back every step, says what the forwarder printed, and leaves no sink directory, user or state', async () => {
    const root = tree();
    mkdirSync(path.join(root, 'var/log/sentinel-cef'), { recursive: true });
    writeFileSync(path.join(root, 'var/log/sentinel-cef/forwarder.log'), 'sentinel-cef: cannot open /var/tmp/scef/rows.ndjson: EROFS\n');
    const before = snapshot(root);
    const d = deps(root, {}, { services: fakeServices({}, false) });
    const err = (await runInstall(fileSink(), d.deps).catch((e) => e)) as { message: string; suggestion: string };
    expect(err.message).toBe('the forwarder did not start; nothing was changed (rolled back)');
    expect(err.suggestion).toContain('cannot open /var/tmp/scef/rows.ndjson: EROFS');
    expect(snapshot(root)).toEqual(before);
  });

  it('under systemd, the rollback disables the new unit and clears its failed state', async () => {
    const root = tree('rhel9-rsyslog-imtcp');
    writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
    const before = snapshot(root);
    const d = deps(root);
    const exec = d.deps.exec as FakeExec;
    const orig = exec.run.bind(exec);
    exec.run = async (cmd, args, o) => {
      if (cmd === 'systemctl' && args[0] === 'is-enabled') return { exitCode: 1, stdout: 'disabled', stderr: '', failed: true };
      if (cmd === 'systemctl' && args[0] === 'is-active') return { exitCode: 3, stdout: 'inactive', stderr: '', failed: true };
      if (cmd === 'journalctl')
        return { exitCode: 0, stdout: 'Error: EACCES: permission denied, open /var/tmp/scef/rows.ndjson\n', stderr: '', failed: false };
      return orig(cmd, args, o);
    };
    // Real unit control (its systemctl calls recorded by the fake exec); only the health answer is made up.
    d.deps.services = { ...systemServices, forwarderHealthy: async () => false };
    const err = (await runInstall(fileSink(), d.deps).catch((e) => e)) as { message: string; suggestion: string };
    expect(err.message).toBe('the forwarder did not start; nothing was changed (rolled back)');
    expect(err.suggestion).toContain('EACCES: permission denied, open /var/tmp/scef/rows.ndjson');
    const calls = exec.calls.map((c) => c.join(' '));
    const enable = calls.indexOf('systemctl enable sentinel-cef-forwarder.service');
    expect(enable).toBeGreaterThan(-1);
    expect(calls.slice(enable)).toEqual(
      expect.arrayContaining([
        'systemctl disable --now sentinel-cef-forwarder.service',
        'systemctl daemon-reload',
        'systemctl reset-failed sentinel-cef-forwarder.service',
        'userdel --root ' + root + ' sentinel-cef',
      ]),
    );
    expect(snapshot(root)).toEqual(before);
  });
  it("under systemd, the rollback of an upgrade puts the enabled unit's links back as its old [Install] says (issue 15)", async () => {
    const root = tree('rhel9-rsyslog-imtcp');
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
    const d = deps(root);
    const exec = d.deps.exec as FakeExec;
    const orig = exec.run.bind(exec);
    exec.run = async (cmd, args, o) => {
      if (cmd === 'systemctl' && (args[0] === 'is-enabled' || args[0] === 'is-active'))
        return { exitCode: 0, stdout: '', stderr: '', failed: false };
      return orig(cmd, args, o);
    };
    d.deps.services = { ...systemServices, forwarderHealthy: async () => false };
    await expect(runInstall(fileSink(), d.deps)).rejects.toThrow(/rolled back/);
    const calls = exec.calls.map((c) => c.join(' '));
    const after = calls.slice(calls.indexOf('systemctl enable sentinel-cef-forwarder.service'));
    // The new unit's enable may add links (WantedBy=rsyslog.service) the old one did not have: reenable after the reload.
    expect(after.indexOf('systemctl reenable sentinel-cef-forwarder.service')).toBe(after.indexOf('systemctl daemon-reload') + 1);
    expect(after).not.toContain('systemctl disable --now sentinel-cef-forwarder.service');
  });
});

describe('refused at plan time', () => {
  it.each([
    [{ forwarderPort: 514 }, '--forwarder-port 514 is the syslog port: the daemon listens there and forwards to the forwarder'],
    [{ forwarderPort: 25227 }, "--forwarder-port 25227 is the forwarder's admin API port (127.0.0.1:25227)"],
    [{ port: 25227 }, "--port 25227 is the forwarder's admin API port (127.0.0.1:25227)"],
  ])('%o', async (o, message) => {
    const root = tree();
    await expect(runInstall(fileSink({ ...o, dryRun: true }), deps(root).deps)).rejects.toMatchObject({ exitCode: 2, message });
  });

  it.each(['/root/rows.ndjson', '/home/alice/cef/rows.ndjson', '/run/user/1000/rows.ndjson'])(
    'a file sink at %s under systemd',
    async (p) => {
      const root = tree('rhel9-rsyslog-imtcp');
      mkdirSync(path.join(root, 'proc/1'), { recursive: true });
      writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
      mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
      await expect(runInstall(fileSink({ sink: `file:${p}`, dryRun: true }), deps(root).deps)).rejects.toMatchObject({
        exitCode: 2,
        message: `--sink ${p}: the forwarder service cannot write under /root, /home or /run/user (its unit has ProtectHome=yes)`,
      });
    },
  );
});

describe('secrets at rest', () => {
  it('key K1, reinstall with K2, uninstall: K1 is nowhere; --purge leaves nothing install made', async () => {
    const root = tree();
    const before = snapshot(root);
    await runInstall(workspace(), deps(root, {}, { env: { SENTINEL_CEF_KEY: KEY1 } }).deps);
    await runInstall(workspace(), deps(root, {}, { env: { SENTINEL_CEF_KEY: KEY2 } }).deps);
    const grep = (k: string) =>
      Object.entries(snapshot(root))
        .filter(([, v]) => v.includes(Buffer.from(`${k}\n`).toString('base64')))
        .map(([p]) => p);
    expect(grep(KEY1)).toEqual([]);
    expect(grep(KEY2)).toEqual(['etc/sentinel-cef/shared-key']);
    await runUninstall(uninstallOpts(root, { removeUser: true }), deps(root).deps);
    expect(grep(KEY1)).toEqual([]);
    expect(grep(KEY2)).toEqual([]);

    const fresh = tree();
    const freshBefore = snapshot(fresh);
    await runInstall(workspace(), deps(fresh, {}, { env: { SENTINEL_CEF_KEY: KEY1 } }).deps);
    await runInstall(workspace(), deps(fresh, {}, { env: { SENTINEL_CEF_KEY: KEY2 } }).deps);
    await runUninstall(uninstallOpts(fresh, { purge: true }), deps(fresh).deps);
    expect(snapshot(fresh)).toEqual(freshBefore);
    expect(before).toBeDefined();
  });

  it('backups of secrets left by older versions are deleted by uninstall', async () => {
    const root = tree();
    await runInstall(workspace(), deps(root, {}, { env: { SENTINEL_CEF_KEY: KEY2 } }).deps);
    const old = path.join(root, 'var/lib/sentinel-cef/backup/2026-01-01T00-00-00-000Z/files/etc/sentinel-cef');
    mkdirSync(old, { recursive: true });
    writeFileSync(path.join(old, 'shared-key'), `${KEY1}\n`, { mode: 0o600 });
    await runUninstall(uninstallOpts(root), deps(root).deps);
    expect(existsSync(path.join(old, 'shared-key'))).toBe(false);
  });
});

describe('uninstall on a hostile tree', () => {
  it('never changes the owner or mode of a file it did not create, and refuses a planted parent link', async () => {
    const root = tree();
    const before = snapshot(root);
    await runInstall(fileSink(), deps(root).deps);
    // After install a link replaces the drop-in directory (only root could, but uninstall must not write through it).
    const outside = tempDir('scef-outside-');
    renameSync(path.join(root, 'etc/rsyslog.d'), path.join(outside, 'rsyslog.d'));
    symlinkSync(path.join(outside, 'rsyslog.d'), path.join(root, 'etc/rsyslog.d'));
    const outsideBefore = snapshot(outside);
    await expect(runUninstall(uninstallOpts(root), deps(root).deps)).rejects.toThrow(/\/etc\/rsyslog\.d is a symbolic link/);
    expect(snapshot(outside)).toEqual(outsideBefore);
    rmSync(path.join(root, 'etc/rsyslog.d'));
    renameSync(path.join(outside, 'rsyslog.d'), path.join(root, 'etc/rsyslog.d'));
    // The rows are the operator's: uninstall keeps them, so they go by hand here.
    rmSync(path.join(root, 'var/tmp/scef/rows.ndjson'), { force: true });
    await runUninstall(uninstallOpts(root, { purge: true }), deps(root).deps);
    expect(snapshot(root)).toEqual(before);
  });
});

describe('firewall and SELinux changes are undone on rollback', () => {
  it.each([
    [
      ['firewall-cmd', '--permanent', '--add-port=514/udp'],
      [
        ['firewall-cmd', '--permanent', '--remove-port=514/udp'],
        ['firewall-cmd', '--reload'],
      ],
    ],
    [['firewall-cmd', '--reload'], []],
    [['ufw', 'allow', '514/tcp'], [['ufw', 'delete', 'allow', '514/tcp']]],
    [
      ['semanage', 'port', '-a', '-t', 'syslogd_port_t', '-p', 'tcp', '25226'],
      [['semanage', 'port', '-d', '-t', 'syslogd_port_t', '-p', 'tcp', '25226']],
    ],
    [['restorecon', '-F', '/etc/rsyslog.d/10-sentinel-cef.conf'], []],
  ])('%j', (cmd, inverse) => {
    expect(inverseCommands(cmd)).toEqual(inverse);
  });
});
