import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createFsRoot } from '../../src/system/fs-root.js';
import { scanRsyslogConfig, scanRsyslogText, parseRsyslogSize, type RsyslogScan } from '../../src/install/rsyslog-config.js';
import { scanSyslogNgConfig, scanSyslogNgText } from '../../src/install/syslog-ng-config.js';
import {
  insertRsyslogInclude,
  renderRsyslogDropin,
  RSYSLOG_DROPIN,
  RSYSLOG_INCLUDE_BLOCK,
  RSYSLOG_INCLUDE_LINE,
  rsyslogHasExternalState,
} from '../../src/install/render-rsyslog.js';
import { appendSyslogNgInclude, renderSyslogNgDropin } from '../../src/install/render-syslog-ng.js';
import { renderTemplate } from '../../src/install/templates.js';
import { VERSION } from '../../src/version.js';

/** An rsyslog.conf with nothing in it but the rsyslog.d include: no modules, inputs or work directory. */
function bareScan(): RsyslogScan {
  return {
    mainFile: '/etc/rsyslog.conf',
    files: [],
    modules: new Set(),
    inputs: [],
    maxMessageSize: '64k',
    workDirectory: null,
    includesDropins: true,
    dropinDir: '/etc/rsyslog.d',
  };
}

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const root = (c: string) => createFsRoot(path.join(fixtures, c));
const opts = { port: 514, protocol: 'both' as const, forwarderPort: 25226 };
// The version changes with every release; everything else is what we review.
const body = (s: string) => s.replace(`sentinel-cef ${VERSION}.`, 'sentinel-cef X.Y.Z.');

