import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Context } from '../../src/troubleshoot/context.js';
import * as daemon from '../../src/troubleshoot/checks/daemon.js';
import { parseQdiskHeader, parseRsyslogDropInQueue, parseRsyslogQi } from '../../src/troubleshoot/spool.js';
import { CHECKS } from '../../src/troubleshoot/run.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { cleanup, healthyTree, makeRoot, procNet, put, startFakeAdmin, testDeps, type FakeAdmin } from './helpers.js';

let root: string;
let admin: FakeAdmin | undefined;
const ctxFor = (deps: Partial<TroubleshootDeps> = {}) =>
  new Context(troubleshootOptionsSchema.parse({ configPath: '/etc/sentinel-cef/forwarder.json', probes: 0 }), testDeps(root, deps));

const SPOOL = '/var/spool/rsyslog';
const dropIn = (spoolDirectory?: string) =>
  '# Managed by sentinel-cef 0.1.0.\n' +
  'if ($rawmsg contains "CEF:") then {\n' +
  '    action(type="omfwd" name="sentinel-cef-forward" target="127.0.0.1" port="25226" protocol="tcp"\n' +
  '           queue.type="LinkedList" queue.size="50000" queue.highWatermark="40000"\n' +
  `           queue.filename="sentinel-cef-fwd" queue.saveOnShutdown="on" queue.maxDiskSpace="1024m"${spoolDirectory ? ` queue.spoolDirectory="${spoolDirectory}"` : ''} action.resumeRetryCount="-1")\n` +
  '    stop\n}\n';

/** A spool file last written `ageSec` ago. */
async function spoolFile(path: string, bytes: number, ageSec: number): Promise<void> {
  await put(root, path, 'x'.repeat(bytes));
  const t = (Date.now() - ageSec * 1000) / 1000;
  await utimes(join(root, path), t, t);
}

/** rsyslogd (pid 300) holds `path` open at `pos`: a reader (O_RDONLY) or the writer (O_WRONLY|O_APPEND). */
async function openFd(fd: number, path: string, pos: number, mode: 'read' | 'write' = 'read'): Promise<void> {
  await symlink(path, join(root, 'proc/300/fd', String(fd)));
  await put(root, `/proc/300/fdinfo/${fd}`, `pos:\t${pos}\nflags:\t${mode === 'read' ? '0100000' : '0102001'}\nmnt_id:\t30\nino:\t1234\n`);
}

/** A syslog-ng disk-buffer header as qdisk.c lays it out (native byte order, flag at byte 5). */
function qdiskHeader(h: {
  length: number;
  backlogLen?: number;
  readHead: number;
  writeHead: number;
  backlogHead?: number;
  bigEndian?: boolean;
}): Buffer {
  const b = Buffer.alloc(4096);
  b.write('SLRQ', 0, 'latin1');
  b[4] = 1;
  b[5] = h.bigEndian ? 1 : 0;
  const w = (o: number, v: number) => (h.bigEndian ? b.writeBigInt64BE(BigInt(v), o) : b.writeBigInt64LE(BigInt(v), o));
  w(8, h.readHead);
  w(16, h.writeHead);
  w(24, h.length);
  w(80, h.backlogHead ?? h.readHead);
  w(88, h.backlogLen ?? 0);
  return b;
}

async function rqf(name: string, header: Buffer, bodyBytes: number, ageSec: number): Promise<void> {
  const p = `/var/lib/syslog-ng/${name}`;
  await put(root, p, '');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(root, p), Buffer.concat([header, Buffer.alloc(bodyBytes, 0x41)]));
  const t = (Date.now() - ageSec * 1000) / 1000;
  await utimes(join(root, p), t, t);
}

beforeEach(async () => {
  root = await makeRoot();
});
afterEach(async () => {
  await admin?.close();
  admin = undefined;
  await cleanup(root);
});

async function rsyslogTree(o: { forwarderUp: boolean; spoolDirectory?: string; rsyslogConf?: string }) {
  if (o.forwarderUp) admin = await startFakeAdmin();
  await healthyTree(root, { adminPort: admin?.port ?? 1, daemonPort: 514, dropIn: dropIn(o.spoolDirectory) });
  await put(
    root,
    '/etc/rsyslog.conf',
    o.rsyslogConf ?? `module(load="imuxsock")\n$WorkDirectory ${SPOOL}\n$IncludeConfig /etc/rsyslog.d/*.conf\n`,
  );
}

