import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo, sandbox, sandboxSkipReason } from './sandbox-env.js';

const reason = sandboxSkipReason();
if (reason) console.warn(`sandbox tests skipped: ${reason}`);

const read = (dir: string, f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '');

describe.skipIf(reason !== null).each(['rsyslog', 'syslog-ng'] as const)('install on real %s in the sandbox', (daemon) => {
  let dir: string;
  const hostBefore = { rsyslogD: existsSync('/etc/rsyslog.d'), syslogNg: existsSync('/etc/syslog-ng') };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), `scef-sbx-${daemon}-`));
    chmodSync(dir, 0o755);
    // About a minute on an idle machine; at load ~40 on 2 cores the sandbox took 100 s to start and each CLI run
    // 30-70 s (rsyslog's scenario 564 s in all). A bound, not a wait: it ends when the scenario does.
    const r = await execa(sandbox, ['run', '--daemon', daemon, '--', 'bash', path.join(repo, 'test/sandbox/scenario.sh'), dir, daemon], {
      reject: false,
      timeout: 900_000,
    });
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}`);
  }, 930_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('installs, proves the chain with its own probe, and delivers CEF over UDP and TCP and a Cisco ASA line', () => {
    expect(read(dir, 'install1.rc').trim(), read(dir, 'install1.err')).toBe('0');
    expect(read(dir, 'install1.out')).toMatch(
      /Probe probe-[0-9a-f-]+: port 514\/tcp -> (rsyslog|syslog-ng) -> forwarder -> file .* accepted after \d+ ms/,
    );
    // Without rsyslog-relp, rsyslog sends over plain TCP, and install says what that risks.
    if (daemon === 'rsyslog') expect(read(dir, 'install1.err') + read(dir, 'install1.out')).toContain('no omrelp module');
    const rows = read(dir, 'rows.ndjson')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const activities = rows.map((r) => r.Activity);
    expect(activities).toContain('udp event');
    expect(activities).toContain('tcp event');
    expect(rows.find((r) => r.Activity === 'tcp event')).toMatchObject({
      DeviceVendor: 'Acme',
      DeviceProduct: 'FW',
      DeviceEventClassID: '101',
      SourceIP: '10.0.0.3',
      DestinationIP: '10.0.0.4',
    });
    expect(rows.some((r) => JSON.stringify(r).includes('302013'))).toBe(true);
    expect(rows.some((r) => r.DeviceCustomString2Label === 'ProbeId')).toBe(true);
  });

  it('keeps CEF and ASA out of the local syslog files but lets other messages through', () => {
    const syslog = read(dir, 'syslog.txt');
    expect(syslog).toContain('plain-not-cef-marker');
    expect(syslog).not.toContain('udp event');
    expect(syslog).not.toContain('tcp event');
    expect(syslog).not.toContain('%ASA-');
  });

  it('changes nothing on a second run and on --dry-run', () => {
    expect(read(dir, 'install2.rc').trim(), read(dir, 'install2.err')).toBe('0');
    expect(read(dir, 'install2.out')).toContain('Nothing to change');
    expect(read(dir, 'installed2.sha')).toBe(read(dir, 'installed.sha'));
    expect(read(dir, 'dryrun.rc').trim(), read(dir, 'dryrun.err')).toBe('0');
    expect(read(dir, 'dryrun.out')).toContain('Dry run: nothing was changed.');
    expect(read(dir, 'dryrun.out')).toMatch(/^[-+].*(imtcp|transport\("tcp"\))/m);
    expect(read(dir, 'dryrun.sha')).toBe(read(dir, 'installed.sha'));
  });

  // The daemon's own first error line, naming the broken file (rsyslogd -N1 / syslog-ng --syntax-only).
  const alreadyBroken = (file: string) =>
    new RegExp(
      `^sentinel-cef: ${daemon}'s configuration is already invalid before any change \\(${daemon === 'rsyslog' ? 'rsyslogd -N1' : 'syslog-ng --syntax-only'}: .*${file}.*\\) — nothing was changed`,
      'm',
    );

  it("refuses a config that was broken before install, naming the daemon's error, and changes nothing", () => {
    expect(read(dir, 'prebroken.rc').trim(), read(dir, 'prebroken.err')).toBe('1');
    expect(read(dir, 'prebroken.err')).toMatch(alreadyBroken(daemon === 'rsyslog' ? '99-prebroken\\.conf' : 'zz-prebroken\\.conf'));
    expect(read(dir, 'prebroken.err')).not.toMatch(/new configuration|rolled back/);
    expect(read(dir, 'prebroken.sha')).toBe(read(dir, 'pre.sha'));
    expect(read(dir, 'prebroken.user')).toBe('');
  });

  it('refuses a drop-in of someone else broken after install, before changing anything, leaving the daemon running', () => {
    expect(read(dir, 'broken.rc').trim()).not.toBe('0');
    expect(read(dir, 'broken.err')).toMatch(alreadyBroken(daemon === 'rsyslog' ? '99-broken\\.conf' : 'zz-broken\\.conf'));
    expect(read(dir, 'broken.sha')).toBe(read(dir, 'installed.sha'));
    expect(read(dir, 'pid.before').trim()).not.toBe('');
    expect(read(dir, 'pid.after').trim()).toBe(read(dir, 'pid.before').trim());
  });

  it('uninstalls to the exact files it started from and stops the forwarder', () => {
    expect(read(dir, 'uninstall.rc').trim(), read(dir, 'uninstall.err')).toBe('0');
    expect(read(dir, 'post.sha')).toBe(read(dir, 'pre.sha'));
    expect(read(dir, 'pre.sha')).not.toBe('');
    expect(read(dir, 'forwarder.after').trim()).toBe('');
    expect(read(dir, 'pid.final').trim()).not.toBe('');
  });

  it(
    daemon === 'rsyslog'
      ? 'reuses an imudp input on 514 that rsyslog.conf already defines, without loading imudp twice'
      : 'appends the conf.d include where the main file lacks it, and restores the file on uninstall',
    () => {
      if (daemon === 'rsyslog') {
        expect(read(dir, 'reuse-install.rc').trim(), read(dir, 'reuse-install.err')).toBe('0');
        const dropin = read(dir, 'reuse.dropin');
        expect(dropin).not.toContain('imudp');
        expect(dropin).toContain('module(load="imtcp")');
        expect(read(dir, 'reuse.rows').trim()).toBe('1');
        expect(read(dir, 'reuse-uninstall.rc').trim(), read(dir, 'reuse-uninstall.err')).toBe('0');
        expect(read(dir, 'reuse.post')).toBe(read(dir, 'reuse.pre'));
      } else {
        expect(read(dir, 'noinclude-install.rc').trim(), read(dir, 'noinclude-install.err')).toBe('0');
        expect(read(dir, 'noinclude-install.out')).toMatch(/update +\/etc\/syslog-ng\/syslog-ng\.conf/);
        expect(read(dir, 'noinclude-install.out')).toMatch(/accepted after \d+ ms/);
        expect(read(dir, 'noinclude.tail').trim()).toBe('@include "/etc/syslog-ng/conf.d/*.conf"');
        expect(read(dir, 'noinclude-uninstall.rc').trim(), read(dir, 'noinclude-uninstall.err')).toBe('0');
        expect(read(dir, 'noinclude.post')).toBe(read(dir, 'noinclude.pre'));
      }
    },
  );

  it('refuses a drop-in planted as a link to /etc/shadow, in one line, printing none of it (issue 14)', () => {
    const dropin = daemon === 'rsyslog' ? '/etc/rsyslog.d/10-sentinel-cef.conf' : '/etc/syslog-ng/conf.d/sentinel-cef.conf';
    for (const step of ['link-dryrun', 'link-install']) {
      expect(read(dir, `${step}.rc`).trim()).toBe('1');
      expect(read(dir, `${step}.err`)).toContain(
        `refusing to write ${dropin}: it is a symbolic link to /etc/shadow; install never writes through a link`,
      );
      expect(read(dir, `${step}.out`)).not.toMatch(/^-root:/m);
    }
    expect(read(dir, 'link.post')).toBe(read(dir, 'link.pre'));
    expect(read(dir, 'shadow.post')).toBe(read(dir, 'shadow.pre'));
    expect(read(dir, 'link.target').trim()).toBe('/etc/shadow');
  });

  it('left the host untouched', async () => {
    expect(existsSync('/etc/rsyslog.d')).toBe(hostBefore.rsyslogD);
    expect(existsSync('/etc/syslog-ng')).toBe(hostBefore.syslogNg);
    // The daemons bind /dev/log: the sandbox's /dev is a tmpfs of its own, not the host's devtmpfs.
    expect(read(dir, 'dev.fstype').trim()).toBe('tmpfs');
    expect(read(dir, 'devlog.type').trim()).toBe('socket');
    const q = await execa('dpkg-query', ['-W', '-f=${Status}', daemon === 'rsyslog' ? 'rsyslog' : 'syslog-ng-core'], { reject: false });
    expect(q.stdout).not.toContain('install ok installed');
  });
});