describe('rsyslog drop-in', () => {
  it('Debian 12: loads both input modules and adds inputs on 514', async () => {
    const scan = await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] });
    expect([...scan.modules]).toEqual(['imuxsock', 'imklog']);
    expect(scan).toMatchObject({ includesDropins: true, workDirectory: '/var/spool/rsyslog', maxMessageSize: null, inputs: [] });
    const r = renderRsyslogDropin(scan, opts);
    expect(r.path).toBe('/etc/rsyslog.d/10-sentinel-cef.conf');
    expect(body(r.content)).toMatchInlineSnapshot(`
      "# Managed by sentinel-cef X.Y.Z. \`sentinel-cef uninstall\` removes it; re-run \`sentinel-cef install\` to change it.
      #
      # Why a global filter and not inputs bound to a ruleset of our own: a filter here, included before the
      # distribution's rules, sees CEF from every input (also an input on port 514 that another file already
      # defines, which we reuse rather than bind twice), while every message that is not CEF falls through to the
      # normal rules unchanged. A separate ruleset would have to re-route non-CEF traffic by hand.
      module(load="imudp")
      module(load="imtcp")
      input(type="imudp" port="514")
      input(type="imtcp" port="514")
      # CEF and Cisco ASA/FTD go only to the local forwarder: \`stop\` keeps them out of /var/log/syslog (or
      # /var/log/messages) and so out of the Syslog table. The disk-assisted queue holds them while the forwarder
      # is down; action.resumeRetryCount="-1" retries forever instead of discarding.
      # Sizing: the default action queue holds 1,000 messages, so every burst above the forwarder's pace went
      # through the disk part, where rsyslog 8.2302 was seen to leave spilled events undelivered (104 of 1,000,000,
      # nothing counted as discarded). 50,000 in memory absorb bursts; the disk part starts at 40,000 (a stopped or
      # stalled forwarder). On a full queue rsyslog discards after queue.timeoutEnqueue (2 s by default); 10 s
      # rides out a stalled disk writer.
      #
      # The forwarder gets the message as the device sent it ($rawmsg), not one rebuilt from rsyslog's fields: an input
      # with ratelimit.interval set parses in the input thread and leaves APP-NAME empty while TAG holds "CEF:", so an
      # RFC 5424 rebuild loses "CEF:". A line with no syslog header (bare "CEF:...", with or without PRI) gets a minimal
      # RFC 5424 header with rsyslog's HOSTNAME (the sender) in front, so the forwarder still learns where it came from.
      # Octet-counted framing carries any byte $rawmsg holds (no PRI, a newline or NUL) as one message.
      #
      # RELP (omrelp, when rsyslog-relp is installed) instead of plain TCP: the forwarder answers each message only once
      # it is in its disk queue, and rsyslog keeps every unanswered one, so a forwarder killed under load loses nothing
      # (over plain TCP, what sat in socket buffers was lost).
      template(name="sentinel-cef-raw" type="string" string="%$.sentinel_cef_hdr%%rawmsg%")
      if ($rawmsg contains "CEF:" or $rawmsg contains "%ASA-" or $rawmsg contains "%FTD-") then {
          if (re_match($rawmsg, "^(<[0-9]{1,3}>)?[[:space:]]*(CEF:|%ASA-|%FTD-)")) then {
              set $.sentinel_cef_hdr = "<" & $pri & ">1 - " & $hostname & " - - - - ";
          }
          action(type="omfwd" name="sentinel-cef-forward" target="127.0.0.1" port="25226" protocol="tcp" TCP_Framing="octet-counted"
                 template="sentinel-cef-raw"
                 queue.type="LinkedList" queue.size="50000" queue.highWatermark="40000" queue.lowWatermark="10000" queue.checkpointInterval="100"
                 queue.timeoutEnqueue="10000"
                 queue.filename="sentinel-cef-fwd" queue.saveOnShutdown="on"
                 queue.maxDiskSpace="1024m" action.resumeRetryCount="-1")
          stop
      }
      "
    `);
    expect(r.warnings.join('\n')).toContain('global(maxMessageSize="64k")');
  });

  it.each([
    ['Debian/Ubuntu multiarch', 'usr/lib/x86_64-linux-gnu/rsyslog'],
    ['RHEL', 'usr/lib64/rsyslog'],
  ])('with omrelp installed (%s): sends over RELP, loads omrelp, and has no omfwd-only options', async (_what, moduleDir) => {
    const tree = mkdtempSync(path.join(tmpdir(), 'relp-render-'));
    try {
      cpSync(path.join(fixtures, 'debian12-rsyslog'), tree, { recursive: true });
      mkdirSync(path.join(tree, moduleDir), { recursive: true });
      writeFileSync(path.join(tree, moduleDir, 'omrelp.so'), '');
      const scan = await scanRsyslogConfig(createFsRoot(tree), { exclude: [RSYSLOG_DROPIN] });
      expect(scan.omrelp).toBe(true);
      const r = renderRsyslogDropin(scan, opts);
      expect(r.transport).toBe('relp');
      expect(r.added.modules).toContain('module(load="omrelp")');
      const action = /action\([^)]*\)/.exec(r.content)![0];
      expect(action).toMatch(/^action\(type="omrelp" name="sentinel-cef-forward" target="127.0.0.1" port="25226"\s+template=/);
      expect(action).not.toMatch(/protocol=|TCP_Framing/);
      // The same queue as over TCP: it holds what the forwarder has not answered while it is down.
      expect(action).toContain('queue.saveOnShutdown="on"');
      expect(action).toContain('action.resumeRetryCount="-1"');
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });

  it('without omrelp: plain TCP with octet-counted framing', async () => {
    const scan = await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] });
    expect(scan.omrelp).toBe(false);
    const r = renderRsyslogDropin(scan, opts);
    expect(r.transport).toBe('tcp');
    expect(r.added.modules).not.toContain('module(load="omrelp")');
    expect(/action\([^)]*\)/.exec(r.content)![0]).toMatch(
      /^action\(type="omfwd" .* protocol="tcp" TCP_Framing="octet-counted"\s+template=/,
    );
  });

  it('Ubuntu 22.04: sorts before 50-default.conf, whose rules it must precede', async () => {
    const scan = await scanRsyslogConfig(root('ubuntu2204-rsyslog'));
    expect(scan.files).toEqual(['/etc/rsyslog.conf', '/etc/rsyslog.d/20-ufw.conf', '/etc/rsyslog.d/50-default.conf']);
    const r = renderRsyslogDropin(scan, { ...opts, protocol: 'udp' });
    expect(path.basename(r.path) < '50-default.conf').toBe(true);
    expect(r.added).toEqual({ modules: ['module(load="imudp")'], inputs: ['input(type="imudp" port="514")'] });
  });

  it('RHEL 9 with imtcp loaded and a TCP input on 514: reuses both, adds only UDP', async () => {
    const scan = await scanRsyslogConfig(root('rhel9-rsyslog-imtcp'));
    expect(scan).toMatchObject({ includesDropins: true, workDirectory: '/var/lib/rsyslog', maxMessageSize: '64k' });
    const r = renderRsyslogDropin(scan, opts);
    expect(body(r.content)).toMatchInlineSnapshot(`
      "# Managed by sentinel-cef X.Y.Z. \`sentinel-cef uninstall\` removes it; re-run \`sentinel-cef install\` to change it.
      #
      # Why a global filter and not inputs bound to a ruleset of our own: a filter here, included before the
      # distribution's rules, sees CEF from every input (also an input on port 514 that another file already
      # defines, which we reuse rather than bind twice), while every message that is not CEF falls through to the
      # normal rules unchanged. A separate ruleset would have to re-route non-CEF traffic by hand.
      module(load="imudp")
      input(type="imudp" port="514")
      # CEF and Cisco ASA/FTD go only to the local forwarder: \`stop\` keeps them out of /var/log/syslog (or
      # /var/log/messages) and so out of the Syslog table. The disk-assisted queue holds them while the forwarder
      # is down; action.resumeRetryCount="-1" retries forever instead of discarding.
      # Sizing: the default action queue holds 1,000 messages, so every burst above the forwarder's pace went
      # through the disk part, where rsyslog 8.2302 was seen to leave spilled events undelivered (104 of 1,000,000,
      # nothing counted as discarded). 50,000 in memory absorb bursts; the disk part starts at 40,000 (a stopped or
      # stalled forwarder). On a full queue rsyslog discards after queue.timeoutEnqueue (2 s by default); 10 s
      # rides out a stalled disk writer.
      #
      # The forwarder gets the message as the device sent it ($rawmsg), not one rebuilt from rsyslog's fields: an input
      # with ratelimit.interval set parses in the input thread and leaves APP-NAME empty while TAG holds "CEF:", so an
      # RFC 5424 rebuild loses "CEF:". A line with no syslog header (bare "CEF:...", with or without PRI) gets a minimal
      # RFC 5424 header with rsyslog's HOSTNAME (the sender) in front, so the forwarder still learns where it came from.
      # Octet-counted framing carries any byte $rawmsg holds (no PRI, a newline or NUL) as one message.
      #
      # RELP (omrelp, when rsyslog-relp is installed) instead of plain TCP: the forwarder answers each message only once
      # it is in its disk queue, and rsyslog keeps every unanswered one, so a forwarder killed under load loses nothing
      # (over plain TCP, what sat in socket buffers was lost).
      template(name="sentinel-cef-raw" type="string" string="%$.sentinel_cef_hdr%%rawmsg%")
      if ($rawmsg contains "CEF:" or $rawmsg contains "%ASA-" or $rawmsg contains "%FTD-") then {
          if (re_match($rawmsg, "^(<[0-9]{1,3}>)?[[:space:]]*(CEF:|%ASA-|%FTD-)")) then {
              set $.sentinel_cef_hdr = "<" & $pri & ">1 - " & $hostname & " - - - - ";
          }
          action(type="omfwd" name="sentinel-cef-forward" target="127.0.0.1" port="25226" protocol="tcp" TCP_Framing="octet-counted"
                 template="sentinel-cef-raw"
                 queue.type="LinkedList" queue.size="50000" queue.highWatermark="40000" queue.lowWatermark="10000" queue.checkpointInterval="100"
                 queue.timeoutEnqueue="10000"
                 queue.filename="sentinel-cef-fwd" queue.saveOnShutdown="on"
                 queue.maxDiskSpace="1024m" action.resumeRetryCount="-1")
          stop
      }
      "
    `);
    expect(r.warnings).toEqual([]);
  });

  it('CentOS 7 legacy $ModLoad syntax: imudp and its 514 input reused, imtcp loaded but no TCP input yet', async () => {
    const scan = await scanRsyslogConfig(root('centos7-legacy'));
    expect([...scan.modules]).toEqual(['imuxsock', 'imjournal', 'imudp', 'imtcp']);
    expect(scan.inputs).toEqual([{ type: 'imudp', port: 514, ruleset: undefined, file: '/etc/rsyslog.conf' }]);
    const r = renderRsyslogDropin(scan, opts);
    expect(r.added).toEqual({ modules: [], inputs: ['input(type="imtcp" port="514")'] });
    expect(body(r.content)).toMatchInlineSnapshot(`
      "# Managed by sentinel-cef X.Y.Z. \`sentinel-cef uninstall\` removes it; re-run \`sentinel-cef install\` to change it.
      #
      # Why a global filter and not inputs bound to a ruleset of our own: a filter here, included before the
      # distribution's rules, sees CEF from every input (also an input on port 514 that another file already
      # defines, which we reuse rather than bind twice), while every message that is not CEF falls through to the
      # normal rules unchanged. A separate ruleset would have to re-route non-CEF traffic by hand.
      input(type="imtcp" port="514")
      # CEF and Cisco ASA/FTD go only to the local forwarder: \`stop\` keeps them out of /var/log/syslog (or
      # /var/log/messages) and so out of the Syslog table. The disk-assisted queue holds them while the forwarder
      # is down; action.resumeRetryCount="-1" retries forever instead of discarding.
      # Sizing: the default action queue holds 1,000 messages, so every burst above the forwarder's pace went
      # through the disk part, where rsyslog 8.2302 was seen to leave spilled events undelivered (104 of 1,000,000,
      # nothing counted as discarded). 50,000 in memory absorb bursts; the disk part starts at 40,000 (a stopped or
      # stalled forwarder). On a full queue rsyslog discards after queue.timeoutEnqueue (2 s by default); 10 s
      # rides out a stalled disk writer.
      #
      # The forwarder gets the message as the device sent it ($rawmsg), not one rebuilt from rsyslog's fields: an input
      # with ratelimit.interval set parses in the input thread and leaves APP-NAME empty while TAG holds "CEF:", so an
      # RFC 5424 rebuild loses "CEF:". A line with no syslog header (bare "CEF:...", with or without PRI) gets a minimal
      # RFC 5424 header with rsyslog's HOSTNAME (the sender) in front, so the forwarder still learns where it came from.
      # Octet-counted framing carries any byte $rawmsg holds (no PRI, a newline or NUL) as one message.
      #
      # RELP (omrelp, when rsyslog-relp is installed) instead of plain TCP: the forwarder answers each message only once
      # it is in its disk queue, and rsyslog keeps every unanswered one, so a forwarder killed under load loses nothing
      # (over plain TCP, what sat in socket buffers was lost).
      template(name="sentinel-cef-raw" type="string" string="%$.sentinel_cef_hdr%%rawmsg%")
      if ($rawmsg contains "CEF:" or $rawmsg contains "%ASA-" or $rawmsg contains "%FTD-") then {
          if (re_match($rawmsg, "^(<[0-9]{1,3}>)?[[:space:]]*(CEF:|%ASA-|%FTD-)")) then {
              set $.sentinel_cef_hdr = "<" & $pri & ">1 - " & $hostname & " - - - - ";
          }
          action(type="omfwd" name="sentinel-cef-forward" target="127.0.0.1" port="25226" protocol="tcp" TCP_Framing="octet-counted"
                 template="sentinel-cef-raw"
                 queue.type="LinkedList" queue.size="50000" queue.highWatermark="40000" queue.lowWatermark="10000" queue.checkpointInterval="100"
                 queue.timeoutEnqueue="10000"
                 queue.filename="sentinel-cef-fwd" queue.saveOnShutdown="on"
                 queue.maxDiskSpace="1024m" action.resumeRetryCount="-1")
          stop
      }
      "
    `);
  });

  it('on another port with UDP only, and without a work directory, gives the queue its own spool', () => {
    const scan = bareScan();
    const r = renderRsyslogDropin(scan, { port: 1514, protocol: 'udp', forwarderPort: 25300, queueMaxBytes: 256 * 1024 ** 2 });
    expect(r.content).toContain('input(type="imudp" port="1514")');
    expect(r.content).toContain('port="25300"');
    expect(r.content).toContain('queue.maxDiskSpace="256m" queue.spoolDirectory="/var/spool/rsyslog"');
    expect(r.content).not.toContain('imtcp');
  });

  it('warns when an existing input is bound to another ruleset', () => {
    const scan: RsyslogScan = { ...bareScan(), modules: new Set(['imudp']), workDirectory: '/var/lib/rsyslog' };
    scanRsyslogText('input(type="imudp" port="514" ruleset="remote") # appliances\n', '/etc/rsyslog.d/remote.conf', scan);
    const r = renderRsyslogDropin(scan, { ...opts, protocol: 'udp' });
    expect(r.added.inputs).toEqual([]);
    expect(r.warnings[0]).toMatch(/ruleset "remote".*bypasses our filter/);
  });

  it('gives the forwarding action a queue that absorbs bursts in memory and does not discard on a short stall', async () => {
    const scan = await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] });
    const action = renderRsyslogDropin(scan, opts).content.match(/action\(type="omfwd"[^)]*\)/s)?.[0] ?? '';
    const param = (k: string) => action.match(new RegExp(`\\b${k.replace('.', '\\.')}="([^"]*)"`))?.[1];
    // Disk-assisted (a file name), spilling to disk well before the memory part is full.
    expect(param('queue.filename')).toBe('sentinel-cef-fwd');
    expect(Number(param('queue.size'))).toBeGreaterThanOrEqual(50_000);
    expect(Number(param('queue.highWatermark'))).toBeLessThan(Number(param('queue.size')));
    expect(Number(param('queue.lowWatermark'))).toBeLessThan(Number(param('queue.highWatermark')));
    // 0 would discard at once when full; the default (2000 ms) discards after a 2-s stall.
    expect(Number(param('queue.timeoutEnqueue'))).toBeGreaterThanOrEqual(10_000);
    // Nothing that drops by severity or by fill level.
    expect(param('queue.discardMark')).toBeUndefined();
    expect(param('queue.discardSeverity')).toBeUndefined();
    expect(param('action.resumeRetryCount')).toBe('-1');
  });

  it('with the intake state file, the action reads it before each batch and retries every 5 s (issue 15)', async () => {
    const scan = await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] });
    const action = (o: object) => renderRsyslogDropin(scan, { ...opts, ...o }).content.match(/action\(type="omfwd"[^)]*\)/s)?.[0] ?? '';
    const param = (a: string, k: string) => a.match(new RegExp(`\\b${k.replace('.', '\\.')}="([^"]*)"`))?.[1];
    const withState = action({ intakeStateFile: '/run/sentinel-cef/intake.state' });
    expect(param(withState, 'action.externalstate.file')).toBe('/run/sentinel-cef/intake.state');
    expect(param(withState, 'action.resumeInterval')).toBe('5');
    expect(param(withState, 'action.resumeRetryCount')).toBe('-1');
    // rsyslog before 8.1904 rejects the parameter: not rendered without a file.
    expect(action({})).not.toMatch(/externalstate|resumeInterval/);
    expect(renderRsyslogDropin(scan, opts).content).not.toMatch(/SUSPENDED/);
  });

  it('durable (issue 15): the main queue and the action queue on disk, every message synced and checkpointed; the default keeps memory', async () => {
    const scan = await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] });
    const params = (block: string) => Object.fromEntries([...block.matchAll(/\b(queue\.[A-Za-z]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const durable = renderRsyslogDropin(scan, { ...opts, durable: true });
    expect(durable.warnings.join('\n')).not.toMatch(/main queue/);
    const main = params(durable.content.match(/^main_queue\([^)]*\)/ms)?.[0] ?? '');
    const action = params(durable.content.match(/action\(type="omfwd"[^)]*\)/s)?.[0] ?? '');
    for (const q of [main, action]) {
      expect(q).toMatchObject({
        'queue.type': 'Disk',
        'queue.checkpointInterval': '1',
        'queue.syncQueueFiles': 'on',
        'queue.saveOnShutdown': 'on',
      });
      // A disk queue is bounded by maxDiskSpace, not by a message count that a stopped forwarder would reach.
      expect(Number(q['queue.size'])).toBeGreaterThanOrEqual(1_000_000);
      expect(q['queue.maxDiskSpace']).toBe('1024m');
    }
    expect(main['queue.filename']).not.toBe(action['queue.filename']);
    // Nothing disk-assisted is left in the action: watermarks apply to memory queues only.
    expect(action['queue.highWatermark']).toBeUndefined();
    // The default renders no main queue and keeps the in-memory action queue.
    const plain = renderRsyslogDropin(scan, opts).content;
    expect(plain).not.toMatch(/main_queue|queue\.type="Disk"|syncQueueFiles/);
    expect(plain).toContain('queue.type="LinkedList" queue.size="50000"');
  });

  it('the in-memory action queue saves its disk part every 100 messages: a power cut after a spill re-sends at most that many', async () => {
    const scan = await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] });
    const action = renderRsyslogDropin(scan, opts).content.match(/action\(type="omfwd"[^)]*\)/s)?.[0] ?? '';
    // Without it rsyslog writes the queue's state only at shutdown; after a power cut it sent again what it had
    // delivered (docs/RELIABILITY.md, "Scale-out on systemd machines").
    expect(action).toMatch(/queue\.type="LinkedList"[^)]*queue\.checkpointInterval="100"/s);
    expect(action).toContain('queue.filename="sentinel-cef-fwd"');
  });

  it('durable with a main queue set elsewhere: rsyslog takes one main_queue(), so only the action queue goes to disk, with a warning', () => {
    const scan = bareScan();
    scanRsyslogText('$MainMsgQueueType LinkedList\n', '/etc/rsyslog.conf', scan);
    expect(scan.mainQueue).toBe('/etc/rsyslog.conf');
    const r = renderRsyslogDropin(scan, { ...opts, durable: true });
    expect(r.content).not.toMatch(/main_queue/);
    expect(r.content).toMatch(/action\([^)]*queue\.type="Disk"[^)]*queue\.spoolDirectory="\/var\/spool\/rsyslog"/s);
    expect(r.warnings).toContainEqual(
      expect.stringMatching(/^\/etc\/rsyslog\.conf configures rsyslog's main queue, so --durable leaves it/),
    );
    const other: RsyslogScan = { ...scan, mainQueue: undefined };
    scanRsyslogText('main_queue(queue.size="100000")\n', '/etc/rsyslog.d/00-main.conf', other);
    expect(other.mainQueue).toBe('/etc/rsyslog.d/00-main.conf');
  });

  it.each([
    ['8.2302.0', true],
    ['8.1904.0', true],
    ['8.1903.0', false],
    ['8.1901.0', false],
    ['8.32.0', false],
    ['8.24.0', false],
    ['9.0', true],
    [null, false],
  ])('rsyslog %s has action.externalstate.file: %s', (v, has) => {
    expect(rsyslogHasExternalState(v)).toBe(has);
  });

  it('parses rsyslog sizes', () => {
    expect([parseRsyslogSize('64k'), parseRsyslogSize('8192'), parseRsyslogSize('1m'), parseRsyslogSize(null)]).toEqual([
      65536,
      8192,
      1048576,
      null,
    ]);
  });
});

