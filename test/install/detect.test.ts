import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { classifyDistro, detectDistro, parseOsRelease } from '../../src/system/detect-distro.js';
import { createFsRoot } from '../../src/system/fs-root.js';
import { detectDaemon, daemonOfProcess } from '../../src/system/detect-daemon.js';
import { decodeIpv6, listListeners, findListeners } from '../../src/system/listeners.js';
import { planFirewallFix } from '../../src/system/firewall.js';
import { parseSyslogPorts, planSelinuxFix } from '../../src/system/selinux.js';
import { createExec, SecretInArgvError } from '../../src/system/exec.js';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const root = (c: string) => createFsRoot(path.join(fixtures, c));

const osr = (id: string, version: string, like = '') =>
  `ID=${id}\nVERSION_ID="${version}"\n${like ? `ID_LIKE="${like}"\n` : ''}PRETTY_NAME="${id} ${version}"\n`;

describe('detectDistro', () => {
  it.each([
    ['rhel', '7.9', 'fedora', 'rhel', 'yum', true],
    ['rhel', '9.3', 'fedora', 'rhel', 'dnf', true],
    ['centos', '7', 'rhel fedora', 'rhel', 'yum', true],
    ['rocky', '8.9', 'rhel centos fedora', 'rhel', 'dnf', true],
    ['almalinux', '9.4', 'rhel centos fedora', 'rhel', 'dnf', true],
    ['ol', '8.9', 'fedora', 'rhel', 'dnf', true],
    ['amzn', '2', 'centos rhel fedora', 'amazon', 'yum', true],
    ['amzn', '2023', 'fedora', 'amazon', 'dnf', true],
    ['debian', '10', '', 'debian', 'apt-get', true],
    ['debian', '12', '', 'debian', 'apt-get', true],
    ['ubuntu', '18.04', 'debian', 'debian', 'apt-get', true],
    ['ubuntu', '24.04', 'debian', 'debian', 'apt-get', true],
    ['ubuntu', '23.10', 'debian', 'debian', 'apt-get', false],
    ['sles', '15.5', '', 'suse', 'zypper', true],
    ['opensuse-leap', '15.5', 'suse opensuse', 'suse', 'zypper', true],
    ['sles', '12.5', '', 'suse', 'zypper', true],
    ['fedora', '40', '', 'rhel', 'dnf', false],
    ['alpine', '3.19', '', 'unknown', null, false],
  ] as const)('%s %s -> %s via %s (supported %s)', (id, version, like, family, pm, supported) => {
    const d = classifyDistro(parseOsRelease(osr(id, version, like)));
    expect({ family: d.family, packageManager: d.packageManager, supported: d.supported }).toEqual({
      family,
      packageManager: pm,
      supported,
    });
  });

  it('reads os-release under the filesystem root, quotes and all', async () => {
    expect(await detectDistro(root('ubuntu2204-rsyslog'))).toMatchInlineSnapshot(`
      {
        "family": "debian",
        "id": "ubuntu",
        "name": "Ubuntu 22.04.4 LTS",
        "packageManager": "apt-get",
        "supported": true,
        "version": "22.04",
      }
    `);
    expect((await detectDistro(createFsRoot(mkdtempSync(path.join(tmpdir(), 'scef-empty-'))))).name).toBe('unknown (no /etc/os-release)');
  });

  it('parses escaped values', () => {
    expect(parseOsRelease('NAME="A \\"quoted\\" name"\n# comment\nID=x')).toEqual({ NAME: 'A "quoted" name', ID: 'x' });
  });
});

describe('detectDaemon', () => {
  it('prefers the running daemon from /proc/<pid>/comm over the installed one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'scef-proc-'));
    mkdirSync(path.join(dir, 'usr/sbin'), { recursive: true });
    writeFileSync(path.join(dir, 'usr/sbin/rsyslogd'), '');
    writeFileSync(path.join(dir, 'usr/sbin/syslog-ng'), '');
    mkdirSync(path.join(dir, 'proc/42'), { recursive: true });
    writeFileSync(path.join(dir, 'proc/42/comm'), 'syslog-ng\n');
    mkdirSync(path.join(dir, 'proc/7'), { recursive: true });
    writeFileSync(path.join(dir, 'proc/7/comm'), 'bash\n');
    const info = await detectDaemon(createFsRoot(dir));
    expect(info).toMatchObject({
      daemon: 'syslog-ng',
      installed: ['rsyslog', 'syslog-ng'],
      running: [{ daemon: 'syslog-ng', pid: 42 }],
      binary: '/usr/sbin/syslog-ng',
    });
  });

  it.each([
    ['debian12-rsyslog', 'rsyslog'],
    ['rhel8-syslog-ng', 'syslog-ng'],
  ])('%s: falls back to the installed %s', async (c, want) => {
    expect((await detectDaemon(root(c))).daemon).toBe(want);
  });

  it('knows the daemons by comm or by exe', () => {
    expect(daemonOfProcess('rs:main Q:Reg', '/usr/sbin/rsyslogd')).toBe('rsyslog');
    expect(daemonOfProcess('syslog-ng', null)).toBe('syslog-ng');
    expect(daemonOfProcess('node', '/usr/bin/node')).toBeNull();
  });
});

