import { afterEach, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFsRoot } from '../../src/system/fs-root.js';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import type { Exec } from '../../src/system/exec.js';
import { forwarderOnlyListen, runInstall, sendWithProxyHeader, type InstallDeps } from '../../src/install/run-install.js';
import { runUninstall } from '../../src/install/run-uninstall.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { readState } from '../../src/install/transaction.js';
import { CliError } from '../../src/errors.js';
import { needsPrivilegedPort, unitInputsFrom, type Services } from '../../src/install/service.js';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import { parseListenUrl } from '../../src/config/listen.js';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { STOP_DRAIN_MS } from '../../src/forwarder/intake.js';
import { detectIpv6 } from '../../src/system/ipv6.js';
import { cef, makeConfig, readRows, silent, tcpConnect, tempDir, waitFor, writeAndEnd } from '../forwarder/helpers.js';
import { snapshot } from './install-helpers.js';
import { fakeSystemExec } from '../helpers/fake-exec.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const dirs: string[] = [];
let fwd: RunningForwarder | null = null;
afterEach(async () => {
  await fwd?.shutdown();
  fwd = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function temp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A Debian 12 image with rsyslog installed, under systemd, with IPv6 (dual-stack) and nothing on 514 yet. */
function debianRoot(o: { systemd?: boolean; ipv6?: 'dual-stack' | 'separate' | 'none' } = {}): string {
  const root = temp('scef-fwdonly-');
  cpSync(path.join(fixtures, 'debian12-rsyslog'), root, { recursive: true });
  if (o.systemd !== false) {
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
  } else {
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'tini\n');
  }
  mkdirSync(path.join(root, 'proc/net'), { recursive: true });
  mkdirSync(path.join(root, 'proc/sys/net/ipv6'), { recursive: true });
  mkdirSync(path.join(root, 'proc/sys/net/ipv4'), { recursive: true });
  writeFileSync(path.join(root, 'proc/sys/net/ipv4/ip_unprivileged_port_start'), '1024\n');
  if ((o.ipv6 ?? 'dual-stack') !== 'none') {
    writeFileSync(path.join(root, 'proc/net/if_inet6'), '00000000000000000000000000000001 01 80 10 80       lo\n');
    writeFileSync(path.join(root, 'proc/sys/net/ipv6/bindv6only'), o.ipv6 === 'separate' ? '1\n' : '0\n');
  }
  return root;
}

/** rsyslogd (pid 4343) holding udp and tcp6 port 514, as on a stock image. */
function rsyslogOn514(root: string): void {
  cpSync(path.join(fixtures, 'proc-net/proc/net'), path.join(root, 'proc/net'), { recursive: true });
  mkdirSync(path.join(root, 'proc/4343/fd'), { recursive: true });
  writeFileSync(path.join(root, 'proc/4343/comm'), 'rsyslogd\n');
  symlinkSync('socket:[1004]', path.join(root, 'proc/4343/fd/3'));
  symlinkSync('socket:[1005]', path.join(root, 'proc/4343/fd/4'));
}

function fakeExec(root: string) {
  return fakeSystemExec(root, {
    nodeVersion: 'v22.13.0',
    answer: (cmd, args) =>
      cmd === 'systemctl' && (args[0] === 'is-enabled' || args[0] === 'is-active')
        ? { exitCode: 1, stdout: '', stderr: '', failed: true }
        : undefined,
  });
}

function deps(root: string, exec: Exec) {
  const out: string[] = [];
  const log: string[] = [];
  const bundle = path.join(temp('scef-bundle-'), 'forwarder.mjs');
  writeFileSync(bundle, '// forwarder bundle\n');
  const services: Services = {
    async startForwarder() {
      log.push('start forwarder');
      return 'started';
    },
    async stopForwarder() {
      log.push('stop forwarder');
    },
    async restartDaemon(_c, d) {
      log.push(`restart ${d}`);
      return { ok: true, detail: 'restarted' };
    },
    async isForwarderSupervised() {
      return null;
    },
    async runningDaemonPids() {
      return [4343];
    },
  };
  const d: InstallDeps = {
    fs: createFsRoot(root),
    exec,
    prompter: createScriptedPrompter([]),
    log: (l) => log.push(l),
    out: (t) => out.push(t),
    env: {},
    forwarderBundle: bundle,
    services,
  };
  return { out, log, deps: d };
}

const opts = (o: Record<string, unknown> = {}) =>
  installOptionsSchema.parse({ yes: true, verify: false, forwarderOnly: true, sink: 'file:/var/log/sentinel-cef-rows/rows.ndjson', ...o });
const daemonFiles = (snap: Record<string, string>) =>
  Object.fromEntries(Object.entries(snap).filter(([k]) => k.startsWith('etc/rsyslog') || k.startsWith('etc/syslog-ng')));
const unitOf = (root: string) => readFileSync(path.join(root, 'etc/systemd/system/sentinel-cef-forwarder.service'), 'utf8');
const configOf = (root: string) => JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));