describe('syslog-ng drop-in', () => {
  it('RHEL 8 (s_sys, d_mesg): its own source, never s_sys, and non-CEF on 514 goes to d_mesg', async () => {
    const scan = await scanSyslogNgConfig(root('rhel8-syslog-ng'));
    expect(scan).toMatchObject({ includesConfD: true, sources: ['s_sys'], listeners: [], version: '3.35' });
    const r = renderSyslogNgDropin(scan, opts);
    expect(r.warnings).toEqual([]);
    expect(body(r.content)).toMatchInlineSnapshot(`
      "# Managed by sentinel-cef X.Y.Z. \`sentinel-cef uninstall\` removes it; re-run \`sentinel-cef install\` to change it.
      #
      # Our own source on port 514: the distribution's source names (s_src on Debian, s_sys on RHEL) are never
      # assumed, and the raw message is kept so CEF is found whether "CEF:" sits in the tag or in the text.
      source s_sentinel_cef {
          network(port(514) transport("udp") flags(store-raw-message));
          network(port(514) transport("tcp") flags(store-raw-message));
      };
      filter f_sentinel_cef {
          match("CEF:" value("RAWMSG") type(string) flags(substring))
          or match("%ASA-" value("RAWMSG") type(string) flags(substring))
          or match("%FTD-" value("RAWMSG") type(string) flags(substring))
          or message("CEF:" type(string) flags(substring))
          or program("CEF" type(string))
          or program("CEF:" type(string))
          or message("%ASA-" type(string) flags(substring))
          or message("%FTD-" type(string) flags(substring))
          or program("%ASA-" type(string) flags(prefix))
          or program("%FTD-" type(string) flags(prefix));
      };

      # Our source keeps the raw message, so the forwarder receives exactly what the device sent (RFC 3164 or 5424 alike:
      # syslog-ng's network() parser knows only 3164 and would garble a 5424 header). A line with no syslog header (bare
      # "CEF:...", with or without PRI) gets a minimal RFC 5424 header with syslog-ng's HOST (the sender) in front, so
      # the forwarder still learns where it came from. transport("framed") is TCP with octet-counted frames (RFC 6587)
      # around exactly the template (syslog() would put a header of its own in front): a raw message without PRI, or
      # with a newline or NUL inside, still arrives as one message. The reliable disk buffer holds messages while the
      # forwarder is down; time-reopen(2) reconnects seconds after a forwarder restart instead of the global default of 60 s.
      destination d_sentinel_cef {
          network("127.0.0.1" port(25226) transport("framed")
              template("$(if (match('^(<[0-9]{1,3}>)?[[:space:]]*(CEF:|%ASA-|%FTD-)' value('RAWMSG'))) '<\${PRI}>1 - \${HOST} - - - - \${RAWMSG}' '\${RAWMSG}')")
              persist-name("sentinel-cef-raw") time-reopen(2)
              disk-buffer(reliable(yes) disk-buf-size(1073741824) mem-buf-size(16777216)));
      };

      # final: CEF stops here, so it reaches neither the distribution's log files nor the Syslog table.
      log { source(s_sentinel_cef); filter(f_sentinel_cef); destination(d_sentinel_cef); flags(flow-control, final); };

      # Everything else that arrives on port 514 keeps its normal place: the distribution's d_mesg.
      log { source(s_sentinel_cef); destination(d_mesg); };
      "
    `);
  });

  it('a main file without the conf.d include gets one appended line', async () => {
    const fs = root('rhel-syslog-ng-noinclude');
    const scan = await scanSyslogNgConfig(fs);
    expect(scan.includesConfD).toBe(false);
    expect(renderSyslogNgDropin(scan, opts).warnings[0]).toContain('one line is appended');
    const main = (await fs.readText('/etc/syslog-ng/syslog-ng.conf'))!;
    const appended = appendSyslogNgInclude(main);
    expect(appended.startsWith(main)).toBe(true);
    expect(appended.slice(main.length)).toMatchInlineSnapshot(`
      "
      # Added by sentinel-cef: load drop-ins.
      @include "/etc/syslog-ng/conf.d/*.conf"
      "
    `);
  });

  it('an existing UDP listener on 514 is reused, not bound twice', async () => {
    const scan = await scanSyslogNgConfig(root('debian-syslog-ng-514'));
    expect(scan.listeners).toEqual([
      { source: 's_remote', driver: 'udp', protocol: 'udp', port: 514, file: '/etc/syslog-ng/conf.d/remote.conf' },
    ]);
    const r = renderSyslogNgDropin(scan, opts);
    expect(r.content).toContain('network(port(514) transport("tcp") flags(store-raw-message));');
    expect(r.content).not.toContain('transport("udp")');
    expect(r.content).toContain(
      'log { source(s_sentinel_cef); filter(f_sentinel_cef); destination(d_sentinel_cef); flags(flow-control, final); };',
    );
    // The reused source has no raw message: it goes out parsed, as RFC 5424, with its own persist name.
    expect(r.content).toContain(
      'log { source(s_remote); filter(f_sentinel_cef); destination(d_sentinel_cef_parsed); flags(flow-control, final); };',
    );
    expect(r.content).toContain('persist-name("sentinel-cef-parsed")');
    expect(r.warnings[0]).toMatch(/source s_remote already listens on port 514/);
  });

  // Issue 19: a reused IPv4-only source gets no IPv6 listener from us, so the plan says in one line what to add.
  it.each([
    ['none', undefined],
    [
      'separate',
      'source s_remote listens on port 514 over IPv4 only: IPv6 senders are not heard; add network(ip("::") ip-protocol(6) port(514) transport("udp")) to it',
    ],
    [
      'dual-stack',
      'source s_remote listens on port 514 over IPv4 only: IPv6 senders are not heard; replace its listener with network(ip("::") ip-protocol(6) port(514) transport("udp")) (it takes IPv4 too)',
    ],
  ] as const)('a reused IPv4-only source on a host with IPv6 %s warns what to add', async (ipv6, line) => {
    const scan = await scanSyslogNgConfig(root('debian-syslog-ng-514'));
    const r = renderSyslogNgDropin(scan, { ...opts, ipv6 });
    const v6 = r.warnings.filter((w) => w.includes('IPv6'));
    expect(v6).toEqual(line ? [line] : []);
    // A reused source that binds IPv6 already needs nothing.
    const both = { ...scan, listeners: [...scan.listeners, { ...scan.listeners[0], driver: 'udp6', ipv6: true as const }] };
    expect(renderSyslogNgDropin(both, { ...opts, ipv6 }).warnings.filter((w) => w.includes('IPv6'))).toEqual([]);
  });

  it('reads which syslog-ng listeners bind IPv6', () => {
    const scan = { mainFile: 'm', files: [], includesConfD: true, sources: [], destinations: [], listeners: [], version: null };
    scanSyslogNgText(
      'source a { udp(port(514)); tcp6(port(514)); network(ip("::") port(515)); network(ip-protocol(6) port(516)); network(ip("0.0.0.0") port(517)); };',
      'f',
      scan,
    );
    expect((scan.listeners as Array<{ port: number; ipv6?: true }>).map((l) => [l.port, l.ipv6 ?? false])).toEqual([
      [514, false],
      [514, true],
      [515, true],
      [516, true],
      [517, false],
    ]);
  });
});

