import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFsRoot } from '../../src/system/fs-root.js';
import { detectIpv6, type Ipv6Mode } from '../../src/system/ipv6.js';
import { scanRsyslogConfig } from '../../src/install/rsyslog-config.js';
import { scanSyslogNgConfig } from '../../src/install/syslog-ng-config.js';
import { renderRsyslogDropin, RSYSLOG_DROPIN } from '../../src/install/render-rsyslog.js';
import { renderSyslogNgDropin } from '../../src/install/render-syslog-ng.js';
import { parseLine } from '../../src/parser/index.js';

// What the drop-ins hand the forwarder, and that the forwarder's parser reads it: the daemon's own rebuild of the
// header is not used (rsyslog's rate-limited inputs leave APP-NAME empty and an RFC 5424 rebuild loses "CEF:").
const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const root = (c: string) => createFsRoot(path.join(fixtures, c));
const opts = { port: 514, protocol: 'both' as const, forwarderPort: 25226 };

const CEF = 'CEF:0|Acme|FW|1.0|100|evt|5|src=10.0.0.1';
const ASA =
  '%ASA-6-302013: Built outbound TCP connection 1 for outside:10.1.1.1/443 (10.1.1.1/443) to inside:10.2.2.2/5000 (10.2.2.2/5000)';
// [raw message as the device sent it, the host the row must name ("sender" = the daemon's name for the sender)]
const FORMS: Array<[string, string]> = [
  [`<134>Dec  6 10:00:00 fw01 ${CEF}`, 'fw01'],
  [`<134>Dec 06 2026 10:00:00 fw01 : ${ASA}`, 'fw01'],
  [`<134>1 2026-12-06T10:00:00Z fw01 firewall - - - ${CEF}`, 'fw01'],
  [`<134>1 2026-12-06T10:00:00Z fw01 CEF: - - - ${CEF.slice(4)}`, 'fw01'],
  [`Dec  6 10:00:00 fw01 ${CEF}`, 'fw01'],
  [CEF, 'sender'],
  [`<134>${CEF}`, 'sender'],
  [` ${CEF}`, 'sender'],
  [ASA, 'sender'],
  [`<166>${ASA}`, 'sender'],
];

/** rsyslog's rendering of our template for one message, evaluated from the drop-in text itself. */
function rsyslogLine(dropin: string, raw: string, sender: string): string {
  const tpl = /template\(name="sentinel-cef-raw" type="string" string="([^"]*)"\)/.exec(dropin)?.[1];
  const action = /action\(type="omfwd"[^)]*\)/s.exec(dropin)?.[0] ?? '';
  expect(action).toContain('template="sentinel-cef-raw"');
  expect(action).toContain('TCP_Framing="octet-counted"');
  const cond = /if \(re_match\(\$rawmsg, "([^"]*)"\)\) then \{\s*set \$\.sentinel_cef_hdr = (.*);/.exec(dropin);
  expect(tpl && cond, 'raw-message template and header rule').toBeTruthy();
  const re = new RegExp(cond![1].replace(/\[\[:space:\]\]/g, '\\s'));
  const hdr = re.test(raw)
    ? cond![2]
        .split(' & ')
        .map((p) => (p === '$pri' ? '134' : p === '$hostname' ? sender : (JSON.parse(p) as string)))
        .join('')
    : '';
  return tpl!.replace('%$.sentinel_cef_hdr%', hdr).replace('%rawmsg%', raw);
}

/** syslog-ng's rendering of d_sentinel_cef's template for one message, from the drop-in text. */
function syslogNgLine(dropin: string, raw: string, sender: string): string {
  const dest = /destination d_sentinel_cef \{([\s\S]*?)\n\};/.exec(dropin)?.[1] ?? '';
  // Octet-counted frames around the template alone.
  expect(dest).toMatch(/^\s*network\("127\.0\.0\.1" port\(\d+\) transport\("framed"\)/);
  const m = /template\("\$\(if \(match\('([^']*)' value\('RAWMSG'\)\)\) '([^']*)' '\$\{RAWMSG\}'\)"\)/.exec(dest);
  expect(m, 'raw-message template with header rule').toBeTruthy();
  const re = new RegExp(m![1].replace(/\[\[:space:\]\]/g, '\\s'));
  const macros = (t: string) => t.replace('${PRI}', '134').replace('${HOST}', sender).replace('${RAWMSG}', raw);
  return re.test(raw) ? macros(m![2]) : raw;
}

describe.each([
  [
    'rsyslog',
    async () => renderRsyslogDropin(await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] }), opts).content,
    rsyslogLine,
  ],
  ['syslog-ng', async () => renderSyslogNgDropin(await scanSyslogNgConfig(root('rhel8-syslog-ng')), opts).content, syslogNgLine],
] as const)('%s drop-in: what the forwarder receives', (_daemon, render, lineOf) => {
  it.each(FORMS)('%s parses, naming the device (or the sender for a line without header)', async (raw, host) => {
    const line = lineOf(await render(), raw, '192.0.2.7');
    const r = parseLine(line, new Date('2026-12-06T10:00:01Z'));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.row.Computer).toBe(host === 'sender' ? '192.0.2.7' : host);
    expect(r.kind).toBe(raw.includes('%ASA-') ? 'asa' : 'cef');
    if (r.kind === 'cef') expect(r.row).toMatchObject({ DeviceVendor: 'Acme', DeviceProduct: 'FW', SourceIP: '10.0.0.1' });
  });
});

