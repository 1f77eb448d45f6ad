import { describe, expect, it } from 'vitest';
import { parseCef, parseLine, severityBand, UNPARSED_KEY, type CslRow } from '../../src/parser/index.js';

const at = new Date('2026-11-22T10:00:30Z');
const BODY = '0|Acme|IDS|1.0|100|Port scan|7|src=10.0.0.5 dpt=22';
const HEADER_ROW = {
  DeviceVendor: 'Acme',
  DeviceProduct: 'IDS',
  DeviceVersion: '1.0',
  DeviceEventClassID: '100',
  Activity: 'Port scan',
  LogSeverity: '7',
  SourceIP: '10.0.0.5',
  DestinationPort: 22,
};

function row(line: string | Buffer, receivedAt = at): CslRow {
  const r = parseLine(line, receivedAt);
  if (!r.ok) throw new Error(`expected a row, got: ${r.reason}`);
  return r.row;
}

function ext(extension: string): CslRow {
  return row(`CEF:0|V|P|1|id|name|5|${extension}`);
}

describe('syslog framing', () => {
  // Exact bytes captured from util-linux 2.38 `logger -n 127.0.0.1 -d -p local4.warn -t CEF: …` on Debian 12.
  it.each([
    ['logger --rfc3164 -t CEF:', `<164>Nov 22 08:21:14 vm CEF:: ${BODY}`, 'vm'],
    ['logger --rfc3164 -t CEF', `<164>Nov 22 08:21:14 vm CEF: ${BODY}`, 'vm'],
    ['logger --rfc3164 -i -t CEF:', `<164>Nov 22 08:21:21 vm CEF:[2773]: ${BODY}`, 'vm'],
    ['logger --rfc3164 -i -t CEF', `<164>Nov 22 08:21:21 vm CEF[2773]: ${BODY}`, 'vm'],
    [
      'logger --rfc5424 -t CEF:',
      `<164>1 2026-11-22T08:21:14.296926+00:00 vm CEF: - - [timeQuality tzKnown="1" isSynced="0"] ${BODY}`,
      'vm',
    ],
    [
      'logger --rfc5424 -i --msgid',
      `<164>1 2026-11-22T08:21:21.195695+00:00 vm CEF: 2772 ID47 [timeQuality tzKnown="1" isSynced="0"] ${BODY}`,
      'vm',
    ],
    ['logger --rfc5424=notq', `<164>1 2026-11-22T08:21:21.192090+00:00 vm CEF: - - - ${BODY}`, 'vm'],
    ['logger --rfc5424=notq,notime,nohost', `<164>1 - - CEF: - - - ${BODY}`, undefined],
    // rsyslog RSYSLOG_SyslogProtocol23Format: APP-NAME is the programname (tag up to ':'), MSG keeps its space.
    ['rsyslog 5424 of `CEF:0|…`', `<164>1 2026-11-22T10:00:00+00:00 fw01 CEF - - - ${BODY}`, 'fw01'],
    ['rsyslog 5424 of `CEF: 0|…`', `<164>1 2026-11-22T10:00:00+00:00 fw01 CEF - - -  ${BODY}`, 'fw01'],
    ['rsyslog 5424 of logger 3164 `CEF:: 0|…`', `<164>1 2026-11-22T10:00:00+00:00 fw01 CEF - - - : ${BODY}`, 'fw01'],
    ['rsyslog 5424, CEF in MSG', `<134>1 2026-11-22T10:00:00.123456+01:00 fw01 CheckPoint 2731 - - CEF:${BODY}`, 'fw01'],
    ['RFC 5424 with BOM', `<134>1 2026-11-22T10:00:00Z fw01 app - - - \uFEFFCEF:${BODY}`, 'fw01'],
    ['RFC 3164 CEF in the tag position', `<134>Nov 22 10:00:00 fw01 CEF:${BODY}`, 'fw01'],
    ['RFC 3164 single-digit day', `<134>Nov  2 10:00:00 fw01 CEF:${BODY}`, 'fw01'],
    ['RFC 3164 without HOSTNAME', `<134>Nov 22 10:00:00 CEF:${BODY}`, undefined],
    ['RFC 3164 with a program tag', `<134>Nov 22 10:00:00 fw01 myapp[42]: CEF:${BODY}`, 'fw01'],
    ['appliance prefix text', `<134>Nov 22 10:00:00 fw01 CheckPoint: 22Nov2026 10:00:00 192.0.2.1 CEF:${BODY}`, 'fw01'],
    ['PRI only', `<134>CEF:${BODY}`, undefined],
    ['no PRI, file format', `Nov 22 10:00:00 fw01 CEF:${BODY}`, 'fw01'],
    ['no PRI, RFC 3339 file format', `2026-11-22T10:00:00.123456+00:00 fw01 CEF:${BODY}`, 'fw01'],
    ['bare CEF', `CEF:${BODY}`, undefined],
    ['bare CEF, space after colon', `CEF: ${BODY}`, undefined],
    ['rsyslog RSYSLOG_ForwardFormat', `<134>2026-11-22T10:00:00.123456+01:00 fw01 CEF:${BODY}`, 'fw01'],
    ['syslog-ng network() with program and pid', `<134>Nov 22 10:00:00 fw01 cef[99]: CEF:${BODY}`, 'fw01'],
    ['file starting with a BOM', `\uFEFF<134>Nov 22 10:00:00 fw01 CEF:${BODY}`, 'fw01'],
    ['CRLF line end', `<134>Nov 22 10:00:00 fw01 CEF:${BODY}\r\n`, 'fw01'],
  ])('%s', (_name, line, host) => {
    const r = row(line);
    expect(r).toMatchObject(HEADER_ROW);
    expect(r.Computer).toBe(host);
    expect(r.TimeGenerated).toBe('2026-11-22T10:00:30.000Z');
    expect(r.AdditionalExtensions).toBeUndefined();
  });

  it('skips RFC 5424 structured data with escaped ] " and \\ inside values', () => {
    const line = `<164>1 2026-11-22T10:00:00Z h CEF: - - [a@1 x="] CEF:9|no" y="\\\\"][b@2 z="q\\]"] ${BODY}`;
    expect(row(line)).toMatchObject({ ...HEADER_ROW, Computer: 'h' });
  });

  it('takes Computer from HOSTNAME even when it is an IPv6 address', () => {
    expect(row(`<134>Nov 22 10:00:00 2001:db8::1 CEF:${BODY}`).Computer).toBe('2001:db8::1');
  });

  it('finds CEF after a CEF-looking word that is not a header', () => {
    expect(row(`<134>Nov 22 10:00:00 fw01 CEF: starting. CEF:${BODY}`)).toMatchObject(HEADER_ROW);
  });
});