describe('renderTemplate', () => {
  it('substitutes, drops lines that render empty, and refuses unknown names', () => {
    expect(renderTemplate('a={{a}}\n{{b}}\nc', { a: 1, b: '' })).toBe('a=1\nc');
    expect(() => renderTemplate('{{nope}}', {})).toThrow('{{nope}}');
  });
});

describe('rsyslog.d include added to rsyslog.conf', () => {
  const debian = readFileSync(path.join(fixtures, 'debian12-rsyslog/etc/rsyslog.conf'), 'utf8').replace(/^\$IncludeConfig .*\n/m, '');
  /** Lines that route messages (selector actions, property filters, if, rulesets, legacy $RuleSet), by line number. */
  const ruleLines = (text: string) =>
    text
      .split('\n')
      .map((l, i) => [l.replace(/#.*/, '').trim(), i] as const)
      .filter(([l]) => /^([\w*,;.!=]+\.[\w*!=]+\s+\S|:\w+,|if\b|ruleset\s*\(|\$RuleSet\b|action\s*\()/i.test(l))
      .map(([, i]) => i);
  it.each([
    ['Debian 12 (legacy directives, then the distribution rules)', debian],
    [
      'RainerScript, multi-line module() and a template body',
      'module(load="imuxsock"\n       SysSock.RateLimit.Interval="0")\nglobal(workDirectory="/var/lib/rsyslog")\n' +
        'template(name="t" type="list") {\n  constant(value="(")\n  property(name="msg")\n}\n\n' +
        '# rules\nif $programname == "x" then /var/log/x.log\n*.info;mail.none /var/log/messages\n',
    ],
    [
      'a quoted parenthesis does not hide the rules',
      'global(maxMessageSize="64k" defaultNetstreamDriverCAFile="/a(b")\n*.* /var/log/all\n',
    ],
    ['rules only', '*.* /var/log/messages\nauth.* /var/log/auth.log\n'],
    ['a legacy $RuleSet before the rules', '$ModLoad imuxsock\n$RuleSet remote\n*.* /var/log/remote\n'],
    ['no rules, no final newline', '$ModLoad imuxsock\n$WorkDirectory /var/spool/rsyslog'],
    ['empty', ''],
  ])('%s: before every rule, and the rest byte for byte', (_what, original) => {
    const out = insertRsyslogInclude(original);
    const at = out.split('\n').indexOf(RSYSLOG_INCLUDE_LINE);
    expect(at).toBeGreaterThanOrEqual(0);
    for (const rule of ruleLines(out)) expect(rule).toBeGreaterThan(at);
    // Whole lines added, nothing else changed (a file without a final newline gets one first).
    expect(out.replace(RSYSLOG_INCLUDE_BLOCK, '')).toBe(original.length && !original.endsWith('\n') ? `${original}\n` : original);
    expect(out.split(RSYSLOG_INCLUDE_LINE)).toHaveLength(2);
  });

  it('Debian: right after the global directives, where the distribution has it', () => {
    const lines = insertRsyslogInclude(debian).split('\n');
    expect(lines[lines.indexOf(RSYSLOG_INCLUDE_LINE) - 2]).toBe('$WorkDirectory /var/spool/rsyslog');
  });
});
