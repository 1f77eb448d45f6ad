import { appendFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { buildProbeMessage } from '../../src/forwarder/send-test.js';
import { probeIdOfRaw } from '../../src/forwarder/probes.js';
import { parseLine } from '../../src/parser/index.js';
import type { CheckResult } from '../../src/troubleshoot/types.js';
import {
  cleanup,
  healthyTree,
  makeRoot,
  probeIdOf,
  put,
  procNet,
  startFakeAdmin,
  startFakeDaemon,
  testDeps,
  health,
  addProcess,
  type FakeAdmin,
} from './helpers.js';
import { commandLines, fakeExec } from '../helpers/fake-exec.js';

const get = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id)!;

describe('probe message', () => {
  it('is a CEF line the parser reads and the forwarder recognises as a probe', () => {
    const msg = buildProbeMessage('ts-abc-tcp-1', 'rfc3164', 'host1');
    expect(msg).toMatch(/^<164>\w{3} [ \d]\d \d\d:\d\d:\d\d host1 CEF: 0\|TestCommonEventFormat\|MOCK\|/);
    expect(probeIdOfRaw(Buffer.from(msg))).toBe('ts-abc-tcp-1');
    const r = JSON.stringify(parseLine(msg, new Date()));
    expect(r).toContain('ts-abc-tcp-1');
    expect(r).toContain('TestCommonEventFormat');
  });
});

