import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as daemon from '../../src/troubleshoot/checks/daemon.js';
import * as system from '../../src/troubleshoot/checks/system.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { addProcess, cleanup, healthyTree, makeRoot, procNet, put, testDeps } from './helpers.js';
import { commandLines, fakeExec } from '../helpers/fake-exec.js';

let root: string;
const ctxFor = (deps: Partial<TroubleshootDeps> = {}, opts: Record<string, unknown> = {}) =>
  new Context(
    troubleshootOptionsSchema.parse({ configPath: '/etc/sentinel-cef/forwarder.json', probes: 0, ...opts }),
    testDeps(root, deps),
  );

beforeEach(async () => {
  root = await makeRoot();
  await healthyTree(root, { adminPort: 1, daemonPort: 514 });
});
afterEach(() => cleanup(root));

describe('daemon.running', () => {
  it('names the running daemon and its pid', async () => {
    const r = await daemon.checkDaemonRunning(ctxFor());
    expect(r).toMatchObject({ status: 'pass', message: 'rsyslog (pid 300)' });
  });
  it('fails with a start fix when installed but stopped, and the safe fix starts it', async () => {
    await cleanup(`${root}/proc/300`);
    const restarted: unknown[] = [];
    const ctx = ctxFor({ services: { startForwarder: async () => '', restartDaemon: async (d, l) => (restarted.push([d, l]), 'ok') } });
    const r = await daemon.checkDaemonRunning(ctx);
    expect(r.status).toBe('fail');
    expect(r.fix).toContain('rsyslogd');
    await r.safeFix!.apply();
    expect(restarted).toEqual([['rsyslog', { port: 514, protocols: [] }]]);
  });
  // Fault matrix (port-taken): syslog-ng exits when another program holds 514; starting it again cannot help,
  // so --fix must not offer it (it would report a fix that did not fix anything).
  it('offers no start while another program holds the CEF port, and names it', async () => {
    await cleanup(`${root}/proc/300`);
    await addProcess(root, 700, 'node', ['node', 'squat.js'], [1001, 1002]);
    const r = await daemon.checkDaemonRunning(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('port 514 is held by another program (node pid 700)');
    expect(r.fix).toContain('stop node pid 700');
    expect(r.safeFix).toBeUndefined();
  });
  it('fails when no daemon is installed', async () => {
    await cleanup(`${root}/proc/300`);
    await cleanup(`${root}/usr/sbin/rsyslogd`);
    expect((await daemon.checkDaemonRunning(ctxFor())).message).toContain('neither rsyslog nor syslog-ng');
  });
});

describe('daemon.dropin', () => {
  it('passes for a drop-in that forwards and stops', async () => {
    expect((await daemon.checkDropIn(ctxFor())).status).toBe('pass');
  });
  it('fails when the drop-in is missing', async () => {
    await cleanup(`${root}/etc/rsyslog.d/10-sentinel-cef.conf`);
    const r = await daemon.checkDropIn(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('is missing');
    expect(r.fix).toContain('sentinel-cef install');
  });
  it('fails when it forwards elsewhere or lacks stop', async () => {
    await put(root, '/etc/rsyslog.d/10-sentinel-cef.conf', 'if $rawmsg contains "CEF:" then @@127.0.0.1:9999\n');
    const r = await daemon.checkDropIn(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('does not forward to the forwarder port 25226');
    expect(r.message).toContain('not stopped');
  });
  it('reports drift against what install renders, ignoring the version header, and re-renders as the safe fix', async () => {
    const rendered =
      '# Managed by sentinel-cef 0.2.0.\nif ($rawmsg contains "CEF:") then {\n  action(type="omfwd" target="127.0.0.1" port="25226" protocol="tcp")\n  stop\n}\n';
    const calls: string[] = [];
    const written: Array<[string, string]> = [];
    const deps: Partial<TroubleshootDeps> = {
      renderDropIn: async () => [{ path: '/etc/rsyslog.d/10-sentinel-cef.conf', content: rendered }],
      services: { startForwarder: async () => '', restartDaemon: async (d) => (calls.push(`restart ${d}`), 'ok') },
      writeFile: async (p, c) => {
        written.push([p, c]);
      },
    };
    expect((await daemon.checkDropIn(ctxFor(deps))).status).toBe('pass');
    await put(root, '/etc/rsyslog.d/10-sentinel-cef.conf', rendered.replace('stop', 'stop\n*.* /var/log/cef.log'));
    const r = await daemon.checkDropIn(ctxFor(deps));
    expect(r.status).toBe('fail');
    expect(r.message).toContain('differs from what install renders (line 5');
    await r.safeFix!.apply();
    expect(written).toEqual([['/etc/rsyslog.d/10-sentinel-cef.conf', rendered]]);
    expect(calls).toEqual(['restart rsyslog']);
  });
  it('checks the syslog-ng drop-in for flags(final)', async () => {
    await cleanup(root);
    root = await makeRoot();
    await healthyTree(root, { adminPort: 1, daemonPort: 514, daemon: 'syslog-ng' });
    expect((await daemon.checkDropIn(ctxFor())).status).toBe('pass');
    await put(
      root,
      '/etc/syslog-ng/conf.d/sentinel-cef.conf',
      'destination d { syslog("127.0.0.1" port(25226)); };\nlog { source(s); destination(d); };\n',
    );
    expect((await daemon.checkDropIn(ctxFor())).message).toContain('flags(final)');
  });
});

describe('daemon.syntax', () => {
  it('runs rsyslogd -N1 and reports the error line', async () => {
    const ok = await daemon.checkSyntax(
      ctxFor({
        exec: fakeExec({
          'rsyslogd -N1': {
            stderr:
              'rsyslogd: version 8, config validation run (level 1), master config /etc/rsyslog.conf\nEnd of config validation run. Bye.',
          },
        }),
      }),
    );
    expect(ok.status).toBe('pass');
    const bad = await daemon.checkSyntax(
      ctxFor({
        exec: fakeExec({
          'rsyslogd -N1': {
            exitCode: 1,
            stderr: 'rsyslogd: error during parsing file /etc/rsyslog.d/10-sentinel-cef.conf, on or before line 3: invalid character',
          },
        }),
      }),
    );
    expect(bad.status).toBe('fail');
    expect(bad.message).toContain('on or before line 3');
  });
  it('skips when the program is missing', async () => {
    expect((await daemon.checkSyntax(ctxFor())).status).toBe('skip');
  });
});

describe('daemon.listening and daemon.forwarding', () => {
  it('passes when the daemon owns both sockets', async () => {
    const r = await daemon.checkListening(ctxFor());
    expect(r.status).toBe('pass');
    expect(r.message).toContain('tcp 0.0.0.0:514 (rsyslogd pid 300)');
  });
  it('warns for loopback-only inputs and for a missing transport', async () => {
    await put(root, '/proc/net/tcp', procNet([{ local: ['127.0.0.1', 514], st: '0A', inode: 1001 }]));
    await put(root, '/proc/net/udp', procNet([{ local: ['127.0.0.1', 514], st: '07', inode: 1002 }]));
    expect((await daemon.checkListening(ctxFor())).message).toContain('loopback only');
    await put(root, '/proc/net/tcp', procNet([{ local: ['0.0.0.0', 514], st: '0A', inode: 1001 }]));
    await put(root, '/proc/net/udp', '');
    const r = await daemon.checkListening(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('not on udp');
  });
  // /proc/net/{tcp6,udp6} lines for [::]:514, the wildcard address.
  const anyV6 = (st: string, inode: number) =>
    `  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n` +
    `   0: ${'0'.repeat(32)}:0202 ${'0'.repeat(32)}:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;
  it('warns when the host has IPv6 but only IPv4 sockets listen (syslog-ng without ip-protocol(6))', async () => {
    await put(root, '/proc/net/if_inet6', '00000000000000000000000000000001 01 80 10 80       lo\n');
    await put(root, '/proc/sys/net/ipv6/bindv6only', '0\n');
    const r = await daemon.checkListening(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('not on tcp/IPv6, udp/IPv6');
    expect(r.fix).toContain('both IPv4 and IPv6');
  });
  it('passes for dual-stack [::] sockets alone, and warns about IPv4 when v6 sockets are v6-only', async () => {
    await put(root, '/proc/net/if_inet6', '00000000000000000000000000000001 01 80 10 80       lo\n');
    await put(root, '/proc/sys/net/ipv6/bindv6only', '0\n');
    await put(root, '/proc/net/tcp', procNet([{ local: ['127.0.0.1', 25226], st: '0A', inode: 2001 }]));
    await put(root, '/proc/net/udp', '');
    await put(root, '/proc/net/tcp6', anyV6('0A', 1101));
    await put(root, '/proc/net/udp6', anyV6('07', 1102));
    const r = await daemon.checkListening(ctxFor());
    expect(r.status, r.message).toBe('pass');
    expect(r.message).toContain('tcp [::]:514');
    await put(root, '/proc/sys/net/ipv6/bindv6only', '1\n');
    const s = await daemon.checkListening(ctxFor());
    expect(s.status).toBe('warn');
    expect(s.message).toContain('not on tcp/IPv4, udp/IPv4');
  });
  it('asks for no IPv6 socket where the host has no IPv6', async () => {
    await put(root, '/proc/net/if_inet6', '');
    expect((await daemon.checkListening(ctxFor())).status).toBe('pass');
  });
  it('sees the daemon connection to 25226', async () => {
    const r = await daemon.checkForwarding(ctxFor());
    expect(r.status).toBe('pass');
    expect(r.message).toContain('connected to 127.0.0.1:25226');
  });
  it('fails when the forwarder port has no listener', async () => {
    await put(root, '/proc/net/tcp', procNet([{ local: ['0.0.0.0', 514], st: '0A', inode: 1001 }]));
    const r = await daemon.checkForwarding(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('nothing listens on 127.0.0.1:25226');
  });
});

// Issue 16 item 5: a forwarder on the right port but the wrong transport is not "nothing listens".
describe('daemon.forwarding compares transports, not only ports', () => {
  const tcpOnly = procNet([{ local: ['0.0.0.0', 514], st: '0A', inode: 1001 }]);
  it.each([
    ['rsyslog omfwd protocol="tcp"', 'action(type="omfwd" target="127.0.0.1"\n  port="25226" protocol="tcp")\n', 'tcp', 'udp'],
    ['rsyslog legacy @@', '*.* @@127.0.0.1:25226\n', 'tcp', 'udp'],
    ['rsyslog omfwd without protocol (UDP)', 'action(type="omfwd" target="127.0.0.1" port="25226")\n', 'udp', 'tcp'],
    ['rsyslog legacy @', 'local4.* @127.0.0.1:25226\n', 'udp', 'tcp'],
  ])('%s against a forwarder on the other transport', async (_n, rule, sends, listens) => {
    await put(root, '/etc/rsyslog.d/10-sentinel-cef.conf', `if ($rawmsg contains "CEF:") then {\n${rule}stop\n}\n`);
    const fwd = procNet([{ local: ['127.0.0.1', 25226], st: listens === 'tcp' ? '0A' : '07', inode: 2001 }]);
    await put(root, '/proc/net/tcp', listens === 'tcp' ? `${tcpOnly}${fwd.split('\n').slice(1).join('\n')}` : tcpOnly);
    await put(root, '/proc/net/udp', listens === 'udp' ? fwd : '');
    const r = await daemon.checkForwarding(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).not.toContain('nothing listens');
    expect(r.message).toBe(`rsyslog sends ${sends} to 127.0.0.1:25226, but the forwarder listens there on ${listens} only`);
    expect(r.fix).toContain(`"${sends}://127.0.0.1:25226" to "listen" in /etc/sentinel-cef/forwarder.json`);
    expect(r.fix).not.toMatch(/^start the forwarder/);
  });
  it('syslog-ng syslog() defaults to TCP', async () => {
    await cleanup(root);
    root = await makeRoot();
    await healthyTree(root, { adminPort: 1, daemonPort: 514, daemon: 'syslog-ng' });
    await put(root, '/proc/net/tcp', tcpOnly);
    await put(root, '/proc/net/udp', procNet([{ local: ['127.0.0.1', 25226], st: '07', inode: 2001 }]));
    const r = await daemon.checkForwarding(ctxFor());
    expect(r.message).toBe('syslog-ng sends tcp to 127.0.0.1:25226, but the forwarder listens there on udp only');
  });
  // Fault matrix (protocol-mismatch on syslog-ng): the destination install renders nests its template several
  // parentheses deep; the transport is read from the whole network(...) call, not only a flat one.
  it('syslog-ng: reads the transport of the destination install renders (nested template)', async () => {
    await cleanup(root);
    root = await makeRoot();
    const dropIn = [
      '# Managed by sentinel-cef 0.1.0.',
      'destination d_sentinel_cef {',
      '    network("127.0.0.1" port(25226) transport("framed")',
      `        template("$(if (match('^(<[0-9]{1,3}>)?[[:space:]]*(CEF:|%ASA-|%FTD-)' value('RAWMSG'))) '<\${PRI}>1 - \${HOST} - - - - \${RAWMSG}' '\${RAWMSG}')")`,
      '        persist-name("sentinel-cef-raw") time-reopen(2)',
      '        disk-buffer(reliable(yes) disk-buf-size(1073741824) mem-buf-size(16777216)));',
      '};',
      'log { source(s); destination(d_sentinel_cef); flags(final); };',
      '',
    ].join('\n');
    await healthyTree(root, { adminPort: 1, daemonPort: 514, daemon: 'syslog-ng', dropIn });
    await put(root, '/proc/net/tcp', tcpOnly);
    await put(root, '/proc/net/udp', procNet([{ local: ['127.0.0.1', 25226], st: '07', inode: 2001 }]));
    const r = await daemon.checkForwarding(ctxFor());
    expect(r.message).toBe('syslog-ng sends tcp to 127.0.0.1:25226, but the forwarder listens there on udp only');
  });
  it('still says nothing listens when nothing does', async () => {
    await put(root, '/proc/net/tcp', tcpOnly);
    await put(root, '/proc/net/udp', '');
    expect((await daemon.checkForwarding(ctxFor())).message).toContain('nothing listens on 127.0.0.1:25226');
  });
});

describe('daemon.max-message-size and daemon.rate-limit', () => {
  it('passes at the rsyslog default of 8k and at 64k, warns when lowered below 8k', async () => {
    const r = await daemon.checkMaxMessageSize(ctxFor());
    expect(r.status).toBe('pass');
    expect(r.message).toContain('8 KiB');
    await put(root, '/etc/rsyslog.conf', 'global(maxMessageSize="64k")\n# $MaxMessageSize 2k\n');
    expect((await daemon.checkMaxMessageSize(ctxFor())).status).toBe('pass');
    await put(root, '/etc/rsyslog.conf', '$MaxMessageSize 2k\n');
    const low = await daemon.checkMaxMessageSize(ctxFor());
    expect(low.status).toBe('warn');
    expect(low.fix).toBe(
      'change $MaxMessageSize 2k in /etc/rsyslog.conf to $MaxMessageSize 64k (it must stay before any input), then restart rsyslog',
    );
  });
  it('warns about imjournal and imuxsock rate limits, ignoring comments', async () => {
    expect((await daemon.checkRateLimit(ctxFor())).status).toBe('pass');
    await put(
      root,
      '/etc/rsyslog.conf',
      '# module(load="imjournal")\nmodule(load="imuxsock" SysSock.RateLimit.Interval="5" SysSock.RateLimit.Burst="200")\n',
    );
    const r = await daemon.checkRateLimit(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('imuxsock drops above 200 messages per 5s');
    expect(r.message).not.toContain('imjournal');
  });
});

describe('system.firewall', () => {
  it.each([
    [
      'firewalld blocking',
      {
        'firewall-cmd --state': { stdout: 'running\n' },
        'firewall-cmd --list-ports': { stdout: '22/tcp\n' },
        'firewall-cmd --list-services': { stdout: 'ssh dhcpv6-client\n' },
      },
      'fail',
      /firewall-cmd --permanent --add-port=514\/tcp/,
    ],
    [
      'firewalld open',
      {
        'firewall-cmd --state': { stdout: 'running\n' },
        'firewall-cmd --list-ports': { stdout: '514/tcp 514/udp\n' },
        'firewall-cmd --list-services': { stdout: '' },
      },
      'pass',
      null,
    ],
    [
      'ufw blocking',
      { 'ufw status': { stdout: 'Status: active\n\nTo Action From\n22/tcp ALLOW Anywhere\n' } },
      'fail',
      /ufw allow 514\/tcp/,
    ],
    ['ufw open', { 'ufw status': { stdout: 'Status: active\n\n514 ALLOW Anywhere\n' } }, 'pass', null],
    [
      'iptables drop policy',
      {
        'iptables-save -t filter': {
          stdout:
            '*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -p udp -m udp --dport 514 -j ACCEPT\nCOMMIT\n',
        },
      },
      'fail',
      /^iptables -I INPUT 1 -p tcp --dport 514 -j ACCEPT; rules added with iptables are lost at reboot/,
    ],
    ['iptables accept policy', { 'iptables-save -t filter': { stdout: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n' } }, 'pass', null],
  ] as const)('%s', async (_n, table, status, fix) => {
    const calls: string[][] = [];
    const programs: Record<string, object> = { ...table };
    const r = await system.checkFirewall(ctxFor({ exec: fakeExec(programs as never, { calls }) }));
    expect(r.status).toBe(status);
    if (fix) expect(r.fix).toMatch(fix);
    if (status === 'fail') {
      Object.assign(programs, { 'firewall-cmd': {}, ufw: {}, iptables: {} });
      await r.safeFix!.apply();
      expect(commandLines(calls).slice(-1)[0]).toMatch(/firewall-cmd --reload|ufw allow 514\/udp|iptables -I INPUT 1 -p tcp/);
    }
  });
});

describe('system.selinux', () => {
  it('passes when SELinux is off', async () => {
    expect((await system.checkSelinux(ctxFor())).message).toContain('not enabled');
  });
  it('fails in enforcing mode when the forwarder port is not labelled', async () => {
    await put(root, '/sys/fs/selinux/enforce', '1');
    const semanage = {
      'semanage port -l': {
        stdout: 'syslogd_port_t                 tcp      601, 20514\nsyslogd_port_t                 udp      514, 601, 20514\n',
      },
    };
    const r = await system.checkSelinux(ctxFor({ exec: fakeExec(semanage) }));
    expect(r.status).toBe('fail');
    expect(r.message).toContain('514/tcp, 25226/tcp not labelled');
    expect(r.fix).toContain('semanage port -a -t syslogd_port_t -p tcp 25226');
  });
});

describe('system.disk', () => {
  it.each([
    [50, 100, 'pass'],
    [10, 100, 'warn'],
    [0.1, 100, 'fail'],
  ])('%d GiB free of %d → %s', async (free, total, status) => {
    const r = await system.checkDisk(ctxFor({ statfs: async () => ({ free: free * 1024 ** 3, total: total * 1024 ** 3 }) }));
    expect(r.status).toBe(status);
  });
  it('budgets the dead-letter cap beside the queue when both share a filesystem', async () => {
    const config = {
      sink: { type: 'file', path: '/var/lib/sentinel-cef/rows.ndjson' },
      queue: { maxBytes: 1024 ** 3 },
      deadLetter: { maxBytes: 2 * 1024 ** 3 },
    };
    await put(root, '/etc/sentinel-cef/forwarder.json', JSON.stringify(config));
    // 2 GiB free of 10: enough for the queue alone (1 GiB), not for the queue and the dead-letter files (3 GiB).
    const r = await system.checkDisk(ctxFor({ statfs: async () => ({ free: 2 * 1024 ** 3, total: 10 * 1024 ** 3 }) }));
    expect(r.status).toBe('warn');
    expect(r.message).toContain('queue.maxBytes + deadLetter.maxBytes');
  });
});

describe('system.duplicates and system.legacy-agents', () => {
  it('finds a rule sending Syslog to the Azure Monitor agent', async () => {
    expect((await system.checkDuplicates(ctxFor())).status).toBe('pass');
    await put(
      root,
      '/etc/rsyslog.d/10-azuremonitoragent-omfwd.conf',
      '*.* action(type="omfwd" target="127.0.0.1" port="28330" protocol="tcp")\n',
    );
    const r = await system.checkDuplicates(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('10-azuremonitoragent-omfwd.conf');
    expect(r.fix).toContain('local4');
  });
  it('fails on OMS agent leftovers and a foreign process on 25226', async () => {
    expect((await system.checkLegacyAgents(ctxFor())).status).toBe('pass');
    await put(root, '/etc/rsyslog.d/security-config-omsagent.conf', 'if $rawmsg contains "CEF:" then @@127.0.0.1:25226\n');
    await put(
      root,
      '/proc/net/tcp',
      procNet([
        { local: ['127.0.0.1', 25226], st: '0A', inode: 6001 },
        { local: ['127.0.0.1', 28330], st: '0A', inode: 6002 },
      ]),
    );
    await addProcess(root, 600, 'ruby', ['/opt/microsoft/omsagent/ruby/bin/ruby'], [6001, 6002]);
    const r = await system.checkLegacyAgents(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('security-config-omsagent.conf');
    expect(r.message).toContain('ruby (pid 600) holds tcp/25226');
    expect(r.message).toContain('28330');
  });
});

describe('daemon.dropin against the installer renderer', () => {
  it.each(['rsyslog', 'syslog-ng'] as const)('%s: passes for what install renders and names the first drifted line', async (d) => {
    await cleanup(root);
    root = await makeRoot();
    await healthyTree(root, { adminPort: 1, daemonPort: 514, daemon: d });
    if (d === 'syslog-ng') await put(root, '/etc/syslog-ng/syslog-ng.conf', '@version: 3.38\n@include "/etc/syslog-ng/conf.d/*.conf"\n');
    const { createDefaultDeps } = await import('../../src/troubleshoot/deps.js');
    const real = createDefaultDeps({ root, env: {} });
    const rendered = await real.renderDropIn(d, { port: 514, forwarderPort: 25226 });
    expect(rendered).toHaveLength(3);
    const path = d === 'rsyslog' ? '/etc/rsyslog.d/10-sentinel-cef.conf' : '/etc/syslog-ng/conf.d/sentinel-cef.conf';
    expect(rendered![0].path).toBe(path);
    // Installed with --protocol udp: the second candidate set is tcp, the third udp.
    await put(root, path, rendered![2].content);
    const ok = await daemon.checkDropIn(ctxFor({ renderDropIn: real.renderDropIn }));
    expect(ok.status, ok.message).toBe('pass');
    expect(ok.message).toContain('matches what install renders');
    await put(root, path, rendered![0].content.replace('127.0.0.1', '127.0.0.2'));
    const drift = await daemon.checkDropIn(ctxFor({ renderDropIn: real.renderDropIn }));
    expect(drift.status).toBe('fail');
    expect(drift.message).toMatch(/differs from what install renders \(line \d+: on disk ".*127\.0\.0\.2/);
  });
});