describe('listListeners', () => {
  it('reads listening TCP and bound UDP sockets from /proc/net, not connected ones', async () => {
    const ls = await listListeners(root('proc-net'));
    expect(ls.map((l) => `${l.protocol}${l.family} ${l.address}:${l.port}`)).toEqual([
      'tcp4 0.0.0.0:514',
      'tcp4 127.0.0.1:25226',
      'tcp6 ::1:514',
      'udp4 0.0.0.0:514',
    ]);
    expect(findListeners(ls, 514, 'udp')).toHaveLength(1);
  });

  it('decodes IPv6 words in host byte order', () => {
    expect(decodeIpv6('00000000000000000000000000000000')).toBe('::');
    expect(decodeIpv6('B80D0120000000000000000001000000')).toBe('2001:db8::1');
  });
});

describe('firewall and SELinux fixes', () => {
  it('opens only what is missing, with the tool that is active', () => {
    const ports = [
      { port: 514, protocol: 'udp' as const },
      { port: 514, protocol: 'tcp' as const },
    ];
    expect(planFirewallFix({ kind: 'firewalld', active: true, allowed: ['514/udp'] }, ports)).toEqual([
      ['firewall-cmd', '--permanent', '--add-port=514/tcp'],
      ['firewall-cmd', '--reload'],
    ]);
    expect(planFirewallFix({ kind: 'ufw', active: true, allowed: [] }, ports)).toEqual([
      ['ufw', 'allow', '514/udp'],
      ['ufw', 'allow', '514/tcp'],
    ]);
    expect(planFirewallFix({ kind: 'none', active: false, allowed: [] }, ports)).toEqual([]);
  });

  it('labels a non-standard forwarder port and relabels written files when SELinux is on', () => {
    const ports = parseSyslogPorts(
      'syslog_tls_port_t tcp 6514, 10514\nsyslogd_port_t tcp 601, 20514\nsyslogd_port_t udp 514, 601, 20514\n',
    );
    expect(ports).toEqual([601, 20514]);
    expect(planSelinuxFix({ mode: 'enforcing', syslogPorts: ports }, 25226, ['/etc/rsyslog.d/10-sentinel-cef.conf'])).toEqual([
      ['semanage', 'port', '-a', '-t', 'syslogd_port_t', '-p', 'tcp', '25226'],
      ['restorecon', '-F', '/etc/rsyslog.d/10-sentinel-cef.conf'],
    ]);
    expect(planSelinuxFix({ mode: 'disabled', syslogPorts: null }, 25226, ['/x'])).toEqual([]);
  });
});

describe('exec seam', () => {
  it('refuses to put a registered secret into a child argv, and runs everything else', async () => {
    const exec = createExec();
    exec.registerSecret('c2VjcmV0LWtleS12YWx1ZQ==');
    await expect(exec.run('echo', ['--key', 'c2VjcmV0LWtleS12YWx1ZQ=='])).rejects.toBeInstanceOf(SecretInArgvError);
    const r = await exec.run('cat', [], { input: 'c2VjcmV0LWtleS12YWx1ZQ==' });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'c2VjcmV0LWtleS12YWx1ZQ==' });
    expect((await exec.run('/nonexistent/binary', [])).exitCode).not.toBe(0);
  });

  it('keeps secret-bearing variables out of a child environment', async () => {
    process.env.SENTINEL_CEF_KEY = 'do-not-inherit';
    try {
      const r = await createExec().run('sh', ['-c', 'echo "[${SENTINEL_CEF_KEY:-unset}] [$EXTRA]"'], { env: { EXTRA: 'given' } });
      expect(r.stdout).toBe('[unset] [given]');
    } finally {
      delete process.env.SENTINEL_CEF_KEY;
    }
  });
});