describe('end-to-end probes against a fake daemon and forwarder', () => {
  let root: string;
  let admin: FakeAdmin;
  let daemon: { port: number; close(): Promise<void> } | undefined;
  /** What the fake daemon does with a probe. */
  let behaviour: 'deliver' | 'drop' | 'fail-delivery';

  beforeEach(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    behaviour = 'deliver';
    daemon = await startFakeDaemon((msg) => {
      const id = probeIdOf(msg);
      if (!id || behaviour === 'drop') return;
      const now = new Date().toISOString();
      if (behaviour === 'deliver')
        admin.probes.set(id, { id, received: true, receivedAt: now, accepted: true, acceptedAt: now, latencyMs: 12 });
      else {
        admin.probes.set(id, { id, received: true, receivedAt: now, accepted: false, error: 'HTTP 403: Forbidden' });
        // The forwarder's health turns only once the probes have gone through: checks must read it after them.
        admin.health = health({ lastDelivery: { ok: false, at: now, error: 'Forbidden', httpStatus: 403 } });
      }
    });
    await healthyTree(root, { adminPort: admin.port, daemonPort: daemon.port });
  });

  afterEach(async () => {
    await daemon?.close();
    await admin.close();
    await cleanup(root);
  });

  // A total bound with room for a loaded machine: the probe check keeps a quarter of it to conclude (0.75 s at 3 s
  // was cut off beside two CPU burners).
  const opts = () => ({ configPath: '/etc/sentinel-cef/forwarder.json', port: daemon!.port, probes: 2, timeoutSec: 6 });

  it('passes when every probe over TCP and UDP is accepted, with latency', async () => {
    const r = await runTroubleshoot(opts(), testDeps(root));
    const p = get(r.checks, 'e2e.probes');
    expect(p.status).toBe('pass');
    expect(p.message).toContain('4/4 probes delivered (tcp 2/2, udp 2/2)');
    expect(p.message).toContain('latency p50 12 ms');
    expect(get(r.checks, 'daemon.forwarding').status).toBe('pass');
    expect(r.ok).toBe(true);
  });

  it('locates probes the daemon received but did not forward', async () => {
    behaviour = 'drop';
    // The daemon holds no connection to the forwarder.
    await put(
      root,
      '/proc/net/tcp',
      procNet([
        { local: ['0.0.0.0', daemon!.port], st: '0A', inode: 1001 },
        { local: ['127.0.0.1', 25226], st: '0A', inode: 2001 },
      ]),
    );
    const r = await runTroubleshoot(opts(), testDeps(root));
    const p = get(r.checks, 'e2e.probes');
    expect(p.status).toBe('fail');
    expect(p.details?.stoppedAt).toBe('daemon-not-forwarding');
    expect(p.message).toContain('reached the daemon but were not forwarded');
    expect(p.message).toContain('no connection to the forwarder port');
    expect(p.fix).toContain('sentinel-cef install');
    expect(r.ok).toBe(false);
  });

  it('uses the daemon log as evidence that the daemon got the probe', async () => {
    behaviour = 'drop';
    await put(root, '/var/log/syslog', '');
    const deps = testDeps(root);
    const send = deps.sendSyslog;
    deps.sendSyslog = async (t, m) => {
      await send(t, m);
      await appendFile(join(root, '/var/log/syslog'), `Nov 22 host CEF: ${m}\n`);
    };
    const r = await runTroubleshoot(opts(), deps);
    expect(get(r.checks, 'e2e.probes').message).toContain('the daemon logged it to /var/log/syslog');
    expect(get(r.checks, 'system.duplicates').status).toBe('warn');
  });

  // Issue 16 item 9: the duplicate names the rule that writes the log, where it is, and the exact edit.
  it('names the rule that also writes CEF to /var/log/syslog and how to move it', async () => {
    behaviour = 'drop';
    await put(root, '/var/log/syslog', '');
    await put(
      root,
      '/etc/rsyslog.conf',
      'module(load="imuxsock")\n*.*;auth,authpriv.none\t\t-/var/log/syslog\n$IncludeConfig /etc/rsyslog.d/*.conf\n',
    );
    const deps = testDeps(root);
    const send = deps.sendSyslog;
    deps.sendSyslog = async (t, m) => {
      await send(t, m);
      await appendFile(join(root, '/var/log/syslog'), `Nov 22 host CEF: ${m}\n`);
    };
    const r = await runTroubleshoot(opts(), deps);
    const d = get(r.checks, 'system.duplicates');
    expect(d.status).toBe('warn');
    expect(d.message).toContain('written there by /etc/rsyslog.conf line 2 (`*.*;auth,authpriv.none\t\t-/var/log/syslog`)');
    expect(d.fix).toBe(
      '/etc/rsyslog.conf line 2 logs CEF before the include of /etc/rsyslog.d (line 3): move that line below it (or guard it with `if not ($rawmsg contains "CEF:") then`), then `systemctl restart rsyslog`',
    );
  });

  // Issue 15: on a journald-only system no daemon writes /var/log/syslog; a copy of CEF in the journal is the duplicate.
  describe('journal copies (journald-only systems)', () => {
    /** A fake journalctl over entries added as the probes pass; it honours -g (the probe ids) and -n. */
    function fakeJournal(entries: Array<Record<string, string>>, calls: string[][]) {
      return fakeExec(
        {
          journalctl: (args) => {
            const g = new RegExp(args[args.indexOf('-g') + 1]!);
            const n = Number(args[args.indexOf('-n') + 1]);
            const hits = entries.filter((e) => g.test(e.MESSAGE!)).slice(-n);
            return { stdout: hits.map((e) => JSON.stringify(e)).join('\n') + '\n' };
          },
        },
        { calls },
      );
    }

    it.each([
      ['rsyslogd', 'journal', 'rsyslog.service', 'rsyslogd (rsyslog.service) via the journal API', 'guard that omjournal action'],
      ['syslog-ng', 'syslog', 'syslog-ng.service', 'syslog-ng (syslog-ng.service) via /dev/log', 'remove our source (s_sentinel_cef)'],
    ])('names %s as the writer of a probe copy in the journal, and the fix', async (comm, transport, unit, from, fix) => {
      const entries: Array<Record<string, string>> = [{ MESSAGE: 'unrelated', _COMM: 'cron' }];
      const calls: string[][] = [];
      const deps = testDeps(root, { exec: fakeJournal(entries, calls) });
      const send = deps.sendSyslog;
      deps.sendSyslog = async (t, m) => {
        await send(t, m);
        entries.push({ MESSAGE: m.replace(/^<\d+>/, ''), _COMM: comm, _TRANSPORT: transport, _SYSTEMD_UNIT: unit });
      };
      const r = await runTroubleshoot(opts(), deps);
      const d = get(r.checks, 'system.duplicates');
      expect(d.status).toBe('warn');
      expect(d.message).toMatch(new RegExp(`probe ts-\\S+ was also written to the journal by ${from.replace(/[()/]/g, '\\$&')}`));
      expect(d.fix).toContain(fix);
      // Bounded: this run's probes only, since the run began, a fixed number of lines.
      const j = commandLines(calls).filter((c) => c.startsWith('journalctl '));
      expect(j).toHaveLength(1);
      expect(j[0]).toMatch(/^journalctl --since @\d+ -g ts-\S+(\|ts-\S+){3} -n 20 -o json --no-pager$/);
    });

    it('passes when the journal holds no probe, and when journalctl is absent', async () => {
      const entries = [{ MESSAGE: 'CEF: 0|Other|x|1|1|old event|1|', _COMM: 'rsyslogd', _TRANSPORT: 'journal' }];
      const withJournal = await runTroubleshoot(opts(), testDeps(root, { exec: fakeJournal(entries, []) }));
      expect(get(withJournal.checks, 'system.duplicates').status).toBe('pass');
      const without = await runTroubleshoot(opts(), testDeps(root));
      expect(get(without.checks, 'system.duplicates').status).toBe('pass');
    });
  });

  it('locates probes the forwarder received but could not deliver, with the sink error', async () => {
    behaviour = 'fail-delivery';
    const r = await runTroubleshoot(opts(), testDeps(root));
    const p = get(r.checks, 'e2e.probes');
    expect(p.status).toBe('fail');
    expect(p.details?.stoppedAt).toBe('forwarder-not-delivering');
    expect(p.message).toContain('HTTP 403: Forbidden');
    expect(get(r.checks, 'forwarder.delivery').status).toBe('fail');
  });

  it('locates probes that never reached a daemon: nothing listening', async () => {
    await daemon!.close();
    daemon = undefined;
    const p0 = 1; // privileged and unused: stays closed, unlike a port found free a moment ago
    await put(root, '/proc/net/tcp', procNet([{ local: ['127.0.0.1', 25226], st: '0A', inode: 2001 }]));
    await put(root, '/proc/net/udp', '');
    const r = await runTroubleshoot({ configPath: '/etc/sentinel-cef/forwarder.json', port: p0, probes: 1, timeoutSec: 6 }, testDeps(root));
    const p = get(r.checks, 'e2e.probes');
    expect(p.status).toBe('fail');
    expect(p.details?.stoppedAt).toBe('daemon-not-receiving');
    expect(p.message).toMatch(/ECONNREFUSED|nothing listens/);
    expect(get(r.checks, 'daemon.listening').status).toBe('fail');
  });

  it('names the program holding the port when it is not the daemon', async () => {
    await addProcess(root, 500, 'nc', ['nc', '-l', String(daemon!.port)], [9001]);
    await put(
      root,
      '/proc/net/tcp',
      procNet([
        { local: ['0.0.0.0', daemon!.port], st: '0A', inode: 9001 },
        { local: ['127.0.0.1', 25226], st: '0A', inode: 2001 },
      ]),
    );
    await put(root, '/proc/net/udp', procNet([{ local: ['0.0.0.0', daemon!.port], st: '07', inode: 9002 }]));
    behaviour = 'drop';
    const r = await runTroubleshoot(opts(), testDeps(root));
    const l = get(r.checks, 'daemon.listening');
    expect(l.status).toBe('fail');
    expect(l.message).toContain('nc pid 500');
    expect(get(r.checks, 'e2e.probes').message).toContain('held by nc (pid 500)');
  });

  it('says it cannot follow probes when the admin endpoint is down', async () => {
    await admin.close();
    const r = await runTroubleshoot(opts(), testDeps(root));
    expect(get(r.checks, 'forwarder.admin').status).toBe('fail');
    const p = get(r.checks, 'e2e.probes');
    expect(p.details?.stoppedAt).toBe('unknown');
    expect(p.fix).toContain('forwarder.running');
    admin = await startFakeAdmin(); // for afterEach
  });

  // Issue 16 item 3: UDP probes the firewall drops never reached the daemon; they were not "not forwarded".
  it('places probes a firewall rule drops before the daemon, naming the rule', async () => {
    behaviour = 'drop';
    const save =
      '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -p udp -m udp --dport PORT -j DROP\nCOMMIT\n';
    const exec = fakeExec({ 'iptables-save -t filter': { stdout: save.replace('PORT', String(daemon!.port)) } });
    const r = await runTroubleshoot(opts(), testDeps(root, { exec }));
    const p = get(r.checks, 'e2e.probes');
    expect(p.details?.stoppedAt).toBe('daemon-not-receiving');
    const udp = (p.details?.probes as Array<{ transport: string; stage: string; evidence: string[] }>).filter((x) => x.transport === 'udp');
    for (const x of udp) {
      expect(x.stage).toBe('daemon-not-receiving');
      expect(x.evidence).toContain(
        `the firewall drops ${daemon!.port}/udp: rule 2 of chain INPUT (-A INPUT -p udp -m udp --dport ${daemon!.port} -j DROP)`,
      );
    }
    expect(p.message).not.toMatch(/udp probes? reached the daemon but were not forwarded/);
    expect(p.fix).toContain('system.firewall');
    expect(get(r.checks, 'system.firewall').status).toBe('fail');
  });

  // Issue 19: a daemon on [::] takes both families; each is probed and followed to its own stop, so an IPv4 rule
  // that drops the port is not hidden by IPv6 probes that arrive.
  it('probes every address family the daemon listens on and names the family that stopped', async () => {
    const port = daemon!.port;
    const onMessage = (msg: string) => {
      const id = probeIdOf(msg);
      const now = new Date().toISOString();
      if (id) admin.probes.set(id, { id, received: true, receivedAt: now, accepted: true, acceptedAt: now, latencyMs: 12 });
    };
    // The same daemon over IPv6 (the fake one above holds 127.0.0.1 only).
    const tcp6 = createTcpServer((s) => s.on('data', (d) => d.toString().split('\n').filter(Boolean).forEach(onMessage)));
    await new Promise<void>((r) => tcp6.listen(port, '::1', () => r()));
    const udp6 = createSocket({ type: 'udp6', ipv6Only: true });
    await new Promise<void>((r) => udp6.bind(port, '::1', () => r()));
    udp6.on('message', (m) => onMessage(m.toString()));
    try {
      behaviour = 'drop'; // nothing the IPv4 fake gets is delivered: the IPv4 rule must be what the check names
      const any6 = (st: string, inode: number) =>
        `  sl  local_address rem_address st\n   0: ${'0'.repeat(32)}:${port.toString(16).toUpperCase().padStart(4, '0')} ${'0'.repeat(32)}:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;
      await put(root, '/proc/net/tcp', procNet([{ local: ['127.0.0.1', 25226], st: '0A', inode: 2001 }]));
      await put(root, '/proc/net/udp', procNet([]));
      await put(root, '/proc/net/tcp6', any6('0A', 1001));
      await put(root, '/proc/net/udp6', any6('07', 1002));
      await put(root, '/proc/net/if_inet6', '00000000000000000000000000000001 01 80 10 80       lo\n');
      await put(root, '/proc/sys/net/ipv6/bindv6only', '0\n');
      const save = `*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -p udp -m udp --dport ${port} -j DROP\n-A INPUT -p tcp -m tcp --dport ${port} -j DROP\nCOMMIT\n`;
      const exec = fakeExec({
        'iptables-save -t filter': { stdout: save },
        'ip6tables-save -t filter': { stdout: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n' },
      });
      const r = await runTroubleshoot(opts(), testDeps(root, { exec }));
      const p = get(r.checks, 'e2e.probes');
      const probes = p.details?.probes as Array<{ transport: string; family: number; target: string; stage: string }>;
      // --probes 2 per transport, spread over both families: each family and transport probed exactly once.
      for (const t of ['tcp', 'udp'])
        for (const f of [4, 6]) expect(probes.filter((x) => x.transport === t && x.family === f).length, `${t}/IPv${f}`).toBe(1);
      for (const x of probes) expect(x.target.startsWith('[::1]:')).toBe(x.family === 6);
      expect(p.status).toBe('fail');
      expect(p.details?.stoppedAt).toBe('daemon-not-receiving');
      expect(p.details?.stoppedAtByFamily).toEqual({ IPv4: 'daemon-not-receiving', IPv6: 'delivered' });
      expect(p.message).toContain('2/4 probes delivered');
      expect(p.message).toMatch(
        /over IPv4: 2 tcp\+udp probes never reached the syslog daemon \(the firewall drops \d+\/tcp: rule 3 of chain INPUT/,
      );
      expect(p.message).not.toContain('over IPv6');
      expect(p.fix).toContain('system.firewall');
    } finally {
      tcp6.close();
      udp6.close();
    }
  });

  // Issue 16 item 5: the daemon sends TCP, the forwarder listens on UDP only.
  it('names the transport mismatch, not a down forwarder, when the forwarder listens on UDP only', async () => {
    behaviour = 'drop';
    await put(root, '/proc/net/tcp', procNet([{ local: ['0.0.0.0', daemon!.port], st: '0A', inode: 1001 }]));
    await put(
      root,
      '/proc/net/udp',
      procNet([
        { local: ['0.0.0.0', daemon!.port], st: '07', inode: 1002 },
        { local: ['127.0.0.1', 25226], st: '07', inode: 2001 },
      ]),
    );
    const r = await runTroubleshoot(opts(), testDeps(root));
    const p = get(r.checks, 'e2e.probes');
    expect(p.details?.stoppedAt).toBe('daemon-not-forwarding');
    expect(p.message).toContain('rsyslog sends tcp to 127.0.0.1:25226, but the forwarder listens there on udp only');
    expect(p.fix).toContain('"tcp://127.0.0.1:25226" to "listen"');
    expect(get(r.checks, 'daemon.forwarding').message).not.toContain('nothing listens');
  });

  // RELP runs over TCP: the daemon's connection to the port proves nothing when the two ends speak different protocols.
  it.each([
    [
      'omrelp',
      'tcp',
      'action(type="omrelp" target="127.0.0.1" port="25226")',
      'rsyslog sends relp to 127.0.0.1:25226, but the forwarder listens there on tcp only',
      '"tcp://127.0.0.1:25226" to "relp://127.0.0.1:25226"',
    ],
    [
      'omfwd TCP',
      'relp',
      'action(type="omfwd" target="127.0.0.1" port="25226" protocol="tcp")',
      'rsyslog sends tcp to 127.0.0.1:25226, but the forwarder listens there on relp only',
      '"relp://127.0.0.1:25226" to "tcp://127.0.0.1:25226"',
    ],
    // Review finding 5: a PROXY-protocol query on the listen URL still names the port and the protocol.
    [
      'omfwd TCP',
      'relp://127.0.0.1:25226?proxy=v1',
      'action(type="omfwd" target="127.0.0.1" port="25226" protocol="tcp")',
      'rsyslog sends tcp to 127.0.0.1:25226, but the forwarder listens there on relp only',
      '',
    ],
  ])(
    'names a %s drop-in against a %s listener as a mismatch, though the daemon is connected',
    async (_what, scheme, action, message, change) => {
      await put(root, '/etc/rsyslog.d/10-sentinel-cef.conf', `if ($rawmsg contains "CEF:") then {\n  ${action}\n  stop\n}\n`);
      await put(
        root,
        '/etc/sentinel-cef/forwarder.json',
        JSON.stringify({
          listen: [scheme.includes('://') ? scheme : `${scheme}://127.0.0.1:25226`],
          sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' },
          admin: `127.0.0.1:${admin.port}`,
        }),
      );
      const r = await runTroubleshoot({ ...opts(), probes: 0 }, testDeps(root));
      const f = get(r.checks, 'daemon.forwarding');
      expect(f.status).toBe('fail');
      expect(f.message).toBe(message);
      if (change) expect(f.fix).toContain(`change ${change} in "listen" in /etc/sentinel-cef/forwarder.json`);
    },
  );

  // Issue 16 item 4: a forwarder that holds its ports but does not answer is hung, not "unknown".
  it('says the forwarder is hung when its admin endpoint accepts and never answers', async () => {
    await admin.close();
    behaviour = 'drop';
    const held: import('node:net').Socket[] = [];
    const silent = createTcpServer((sock) => held.push(sock));
    await new Promise<void>((r) => silent.listen(admin.port, '127.0.0.1', () => r()));
    try {
      // The health calls wait 2 s each for an answer: give the (total) timeout room for them.
      const r = await runTroubleshoot({ ...opts(), timeoutSec: 10 }, testDeps(root));
      const p = get(r.checks, 'e2e.probes');
      expect(p.details?.stoppedAt).toBe('forwarder-hung');
      expect(p.message).toContain('the forwarder is hung');
      expect(p.fix).toContain('--fix');
      expect(get(r.checks, 'forwarder.running')).toMatchObject({ status: 'fail' });
      expect(get(r.checks, 'forwarder.running').message).toContain('is alive but hung');
    } finally {
      for (const sock of held) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
    admin = await startFakeAdmin();
  }, 30_000);

  it('says the forwarder is down when the daemon got the probes and nothing listens on 25226', async () => {
    await admin.close();
    behaviour = 'drop';
    await put(root, '/proc/net/tcp', procNet([{ local: ['0.0.0.0', daemon!.port], st: '0A', inode: 1001 }]));
    const r = await runTroubleshoot(opts(), testDeps(root));
    const p = get(r.checks, 'e2e.probes');
    expect(p.details?.stoppedAt).toBe('forwarder-down');
    expect(p.message).toContain('reached the daemon, but the forwarder is not running');
    expect(p.fix).toContain('start the forwarder');
    expect(get(r.checks, 'daemon.forwarding').status).toBe('fail');
    admin = await startFakeAdmin();
  });

  it('--capture: reports tcpdump missing as a skip, and a capture as evidence per port', async () => {
    const none = await runTroubleshoot(
      { ...opts(), capture: true },
      testDeps(root, { startCapture: async () => ({ unavailable: 'tcpdump is not installed (apt-get install tcpdump)' }) }),
    );
    expect(get(none.checks, 'e2e.capture')).toMatchObject({
      status: 'skip',
      message: 'tcpdump is not installed (apt-get install tcpdump)',
    });
    const sent: string[] = [];
    const deps = testDeps(root, {
      startCapture: async (ports) => {
        expect(ports).toEqual([daemon!.port, 25226]);
        return {
          stop: async () =>
            sent
              .map(
                (m) =>
                  `09:00:00.1 lo In IP 127.0.0.1.40000 > 127.0.0.1.${daemon!.port}: UDP, length 9\n${m}\n09:00:00.2 lo In IP 127.0.0.1.40001 > 127.0.0.1.25226: Flags [P.]\n${m}`,
              )
              .join('\n'),
        };
      },
    });
    const send = deps.sendSyslog;
    deps.sendSyslog = async (t, m) => {
      sent.push(m);
      await send(t, m);
    };
    const r = await runTroubleshoot({ ...opts(), capture: true }, deps);
    expect(get(r.checks, 'e2e.capture')).toMatchObject({
      status: 'pass',
      message: `4/4 probes seen on port ${daemon!.port}, 4/4 on the forwarder port`,
    });
  });

  it('skips the probes with --probes 0 and finishes quickly', async () => {
    const t = Date.now();
    const r = await runTroubleshoot({ ...opts(), probes: 0 }, testDeps(root));
    expect(get(r.checks, 'e2e.probes').status).toBe('skip');
    expect(Date.now() - t).toBeLessThan(5000);
  });
});