describe('daemon.spool on rsyslog', () => {
  it('is registered after daemon.rate-limit', () => {
    const ids = CHECKS.map((c) => c.id);
    expect(ids.indexOf('daemon.spool')).toBe(ids.indexOf('daemon.rate-limit') + 1);
  });

  it('passes when there are no spool files', async () => {
    await rsyslogTree({ forwarderUp: true });
    const r = await daemon.checkSpool(ctxFor());
    expect(r).toMatchObject({ status: 'pass', details: { dir: SPOOL, fileCount: 0, pendingBytes: 0 } });
    expect(r.message).toContain('nothing waits');
  });

  it('passes when rsyslog has read the one spool file it keeps open to the end', async () => {
    await rsyslogTree({ forwarderUp: true });
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000003`, 5000, 600);
    await openFd(20, `${SPOOL}/sentinel-cef-fwd.00000003`, 5000, 'write');
    await openFd(21, `${SPOOL}/sentinel-cef-fwd.00000003`, 5000);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('pass');
    expect(r.details).toMatchObject({ fileCount: 1, fileBytes: 5000, pendingBytes: 0 });
    expect(r.message).toContain('already read');
  });

  it('warns, as expected, when data waits and the forwarder is down', async () => {
    await rsyslogTree({ forwarderUp: false });
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 5000, 600);
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000002`, 3000, 300);
    await openFd(20, `${SPOOL}/sentinel-cef-fwd.00000002`, 3000, 'write');
    await openFd(21, `${SPOOL}/sentinel-cef-fwd.00000001`, 1000);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('warn');
    // 4000 unread in file 1, all 3000 of file 2.
    expect(r.message).toMatch(
      /^7000 bytes of CEF wait in rsyslog's disk queue \(\/var\/spool\/rsyslog\) for the forwarder, which is not accepting \(http:\/\/127\.0\.0\.1:1\/healthz: /,
    );
    expect(r.message).not.toContain('#2646');
    expect(r.fix).toContain('forwarder.running');
    expect(r.safeFix).toBeUndefined();
    expect(r.details).toMatchObject({ fileCount: 2, fileBytes: 8000, pendingBytes: 7000, forwarderUp: false });
    expect(Date.parse(r.details!.oldestMtime as string)).toBeLessThan(Date.now() - 590_000);
  });

  it('warns that the queue is stuck when the forwarder is up and the files have not changed for 60 s', async () => {
    await rsyslogTree({ forwarderUp: true });
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 52_000, 90);
    await openFd(21, `${SPOOL}/sentinel-cef-fwd.00000001`, 4096);
    const restarted: string[] = [];
    const ctx = ctxFor({
      services: { startForwarder: async () => '', restartDaemon: async (d) => (restarted.push(d), 'ok') },
    });
    const r = await daemon.checkSpool(ctx);
    expect(r.status).toBe('warn');
    expect(r.message).toContain(`${52_000 - 4096} bytes of CEF wait in rsyslog's disk queue`);
    expect(r.message).toContain('while the forwarder is up, files unchanged for 90 s');
    expect(r.message).toContain('issue #2646');
    expect(r.fix).toContain('queue.saveOnShutdown');
    expect(r.fix).toContain('#6498');
    expect(r.details).toMatchObject({ forwarderUp: true, daemonConnected: true, unchangedSec: 90 });
    expect(r.details!.references).toContain('https://github.com/rsyslog/rsyslog/issues/2646');
    await r.safeFix!.apply();
    expect(restarted).toEqual(['rsyslog']);
  });

  it('tells a suspended forwarding action (no connection to the forwarder) from a stuck disk queue', async () => {
    // As rsyslog 8.2302 does in the sandbox: the forwarder came back, the action waits for its next resume retry.
    await rsyslogTree({ forwarderUp: true });
    await put(
      root,
      '/proc/net/tcp',
      procNet([
        { local: ['0.0.0.0', 514], st: '0A', inode: 1001 },
        { local: ['127.0.0.1', 25226], st: '0A', inode: 2001 },
      ]),
    );
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 52_000, 90);
    await openFd(21, `${SPOOL}/sentinel-cef-fwd.00000001`, 4096);
    const restarted: string[] = [];
    const r = await daemon.checkSpool(
      ctxFor({ services: { startForwarder: async () => '', restartDaemon: async (d) => (restarted.push(d), 'ok') } }),
    );
    expect(r.status).toBe('warn');
    expect(r.message).toContain(
      `${52_000 - 4096} bytes of CEF wait in rsyslog's disk queue (/var/spool/rsyslog), files unchanged for 90 s`,
    );
    expect(r.message).toContain('holds no connection to it, so its forwarding action is suspended');
    expect(r.message).toContain('action.resumeInterval');
    expect(r.message).not.toContain('#2646');
    expect(r.details).toMatchObject({ forwarderUp: true, daemonConnected: false });
    expect(r.details!.references).toBeUndefined();
    await r.safeFix!.apply();
    expect(restarted).toEqual(['rsyslog']);
  });

  it('without an admin endpoint, takes a listener on the intake port as the forwarder being up', async () => {
    await rsyslogTree({ forwarderUp: false });
    await put(
      root,
      '/etc/sentinel-cef/forwarder.json',
      JSON.stringify({ sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' }, admin: false }),
    );
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 8000, 120);
    await openFd(21, `${SPOOL}/sentinel-cef-fwd.00000001`, 0);
    const up = await daemon.checkSpool(ctxFor());
    expect(up.details).toMatchObject({ forwarderUp: true });
    expect(up.message).toContain('issue #2646');
    // The same without the forwarder's listener (healthyTree puts it on 127.0.0.1:25226, inode 2001).
    await put(root, '/proc/net/tcp', procNet([{ local: ['0.0.0.0', 514], st: '0A', inode: 1001 }]));
    const down = await daemon.checkSpool(ctxFor());
    expect(down.details).toMatchObject({ forwarderUp: false });
    expect(down.message).toContain('nothing listens on 127.0.0.1:25226');
  });

  it('does not call a queue stuck while it is still being written', async () => {
    await rsyslogTree({ forwarderUp: true });
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 52_000, 5);
    await openFd(21, `${SPOOL}/sentinel-cef-fwd.00000001`, 4096);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('pass');
    expect(r.message).toContain('draining');
  });

  it('takes queue.spoolDirectory from the drop-in over workDirectory', async () => {
    await rsyslogTree({
      forwarderUp: false,
      spoolDirectory: '/srv/cef-spool',
      rsyslogConf: 'global(workDirectory="/var/lib/rsyslog")\n$IncludeConfig /etc/rsyslog.d/*.conf\n',
    });
    await spoolFile('/srv/cef-spool/sentinel-cef-fwd.00000001', 1234, 600);
    await spoolFile('/var/lib/rsyslog/sentinel-cef-fwd.00000001', 999, 600);
    await openFd(21, '/srv/cef-spool/sentinel-cef-fwd.00000001', 0);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.details).toMatchObject({ dir: '/srv/cef-spool', pendingBytes: 1234 });
    expect(r.details!.dirSource).toContain('queue.spoolDirectory');
  });

  it("takes rsyslog's workDirectory from rsyslog.conf when the drop-in sets no spool directory", async () => {
    await rsyslogTree({
      forwarderUp: false,
      rsyslogConf: 'global(workDirectory="/var/lib/rsyslog")\n$IncludeConfig /etc/rsyslog.d/*.conf\n',
    });
    await spoolFile('/var/lib/rsyslog/sentinel-cef-fwd.00000001', 999, 600);
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 1234, 600);
    await openFd(21, '/var/lib/rsyslog/sentinel-cef-fwd.00000001', 0);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.details).toMatchObject({ dir: '/var/lib/rsyslog', pendingBytes: 999 });
    expect(r.details!.dirSource).toContain('workDirectory');
  });

  it("looks in the distributions' work directories when neither the drop-in nor rsyslog.conf sets one", async () => {
    await rsyslogTree({ forwarderUp: false, rsyslogConf: 'module(load="imuxsock")\n$IncludeConfig /etc/rsyslog.d/*.conf\n' });
    await spoolFile('/var/lib/rsyslog/sentinel-cef-fwd.00000001', 777, 600);
    await openFd(21, '/var/lib/rsyslog/sentinel-cef-fwd.00000001', 0);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.details).toMatchObject({ dir: '/var/lib/rsyslog', pendingBytes: 777 });
    expect(r.details!.dirSource).toContain('no workDirectory');
  });

  it('ignores other queues and other actions in the same directory', async () => {
    await rsyslogTree({ forwarderUp: true });
    await spoolFile(`${SPOOL}/mainq.00000001`, 4000, 600);
    await spoolFile(`${SPOOL}/mainq.qi`, 100, 600);
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001.tmp`, 100, 600);
    expect((await daemon.checkSpool(ctxFor())).status).toBe('pass');
  });

  it('skips rather than guesses when the read position is not visible', async () => {
    await rsyslogTree({ forwarderUp: true });
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 5000, 600);
    await symlink(`${SPOOL}/sentinel-cef-fwd.00000001`, join(root, 'proc/300/fd/21')); // no fdinfo
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('skip');
    expect(r.message).toContain('not visible');
  });

  it("reports the .qi's account while rsyslog is stopped", async () => {
    await rsyslogTree({ forwarderUp: true });
    await cleanup(join(root, 'proc/300'));
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000001`, 60_000, 600);
    await put(root, `${SPOOL}/sentinel-cef-fwd.qi`, '<OPB:1:qqueue:1:\n+iQueueSize:2:3:104:\n+tVars.disk.sizeOnDisk:2:5:52000:\n>End\n.\n');
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('52000 bytes (104 messages) of CEF wait');
    expect(r.message).toContain('while rsyslog is stopped');
    expect(r.details).toMatchObject({ fileCount: 1, pendingMessages: 104 });
  });

  it('says when spool files have no .qi, so rsyslog will not read them at start', async () => {
    await rsyslogTree({ forwarderUp: true });
    await cleanup(join(root, 'proc/300'));
    await spoolFile(`${SPOOL}/sentinel-cef-fwd.00000007`, 2500, 600);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('2500 bytes of CEF sit in /var/spool/rsyslog without sentinel-cef-fwd.qi');
    expect(r.fix).toContain('recover_qi.pl (-w /var/spool/rsyslog -f sentinel-cef-fwd -d 8)');
    expect(r.details).toMatchObject({ orphaned: true });
  });

  it('skips, not passes, when the spool directory cannot be read', async () => {
    await rsyslogTree({ forwarderUp: true });
    const { FsRoot } = await import('../../src/system/fs-root.js');
    const ctx = ctxFor();
    const denied = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    const orig = FsRoot.prototype.readdir;
    ctx.fs.readdir = async (p: string) => (p === SPOOL ? Promise.reject(denied) : orig.call(ctx.fs, p));
    const r = await daemon.checkSpool(ctx);
    expect(r.status).toBe('skip');
    expect(r.message).toContain('cannot read /var/spool/rsyslog: EACCES');
  });

  it('skips without a daemon', async () => {
    await healthyTree(root, { adminPort: 1, daemonPort: 514 });
    await cleanup(join(root, 'proc/300'));
    await cleanup(join(root, 'usr/sbin/rsyslogd'));
    expect((await daemon.checkSpool(ctxFor())).status).toBe('skip');
  });
});