describe('install --forwarder-only', () => {
  it('--dry-run: the plan has no daemon file, the config listens on 514 everywhere; nothing changes, no daemon is asked', async () => {
    const root = debianRoot();
    const before = snapshot(root);
    const exec = fakeExec(root);
    const d = deps(root, exec);
    const r = await runInstall(opts({ dryRun: true }), d.deps);
    expect(r.daemon).toBeNull();
    const plan = d.out.join('');
    expect(plan).toContain('Plan (forwarder-only, sink file /var/log/sentinel-cef-rows/rows.ndjson)');
    expect(plan).toContain('+    "udp://[::]:514"');
    expect(plan).toContain('+    "tcp://[::]:514"');
    expect(plan).toContain('+  "readiness": "0.0.0.0:8080"');
    expect(plan).toContain('+CapabilityBoundingSet=CAP_NET_BIND_SERVICE');
    expect(r.changes.map((c) => c.file.path).filter((p) => /rsyslog|syslog-ng/.test(p))).toEqual([]);
    expect(plan).toContain('Dry run: nothing was changed.');
    expect(snapshot(root)).toEqual(before);
    // Only the node version: no rsyslogd -N1, no package manager.
    expect(exec.calls).toEqual([['/usr/bin/node', '--version']]);
  });

  it('applies without touching the daemon, writes a config the forwarder accepts, and uninstall restores every byte', async () => {
    const root = debianRoot();
    const before = snapshot(root);
    const exec = fakeExec(root);
    const d = deps(root, exec);
    const r = await runInstall(opts({ readiness: '[::]:8081', proxy: 'v2' }), d.deps);
    expect(r.changed).toBe(true);
    const after = snapshot(root);
    // The syslog daemon's files are byte-identical, it is neither checked nor restarted.
    expect(daemonFiles(after)).toEqual(daemonFiles(before));
    expect(d.log.filter((l) => l.startsWith('restart '))).toEqual([]);
    expect(exec.calls.filter((c) => /rsyslog|syslog-ng/.test(c.join(' ')))).toEqual([]);
    const cfg = configOf(root);
    expect(cfg.listen).toEqual(['udp://[::]:514', 'tcp://[::]:514?proxy=v2']);
    expect(cfg.readiness).toBe('[::]:8081');
    expect(cfg.admin).toBe('127.0.0.1:25227');
    const parsed = forwarderConfigSchema.parse(cfg);
    expect(parsed.listen.map((u) => parseListenUrl(u))).toMatchObject([
      { protocol: 'udp', host: '::', port: 514 },
      { protocol: 'tcp', host: '::', port: 514, proxy: 'v2' },
    ]);
    // The unit stops later than the drain: readiness grace (15 s by default), connections read to their end, the queue (10 s).
    expect(Number(/^TimeoutStopSec=(\d+)/m.exec(unitOf(root))![1])).toBeGreaterThan(15 + STOP_DRAIN_MS / 1000 + parsed.drainTimeoutSec);
    expect(d.out.join('')).toContain(
      'Installed: the forwarder listens on port 514 (udp://[::]:514, tcp://[::]:514?proxy=v2); readiness on http://[::]:8081/.',
    );
    const state = await readState(createFsRoot(root));
    expect(state?.options).toMatchObject({ mode: 'forwarder-only', daemon: 'none', port: 514, readiness: '[::]:8081' });

    // Running it again changes nothing.
    const again = deps(root, exec);
    expect((await runInstall(opts({ readiness: '[::]:8081', proxy: 'v2' }), again.deps)).changed).toBe(false);

    const u = deps(root, exec);
    await runUninstall({ yes: true, dryRun: false, root, removeUser: true, purge: true }, u.deps);
    const gone = snapshot(root);
    for (const k of Object.keys(gone)) if (k === 'etc/passwd' || k.startsWith('var/log/sentinel-cef-rows/')) delete gone[k];
    expect(gone).toEqual(before);
  });

  it('the unit holds CAP_NET_BIND_SERVICE and nothing else, runs as the service user, without a private user namespace', async () => {
    const root = debianRoot();
    await runInstall(opts(), deps(root, fakeExec(root)).deps);
    const unit = unitOf(root);
    expect(unit).toMatch(/^User=sentinel-cef$/m);
    expect(unit.match(/^CapabilityBoundingSet=.*$/gm)).toEqual(['CapabilityBoundingSet=CAP_NET_BIND_SERVICE']);
    expect(unit.match(/^AmbientCapabilities=.*$/gm)).toEqual(['AmbientCapabilities=CAP_NET_BIND_SERVICE']);
    expect(unit).not.toMatch(/^PrivateUsers=/m);
    // The rest of the hardening is the normal unit's, line for line.
    const normal = temp('scef-normal-');
    cpSync(root, normal, { recursive: true });
    rmSync(path.join(normal, 'var/lib/sentinel-cef/install-state.json'));
    const hardening = (u: string) =>
      u
        .split('\n')
        .filter(
          (l) =>
            /^(NoNewPrivileges|Protect|Private|Restrict|SystemCall|LockPersonality|RemoveIPC|ProcSubset|UMask|User|Group)/.test(l) &&
            !/^PrivateUsers/.test(l),
        );
    await runInstall(
      installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/log/sentinel-cef-rows/rows.ndjson' }),
      deps(normal, fakeExec(normal)).deps,
    );
    expect(hardening(unit)).toEqual(hardening(unitOf(normal)));
    expect(unitOf(normal)).toMatch(/^CapabilityBoundingSet=$/m);
    expect(unitOf(normal)).toMatch(/^PrivateUsers=yes$/m);
  });

  it('on unprivileged ports the unit gets no capability at all', async () => {
    const root = debianRoot();
    await runInstall(opts({ port: 5514, readiness: '0.0.0.0:8080' }), deps(root, fakeExec(root)).deps);
    const unit = unitOf(root);
    expect(unit).toMatch(/^CapabilityBoundingSet=$/m);
    expect(unit).toMatch(/^AmbientCapabilities=$/m);
    expect(unit).toMatch(/^PrivateUsers=yes$/m);
    expect(configOf(root).listen).toEqual(['udp://[::]:5514', 'tcp://[::]:5514']);
  });

  it.each([
    ['dual-stack', 'both', ['udp://[::]:514', 'tcp://[::]:514']],
    ['separate', 'both', ['udp://0.0.0.0:514', 'udp://[::]:514', 'tcp://[::]:514']],
    ['none', 'both', ['udp://0.0.0.0:514', 'tcp://0.0.0.0:514']],
    ['dual-stack', 'tcp', ['tcp://[::]:514']],
    ['separate', 'udp', ['udp://0.0.0.0:514', 'udp://[::]:514']],
  ] as const)('IPv6 %s, --protocol %s: listens on %j', async (ipv6, protocol, listen) => {
    expect(forwarderOnlyListen(514, protocol, ipv6)).toEqual(listen);
    const root = debianRoot({ ipv6 });
    await runInstall(opts({ protocol }), deps(root, fakeExec(root)).deps);
    expect(configOf(root).listen).toEqual(listen);
  });

  it('refuses in one line (exit 2) when rsyslog holds the port, naming the fix; nothing changes', async () => {
    const root = debianRoot();
    rsyslogOn514(root);
    const before = snapshot(root);
    const err = await runInstall(opts(), deps(root, fakeExec(root)).deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    expect((err as CliError).message).toBe('udp port 514 is held by rsyslogd (pid 4343): a forwarder-only node listens there itself');
    expect((err as CliError).suggestion).toContain('systemctl disable --now rsyslog syslog.socket');
    expect(snapshot(root)).toEqual(before);
    // Another port is fine: rsyslog keeps 514.
    await runInstall(opts({ port: 6514, protocol: 'tcp' }), deps(root, fakeExec(root)).deps);
    expect(configOf(root).listen).toEqual(['tcp://[::]:6514']);
  });

  it.each([
    [{ forwarderOnly: false, proxy: 'v2' }, '--proxy goes with --forwarder-only'],
    [{ forwarderOnly: false, maxConnectionAge: 600 }, '--max-connection-age goes with --forwarder-only'],
    [{ forwarderOnly: false, readiness: '0.0.0.0:25226' }, '--readiness port 25226 is the forwarder port (--forwarder-port): both are TCP'],
    [{ daemon: 'rsyslog' }, '--daemon and --forwarder-only exclude each other: a forwarder-only node has no syslog daemon'],
    [{ readiness: '0.0.0.0:25227' }, "--readiness port 25227 is the forwarder's admin API port (127.0.0.1:25227)"],
    [{ readiness: '0.0.0.0:514' }, '--readiness port 514 is the syslog port: both are TCP'],
  ])('refuses %j in one line, exit 2', async (o, message) => {
    const root = debianRoot();
    const before = snapshot(root);
    const err = (await runInstall(opts(o), deps(root, fakeExec(root)).deps).catch((e: unknown) => e)) as CliError;
    expect([err.message, err.exitCode]).toEqual([message, 2]);
    expect(snapshot(root)).toEqual(before);
  });

  it.each([
    [{}, 600],
    [{ maxConnectionAge: '0' }, 0],
    [{ maxConnectionAge: '3600' }, 3600],
  ])('%j: forwarder.json ages connections after %i s (what the balancer needs to spread senders again)', async (o, age) => {
    const root = debianRoot();
    const d = deps(root, fakeExec(root));
    await runInstall(opts(o), d.deps);
    const cfg = configOf(root);
    expect(cfg.limits).toEqual({ maxConnectionAgeSec: age });
    expect(forwarderConfigSchema.parse(cfg).limits.maxConnectionAgeSec).toBe(age);
  });

  it.each(['-1', '1.5', 'ten', '', '86401', '600s'])('--max-connection-age %j is refused in one line (exit 2)', (v) => {
    const r = installOptionsSchema.safeParse({ forwarderOnly: true, maxConnectionAge: v });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message)).toEqual([
      `--max-connection-age must be whole seconds from 0 (never) to 86400, got ${JSON.stringify(v).replace(/"/g, "'")}`,
    ]);
  });

  it('--readiness with a daemon in front: the forwarder answers the balancer too; no PROXY listener, no ageing', async () => {
    const root = debianRoot();
    const before = snapshot(root);
    const exec = fakeExec(root);
    const d = deps(root, exec);
    const normal = (o: Record<string, unknown> = {}) =>
      installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/log/sentinel-cef-rows/rows.ndjson', ...o });
    const r = await runInstall(normal({ readiness: '0.0.0.0:8080' }), d.deps);
    expect(r.daemon).toBe('rsyslog');
    const cfg = configOf(root);
    expect(cfg.readiness).toBe('0.0.0.0:8080');
    expect(cfg.limits).toBeUndefined();
    expect(cfg.listen.every((u: string) => u.includes('127.0.0.1:25226'))).toBe(true);
    expect(forwarderConfigSchema.parse(cfg).readiness).toBe('0.0.0.0:8080');
    // An unprivileged readiness port needs no capability: the normal hardened unit.
    expect(unitOf(root)).toMatch(/^CapabilityBoundingSet=$/m);
    expect((await readState(createFsRoot(root)))?.options).toMatchObject({ daemon: 'rsyslog', readiness: '0.0.0.0:8080' });
    expect((await readState(createFsRoot(root)))?.options?.mode).toBeUndefined();
    expect(d.out.join('')).toContain('readiness on http://0.0.0.0:8080/.');
    // Without --readiness nothing listens beyond loopback.
    await runUninstall({ yes: true, dryRun: false, root, removeUser: true, purge: true }, deps(root, exec).deps);
    await runInstall(normal(), deps(root, exec).deps);
    expect(configOf(root).readiness).toBeUndefined();
    await runUninstall({ yes: true, dryRun: false, root, removeUser: true, purge: true }, deps(root, exec).deps);
    const gone = snapshot(root);
    for (const k of Object.keys(gone)) if (k === 'etc/passwd' || k.startsWith('var/log/sentinel-cef-rows/')) delete gone[k];
    expect(gone).toEqual(before);
  });

  // Review finding 7: the capability follows the readiness port install parsed, one decision for the plan and the unit.
  it.each([
    [false, 514, 443, true],
    [false, 514, 8080, false],
    [true, 514, undefined, true],
    [true, 5514, 8080, false],
    [true, 5514, 80, true],
  ])('forwarderOnly %s, port %i, readiness port %s: the unit binds below 1024: %s', (forwarderOnly, port, readinessPort, expected) => {
    const inputs = unitInputsFrom({
      nodePath: '/usr/bin/node',
      sink: undefined,
      ...(forwarderOnly ? { mode: 'forwarder-only' as const } : {}),
      port,
      ...(readinessPort !== undefined ? { readinessPort } : {}),
      intakeStateFile: null,
    });
    expect(inputs.bindPrivilegedPort).toBe(expected);
    expect(inputs.bindPrivilegedPort).toBe(needsPrivilegedPort(forwarderOnly, port, readinessPort));
  });

  it('without systemd, refuses a port below the kernel floor (nothing could grant the capability)', async () => {
    const root = debianRoot({ systemd: false });
    const err = (await runInstall(opts(), deps(root, fakeExec(root)).deps).catch((e: unknown) => e)) as CliError;
    expect([err.message, err.exitCode]).toEqual([
      '--forwarder-only on port 514 needs systemd to grant CAP_NET_BIND_SERVICE to the sentinel-cef user (PID 1 here is tini)',
      2,
    ]);
    expect(err.suggestion).toContain('use ports from 1024 up');
    await runInstall(opts({ port: 5514, readiness: '0.0.0.0:8080' }), deps(root, fakeExec(root)).deps);
    expect(configOf(root).listen).toEqual(['udp://[::]:5514', 'tcp://[::]:5514']);
  });

  it('switching between forwarder-only and a daemon in front is refused until uninstall, both ways', async () => {
    const root = debianRoot();
    await runInstall(opts(), deps(root, fakeExec(root)).deps);
    const normal = installOptionsSchema.parse({ yes: true, verify: false, sink: 'file:/var/log/sentinel-cef-rows/rows.ndjson' });
    const e1 = (await runInstall(normal, deps(root, fakeExec(root)).deps).catch((e: unknown) => e)) as CliError;
    expect([e1.message, e1.exitCode]).toEqual([
      'this machine is installed forwarder-only (no syslog daemon); a daemon in front of it is another install',
      2,
    ]);
    await runUninstall({ yes: true, dryRun: false, root, removeUser: false, purge: false }, deps(root, fakeExec(root)).deps);
    await runInstall(normal, deps(root, fakeExec(root)).deps);
    const e2 = (await runInstall(opts(), deps(root, fakeExec(root)).deps).catch((e: unknown) => e)) as CliError;
    expect([e2.message, e2.exitCode]).toEqual([
      'this machine is installed with rsyslog in front of the forwarder; --forwarder-only is another install',
      2,
    ]);
  });
});

