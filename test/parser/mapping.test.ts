import { describe, expect, it } from 'vitest';
import { CSL_COLUMNS, KEY_RULES, parseLine } from '../../src/parser/index.js';
import { CSL_COLUMNS as SINK_COLUMNS } from '../../src/sinks/columns.js';

const at = new Date('2026-11-22T10:00:30Z');

// Microsoft's CEF → CommonSecurityLog mapping (protocols.md §3) with the ArcSight long names, written out
// independently of src/parser/columns.ts. [short, long, column, sample value, expected column value]
const TABLE: Array<[string, string, string, string, string | number]> = [
  ['act', 'deviceAction', 'DeviceAction', 'blocked', 'blocked'],
  ['app', 'applicationProtocol', 'ApplicationProtocol', 'HTTPS', 'HTTPS'],
  ['cat', 'deviceEventCategory', 'DeviceEventCategory', '/Monitor/Disk', '/Monitor/Disk'],
  ['cnt', 'baseEventCount', 'EventCount', '3', 3],
  ['destinationDnsDomain', 'destinationDnsDomain', 'DestinationDnsDomain', 'corp.example', 'corp.example'],
  ['destinationServiceName', 'destinationServiceName', 'DestinationServiceName', 'sshd', 'sshd'],
  ['destinationTranslatedAddress', 'destinationTranslatedAddress', 'DestinationTranslatedAddress', '192.0.2.1', '192.0.2.1'],
  ['destinationTranslatedPort', 'destinationTranslatedPort', 'DestinationTranslatedPort', '8443', 8443],
  ['deviceDnsDomain', 'deviceDnsDomain', 'DeviceDnsDomain', 'corp', 'corp'],
  ['deviceExternalId', 'deviceExternalId', 'DeviceExternalID', 'FW-1', 'FW-1'],
  ['deviceFacility', 'deviceFacility', 'DeviceFacility', 'kern', 'kern'],
  ['deviceInboundInterface', 'deviceInboundInterface', 'DeviceInboundInterface', 'eth0', 'eth0'],
  ['deviceNtDomain', 'deviceNtDomain', 'DeviceNtDomain', 'CORP', 'CORP'],
  ['deviceOutboundInterface', 'deviceOutboundInterface', 'DeviceOutboundInterface', 'eth1', 'eth1'],
  ['devicePayloadId', 'devicePayloadId', 'DevicePayloadId', 'p1', 'p1'],
  ['deviceProcessName', 'deviceProcessName', 'ProcessName', 'httpd', 'httpd'],
  ['deviceTranslatedAddress', 'deviceTranslatedAddress', 'DeviceTranslatedAddress', '192.0.2.2', '192.0.2.2'],
  ['dhost', 'destinationHostName', 'DestinationHostName', 'db01', 'db01'],
  ['dmac', 'destinationMacAddress', 'DestinationMACAddress', '00:11:22:33:44:55', '00:11:22:33:44:55'],
  ['dntdom', 'destinationNtDomain', 'DestinationNTDomain', 'CORP', 'CORP'],
  ['dpid', 'destinationProcessId', 'DestinationProcessId', '4242', 4242],
  ['dpriv', 'destinationUserPrivileges', 'DestinationUserPrivileges', 'Administrator', 'Administrator'],
  ['dproc', 'destinationProcessName', 'DestinationProcessName', 'sshd', 'sshd'],
  ['dpt', 'destinationPort', 'DestinationPort', '22', 22],
  ['dst', 'destinationAddress', 'DestinationIP', '192.0.2.3', '192.0.2.3'],
  ['dtz', 'deviceTimeZone', 'DeviceTimeZone', 'Europe/Berlin', 'Europe/Berlin'],
  ['duid', 'destinationUserId', 'DestinationUserID', '1001', '1001'],
  ['duser', 'destinationUserName', 'DestinationUserName', 'bob', 'bob'],
  ['dvc', 'deviceAddress', 'DeviceAddress', '192.0.2.4', '192.0.2.4'],
  ['dvchost', 'deviceHostName', 'DeviceName', 'fw01', 'fw01'],
  ['dvcmac', 'deviceMacAddress', 'DeviceMacAddress', '00:11:22:33:44:66', '00:11:22:33:44:66'],
  ['dvcpid', 'deviceProcessId', 'ProcessID', '77', 77],
  ['end', 'endTime', 'EndTime', '1763805600000', '2025-11-22T10:00:00.000Z'],
  ['fileCreateTime', 'fileCreateTime', 'FileCreateTime', 'Nov 22 2026 10:00:00', 'Nov 22 2026 10:00:00'],
  ['fileHash', 'fileHash', 'FileHash', 'abc123', 'abc123'],
  ['fileId', 'fileId', 'FileID', 'f1', 'f1'],
  ['fileModificationTime', 'fileModificationTime', 'FileModificationTime', '1700000000000', '1700000000000'],
  ['filePath', 'filePath', 'FilePath', '/tmp/x', '/tmp/x'],
  ['filePermission', 'filePermission', 'FilePermission', 'rw-r--r--', 'rw-r--r--'],
  ['fileType', 'fileType', 'FileType', 'exe', 'exe'],
  ['fname', 'fileName', 'FileName', 'x.exe', 'x.exe'],
  ['fsize', 'fileSize', 'FileSize', '1024', 1024],
  ['in', 'bytesIn', 'ReceivedBytes', '5000000000', 5000000000],
  ['msg', 'message', 'Message', 'hello world', 'hello world'],
  ['oldFileCreateTime', 'oldFileCreateTime', 'OldFileCreateTime', 't', 't'],
  ['oldFileHash', 'oldFileHash', 'OldFileHash', 'h', 'h'],
  ['oldFileId', 'oldFileId', 'OldFileID', 'i', 'i'],
  ['oldFileModificationTime', 'oldFileModificationTime', 'OldFileModificationTime', 't', 't'],
  ['oldFileName', 'oldFileName', 'OldFileName', 'n', 'n'],
  ['oldFilePath', 'oldFilePath', 'OldFilePath', 'p', 'p'],
  ['oldFilePermission', 'oldFilePermission', 'OldFilePermission', 'r', 'r'],
  ['oldFileSize', 'oldFileSize', 'OldFileSize', '12', 12],
  ['oldFileType', 'oldFileType', 'OldFileType', 'ty', 'ty'],
  ['out', 'bytesOut', 'SentBytes', '6000000000', 6000000000],
  ['outcome', 'eventOutcome', 'EventOutcome', 'success', 'success'],
  ['proto', 'transportProtocol', 'Protocol', 'TCP', 'TCP'],
  ['reason', 'reason', 'Reason', 'policy', 'policy'],
  ['request', 'requestUrl', 'RequestURL', 'https://x.example/?a=b', 'https://x.example/?a=b'],
  ['requestClientApplication', 'requestClientApplication', 'RequestClientApplication', 'curl/8', 'curl/8'],
  ['requestContext', 'requestContext', 'RequestContext', 'ctx', 'ctx'],
  ['requestCookies', 'requestCookies', 'RequestCookies', 'a\\=b; c\\=d', 'a=b; c=d'],
  ['requestMethod', 'requestMethod', 'RequestMethod', 'POST', 'POST'],
  ['rt', 'deviceReceiptTime', 'ReceiptTime', 'Nov 22 2026 10:00:00', 'Nov 22 2026 10:00:00'],
  ['shost', 'sourceHostName', 'SourceHostName', 'ws01', 'ws01'],
  ['smac', 'sourceMacAddress', 'SourceMACAddress', '00:11:22:33:44:77', '00:11:22:33:44:77'],
  ['sntdom', 'sourceNtDomain', 'SourceNTDomain', 'CORP', 'CORP'],
  ['sourceDnsDomain', 'sourceDnsDomain', 'SourceDnsDomain', 'corp.example', 'corp.example'],
  ['sourceServiceName', 'sourceServiceName', 'SourceServiceName', 'svc', 'svc'],
  ['sourceTranslatedAddress', 'sourceTranslatedAddress', 'SourceTranslatedAddress', '198.51.100.1', '198.51.100.1'],
  ['sourceTranslatedPort', 'sourceTranslatedPort', 'SourceTranslatedPort', '40000', 40000],
  ['spid', 'sourceProcessId', 'SourceProcessId', '99', 99],
  ['spriv', 'sourceUserPrivileges', 'SourceUserPrivileges', 'User', 'User'],
  ['sproc', 'sourceProcessName', 'SourceProcessName', 'bash', 'bash'],
  ['spt', 'sourcePort', 'SourcePort', '51000', 51000],
  ['src', 'sourceAddress', 'SourceIP', '10.0.0.1', '10.0.0.1'],
  ['start', 'startTime', 'StartTime', 'Nov 22 2026 09:00:00 UTC', '2026-11-22T09:00:00.000Z'],
  ['suid', 'sourceUserId', 'SourceUserID', '500', '500'],
  ['suser', 'sourceUserName', 'SourceUserName', 'alice', 'alice'],
  ['type', 'type', 'EventType', '1', 1],
  ['deviceDirection', 'deviceDirection', 'CommunicationDirection', '1', 'Outbound'],
  ['externalId', 'externalId', 'ExtID', '77', '77'],
];
for (let i = 1; i <= 6; i++) {
  TABLE.push([`cs${i}`, `deviceCustomString${i}`, `DeviceCustomString${i}`, `s${i}`, `s${i}`]);
  TABLE.push([`cs${i}Label`, `deviceCustomString${i}Label`, `DeviceCustomString${i}Label`, `L${i}`, `L${i}`]);
}
for (let i = 1; i <= 3; i++) {
  TABLE.push([`cn${i}`, `deviceCustomNumber${i}`, `DeviceCustomNumber${i}`, `${i}0`, i * 10]);
  TABLE.push([`cn${i}`, `deviceCustomNumber${i}`, `FieldDeviceCustomNumber${i}`, `${i}0`, i * 10]);
  TABLE.push([`cn${i}Label`, `deviceCustomNumber${i}Label`, `DeviceCustomNumber${i}Label`, `N${i}`, `N${i}`]);
}
for (let i = 1; i <= 4; i++) {
  TABLE.push([`cfp${i}`, `deviceCustomFloatingPoint${i}`, `DeviceCustomFloatingPoint${i}`, `${i}.5`, i + 0.5]);
  TABLE.push([`cfp${i}Label`, `deviceCustomFloatingPoint${i}Label`, `DeviceCustomFloatingPoint${i}Label`, `F${i}`, `F${i}`]);
  TABLE.push([`c6a${i}`, `deviceCustomIPv6Address${i}`, `DeviceCustomIPv6Address${i}`, `2001:db8::${i}`, `2001:db8::${i}`]);
  TABLE.push([`c6a${i}Label`, `deviceCustomIPv6Address${i}Label`, `DeviceCustomIPv6Address${i}Label`, `V${i}`, `V${i}`]);
}
for (let i = 1; i <= 2; i++) {
  TABLE.push([`deviceCustomDate${i}`, `deviceCustomDate${i}`, `DeviceCustomDate${i}`, 'Nov 22 2026 10:00:00', 'Nov 22 2026 10:00:00']);
  TABLE.push([`deviceCustomDate${i}Label`, `deviceCustomDate${i}Label`, `DeviceCustomDate${i}Label`, `D${i}`, `D${i}`]);
  TABLE.push([`flexString${i}`, `flexString${i}`, `FlexString${i}`, `fs${i}`, `fs${i}`]);
  TABLE.push([`flexString${i}Label`, `flexString${i}Label`, `FlexString${i}Label`, `FS${i}`, `FS${i}`]);
  TABLE.push([`flexNumber${i}`, `flexNumber${i}`, `FlexNumber${i}`, `${i}`, i]);
  TABLE.push([`flexNumber${i}Label`, `flexNumber${i}Label`, `FlexNumber${i}Label`, `FN${i}`, `FN${i}`]);
}
TABLE.push(['flexDate1', 'flexDate1', 'FlexDate1', 'Nov 22 2026 10:00:00', 'Nov 22 2026 10:00:00']);
TABLE.push(['flexDate1Label', 'flexDate1Label', 'FlexDate1Label', 'FD', 'FD']);

