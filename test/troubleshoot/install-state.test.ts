import { afterEach, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFsRoot } from '../../src/system/fs-root.js';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import type { Services } from '../../src/install/service.js';
import { readState } from '../../src/install/transaction.js';
import { RSYSLOG_INCLUDE_BLOCK } from '../../src/install/render-rsyslog.js';
import { runInstall, type InstallDeps } from '../../src/install/run-install.js';
import { runUninstall } from '../../src/install/run-uninstall.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { renderHuman } from '../../src/troubleshoot/render.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';
import { testDeps } from './helpers.js';
import { commandLines, fakeExec, fakeSystemExec } from '../helpers/fake-exec.js';
import { createHash } from 'node:crypto';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const DROPIN = '/etc/rsyslog.d/10-sentinel-cef.conf';
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Installs into a copy of a fixture root with the given options (daemon checks and services faked). */
async function installInto(
  fixture: string,
  o: Record<string, unknown>,
  prepare?: (root: string) => void,
  extra: Partial<InstallDeps> = {},
): Promise<{ root: string; out: string; logs: string[]; deps: InstallDeps }> {
  const root = tmp(`scef-ts-${fixture}-`);
  cpSync(path.join(fixtures, fixture), root, { recursive: true });
  prepare?.(root);
  const exec = fakeSystemExec(root);
  const services: Services = {
    startForwarder: async () => 'started',
    stopForwarder: async () => {},
    restartDaemon: async () => ({ ok: true, detail: 'restarted' }),
    isForwarderSupervised: async () => 4242,
    runningDaemonPids: async () => [4343],
  };
  const bundle = path.join(tmp('scef-bundle-'), 'forwarder.mjs');
  writeFileSync(bundle, '// bundle\n');
  const out: string[] = [];
  const logs: string[] = [];
  const deps: InstallDeps = {
    fs: createFsRoot(root),
    exec,
    prompter: createScriptedPrompter([]),
    log: (l) => logs.push(l),
    out: (t) => out.push(t),
    env: {},
    forwarderBundle: bundle,
    services,
    ...extra,
  };
  await runInstall(installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/tmp/scef/rows.ndjson', ...o }), deps);
  return { root, out: out.join(''), logs, deps };
}

/** Troubleshoot's daemon restarts, recorded. */
function tsDeps(root: string, restarts: unknown[]) {
  const real = createDefaultDeps({ root, env: {} });
  return testDeps(root, {
    renderDropIn: real.renderDropIn,
    writeFile: real.writeFile,
    services: { startForwarder: async () => '', restartDaemon: async (d, l) => (restarts.push([d, l]), 'ok') },
  });
}

describe('troubleshoot uses what install recorded', () => {
  it('install records every option that shapes what it renders', async () => {
    const { root } = await installInto('debian12-rsyslog', { port: 1514, protocol: 'tcp', forwarderPort: 25300 });
    const state = await readState(createFsRoot(root));
    expect(state?.options).toEqual({
      port: 1514,
      protocol: 'tcp',
      forwarderPort: 25300,
      daemon: 'rsyslog',
      configPath: '/etc/sentinel-cef/forwarder.json',
      dropin: DROPIN,
      sink: { type: 'file', describe: 'file /var/tmp/scef/rows.ndjson' },
      transport: 'tcp',
      intakeStateFile: '/run/sentinel-cef/intake.state',
    });
  });

  it.each([
    { port: 1514, protocol: 'tcp' },
    { port: 1514, protocol: 'both' },
    { port: 6514, protocol: 'udp' },
  ] as const)('after install --port $port --protocol $protocol: the drop-in is current, and --fix rewrites it byte for byte', async (o) => {
    const { root } = await installInto('debian12-rsyslog', o);
    const installed = readFileSync(path.join(root, DROPIN), 'utf8');
    const restarts: unknown[] = [];
    const plain = await runTroubleshoot({ probes: 0 }, tsDeps(root, restarts));
    const dropin = plain.checks.find((c) => c.id === 'daemon.dropin')!;
    expect(dropin.status, dropin.message).toBe('pass');
    expect(plain.settings).toContainEqual({ name: 'port', value: o.port, from: 'install' });

    // Hand edit: --fix puts back exactly what install wrote, on the installed port and transports.
    writeFileSync(path.join(root, DROPIN), installed.replace(String(o.port), '514'));
    const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, tsDeps(root, restarts));
    expect(readFileSync(path.join(root, DROPIN), 'utf8')).toBe(installed);
    expect(fixed.checks.find((c) => c.id === 'daemon.dropin')!.status).toBe('pass');
    // Every restart (the fixture runs no daemon, so daemon.running is fixed too) listens where install did.
    expect(restarts.length).toBeGreaterThan(0);
    for (const r of restarts)
      expect(r).toEqual(['rsyslog', { port: o.port, protocols: o.protocol === 'both' ? ['tcp', 'udp'] : [o.protocol] }]);
  });

  it('install --durable (issue 15): recorded in the state and the forwarder syncs every append; troubleshoot finds the durable drop-in current and --fix rewrites it byte for byte', async () => {
    const withRelp = (root: string) => {
      mkdirSync(path.join(root, 'usr/lib/x86_64-linux-gnu/rsyslog'), { recursive: true });
      writeFileSync(path.join(root, 'usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so'), '');
    };
    const { root, out } = await installInto('debian12-rsyslog', { durable: true }, withRelp);
    const installed = readFileSync(path.join(root, DROPIN), 'utf8');
    expect(installed).toMatch(/^main_queue\(queue\.type="Disk"/m);
    expect(installed).toMatch(/action\(type="omrelp"[^)]*queue\.type="Disk"/s);
    expect((await readState(createFsRoot(root)))?.options?.durable).toBe(true);
    expect(JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8')).queue.fsyncIntervalMs).toBe(0);
    expect(out).not.toContain('primaryKey');

    const restarts: unknown[] = [];
    const plain = await runTroubleshoot({ probes: 0 }, tsDeps(root, restarts));
    const dropin = plain.checks.find((c) => c.id === 'daemon.dropin')!;
    expect(dropin.status, dropin.message).toBe('pass');
    writeFileSync(path.join(root, DROPIN), installed.replace(/^main_queue\([^)]*\)\n/m, ''));
    expect((await runTroubleshoot({ probes: 0 }, tsDeps(root, restarts))).checks.find((c) => c.id === 'daemon.dropin')!.status).toBe(
      'fail',
    );
    await runTroubleshoot({ probes: 0, fix: true, yes: true }, tsDeps(root, restarts));
    expect(readFileSync(path.join(root, DROPIN), 'utf8')).toBe(installed);

    // --dry-run shows it in the plan's diff and writes nothing.
    const dry = await installInto('debian12-rsyslog', { durable: true, dryRun: true }, withRelp);
    expect(dry.out).toMatch(/^\+main_queue\(queue\.type="Disk"/m);
    expect(dry.out).toMatch(/^\+\s+queue\.type="Disk" queue\.size="10000000" queue\.checkpointInterval="1" queue\.syncQueueFiles="on"$/m);
    expect(existsSync(path.join(dry.root, DROPIN))).toBe(false);

    // Without --durable the same machine gets the in-memory queue and the default group fsync.
    const { root: plainRoot } = await installInto('debian12-rsyslog', {}, withRelp);
    expect(readFileSync(path.join(plainRoot, DROPIN), 'utf8')).not.toMatch(/main_queue|queue\.type="Disk"/);
    expect((await readState(createFsRoot(plainRoot)))?.options?.durable).toBeUndefined();
    expect(JSON.parse(readFileSync(path.join(plainRoot, 'etc/sentinel-cef/forwarder.json'), 'utf8')).queue.fsyncIntervalMs).toBeUndefined();
  });

  it.each([
    ['syslog-ng', 'debian-syslog-ng-514', /^--durable needs rsyslog with RELP: syslog-ng sends over plain TCP/],
    ['rsyslog without omrelp', 'debian12-rsyslog', /^--durable needs rsyslog with RELP: rsyslog without omrelp sends over plain TCP/],
  ])('install --durable refuses %s (exit 2) and changes nothing', async (_what, fixture, message) => {
    let root = '';
    const err = await installInto(fixture, { durable: true }, (r) => {
      root = r;
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: 2, message: expect.stringMatching(message) });
    expect(existsSync(path.join(root, DROPIN))).toBe(false);
    expect(existsSync(path.join(root, 'etc/syslog-ng/conf.d/sentinel-cef.conf'))).toBe(false);
    expect(existsSync(path.join(root, 'etc/sentinel-cef'))).toBe(false);
  });

  // Review finding 3: a drop-in an older release wrote (before queue.checkpointInterval) is healthy, only older:
  // warn with the advice, and --fix --yes neither rewrites it nor restarts rsyslog.
  it.each([
    ['TCP', (_root: string) => {}],
    [
      'RELP',
      (root: string) => {
        mkdirSync(path.join(root, 'usr/lib/x86_64-linux-gnu/rsyslog'), { recursive: true });
        writeFileSync(path.join(root, 'usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so'), '');
      },
    ],
  ])("an older install's %s drop-in (no checkpointInterval) warns and --fix --yes leaves rsyslog alone", async (_what, prepare) => {
    const { root } = await installInto('debian12-rsyslog', {}, prepare);
    const installed = readFileSync(path.join(root, DROPIN), 'utf8');
    expect(installed).toContain(' queue.checkpointInterval="100"');
    const older = installed
      .replaceAll(' queue.checkpointInterval="100"', '')
      .replace(/^# Managed by sentinel-cef \S+\./m, '# Managed by sentinel-cef 0.9.0.');
    writeFileSync(path.join(root, DROPIN), older);
    // (daemon.running starts the rsyslog this fake machine lacks; that is its own check.)
    const r = await runTroubleshoot({ probes: 0, fix: true, yes: true }, tsDeps(root, []));
    const c = r.checks.find((x) => x.id === 'daemon.dropin')!;
    expect(c.status, c.message).toBe('warn');
    expect(c.message).toContain('written by an older install: re-run `sentinel-cef install` when quiet to add queue.checkpointInterval');
    expect(c.details?.fix).toBeUndefined();
    expect(readFileSync(path.join(root, DROPIN), 'utf8')).toBe(older);
    // Any other difference is still drift.
    writeFileSync(path.join(root, DROPIN), older.replace('stop', 'stop\n*.* /var/log/cef.log'));
    const edited = (await runTroubleshoot({ probes: 0 }, tsDeps(root, []))).checks.find((x) => x.id === 'daemon.dropin')!;
    expect(edited).toMatchObject({ status: 'fail', message: expect.stringContaining('differs from what install renders') });
  });

  it('an explicit --port overrides the install, and the report says so', async () => {
    const { root } = await installInto('debian12-rsyslog', { port: 1514 });
    const r = await runTroubleshoot({ probes: 0, port: 514 }, tsDeps(root, []));
    expect(r.settings).toContainEqual({ name: 'port', value: 514, from: 'flag', installed: 1514 });
    expect(r.checks.find((c) => c.id === 'daemon.dropin')!.status).toBe('fail');
    expect(renderHuman(r, { colour: false })).toContain('note: --port 514 overrides port 1514 recorded by install');
  });

  // Issue 17: troubleshoot reads the probes back from the workspace install set up, without being told it again.
  it('the workspace install sent to is recorded, and troubleshoot reads back from it unless told otherwise', async () => {
    const ws = '0b9c3a4e-5f60-4718-8a9b-0c1d2e3f4a5b';
    const key = Buffer.alloc(32, 7).toString('base64');
    const { root } = await installInto('debian12-rsyslog', { sink: undefined, workspaceId: ws, primaryKey: key }, undefined, {
      probeLegacy: async () => ({ url: 'https://x/api/logs', status: 403 }),
    });
    expect((await readState(createFsRoot(root)))?.options?.workspaceId).toBe(ws);
    const r = await runTroubleshoot({ probes: 0 }, tsDeps(root, []));
    expect(r.settings).toContainEqual({ name: 'workspace', value: ws, from: 'install' });
    const other = '11111111-2222-3333-4444-555555555555';
    const flagged = await runTroubleshoot({ probes: 0, workspaceId: other }, tsDeps(root, []));
    expect(flagged.settings?.some((s) => s.name === 'workspace')).toBe(false);
  });

  it('without an install state, the defaults stand', async () => {
    const root = tmp('scef-ts-none-');
    const r = await runTroubleshoot({ probes: 0 }, testDeps(root));
    expect(r.settings).toBeUndefined();
    expect(existsSync(path.join(root, 'var/lib/sentinel-cef/install-state.json'))).toBe(false);
  });
});

// Issue 16: the transport install chose from the omrelp module is the record; rsyslog-relp installed or removed later
// must not switch the drop-in alone (the forwarder keeps listening for what install chose).
describe('the transport to the forwarder follows the install record', () => {
  const OMRELP = 'usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so';
  const addRelp = (root: string) => {
    mkdirSync(path.join(root, path.dirname(OMRELP)), { recursive: true });
    writeFileSync(path.join(root, OMRELP), '');
  };
  /** The state as an install before the transport was recorded wrote it. */
  const forgetTransport = (root: string) => {
    const p = path.join(root, 'var/lib/sentinel-cef/install-state.json');
    const st = JSON.parse(readFileSync(p, 'utf8')) as { options: Record<string, unknown> };
    delete st.options.transport;
    delete st.options.intakeStateFile;
    writeFileSync(p, JSON.stringify(st));
  };
  const listenOf = (root: string) =>
    (JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8')) as { listen: string[] }).listen;

  it('install records the transport and the intake state file it rendered', async () => {
    const { root } = await installInto('debian12-rsyslog', {}, addRelp);
    expect((await readState(createFsRoot(root)))?.options).toMatchObject({
      transport: 'relp',
      intakeStateFile: '/run/sentinel-cef/intake.state',
    });
    expect(listenOf(root)[0]).toBe('relp://127.0.0.1:25226');
  });

  it.each([['recorded'], ['an older state without it']])(
    'omrelp.so appears after a TCP install (%s): the drop-in is current, and --fix leaves it and the forwarder config alone',
    async (how) => {
      const { root } = await installInto('debian12-rsyslog', {});
      if (how !== 'recorded') forgetTransport(root);
      const installed = readFileSync(path.join(root, DROPIN));
      expect(installed.toString()).toMatch(/type="omfwd"/);
      addRelp(root); // apt-get install rsyslog-relp, as install's warning recommends
      const plain = await runTroubleshoot({ probes: 0 }, tsDeps(root, []));
      const c = plain.checks.find((x) => x.id === 'daemon.dropin')!;
      expect(c.status, c.message).toBe('pass');
      expect(c.message).toContain('rsyslog-relp is installed now: `sentinel-cef install` moves rsyslog and the forwarder to RELP together');
      const writes: string[] = [];
      const deps = tsDeps(root, []);
      const fixed = await runTroubleshoot(
        { probes: 0, fix: true, yes: true },
        { ...deps, writeFile: (p, t, m) => (writes.push(p), deps.writeFile(p, t, m)) },
      );
      expect(fixed.checks.find((x) => x.id === 'daemon.dropin')!.status).toBe('pass');
      expect(writes).not.toContain(DROPIN);
      expect(readFileSync(path.join(root, DROPIN)).equals(installed)).toBe(true);
      expect(listenOf(root)[0]).toBe('tcp://127.0.0.1:25226');
    },
  );

  it.each([['recorded'], ['an older state without it']])(
    'omrelp.so removed after a RELP install (%s): daemon.dropin says so with the fix, and --fix does not switch to TCP',
    async (how) => {
      const { root } = await installInto('debian12-rsyslog', {}, addRelp);
      if (how !== 'recorded') forgetTransport(root);
      const installed = readFileSync(path.join(root, DROPIN));
      rmSync(path.join(root, OMRELP));
      const plain = await runTroubleshoot({ probes: 0 }, tsDeps(root, []));
      const c = plain.checks.find((x) => x.id === 'daemon.dropin')!;
      expect(c.status).toBe('fail');
      expect(c.message).toContain("it sends over RELP as installed, but rsyslog's omrelp module (package rsyslog-relp) is gone");
      expect(c.message).not.toContain('differs from what install renders');
      expect(c.fix).toContain('apt-get install rsyslog-relp');
      expect(c.fix).toContain('re-run `sentinel-cef install` to move rsyslog and the forwarder to TCP together');
      const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, tsDeps(root, []));
      const after = fixed.checks.find((x) => x.id === 'daemon.dropin')!;
      expect(after.status).toBe('fail');
      expect(after.details?.fix).toBeUndefined();
      expect(readFileSync(path.join(root, DROPIN)).equals(installed)).toBe(true);
      expect(listenOf(root)[0]).toBe('relp://127.0.0.1:25226');
    },
  );
});

describe('rsyslog.conf without the rsyslog.d include', () => {
  const MAIN = 'etc/rsyslog.conf';
  const INCLUDE = '$IncludeConfig /etc/rsyslog.d/*.conf';
  const dropInclude = (root: string) => {
    const p = path.join(root, MAIN);
    writeFileSync(p, readFileSync(p, 'utf8').replace(/^\$IncludeConfig .*\n/m, ''));
  };
  const includes = (text: string) => text.split('\n').filter((l) => l.trim() === INCLUDE).length;
  /** The include precedes every rule (else CEF also lands in /var/log/syslog), and the rest is the original byte for byte. */
  const includedBeforeRules = (main: string, original: Buffer) => {
    const lines = main.split('\n');
    const rules = lines.map((l, i) => (/^[\w*,;.!=]+\.[\w*!=]+\s+\S/.test(l) ? i : -1)).filter((i) => i >= 0);
    expect(rules.length).toBeGreaterThan(0);
    expect(lines.indexOf(INCLUDE)).toBeLessThan(Math.min(...rules));
    expect(main.replace(RSYSLOG_INCLUDE_BLOCK, '')).toBe(original.toString('utf8'));
  };

  it('install adds the include before the rules, shows it in the plan, and uninstall restores the file byte for byte', async () => {
    const fresh = tmp('scef-ts-orig-');
    cpSync(path.join(fixtures, 'debian12-rsyslog'), fresh, { recursive: true });
    dropInclude(fresh);
    const original = readFileSync(path.join(fresh, MAIN));

    const { root, out, logs, deps } = await installInto('debian12-rsyslog', {}, dropInclude);
    const main = readFileSync(path.join(root, MAIN), 'utf8');
    expect(includes(main)).toBe(1);
    includedBeforeRules(main, original);
    expect(out).toMatch(/update +\/etc\/rsyslog\.conf/);
    expect(logs.join('\n')).not.toContain('would be ignored');

    // A second install finds it in place: nothing to change, nothing appended twice.
    const again = await installInto('debian12-rsyslog', {}, (r) => cpSync(root, r, { recursive: true }));
    expect(again.out).toContain('Nothing to change');
    expect(includes(readFileSync(path.join(again.root, MAIN), 'utf8'))).toBe(1);

    await runUninstall({ yes: true, dryRun: false, root, removeUser: false, purge: true }, deps);
    expect(readFileSync(path.join(root, MAIN)).equals(original)).toBe(true);
  });

  it('troubleshoot fails daemon.dropin, and --fix adds the include once before the rules, backed up and restorable', async () => {
    const { root } = await installInto('debian12-rsyslog', {});
    dropInclude(root);
    const original = readFileSync(path.join(root, MAIN));
    const restarts: unknown[] = [];
    const plain = await runTroubleshoot({ probes: 0 }, tsDeps(root, restarts));
    const c = plain.checks.find((x) => x.id === 'daemon.dropin')!;
    expect(c.status).toBe('fail');
    expect(c.message).toContain('/etc/rsyslog.conf does not include /etc/rsyslog.d/*.conf');
    expect(c.fix).toContain(INCLUDE);

    const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, tsDeps(root, restarts));
    expect(fixed.checks.find((x) => x.id === 'daemon.dropin')!.status).toBe('pass');
    const main = readFileSync(path.join(root, MAIN), 'utf8');
    expect(includes(main)).toBe(1);
    includedBeforeRules(main, original);
    expect(restarts.length).toBeGreaterThan(0);
    const state = await readState(createFsRoot(root));
    const rec = state!.files.find((f) => f.path === '/etc/rsyslog.conf')!;
    expect(readFileSync(path.join(root, rec.backup!)).equals(original)).toBe(true);
  });
});

// Issue 15: the unit's ordering against rsyslog reached an existing install only when install ran again.
describe('forwarder.unit: the installed systemd unit against what install renders', () => {
  const UNIT = 'etc/systemd/system/sentinel-cef-forwarder.service';
  const bootedSystemd = (root: string) => {
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
  };
  /** The unit as installs before the fix wrote it: After= only. */
  const oldUnit = (unit: string) => unit.replace(/^PartOf=rsyslog\.service\n/m, '').replace(/^WantedBy=rsyslog\.service\n/m, '');
  const deps = (root: string, calls: string[][], fail?: string) =>
    testDeps(root, {
      exec: fakeExec({ systemctl: (args) => (args.join(' ') === fail ? { exitCode: 1, stderr: `${fail}: failed` } : {}) }, { calls }),
      services: { startForwarder: async () => '', restartDaemon: async () => 'ok' },
    });

  it('an old (After=-only) unit fails; --fix rewrites it, reloads and re-enables; a second run has nothing to do', async () => {
    const { root } = await installInto('debian12-rsyslog', {}, bootedSystemd);
    const installed = readFileSync(path.join(root, UNIT), 'utf8');
    expect(installed).toMatch(/^PartOf=rsyslog\.service$/m);
    writeFileSync(path.join(root, UNIT), oldUnit(installed));

    const plain = await runTroubleshoot({ probes: 0 }, deps(root, []));
    const c = plain.checks.find((x) => x.id === 'forwarder.unit')!;
    expect(c.status).toBe('fail');
    expect(c.message).toContain('lacks PartOf=rsyslog.service, WantedBy=rsyslog.service');
    expect(c.fix).toContain('systemctl reenable sentinel-cef-forwarder.service');

    const calls: string[][] = [];
    const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, deps(root, calls));
    const after = fixed.checks.find((x) => x.id === 'forwarder.unit')!;
    expect(after.status).toBe('pass');
    expect(readFileSync(path.join(root, UNIT), 'utf8')).toBe(installed);
    const reload = commandLines(calls).indexOf('systemctl daemon-reload');
    expect(reload).toBeGreaterThanOrEqual(0);
    expect(commandLines(calls).indexOf('systemctl reenable sentinel-cef-forwarder.service')).toBeGreaterThan(reload);
    // Our own text now: install sees no hand edit to replace.
    expect((await readState(createFsRoot(root)))?.written?.['/etc/systemd/system/sentinel-cef-forwarder.service']).toBe(
      createHash('sha256').update(installed).digest('hex'),
    );

    const again: string[][] = [];
    const second = await runTroubleshoot({ probes: 0, fix: true, yes: true }, deps(root, again));
    expect(second.checks.find((x) => x.id === 'forwarder.unit')!.details?.fix).toBeUndefined();
    expect(commandLines(again)).not.toContain('systemctl reenable sentinel-cef-forwarder.service');
  });

  it('a failing systemctl puts the old unit back byte for byte and says the fix failed', async () => {
    const { root } = await installInto('debian12-rsyslog', {}, bootedSystemd);
    const old = oldUnit(readFileSync(path.join(root, UNIT), 'utf8'));
    writeFileSync(path.join(root, UNIT), old);
    const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, deps(root, [], 'reenable sentinel-cef-forwarder.service'));
    const c = fixed.checks.find((x) => x.id === 'forwarder.unit')!;
    expect(c.status).toBe('fail');
    expect(c.details?.fix).toMatchObject({ applied: false, error: expect.stringContaining('reenable') });
    expect(readFileSync(path.join(root, UNIT), 'utf8')).toBe(old);
    // The rollback's own systemctl failure is reported too, not swallowed (review finding 4).
    expect((c.details?.fix as { error: string }).error).toMatch(
      /after restoring \/etc\/systemd\/system\/sentinel-cef-forwarder\.service: .*reenable/,
    );
  });

  // Review finding 2: an older record (no unit inputs) with a config that does not parse cannot say the sink's
  // ReadWritePaths=; rendering anyway would report drift and --fix would lock the forwarder out of its sink.
  it('an older record and an invalid config: skip, and --fix leaves the unit alone', async () => {
    const { root } = await installInto('debian12-rsyslog', {}, bootedSystemd);
    const installed = readFileSync(path.join(root, UNIT), 'utf8');
    expect(installed).toContain('/var/tmp/scef');
    const statePath = path.join(root, 'var/lib/sentinel-cef/install-state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as { options: { unit?: unknown } };
    delete state.options.unit;
    writeFileSync(statePath, JSON.stringify(state));
    writeFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), '{"sink": ');
    const calls: string[][] = [];
    const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, deps(root, calls));
    const c = fixed.checks.find((x) => x.id === 'forwarder.unit')!;
    expect(c).toMatchObject({ status: 'skip', message: expect.stringContaining('cannot derive the unit while the config is invalid') });
    expect(c.details?.fix).toBeUndefined();
    expect(readFileSync(path.join(root, UNIT), 'utf8')).toBe(installed);
    expect(commandLines(calls)).not.toContain('systemctl daemon-reload');
  });

  it('an install record that cannot be read fails (it is not taken for no install)', async () => {
    const { root } = await installInto('debian12-rsyslog', {}, bootedSystemd);
    writeFileSync(path.join(root, 'var/lib/sentinel-cef/install-state.json'), '{"options": {"mode": "daem');
    const r = await runTroubleshoot({ probes: 0 }, deps(root, []));
    const c = r.checks.find((x) => x.id === 'forwarder.unit')!;
    expect(c.status).toBe('fail');
    expect(c.message).toMatch(/^\/var\/lib\/sentinel-cef\/install-state\.json cannot be read: /);
  });

  // install records the unit's inputs; a record older than that derives them, reading ExecStart's node as systemd does.
  // --node refuses such a path, but `node` on PATH may be anywhere.
  const oddNode = '/opt/my node%1/bin/node';
  const installOddNode = () => {
    let root = '';
    const prepare = (r: string) => {
      root = r;
      bootedSystemd(r);
    };
    const exec = fakeExec(
      {},
      {
        which: (cmd) => (cmd === 'node' ? oddNode : null),
        otherwise: (cmd) => {
          if (cmd === 'useradd')
            writeFileSync(
              path.join(root, 'etc/passwd'),
              `sentinel-cef:x:${process.getuid!()}:${process.getgid!()}::/var/lib/sentinel-cef:/usr/sbin/nologin\n`,
            );
          return { stdout: cmd === oddNode ? 'v20.19.0\n' : '' };
        },
      },
    );
    return installInto('debian12-rsyslog', {}, prepare, { exec });
  };

  it.each([
    { record: 'recorded', oldRecord: false },
    { record: 'derived from an older record', oldRecord: true },
  ])(
    'a node path with a space and a percent sign is no drift ($record), and --fix writes the unit install wrote',
    async ({ oldRecord }) => {
      const { root } = await installOddNode();
      const installed = readFileSync(path.join(root, UNIT), 'utf8');
      expect(installed).toContain('ExecStart="/opt/my node%%1/bin/node" ');
      const statePath = path.join(root, 'var/lib/sentinel-cef/install-state.json');
      const state = JSON.parse(readFileSync(statePath, 'utf8')) as { options: { unit?: unknown } };
      if (!oldRecord) expect(state.options.unit).toMatchObject({ nodePath: oddNode });
      else {
        delete state.options.unit;
        writeFileSync(statePath, JSON.stringify(state));
      }
      const plain = await runTroubleshoot({ probes: 0 }, deps(root, []));
      expect(plain.checks.find((x) => x.id === 'forwarder.unit')).toMatchObject({ status: 'pass' });
      writeFileSync(path.join(root, UNIT), oldUnit(installed));
      const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, deps(root, []));
      expect(fixed.checks.find((x) => x.id === 'forwarder.unit')).toMatchObject({ status: 'pass' });
      expect(readFileSync(path.join(root, UNIT), 'utf8')).toBe(installed);
    },
  );

  it('--fix takes the install lock: while an install holds it, the unit is left alone and the fix says why', async () => {
    const { root } = await installInto('debian12-rsyslog', {}, bootedSystemd);
    const old = oldUnit(readFileSync(path.join(root, UNIT), 'utf8'));
    writeFileSync(path.join(root, UNIT), old);
    // A live process holds it (our parent), as a running install would.
    writeFileSync(path.join(root, 'var/lib/sentinel-cef/install.lock'), `${process.ppid}\n`);
    const calls: string[][] = [];
    const fixed = await runTroubleshoot({ probes: 0, fix: true, yes: true }, deps(root, calls));
    const c = fixed.checks.find((x) => x.id === 'forwarder.unit')!;
    expect(c.status).toBe('fail');
    expect(c.details?.fix).toMatchObject({
      applied: false,
      error: expect.stringContaining('another sentinel-cef install or uninstall is running'),
    });
    expect(readFileSync(path.join(root, UNIT), 'utf8')).toBe(old);
    expect(commandLines(calls)).not.toContain('systemctl daemon-reload');
    expect(existsSync(path.join(root, 'var/lib/sentinel-cef/install.lock'))).toBe(true);
  });

  it('skips where PID 1 is not systemd', async () => {
    const { root } = await installInto('debian12-rsyslog', {});
    const r = await runTroubleshoot({ probes: 0 }, deps(root, []));
    expect(r.checks.find((x) => x.id === 'forwarder.unit')!.status).toBe('skip');
  });
});
