import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo, sandbox, sandboxSkipReason } from './sandbox-env.js';

// `troubleshoot` against real rsyslog and syslog-ng in the sandbox: a healthy install passes, and each way of
// breaking the chain is caught by the right check with the right fix.
const reason = sandboxSkipReason();
if (reason) console.warn(`troubleshoot sandbox tests skipped: ${reason}`);

interface Check {
  id: string;
  status: 'pass' | 'warn' | 'fail' | 'skip';
  message: string;
  fix?: string;
  details?: Record<string, unknown>;
}

describe.skipIf(reason !== null).each(['rsyslog', 'syslog-ng'] as const)('troubleshoot on real %s in the sandbox', (daemon) => {
  let dir: string;
  const rc = (name: string) => readFileSync(path.join(dir, `${name}.rc`), 'utf8').trim();
  const err = (name: string) => (existsSync(path.join(dir, `${name}.err`)) ? readFileSync(path.join(dir, `${name}.err`), 'utf8') : '');
  const report = (name: string): { ok: boolean; checks: Check[] } => {
    const text = readFileSync(path.join(dir, `${name}.json`), 'utf8');
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${name}.json is not JSON (stderr: ${err(name)}): ${text.slice(0, 500)}`);
    }
  };
  const check = (name: string, id: string): Check => {
    const c = report(name).checks.find((x) => x.id === id);
    if (!c) throw new Error(`${name}: no check ${id}`);
    return c;
  };
  const failed = (name: string) =>
    report(name)
      .checks.filter((c) => c.status === 'fail')
      .map((c) => `${c.id}: ${c.message}`);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), `scef-ts-${daemon}-`));
    chmodSync(dir, 0o755);
    // No sink directory made here: install refuses one others can write (a planted link), and makes its own.
    const r = await execa(
      sandbox,
      ['run', '--daemon', daemon, '--', 'bash', path.join(repo, 'test/sandbox/troubleshoot-scenario.sh'), dir, daemon],
      { reject: false, timeout: 420_000 },
    );
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}`);
  }, 450_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes a healthy install with every probe delivered over TCP and UDP', () => {
    expect(rc('install'), err('install')).toBe('0');
    expect(failed('healthy')).toEqual([]);
    expect(rc('healthy')).toBe('0');
    expect(report('healthy').ok).toBe(true);
    expect(check('healthy', 'e2e.probes')).toMatchObject({ status: 'pass' });
    expect(check('healthy', 'e2e.probes').message).toContain('4/4 probes delivered (tcp 2/2, udp 2/2)');
    expect(check('healthy', 'daemon.running').message).toContain(daemon);
    expect(check('healthy', 'daemon.dropin').status).toBe('pass');
    expect(check('healthy', 'daemon.syntax').status).toBe('pass');
    expect(check('healthy', 'daemon.forwarding').status).toBe('pass');
    expect(check('healthy', 'forwarder.running').status).toBe('pass');
    const rows = readFileSync(path.join(dir, 'sink/rows.ndjson'), 'utf8');
    const ids = (check('healthy', 'e2e.probes').details!.probes as Array<{ id: string }>).map((p) => p.id);
    for (const id of ids) expect(rows).toContain(id);
  });

  it('prints the human report and writes a support bundle on a healthy install', () => {
    expect(rc('healthy-human'), err('healthy-human')).toBe('0');
    const out = readFileSync(path.join(dir, 'healthy-human.out'), 'utf8');
    expect(out).toMatch(/^OK: \d+ passed/m);
    expect(rc('healthy-bundle')).toBe('0');
    expect(existsSync(path.join(dir, 'bundle.tar.gz'))).toBe(true);
  });

  it('catches a stopped forwarder, and --fix --yes starts it again', () => {
    expect(rc('forwarder-stopped')).toBe('1');
    const c = check('forwarder-stopped', 'forwarder.running');
    expect(c.status).toBe('fail');
    expect(c.fix).toMatch(/start|restart/);
    expect(check('forwarder-stopped', 'forwarder.admin').status).toBe('fail');
    expect(check('forwarder-stopped', 'e2e.probes').details!.stoppedAt).toBe('forwarder-down');
    expect(failed('forwarder-fixed')).toEqual([]);
    expect(check('forwarder-fixed', 'forwarder.running').details!.fix).toMatchObject({ applied: true });
    expect(check('forwarder-fixed', 'e2e.probes').status).toBe('pass');
  });

  it.skipIf(daemon !== 'rsyslog')(
    'reports CEF spilled to the disk queue while the forwarder is down, and passes once rsyslog delivered it',
    () => {
      const env = Object.fromEntries(
        readFileSync(path.join(dir, 'spool.env'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split('=') as [string, string]),
      );
      const gen = JSON.parse(readFileSync(path.join(dir, 'spool-gen.json'), 'utf8')) as { sent: number };
      expect(gen.sent).toBe(60000);
      // Past queue.highWatermark (40,000) the action queue writes to sentinel-cef-fwd.NNNNNNNN in the work directory.
      expect(readFileSync(path.join(dir, 'spool-files-down.txt'), 'utf8')).toMatch(/sentinel-cef-fwd\.0000000[1-9]/);

      const down = check('spool-down', 'daemon.spool');
      expect(down.status).toBe('warn');
      expect(down.message).toMatch(
        /^\d+ bytes .*of CEF wait in rsyslog's disk queue \(\/var\/spool\/rsyslog\) for the forwarder, which is not accepting/,
      );
      expect(down.fix).toContain('forwarder.running');
      const dd = down.details as { dir: string; fileCount: number; fileBytes: number; pendingBytes: number; forwarderUp: boolean };
      expect(dd.dir).toBe('/var/spool/rsyslog');
      expect(dd.forwarderUp).toBe(false);
      expect(dd.fileCount).toBeGreaterThan(1);
      expect(dd.pendingBytes).toBeGreaterThan(0);
      expect(dd.pendingBytes).toBeLessThanOrEqual(dd.fileBytes);
      expect(check('spool-down', 'forwarder.running').status).toBe('fail');

      expect(check('spool-fix', 'forwarder.running').details!.fix).toMatchObject({ applied: true });
      // rsyslog sent the spilled events once the forwarder was back, some twice when it resumed its action
      // (at-least-once, at most a dequeue batch). Not all: across the forwarder's stop and restart, 2–4 of
      // the 60,000 went missing in 2 of 5 runs (plain TCP from omfwd has no acknowledgement; see
      // docs/RELIABILITY.md, findings). More than a handful is a failure of the spool path itself.
      expect(Number(env.delivered)).toBeGreaterThanOrEqual(60000 - 20);
      expect(Number(env.delivered)).toBeLessThanOrEqual(60000);
      expect(Number(env.rows) - Number(env.delivered)).toBeLessThanOrEqual(1024);
      const drained = check('spool-drained', 'daemon.spool');
      expect(drained.status).toBe('pass');
      expect(drained.message).toContain("nothing waits in rsyslog's disk queue (/var/spool/rsyslog)");
      expect((drained.details as { pendingBytes: number }).pendingBytes).toBe(0);
      console.log(`daemon.spool on rsyslog: ${JSON.stringify(env)}; down: ${down.message}; drained: ${drained.message}`);
    },
  );

  it('catches a removed drop-in, and --fix --yes renders it again', () => {
    expect(rc('dropin-removed')).toBe('1');
    const c = check('dropin-removed', 'daemon.dropin');
    expect(c.status).toBe('fail');
    expect(c.message).toContain('is missing');
    expect(c.fix).toContain('sentinel-cef install');
    expect(check('dropin-removed', 'e2e.probes').status).toBe('fail');
    expect(['daemon-not-receiving', 'daemon-not-forwarding']).toContain(check('dropin-removed', 'e2e.probes').details!.stoppedAt);
    expect(failed('dropin-fixed')).toEqual([]);
    expect(check('dropin-fixed', 'daemon.dropin').status).toBe('pass');
  });

  it('catches a stopped daemon, and --fix --yes starts it', () => {
    expect(rc('daemon-stopped')).toBe('1');
    expect(check('daemon-stopped', 'daemon.running')).toMatchObject({ status: 'fail' });
    expect(check('daemon-stopped', 'daemon.listening').status).toBe('fail');
    expect(check('daemon-stopped', 'e2e.probes').details!.stoppedAt).toBe('daemon-not-receiving');
    expect(failed('daemon-fixed')).toEqual([]);
  });

  it('names the program holding port 514', () => {
    expect(rc('port-taken')).toBe('1');
    const c = check('port-taken', 'daemon.listening');
    expect(c.status).toBe('fail');
    expect(c.message).toMatch(/held by another program: .*node pid \d+/);
    expect(check('port-taken', 'e2e.probes').details!.stoppedAt).toBe('daemon-not-receiving');
  });

  it('after install --port 1514 --protocol tcp, checks and --fix use that port, and a --port flag says it overrides', () => {
    expect(rc('install-1514'), err('install-1514')).toBe('0');
    expect(failed('custom-port')).toEqual([]);
    expect(rc('custom-port')).toBe('0');
    expect(check('custom-port', 'daemon.dropin').status).toBe('pass');
    expect(check('custom-port', 'e2e.probes').message).toContain('2/2 probes delivered (tcp 2/2');
    expect(check('custom-port-fixed', 'daemon.dropin').details!.fix).toMatchObject({ applied: true });
    expect(failed('custom-port-fixed')).toEqual([]);
    const dropin = readFileSync(path.join(dir, 'custom-port-dropin.conf'), 'utf8');
    expect(dropin).toMatch(daemon === 'rsyslog' ? /port="1514"/ : /port\(1514\)/);
    expect(dropin).not.toMatch(/port="514"|port\(514\)|port="1515"|port\(1515\)/);
    expect(report('custom-port-flag') as unknown).toMatchObject({
      settings: expect.arrayContaining([{ name: 'port', value: 514, from: 'flag', installed: 1514 }]),
    });
  });

  it.skipIf(daemon !== 'rsyslog')('rsyslog.conf without the rsyslog.d include: caught, repaired by --fix and by install', () => {
    expect(check('include-missing', 'daemon.dropin')).toMatchObject({ status: 'fail' });
    expect(check('include-missing', 'daemon.dropin').message).toContain('/etc/rsyslog.conf does not include /etc/rsyslog.d/*.conf');
    expect(failed('include-fixed')).toEqual([]);
    const orig = readFileSync(path.join(dir, 'rsyslog.conf.orig'), 'utf8');
    const count = (t: string) => t.split('\n').filter((l) => l.trim() === '$IncludeConfig /etc/rsyslog.d/*.conf').length;
    expect(count(readFileSync(path.join(dir, 'rsyslog.conf.fixed'), 'utf8'))).toBe(1);
    expect(rc('include-install'), err('include-install')).toBe('0');
    const plan = readFileSync(path.join(dir, 'include-install.out'), 'utf8');
    expect(plan).toMatch(/update +\/etc\/rsyslog\.conf/);
    expect(plan).not.toContain('Nothing to change');
    expect(count(readFileSync(path.join(dir, 'rsyslog.conf.installed'), 'utf8'))).toBe(1);
    expect(failed('include-installed')).toEqual([]);
    expect(orig.length).toBeGreaterThan(0);
  });

  it('passes against a healthy Azure workspace (mock) and proves the key', () => {
    // The daemon reconnects to the restarted forwarder within seconds (syslog-ng: time-reopen(2) on our
    // destination), so install's own probe through the new sink must succeed.
    expect(rc('install-azure'), err('install-azure')).toBe('0');
    expect(failed('azure-reconnect')).toEqual([]);
    expect(failed('azure-healthy')).toEqual([]);
    expect(check('azure-healthy', 'azure.endpoint').status).toBe('pass');
    expect(check('azure-healthy', 'azure.credentials').status).toBe('pass');
    expect(check('azure-healthy', 'azure.clock').status).toBe('pass');
  });

  it('catches a workspace refusing the key (403) with the key fix', () => {
    expect(rc('azure-403')).toBe('1');
    const p = check('azure-403', 'e2e.probes');
    expect(p.details!.stoppedAt).toBe('forwarder-not-delivering');
    expect(check('azure-403', 'azure.credentials').status).toBe('fail');
    expect(check('azure-403', 'azure.credentials').fix).toContain('workspace key');
    expect(p.fix).toContain('key');
  });

  it('catches a sink that is down: probes received, not delivered, the queue holds them', () => {
    expect(rc('azure-down')).toBe('1');
    const p = check('azure-down', 'e2e.probes');
    expect(p.details!.stoppedAt).toBe('forwarder-not-delivering');
    expect(check('azure-down', 'forwarder.delivery').status).toBe('fail');
    expect(check('azure-down', 'forwarder.delivery').message).toContain('503');
    expect((check('azure-down', 'forwarder.queue').details as { records: number }).records).toBeGreaterThan(0);
  });
});