describe('CEF key → CommonSecurityLog column mapping', () => {
  const cases = TABLE.flatMap(([short, long, column, sent, stored]) =>
    short === long
      ? [[short, column, sent, stored] as const]
      : [[short, column, sent, stored] as const, [long, column, sent, stored] as const],
  );

  it.each(cases)('%s → %s', (key, column, sent, stored) => {
    const r = parseLine(`CEF:0|V|P|1|id|n|5|${key}=${sent}`, at);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.row[column]).toStrictEqual(stored);
    expect(r.row.AdditionalExtensions).toBeUndefined();
  });

  it('knows no key the table above does not list (besides the spec typo C6a4Label)', () => {
    const listed = new Set(TABLE.flatMap(([s, l]) => [s, l]));
    expect([...KEY_RULES.keys()].filter((k) => !listed.has(k))).toEqual(['C6a4Label']);
  });

  it('only writes columns that exist in CommonSecurityLog', () => {
    const columns = new Set(CSL_COLUMNS.map(([n]) => n));
    for (const [, , column] of TABLE) expect(columns.has(column), column).toBe(true);
  });

  it('writes only columns the sinks declare (DCR stream), with the same types', () => {
    const declared = new Map(SINK_COLUMNS.map((c) => [c.name, c.type]));
    for (const [name, type] of CSL_COLUMNS) expect([name, declared.get(name)]).toEqual([name, type]);
  });
});