describe('CEF header', () => {
  it('unescapes \\| and \\\\ in header fields and keeps other backslashes', () => {
    const r = row('CEF:0|Ven\\|dor|Pro\\\\duct|1\\.0|id|a=b \\n c|High|');
    expect(r).toMatchObject({
      DeviceVendor: 'Ven|dor',
      DeviceProduct: 'Pro\\duct',
      DeviceVersion: '1\\.0',
      Activity: 'a=b \\n c',
      LogSeverity: 'High',
    });
  });

  it('keeps word and integer severities as sent', () => {
    expect(ext('').LogSeverity).toBe('5');
    expect(row('CEF:0|V|P|1|id|n|Very-High|').LogSeverity).toBe('Very-High');
  });

  it('accepts a header that ends at the severity with no extension', () => {
    expect(row('CEF:0|V|P|1|id|name|3')).toMatchObject({ LogSeverity: '3' });
  });

  it('accepts CEF version 1', () => {
    expect(row('CEF:1|V|P|1|id|name|3|src=1.2.3.4').SourceIP).toBe('1.2.3.4');
  });

  it('omits empty header fields', () => {
    const r = row('CEF:0|V||1||name|3|');
    expect(r).not.toHaveProperty('DeviceProduct');
    expect(r).not.toHaveProperty('DeviceEventClassID');
  });

  it.each([
    ['CEF:', 'has "CEF:" but no CEF header'],
    ['CEF:0', 'has "CEF:" but no CEF header'],
    ['CEF:0|', 'truncated CEF header: 2 of 7 fields'],
    ['CEF:0|V|P|1|id', 'truncated CEF header: 5 of 7 fields'],
    ['CEF:0|V|P|1|id|name', 'truncated CEF header: 6 of 7 fields'],
    ['', 'empty line'],
    ['   \t', 'empty line'],
    ['hello world', 'not a CEF or Cisco ASA/FTD message'],
  ])('rejects %j with a reason', (line, reason) => {
    const r = parseLine(line, at);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it('maps severities to CEF bands', () => {
    expect(['0', '3', '4', '6', '7', '8', '9', '10', '11', 'low', 'Very-High', 'x'].map(severityBand)).toEqual([
      'Low',
      'Low',
      'Medium',
      'Medium',
      'High',
      'High',
      'Very-High',
      'Very-High',
      'Unknown',
      'Low',
      'Very-High',
      'Unknown',
    ]);
  });
});

describe('CEF extension', () => {
  it('ends a value where the next unescaped key= begins, keeping spaces inside values', () => {
    expect(ext('msg=hello big world suser=bob')).toMatchObject({ Message: 'hello big world', SourceUserName: 'bob' });
  });

  it('keeps unescaped = and & of URLs inside the value', () => {
    expect(ext('request=https://x.example/a?b=c&d=e==&f= dpt=443')).toMatchObject({
      RequestURL: 'https://x.example/a?b=c&d=e==&f=',
      DestinationPort: 443,
    });
  });

  it('keeps base64 padding and unescaped pipes inside values', () => {
    expect(ext('cs1=QUJD== cs2=a|b|c cs3=x \\| y')).toMatchObject({
      DeviceCustomString1: 'QUJD==',
      DeviceCustomString2: 'a|b|c',
      DeviceCustomString3: 'x | y',
    });
  });

  it('unescapes \\= \\\\ \\n \\r and leaves unknown escapes alone', () => {
    expect(ext('msg=a\\=b c\\\\d e\\nf g\\rh i\\tj C:\\\\dir\\\\x')).toMatchObject({
      Message: 'a=b c\\d e\nf g\rh i\\tj C:\\dir\\x',
    });
  });

  it('does not take an escaped \\= as a key boundary', () => {
    expect(ext('msg=x y\\=z dpt=1')).toMatchObject({ Message: 'x y=z', DestinationPort: 1 });
  });

  it('takes \\\\= as a backslash ending the value, then a real =', () => {
    expect(ext('msg=path\\\\=x')).toMatchObject({ Message: 'path\\=x' });
  });

  it('accepts TAB separators and trims blanks around values', () => {
    expect(ext('src=1.1.1.1\tdst=2.2.2.2 \t spt=5 \tmsg=  padded  ')).toMatchObject({
      SourceIP: '1.1.1.1',
      DestinationIP: '2.2.2.2',
      SourcePort: 5,
      Message: 'padded',
    });
  });

  it('takes rsyslog-escaped TABs (#011) as separators', () => {
    expect(ext('src=1.1.1.1#011dst=2.2.2.2#011msg=a b#011dpt=3')).toMatchObject({
      SourceIP: '1.1.1.1',
      DestinationIP: '2.2.2.2',
      Message: 'a b',
      DestinationPort: 3,
    });
    expect(ext('#011src=1.1.1.1 msg=tag#0112=x').Message).toBe('tag#0112=x');
  });

  it('does not start a key with a digit', () => {
    expect(ext('msg=ratio 2=3 ok')).toMatchObject({ Message: 'ratio 2=3 ok' });
  });

  it('keeps text before the first key in AdditionalExtensions', () => {
    expect(ext('  stray words dpt=1').AdditionalExtensions).toBe(`${UNPARSED_KEY}=stray words`);
    expect(ext('no keys at all').AdditionalExtensions).toBe(`${UNPARSED_KEY}=no keys at all`);
  });

  it('puts unmapped keys in AdditionalExtensions as key=value joined by ;', () => {
    expect(ext('foo=1 src=1.2.3.4 bar=two words ad.x=3 empty=').AdditionalExtensions).toBe('foo=1;bar=two words;ad.x=3;empty=');
  });

  it('keeps the first of a repeated key in its column and the next in AdditionalExtensions', () => {
    const r = ext('src=1.1.1.1 src=2.2.2.2 sourceAddress=3.3.3.3');
    expect(r.SourceIP).toBe('1.1.1.1');
    expect(r.AdditionalExtensions).toBe('src=2.2.2.2;sourceAddress=3.3.3.3');
  });

  it('accepts the ArcSight long key names', () => {
    expect(
      ext(
        'sourceAddress=1.1.1.1 destinationAddress=2.2.2.2 sourcePort=1 destinationPort=2 deviceCustomString1=s deviceCustomString1Label=L deviceCustomNumber1=7 bytesIn=10 bytesOut=20 transportProtocol=TCP deviceReceiptTime=1 message=m requestUrl=u baseEventCount=3 deviceHostName=h',
      ),
    ).toMatchObject({
      SourceIP: '1.1.1.1',
      DestinationIP: '2.2.2.2',
      SourcePort: 1,
      DestinationPort: 2,
      DeviceCustomString1: 's',
      DeviceCustomString1Label: 'L',
      DeviceCustomNumber1: 7,
      FieldDeviceCustomNumber1: 7,
      ReceivedBytes: 10,
      SentBytes: 20,
      Protocol: 'TCP',
      ReceiptTime: '1',
      Message: 'm',
      RequestURL: 'u',
      EventCount: 3,
      DeviceName: 'h',
    });
  });

  it('is case-sensitive about keys', () => {
    expect(ext('SRC=1.1.1.1').AdditionalExtensions).toBe('SRC=1.1.1.1');
  });
});

describe('typed columns and Microsoft special rules', () => {
  it('converts int, long and real columns', () => {
    expect(ext('spt=0 dpt=65535 cnt=-3 in=9007199254740991 out=0 cfp1=1.5 cfp2=-2e3 cfp3=.5 fsize=2147483647')).toMatchObject({
      SourcePort: 0,
      DestinationPort: 65535,
      EventCount: -3,
      ReceivedBytes: 9007199254740991,
      SentBytes: 0,
      DeviceCustomFloatingPoint1: 1.5,
      DeviceCustomFloatingPoint2: -2000,
      DeviceCustomFloatingPoint3: 0.5,
      FileSize: 2147483647,
    });
  });

  it('keeps values that do not fit their column type in AdditionalExtensions', () => {
    const r = ext('spt=http fsize=2147483648 in=1e3 cfp1=0x10 cfp2=Infinity start=soon dpt=');
    expect(r).not.toHaveProperty('SourcePort');
    expect(r).not.toHaveProperty('FileSize');
    expect(r).not.toHaveProperty('ReceivedBytes');
    expect(r).not.toHaveProperty('DeviceCustomFloatingPoint1');
    expect(r).not.toHaveProperty('StartTime');
    expect(r.AdditionalExtensions).toBe('spt=http;fsize=2147483648;in=1e3;cfp1=0x10;cfp2=Infinity;start=soon');
  });

  it('writes externalId to ExtID always and to ExternalID when it is an int', () => {
    expect(ext('externalId=42')).toMatchObject({ ExtID: '42', ExternalID: 42 });
    const big = ext('externalId=7134021954');
    expect(big.ExtID).toBe('7134021954');
    expect(big).not.toHaveProperty('ExternalID');
    const text = ext('externalId=A-1');
    expect(text.ExtID).toBe('A-1');
    expect(text).not.toHaveProperty('ExternalID');
    expect(text.AdditionalExtensions).toBeUndefined();
  });

  it('writes cn1..3 to DeviceCustomNumber (int) and FieldDeviceCustomNumber (long)', () => {
    expect(ext('cn1=5 cn2=-2147483648 cn3=5000000000')).toMatchObject({
      DeviceCustomNumber1: 5,
      FieldDeviceCustomNumber1: 5,
      DeviceCustomNumber2: -2147483648,
      FieldDeviceCustomNumber2: -2147483648,
      FieldDeviceCustomNumber3: 5000000000,
    });
    expect(ext('cn3=5000000000')).not.toHaveProperty('DeviceCustomNumber3');
    expect(ext('cn1=1.5').AdditionalExtensions).toBe('cn1=1.5');
    expect(ext('cn1=99999999999999999999').AdditionalExtensions).toBe('cn1=99999999999999999999');
  });

  it('maps deviceDirection 0/1 to Inbound/Outbound and keeps other values as sent', () => {
    expect(ext('deviceDirection=0').CommunicationDirection).toBe('Inbound');
    expect(ext('deviceDirection=1').CommunicationDirection).toBe('Outbound');
    expect(ext('deviceDirection=Inbound').CommunicationDirection).toBe('Inbound');
  });

  it('maps type to EventType as an int', () => {
    expect(ext('type=2').EventType).toBe(2);
    expect(ext('type=correlation').AdditionalExtensions).toBe('type=correlation');
  });

  it('keeps ReceiptTime, FileCreateTime and DeviceCustomDate1 as sent', () => {
    expect(ext('rt=Nov 22 2026 10:00:00 UTC fileCreateTime=1700000000000 deviceCustomDate1=Nov 01 2026 01:02:03')).toMatchObject({
      ReceiptTime: 'Nov 22 2026 10:00:00 UTC',
      FileCreateTime: '1700000000000',
      DeviceCustomDate1: 'Nov 01 2026 01:02:03',
    });
  });

  it.each([
    ['1763805600000', '2025-11-22T10:00:00.000Z'],
    ['1763805600', '2025-11-22T10:00:00.000Z'],
    ['Nov 22 2026 09:59:00', '2026-11-22T09:59:00.000Z'],
    ['Nov 22 2026 09:59:00.250', '2026-11-22T09:59:00.250Z'],
    ['Nov 22 2026 09:59:00 UTC', '2026-11-22T09:59:00.000Z'],
    ['Nov 22 2026 10:59:00 CET', '2026-11-22T09:59:00.000Z'],
    ['Nov 22 2026 04:59:00.5 EST', '2026-11-22T09:59:00.500Z'],
    ['Nov 22 2026 11:59:00 +02:00', '2026-11-22T09:59:00.000Z'],
    ['Nov 22 2026 11:59:00 GMT+02:00', '2026-11-22T09:59:00.000Z'],
    ['Nov 22 09:59:00', '2026-11-22T09:59:00.000Z'],
    ['2026-11-22T09:59:00Z', '2026-11-22T09:59:00.000Z'],
    ['2026-11-22T11:59:00+02:00', '2026-11-22T09:59:00.000Z'],
    ['2026-11-22 09:59:00', '2026-11-22T09:59:00.000Z'],
  ])('start=%s → StartTime %s', (value, iso) => {
    expect(ext(`start=${value}`).StartTime).toBe(iso);
  });

  it('reads zone-less timestamps in the device zone (dtz), wherever dtz appears', () => {
    expect(ext('start=Nov 22 2026 10:59:00 dtz=Europe/Berlin').StartTime).toBe('2026-11-22T09:59:00.000Z');
    expect(ext('dtz=America/New_York end=Jul 04 2026 12:00:00').EndTime).toBe('2026-07-04T16:00:00.000Z');
    expect(ext('dtz=America/New_York end=2026-01-10 12:00:00').EndTime).toBe('2026-01-10T17:00:00.000Z');
    // An explicit zone or epoch time wins over dtz; an unknown dtz means UTC.
    expect(ext('dtz=Europe/Berlin start=Nov 22 2026 09:59:00 UTC end=1763805600000')).toMatchObject({
      StartTime: '2026-11-22T09:59:00.000Z',
      EndTime: '2025-11-22T10:00:00.000Z',
    });
    expect(ext('dtz=Mars/Olympus start=Nov 22 2026 09:59:00').StartTime).toBe('2026-11-22T09:59:00.000Z');
  });

  it('finds the right instant across a DST change in the device zone', () => {
    // 2026-03-29 02:30 does not exist in Berlin (clocks jump 02:00 → 03:00); 03:30 CEST is 01:30Z.
    expect(ext('dtz=Europe/Berlin start=Mar 29 2026 03:30:00').StartTime).toBe('2026-03-29T01:30:00.000Z');
    expect(ext('dtz=Europe/Berlin start=Mar 29 2026 01:30:00').StartTime).toBe('2026-03-29T00:30:00.000Z');
    expect(ext('dtz=Europe/Berlin start=Oct 25 2026 12:00:00').StartTime).toBe('2026-10-25T11:00:00.000Z');
  });

  it('puts a year-less December timestamp received in January in the previous year', () => {
    const r = row('CEF:0|V|P|1|id|n|5|end=Dec 31 23:59:00', new Date('2027-01-01T00:00:10Z'));
    expect(r.EndTime).toBe('2026-12-31T23:59:00.000Z');
  });

  it.each(['Feb 30 2026 10:00:00', 'Nov 22 2026 25:00:00', 'Nov 22 2026 10:00:00 IST', 'Foo 22 2026 10:00:00', '99999999999999999'])(
    'keeps the unconvertible timestamp %j in AdditionalExtensions',
    (value) => {
      const r = ext(`end=${value}`);
      expect(r).not.toHaveProperty('EndTime');
      expect(r.AdditionalExtensions).toBe(`end=${value}`);
    },
  );
});

describe('Cisco ASA / FTD', () => {
  it.each([
    ['<166>Nov 22 2026 10:00:00: %ASA-6-302014: Teardown TCP connection 1 for a:1.1.1.1/1 to b:2.2.2.2/2', undefined, 'ASA', '302014', '6'],
    ['<166>Nov 22 2026 10:00:00 asa01 : %ASA-6-302014: Teardown TCP', 'asa01', 'ASA', '302014', '6'],
    ["<166>:Nov 22 10:00:00 UTC: %ASA-5-111008: User 'enable_15' executed the 'write memory' command.", undefined, 'ASA', '111008', '5'],
    ['<164>%ASA-4-106023: Deny udp src a:1.1.1.1/1 dst b:2.2.2.2/2 by access-group "x"', undefined, 'ASA', '106023', '4'],
    ['<166>Nov 22 10:00:03 ftd-01 %FTD-6-430003: EventPriority: Low', 'ftd-01', 'FTD', '430003', '6'],
    ['<166>1 2026-11-22T10:00:02+00:00 asa01 %ASA-3-710003 - - -  TCP access denied', 'asa01', 'ASA', '710003', '3'],
    ['%ASA-session-6-302013: Built inbound TCP', undefined, 'ASA', '302013', '6'],
    ['<166>1 2026-11-22T10:00:02+00:00 %ASA-6-302014: - - - - Teardown TCP', undefined, 'ASA', '302014', '6'],
  ])('%s', (line, host, product, id, level) => {
    const r = parseLine(line, at);
    expect(r.ok && r.kind).toBe('asa');
    if (!r.ok) return;
    expect(r.row).toMatchObject({ DeviceVendor: 'Cisco', DeviceProduct: product, DeviceEventClassID: id, LogSeverity: level });
    expect(r.row.Computer).toBe(host);
    expect(line.endsWith(r.row.Message as string)).toBe(true);
  });

  it('extracts both ends of an inbound 302013 in order', () => {
    const r = row(
      '%ASA-6-302013: Built inbound TCP connection 7 for outside:203.0.113.5/4444 (203.0.113.5/4444) to dmz:192.0.2.10/443 (198.51.100.10/443)',
    );
    expect(r).toMatchObject({
      SourceIP: '203.0.113.5',
      SourcePort: 4444,
      DestinationIP: '192.0.2.10',
      DestinationPort: 443,
      DestinationTranslatedAddress: '198.51.100.10',
      DestinationTranslatedPort: 443,
      Protocol: 'TCP',
      CommunicationDirection: 'Inbound',
    });
    expect(r).not.toHaveProperty('SourceTranslatedAddress');
  });

  it('reads interface names with spaces (traffic to the ASA itself)', () => {
    const r = row(
      '%ASA-6-302013: Built inbound TCP connection 8 for inside:10.1.1.2/12523 (10.1.1.2/12523) to NP Identity Ifc:10.1.1.1/22 (10.1.1.1/22)',
    );
    expect(r).toMatchObject({
      SourceIP: '10.1.1.2',
      SourcePort: 12523,
      DestinationIP: '10.1.1.1',
      DestinationPort: 22,
      DeviceInboundInterface: 'inside',
      DeviceOutboundInterface: 'NP Identity Ifc',
    });
  });

  it('takes the second endpoint of an outbound 302015 as the source', () => {
    const r = row(
      '%ASA-6-302015: Built outbound UDP connection 414128851 for outside:168.15.3.6/53 (168.15.3.6/53) to inside:192.168.10.5/53 (192.168.10.5/171)',
    );
    expect(r).toMatchObject({
      SourceIP: '192.168.10.5',
      SourcePort: 53,
      SourceTranslatedPort: 171,
      DestinationIP: '168.15.3.6',
      DestinationPort: 53,
      Protocol: 'UDP',
    });
  });

  it('keeps the message intact and extracts nothing from a layout it does not know', () => {
    const r = row('%ASA-6-302013: Built inbound TCP connection 7 for outside:names-not-ips/1');
    expect(r).not.toHaveProperty('SourceIP');
    expect(r.Message).toBe('Built inbound TCP connection 7 for outside:names-not-ips/1');
  });

  it('lifts addresses, ports, protocol and action out of FTD 4300xx events', () => {
    const r = row(
      '<166>Nov 22 10:00:03 ftd-01 %FTD-6-430003: EventPriority: Low, AccessControlRuleAction: Allow, SrcIP: 10.0.6.10, DstIP: 198.51.100.80, SrcPort: 50122, DstPort: 443, Protocol: tcp, URL: http://x.example/a,b',
    );
    expect(r).toMatchObject({
      SourceIP: '10.0.6.10',
      DestinationIP: '198.51.100.80',
      SourcePort: 50122,
      DestinationPort: 443,
      Protocol: 'tcp',
      DeviceAction: 'Allow',
    });
    expect(row('%FTD-1-430001: EventPriority: High, SrcIP: , DstIP: 10.0.0.1')).not.toHaveProperty('SourceIP');
  });

  it('prefers CEF when a line has both', () => {
    const r = parseLine(`<166>Nov 22 10:00:00 h %ASA-6-1: CEF:${BODY}`, at);
    expect(r.ok && r.kind).toBe('cef');
  });
});

describe('input handling', () => {
  it('reads valid UTF-8 Buffers as UTF-8 and anything else as Latin-1, byte for byte', () => {
    expect(row(Buffer.from('CEF:0|V|P|1|id|n|5|suser=Jürgen ✓', 'utf8')).SourceUserName).toBe('Jürgen ✓');
    expect(row(Buffer.from([...Buffer.from('CEF:0|V|P|1|id|n|5|suser=J'), 0xfc, 0x72])).SourceUserName).toBe('J\u00fcr');
  });

  it('strips trailing CR, LF and NUL', () => {
    expect(ext('msg=x\r\n\0').Message).toBe('x');
  });

  it('uses receivedAt for TimeGenerated and rejects an invalid one', () => {
    expect(row(`CEF:${BODY}`, new Date('2030-01-02T03:04:05.678Z')).TimeGenerated).toBe('2030-01-02T03:04:05.678Z');
    const r = parseLine(`CEF:${BODY}`, new Date(NaN));
    expect(r).toEqual({ ok: false, reason: 'receivedAt is not a valid date' });
  });

  it('parses a 1 MiB line', () => {
    const big = 'x'.repeat(1024 * 1024);
    const r = ext(`msg=${big} dpt=1`);
    expect(r.Message).toHaveLength(1024 * 1024);
    expect(r.DestinationPort).toBe(1);
  });

  it('parseCef parses bare CEF text without syslog handling', () => {
    const r = parseCef(`CEF:${BODY}`, at);
    expect(r.ok && r.row).toMatchObject(HEADER_ROW);
    expect(parseCef('nope', at).ok).toBe(false);
  });
});