describe('syslog-ng source we reuse (no raw message): the rebuilt line parses', () => {
  // What syslog-ng's parsers make of a message: [case, macros]. network() reads RFC 5424 as 3164, with "1" as PROGRAM.
  const PARSED: Array<[string, Record<string, string>, string]> = [
    [
      'RFC 5424 through network()',
      { PRI: '134', PROGRAM: '1', MSG: `2026-12-06T10:00:00.000Z fw01 CEF: - - - ${CEF.slice(4)}`, HOST: '192.0.2.7' },
      'fw01',
    ],
    [
      'RFC 5424 with APP-NAME CEF: through syslog()',
      { PRI: '134', PROGRAM: 'CEF:', MSG: CEF.slice(4), HOST: 'fw01', ISODATE: '2026-12-06T10:00:00+00:00' },
      'fw01',
    ],
    [
      'RFC 3164 with the CEF: tag',
      { PRI: '134', PROGRAM: 'CEF', MSG: CEF.slice(4), HOST: 'fw01', ISODATE: '2026-12-06T10:00:00+00:00' },
      'fw01',
    ],
    ['bare CEF', { PRI: '13', PROGRAM: 'CEF', MSG: CEF.slice(4), HOST: '192.0.2.7', ISODATE: '2026-12-06T10:00:00+00:00' }, '192.0.2.7'],
    [
      'RFC 3164 ASA',
      { PRI: '166', PROGRAM: '%ASA-6-302013', MSG: ASA.slice(ASA.indexOf(' ') + 1), HOST: 'asa01', ISODATE: '2026-12-06T10:00:00+00:00' },
      'asa01',
    ],
  ];
  it.each(PARSED)('%s', async (_case, macros, host) => {
    const r = renderSyslogNgDropin(await scanSyslogNgConfig(root('debian-syslog-ng-514')), opts);
    const dest = /destination d_sentinel_cef_parsed \{([\s\S]*?)\n\};/.exec(r.content)?.[1] ?? '';
    expect(dest).toMatch(/network\("127\.0\.0\.1" port\(25226\) transport\("framed"\)/);
    const m = /template\("\$\(if \('\$\{PROGRAM\}' eq '1'\) '([^']*)' '([^']*)'\)"\)/.exec(dest);
    expect(m, 'template').toBeTruthy();
    const fill = (t: string) => t.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_, k: string, d?: string) => macros[k] || d || '');
    const line = fill(macros.PROGRAM === '1' ? m![1] : m![2]);
    const p = parseLine(line, new Date('2026-12-06T10:00:01Z'));
    expect(p.ok, `${line} -> ${JSON.stringify(p)}`).toBe(true);
    if (p.ok) expect(p.row.Computer).toBe(host);
  });
});

describe('IPv6 listening', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'scef-ipv6-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const host = (name: string, if6: string | null, v6only: string | null) => {
    const dir = path.join(tmp, name);
    mkdirSync(path.join(dir, 'proc/net'), { recursive: true });
    mkdirSync(path.join(dir, 'proc/sys/net/ipv6'), { recursive: true });
    if (if6 !== null) writeFileSync(path.join(dir, 'proc/net/if_inet6'), if6);
    if (v6only !== null) writeFileSync(path.join(dir, 'proc/sys/net/ipv6/bindv6only'), v6only);
    return createFsRoot(dir);
  };

  it('detects how the host takes IPv6', async () => {
    const lo6 = '00000000000000000000000000000001 01 80 10 80       lo\n';
    expect(await detectIpv6(host('none', null, null))).toBe('none');
    expect(await detectIpv6(host('empty', '', '0\n'))).toBe('none');
    expect(await detectIpv6(host('dual', lo6, '0\n'))).toBe('dual-stack');
    expect(await detectIpv6(host('separate', lo6, '1\n'))).toBe('separate');
  });

  it.each<[Ipv6Mode, string[], boolean]>([
    ['none', ['network(port(514) transport("udp")', 'network(port(514) transport("tcp")'], false],
    [
      'dual-stack',
      ['network(ip("::") ip-protocol(6) port(514) transport("udp")', 'network(ip("::") ip-protocol(6) port(514) transport("tcp")'],
      true,
    ],
    [
      'separate',
      [
        'network(port(514) transport("udp")',
        'network(ip("::") ip-protocol(6) port(514) transport("udp")',
        'network(port(514) transport("tcp")',
        'network(ip("::") ip-protocol(6) port(514) transport("tcp")',
      ],
      false,
    ],
  ])('syslog-ng with IPv6 %s: sources %j', async (ipv6, drivers, unmap) => {
    const r = renderSyslogNgDropin(await scanSyslogNgConfig(root('rhel8-syslog-ng')), { ...opts, ipv6 });
    expect(r.added.inputs.map((d) => d.replace(/ flags\(store-raw-message\)\);$/, ''))).toEqual(drivers);
    // A dual-stack socket names IPv4 senders ::ffff:a.b.c.d: both our log paths put the plain address back.
    const paths = r.content.split('\n').filter((l) => l.startsWith('log { source(s_sentinel_cef);'));
    expect(paths).toHaveLength(2);
    for (const p of paths) expect(p.includes('rewrite(r_sentinel_cef_unmap);')).toBe(unmap);
    expect(r.content.includes('subst("^::ffff:", "", value("HOST"))')).toBe(unmap);
  });

  it('rsyslog inputs are the same whatever the mode: imudp/imtcp bind every address family themselves', async () => {
    const scan = await scanRsyslogConfig(root('debian12-rsyslog'), { exclude: [RSYSLOG_DROPIN] });
    const none = renderRsyslogDropin(scan, { ...opts, ipv6: 'none' }).content;
    expect(renderRsyslogDropin(scan, { ...opts, ipv6: 'dual-stack' }).content).toBe(none);
    expect(none).toMatch(/^input\(type="imudp" port="514"\)$/m);
  });
});