describe('daemon.spool on syslog-ng', () => {
  const ngDropIn =
    '# Managed by sentinel-cef 0.1.0.\ndestination d_sentinel_cef {\n' +
    '    network("127.0.0.1" port(25226) transport("tcp") template("${RAWMSG}\\n")\n' +
    '        persist-name("sentinel-cef-raw") time-reopen(2)\n' +
    '        disk-buffer(reliable(yes) disk-buf-size(1073741824) mem-buf-size(16777216)));\n};\n' +
    'log { source(s); filter(f_sentinel_cef); destination(d_sentinel_cef); flags(final); };\n';

  async function ngTree(o: { forwarderUp: boolean; otherReliable?: boolean }) {
    if (o.forwarderUp) admin = await startFakeAdmin();
    await healthyTree(root, { adminPort: admin?.port ?? 1, daemonPort: 514, daemon: 'syslog-ng', dropIn: ngDropIn });
    await put(
      root,
      '/etc/syslog-ng/syslog-ng.conf',
      '@version: 3.38\n' +
        (o.otherReliable ? 'destination d_remote { network("10.0.0.9" disk-buffer(reliable(yes) disk-buf-size(1000000))); };\n' : '') +
        '# disk-buffer(reliable(yes)) in a comment does not count\n@include "/etc/syslog-ng/conf.d/*.conf"\n',
    );
  }

  it('passes when every reliable buffer is empty', async () => {
    await ngTree({ forwarderUp: true });
    await rqf('syslog-ng-00000.rqf', qdiskHeader({ length: 0, readHead: 4096, writeHead: 4096 }), 0, 600);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('pass');
    expect(r.details).toMatchObject({ dir: '/var/lib/syslog-ng', pendingBytes: 0, pendingMessages: 0 });
  });

  it('does not call a buffer empty when its header cannot be read', async () => {
    await ngTree({ forwarderUp: true });
    await rqf('syslog-ng-00000.rqf', Buffer.alloc(20), 0, 600);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('skip');
    expect(r.message).toContain('header unreadable');
  });

  it('counts messages and bytes from the headers of non-empty buffers, in either byte order', async () => {
    await ngTree({ forwarderUp: false });
    await rqf('syslog-ng-00000.rqf', qdiskHeader({ length: 3, readHead: 4096, writeHead: 4096 + 900 }), 900, 600);
    await rqf(
      'syslog-ng-00001.rqf',
      qdiskHeader({ length: 1, backlogLen: 1, readHead: 4396, writeHead: 4696, backlogHead: 4096, bigEndian: true }),
      600,
      300,
    );
    await rqf('syslog-ng-00002.rqf', qdiskHeader({ length: 0, readHead: 4096, writeHead: 4096 }), 0, 10);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain("1500 bytes (5 messages) of CEF wait in syslog-ng's reliable disk buffer");
    expect(r.message).toContain('ours is the only reliable disk buffer configured');
    expect(r.details).toMatchObject({ fileCount: 2, pendingBytes: 1500, pendingMessages: 5, forwarderUp: false });
  });

  it('says the totals cover other destinations when they have reliable buffers too, and flags a stuck buffer', async () => {
    await ngTree({ forwarderUp: true, otherReliable: true });
    await rqf('syslog-ng-00000.rqf', qdiskHeader({ length: 3, readHead: 4096, writeHead: 4096 + 900 }), 900, 120);
    const r = await daemon.checkSpool(ctxFor());
    expect(r.status).toBe('warn');
    expect(r.message).toContain('while the forwarder is up, files unchanged for 120 s');
    expect(r.message).toContain('syslog-ng.persist');
    expect(r.message).not.toContain('#2646');
    expect(r.fix).toContain('syslog-ng-ctl stats');
  });
});