const relpDebs = path.join(process.env.SENTINEL_CEF_DEB_CACHE ?? path.join(repo, '.cache/debs'), 'rsyslog-relp');
const relpReason =
  reason ?? (existsSync(relpDebs) ? null : `no rsyslog-relp .debs in ${relpDebs}: run scripts/sandbox fetch --group rsyslog-relp`);

describe.skipIf(relpReason !== null)('install on real rsyslog with omrelp (rsyslog-relp) in the sandbox', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'scef-sbx-relp-'));
    chmodSync(dir, 0o755);
    const r = await execa(
      sandbox,
      ['run', '--daemon', 'rsyslog', '--extra', 'rsyslog-relp', '--', 'bash', path.join(repo, 'test/sandbox/scenario.sh'), dir, 'rsyslog'],
      {
        reject: false,
        timeout: 420_000,
      },
    );
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}`);
  }, 450_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sends over RELP: the probe and CEF over UDP and TCP arrive, without the plain-TCP warning, and uninstalls', () => {
    expect(read(dir, 'install1.rc').trim(), read(dir, 'install1.err')).toBe('0');
    expect(read(dir, 'install1.out')).toMatch(
      /Probe probe-[0-9a-f-]+: port 514\/tcp -> rsyslog -> forwarder -> file .* accepted after \d+ ms/,
    );
    expect(read(dir, 'install1.err') + read(dir, 'install1.out')).not.toContain('no omrelp module');
    const rows = read(dir, 'rows.ndjson')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(rows.map((r) => r.Activity)).toEqual(expect.arrayContaining(['udp event', 'tcp event']));
    expect(read(dir, 'install2.out')).toContain('Nothing to change');
  });
});