describe('the forwarder-only listeners on a real forwarder', () => {
  const send = (port: number, host: string, line: string) =>
    new Promise<void>((resolve, reject) => {
      const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      s.send(line, port, host, (e) => {
        s.close();
        if (e) reject(e);
        else resolve();
      });
    });

  it('take IPv4 and IPv6 senders on TCP and UDP (every row once), and a PROXY header before the install probe', async () => {
    const ipv6 = await detectIpv6(createFsRoot('/'));
    const dir = tempDir('fwdonly-');
    dirs.push(dir);
    const listen = [...forwarderOnlyListen(0, 'both', ipv6), 'tcp://127.0.0.1:0?proxy=v1', 'tcp://127.0.0.1:0?proxy=v2'];
    fwd = await startForwarder(makeConfig(dir, { listen }), { logger: silent });
    const hosts = ipv6 === 'none' ? ['127.0.0.1'] : ['127.0.0.1', '::1'];
    const plain = fwd.addresses.filter((a) => !a.url.includes('proxy'));
    let n = 0;
    const sent: string[] = [];
    for (const a of plain) {
      for (const h of hosts) {
        const line = cef(++n);
        sent.push(String(n));
        if (a.protocol === 'udp') await send(a.port, h, line);
        else await writeAndEnd(await tcpConnect(a.port, h), `${line}\n`);
      }
    }
    for (const a of fwd.addresses.filter((x) => x.url.includes('proxy'))) {
      sent.push(String(++n));
      await sendWithProxyHeader(cef(n), a.port, a.url.endsWith('v1') ? 'v1' : 'v2');
    }
    const rowsPath = path.join(dir, 'rows.ndjson');
    await waitFor(() => existsSync(rowsPath) && readRows(rowsPath).length >= sent.length, 10_000, 'rows');
    const ids = readRows(rowsPath).map((r) => String((r as Record<string, unknown>).DeviceEventClassID));
    expect(ids.sort()).toEqual(sent.sort());
  });
});