describe('parseCapture', () => {
  it('attributes payloads to the ports of the packet header before them', async () => {
    const { parseCapture } = await import('../../src/troubleshoot/checks/e2e.js');
    const text = [
      '09:00:00.000001 lo    In  IP 127.0.0.1.41000 > 127.0.0.1.514: Flags [P.], seq 1:200, ack 1, win 512, length 199',
      'E....@.@.............<164>Nov 22 09:00:00 h CEF: 0|TestCommonEventFormat|MOCK|x|end|TRAFFIC|1|cs2Label=ProbeId cs2=p-1',
      '09:00:00.000002 lo    In  IP 127.0.0.1.41002 > 127.0.0.1.25226: Flags [P.], seq 1:250, length 249',
      '....243 <164>1 2026-11-22T09:00:00Z h CEF - - - CEF:0|TestCommonEventFormat|MOCK|x|end|TRAFFIC|1|cs2Label=ProbeId cs2=p-1',
      '09:00:00.000003 lo    In  IP 127.0.0.1.50000 > 127.0.0.1.514: UDP, length 180',
      '<164>Nov 22 09:00:00 h CEF: 0|TestCommonEventFormat|MOCK|x|end|TRAFFIC|1|cs2Label=ProbeId cs2=p-2',
    ].join('\n');
    expect(parseCapture(text, ['p-1', 'p-2', 'p-3'], 514, [25226])).toEqual({
      'p-1': { daemonPort: true, forwarderPort: true },
      'p-2': { daemonPort: true, forwarderPort: false },
      'p-3': { daemonPort: false, forwarderPort: false },
    });
  });
});