describe('spool file parsers', () => {
  it('finds our omfwd queue in the drop-in, ignoring comments', () => {
    expect(parseRsyslogDropInQueue(dropIn('/var/spool/rsyslog'))).toEqual({
      filename: 'sentinel-cef-fwd',
      spoolDirectory: '/var/spool/rsyslog',
    });
    expect(parseRsyslogDropInQueue(dropIn())).toEqual({ filename: 'sentinel-cef-fwd', spoolDirectory: undefined });
    expect(parseRsyslogDropInQueue('# action(type="omfwd" queue.filename="x")\n')).toBeNull();
    // install renders an omrelp action when rsyslog has omrelp: same queue.
    expect(
      parseRsyslogDropInQueue(
        dropIn()
          .replace('type="omfwd"', 'type="omrelp"')
          .replace(/ protocol="tcp"| TCP_Framing="octet-counted"/g, ''),
      ),
    ).toEqual({ filename: 'sentinel-cef-fwd', spoolDirectory: undefined });
  });
  it("reads the .qi's queue size and bytes on disk", () => {
    expect(parseRsyslogQi('<OPB:1:qqueue:1:\n+iQueueSize:2:2:17:\n+tVars.disk.sizeOnDisk:2:4:9000:\n>End\n')).toEqual({
      messages: 17,
      bytes: 9000,
    });
    expect(parseRsyslogQi('garbage')).toEqual({ messages: null, bytes: null });
  });
  it('rejects a short disk-buffer header', () => {
    expect(parseQdiskHeader(Buffer.alloc(10))).toBeNull();
    expect(parseQdiskHeader(qdiskHeader({ length: 7, readHead: 4096, writeHead: 5000, bigEndian: true }))).toMatchObject({
      magic: 'SLRQ',
      length: 7,
      writeHead: 5000,
    });
  });
});
