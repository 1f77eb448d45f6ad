/**
 * CommonSecurityLog columns this parser can fill, with their Log Analytics types, and the CEF extension
 * dictionary: every ArcSight short key and its long form, mapped to the column Microsoft puts it in.
 * Sources: ArcSight "Implementing ArcSight CEF" rev. 25 extension dictionary; Microsoft "CEF and
 * CommonSecurityLog field mapping" (learn.microsoft.com/azure/sentinel/cef-name-mapping).
 */

export type ColumnType = 'string' | 'int' | 'long' | 'real' | 'datetime';

/** Every CommonSecurityLog column the parser may write, in the table's column order. */
export const CSL_COLUMNS: ReadonlyArray<readonly [name: string, type: ColumnType]> = [
  ['TimeGenerated', 'datetime'],
  ['Computer', 'string'],
  ['DeviceVendor', 'string'],
  ['DeviceProduct', 'string'],
  ['DeviceVersion', 'string'],
  ['DeviceEventClassID', 'string'],
  ['Activity', 'string'],
  ['LogSeverity', 'string'],
  ['AdditionalExtensions', 'string'],
  ['DeviceAction', 'string'],
  ['ApplicationProtocol', 'string'],
  ['EventCount', 'int'],
  ['DestinationDnsDomain', 'string'],
  ['DestinationServiceName', 'string'],
  ['DestinationTranslatedAddress', 'string'],
  ['DestinationTranslatedPort', 'int'],
  ['CommunicationDirection', 'string'],
  ['DeviceDnsDomain', 'string'],
  ['DeviceExternalID', 'string'],
  ['DeviceFacility', 'string'],
  ['DeviceInboundInterface', 'string'],
  ['DeviceNtDomain', 'string'],
  ['DeviceOutboundInterface', 'string'],
  ['DevicePayloadId', 'string'],
  ['ProcessName', 'string'],
  ['DeviceTranslatedAddress', 'string'],
  ['DestinationHostName', 'string'],
  ['DestinationMACAddress', 'string'],
  ['DestinationNTDomain', 'string'],
  ['DestinationProcessId', 'int'],
  ['DestinationUserPrivileges', 'string'],
  ['DestinationProcessName', 'string'],
  ['DestinationPort', 'int'],
  ['DestinationIP', 'string'],
  ['DeviceTimeZone', 'string'],
  ['DestinationUserID', 'string'],
  ['DestinationUserName', 'string'],
  ['DeviceAddress', 'string'],
  ['DeviceName', 'string'],
  ['DeviceMacAddress', 'string'],
  ['ProcessID', 'int'],
  ['EndTime', 'datetime'],
  ['ExternalID', 'int'],
  ['ExtID', 'string'],
  ['FileCreateTime', 'string'],
  ['FileHash', 'string'],
  ['FileID', 'string'],
  ['FileModificationTime', 'string'],
  ['FilePath', 'string'],
  ['FilePermission', 'string'],
  ['FileType', 'string'],
  ['FileName', 'string'],
  ['FileSize', 'int'],
  ['ReceivedBytes', 'long'],
  ['Message', 'string'],
  ['OldFileCreateTime', 'string'],
  ['OldFileHash', 'string'],
  ['OldFileID', 'string'],
  ['OldFileModificationTime', 'string'],
  ['OldFileName', 'string'],
  ['OldFilePath', 'string'],
  ['OldFilePermission', 'string'],
  ['OldFileSize', 'int'],
  ['OldFileType', 'string'],
  ['SentBytes', 'long'],
  ['EventOutcome', 'string'],
  ['Protocol', 'string'],
  ['Reason', 'string'],
  ['RequestURL', 'string'],
  ['RequestClientApplication', 'string'],
  ['RequestContext', 'string'],
  ['RequestCookies', 'string'],
  ['RequestMethod', 'string'],
  ['ReceiptTime', 'string'],
  ['SourceHostName', 'string'],
  ['SourceMACAddress', 'string'],
  ['SourceNTDomain', 'string'],
  ['SourceDnsDomain', 'string'],
  ['SourceServiceName', 'string'],
  ['SourceTranslatedAddress', 'string'],
  ['SourceTranslatedPort', 'int'],
  ['SourceProcessId', 'int'],
  ['SourceUserPrivileges', 'string'],
  ['SourceProcessName', 'string'],
  ['SourcePort', 'int'],
  ['SourceIP', 'string'],
  ['StartTime', 'datetime'],
  ['SourceUserID', 'string'],
  ['SourceUserName', 'string'],
  ['EventType', 'int'],
  ['DeviceEventCategory', 'string'],
  ['DeviceCustomIPv6Address1', 'string'],
  ['DeviceCustomIPv6Address1Label', 'string'],
  ['DeviceCustomIPv6Address2', 'string'],
  ['DeviceCustomIPv6Address2Label', 'string'],
  ['DeviceCustomIPv6Address3', 'string'],
  ['DeviceCustomIPv6Address3Label', 'string'],
  ['DeviceCustomIPv6Address4', 'string'],
  ['DeviceCustomIPv6Address4Label', 'string'],
  ['DeviceCustomFloatingPoint1', 'real'],
  ['DeviceCustomFloatingPoint1Label', 'string'],
  ['DeviceCustomFloatingPoint2', 'real'],
  ['DeviceCustomFloatingPoint2Label', 'string'],
  ['DeviceCustomFloatingPoint3', 'real'],
  ['DeviceCustomFloatingPoint3Label', 'string'],
  ['DeviceCustomFloatingPoint4', 'real'],
  ['DeviceCustomFloatingPoint4Label', 'string'],
  ['DeviceCustomNumber1', 'int'],
  ['FieldDeviceCustomNumber1', 'long'],
  ['DeviceCustomNumber1Label', 'string'],
  ['DeviceCustomNumber2', 'int'],
  ['FieldDeviceCustomNumber2', 'long'],
  ['DeviceCustomNumber2Label', 'string'],
  ['DeviceCustomNumber3', 'int'],
  ['FieldDeviceCustomNumber3', 'long'],
  ['DeviceCustomNumber3Label', 'string'],
  ['DeviceCustomString1', 'string'],
  ['DeviceCustomString1Label', 'string'],
  ['DeviceCustomString2', 'string'],
  ['DeviceCustomString2Label', 'string'],
  ['DeviceCustomString3', 'string'],
  ['DeviceCustomString3Label', 'string'],
  ['DeviceCustomString4', 'string'],
  ['DeviceCustomString4Label', 'string'],
  ['DeviceCustomString5', 'string'],
  ['DeviceCustomString5Label', 'string'],
  ['DeviceCustomString6', 'string'],
  ['DeviceCustomString6Label', 'string'],
  ['DeviceCustomDate1', 'string'],
  ['DeviceCustomDate1Label', 'string'],
  ['DeviceCustomDate2', 'string'],
  ['DeviceCustomDate2Label', 'string'],
  ['FlexDate1', 'string'],
  ['FlexDate1Label', 'string'],
  ['FlexNumber1', 'int'],
  ['FlexNumber1Label', 'string'],
  ['FlexNumber2', 'int'],
  ['FlexNumber2Label', 'string'],
  ['FlexString1', 'string'],
  ['FlexString1Label', 'string'],
  ['FlexString2', 'string'],
  ['FlexString2Label', 'string'],
];

export const COLUMN_TYPES: ReadonlyMap<string, ColumnType> = new Map(CSL_COLUMNS);

/** Column name → position in CSL_COLUMNS (the parser fills rows through these slots). */
export const COLUMN_INDEX: ReadonlyMap<string, number> = new Map(CSL_COLUMNS.map(([n], i) => [n, i]));

export function columnIndex(name: string): number {
  const i = COLUMN_INDEX.get(name);
  if (i === undefined) throw new Error(`unknown CommonSecurityLog column ${name}`);
  return i;
}

/**
 * How an extension key is stored. `plain` writes the converted value to `column`; the special kinds
 * implement Microsoft's rules for externalId, cn1..3 and deviceDirection.
 */
export type KeyRule =
  | { kind: 'plain'; column: string; index: number; type: ColumnType }
  | { kind: 'externalId' }
  | { kind: 'customNumber'; intColumn: string; longColumn: string; intIndex: number; longIndex: number }
  | { kind: 'direction' };

/** [short key, long key, column]; short === long where ArcSight defines only one name. */
const DICTIONARY: ReadonlyArray<readonly [string, string, string]> = [
  ['act', 'deviceAction', 'DeviceAction'],
  ['app', 'applicationProtocol', 'ApplicationProtocol'],
  ['cat', 'deviceEventCategory', 'DeviceEventCategory'],
  ['cnt', 'baseEventCount', 'EventCount'],
  ['destinationDnsDomain', 'destinationDnsDomain', 'DestinationDnsDomain'],
  ['destinationServiceName', 'destinationServiceName', 'DestinationServiceName'],
  ['destinationTranslatedAddress', 'destinationTranslatedAddress', 'DestinationTranslatedAddress'],
  ['destinationTranslatedPort', 'destinationTranslatedPort', 'DestinationTranslatedPort'],
  ['deviceDnsDomain', 'deviceDnsDomain', 'DeviceDnsDomain'],
  ['deviceExternalId', 'deviceExternalId', 'DeviceExternalID'],
  ['deviceFacility', 'deviceFacility', 'DeviceFacility'],
  ['deviceInboundInterface', 'deviceInboundInterface', 'DeviceInboundInterface'],
  ['deviceNtDomain', 'deviceNtDomain', 'DeviceNtDomain'],
  ['deviceOutboundInterface', 'deviceOutboundInterface', 'DeviceOutboundInterface'],
  ['devicePayloadId', 'devicePayloadId', 'DevicePayloadId'],
  ['deviceProcessName', 'deviceProcessName', 'ProcessName'],
  ['deviceTranslatedAddress', 'deviceTranslatedAddress', 'DeviceTranslatedAddress'],
  ['dhost', 'destinationHostName', 'DestinationHostName'],
  ['dmac', 'destinationMacAddress', 'DestinationMACAddress'],
  ['dntdom', 'destinationNtDomain', 'DestinationNTDomain'],
  ['dpid', 'destinationProcessId', 'DestinationProcessId'],
  ['dpriv', 'destinationUserPrivileges', 'DestinationUserPrivileges'],
  ['dproc', 'destinationProcessName', 'DestinationProcessName'],
  ['dpt', 'destinationPort', 'DestinationPort'],
  ['dst', 'destinationAddress', 'DestinationIP'],
  ['dtz', 'deviceTimeZone', 'DeviceTimeZone'],
  ['duid', 'destinationUserId', 'DestinationUserID'],
  ['duser', 'destinationUserName', 'DestinationUserName'],
  ['dvc', 'deviceAddress', 'DeviceAddress'],
  ['dvchost', 'deviceHostName', 'DeviceName'],
  ['dvcmac', 'deviceMacAddress', 'DeviceMacAddress'],
  ['dvcpid', 'deviceProcessId', 'ProcessID'],
  ['end', 'endTime', 'EndTime'],
  ['fileCreateTime', 'fileCreateTime', 'FileCreateTime'],
  ['fileHash', 'fileHash', 'FileHash'],
  ['fileId', 'fileId', 'FileID'],
  ['fileModificationTime', 'fileModificationTime', 'FileModificationTime'],
  ['filePath', 'filePath', 'FilePath'],
  ['filePermission', 'filePermission', 'FilePermission'],
  ['fileType', 'fileType', 'FileType'],
  ['fname', 'fileName', 'FileName'],
  ['fsize', 'fileSize', 'FileSize'],
  ['in', 'bytesIn', 'ReceivedBytes'],
  ['msg', 'message', 'Message'],
  ['oldFileCreateTime', 'oldFileCreateTime', 'OldFileCreateTime'],
  ['oldFileHash', 'oldFileHash', 'OldFileHash'],
  ['oldFileId', 'oldFileId', 'OldFileID'],
  ['oldFileModificationTime', 'oldFileModificationTime', 'OldFileModificationTime'],
  ['oldFileName', 'oldFileName', 'OldFileName'],
  ['oldFilePath', 'oldFilePath', 'OldFilePath'],
  ['oldFilePermission', 'oldFilePermission', 'OldFilePermission'],
  ['oldFileSize', 'oldFileSize', 'OldFileSize'],
  ['oldFileType', 'oldFileType', 'OldFileType'],
  ['out', 'bytesOut', 'SentBytes'],
  ['outcome', 'eventOutcome', 'EventOutcome'],
  ['proto', 'transportProtocol', 'Protocol'],
  ['reason', 'reason', 'Reason'],
  ['request', 'requestUrl', 'RequestURL'],
  ['requestClientApplication', 'requestClientApplication', 'RequestClientApplication'],
  ['requestContext', 'requestContext', 'RequestContext'],
  ['requestCookies', 'requestCookies', 'RequestCookies'],
  ['requestMethod', 'requestMethod', 'RequestMethod'],
  ['rt', 'deviceReceiptTime', 'ReceiptTime'],
  ['shost', 'sourceHostName', 'SourceHostName'],
  ['smac', 'sourceMacAddress', 'SourceMACAddress'],
  ['sntdom', 'sourceNtDomain', 'SourceNTDomain'],
  ['sourceDnsDomain', 'sourceDnsDomain', 'SourceDnsDomain'],
  ['sourceServiceName', 'sourceServiceName', 'SourceServiceName'],
  ['sourceTranslatedAddress', 'sourceTranslatedAddress', 'SourceTranslatedAddress'],
  ['sourceTranslatedPort', 'sourceTranslatedPort', 'SourceTranslatedPort'],
  ['spid', 'sourceProcessId', 'SourceProcessId'],
  ['spriv', 'sourceUserPrivileges', 'SourceUserPrivileges'],
  ['sproc', 'sourceProcessName', 'SourceProcessName'],
  ['spt', 'sourcePort', 'SourcePort'],
  ['src', 'sourceAddress', 'SourceIP'],
  ['start', 'startTime', 'StartTime'],
  ['suid', 'sourceUserId', 'SourceUserID'],
  ['suser', 'sourceUserName', 'SourceUserName'],
  ['type', 'type', 'EventType'],
  ['deviceCustomDate1', 'deviceCustomDate1', 'DeviceCustomDate1'],
  ['deviceCustomDate1Label', 'deviceCustomDate1Label', 'DeviceCustomDate1Label'],
  ['deviceCustomDate2', 'deviceCustomDate2', 'DeviceCustomDate2'],
  ['deviceCustomDate2Label', 'deviceCustomDate2Label', 'DeviceCustomDate2Label'],
  ['flexDate1', 'flexDate1', 'FlexDate1'],
  ['flexDate1Label', 'flexDate1Label', 'FlexDate1Label'],
  ['flexString1', 'flexString1', 'FlexString1'],
  ['flexString1Label', 'flexString1Label', 'FlexString1Label'],
  ['flexString2', 'flexString2', 'FlexString2'],
  ['flexString2Label', 'flexString2Label', 'FlexString2Label'],
  ['flexNumber1', 'flexNumber1', 'FlexNumber1'],
  ['flexNumber1Label', 'flexNumber1Label', 'FlexNumber1Label'],
  ['flexNumber2', 'flexNumber2', 'FlexNumber2'],
  ['flexNumber2Label', 'flexNumber2Label', 'FlexNumber2Label'],
];

function buildKeyRules(): Map<string, KeyRule> {
  const rules = new Map<string, KeyRule>();
  const plain = (column: string): KeyRule => {
    const type = COLUMN_TYPES.get(column);
    if (!type) throw new Error(`unknown CommonSecurityLog column ${column}`);
    return { kind: 'plain', column, index: columnIndex(column), type };
  };
  const add = (keys: string[], rule: KeyRule) => {
    for (const k of keys) rules.set(k, rule);
  };
  for (const [short, long, column] of DICTIONARY) add([short, long], plain(column));
  for (let i = 1; i <= 6; i++) {
    add([`cs${i}`, `deviceCustomString${i}`], plain(`DeviceCustomString${i}`));
    add([`cs${i}Label`, `deviceCustomString${i}Label`], plain(`DeviceCustomString${i}Label`));
  }
  for (let i = 1; i <= 3; i++) {
    add([`cn${i}`, `deviceCustomNumber${i}`], {
      kind: 'customNumber',
      intColumn: `DeviceCustomNumber${i}`,
      longColumn: `FieldDeviceCustomNumber${i}`,
      intIndex: columnIndex(`DeviceCustomNumber${i}`),
      longIndex: columnIndex(`FieldDeviceCustomNumber${i}`),
    });
    add([`cn${i}Label`, `deviceCustomNumber${i}Label`], plain(`DeviceCustomNumber${i}Label`));
  }
  for (let i = 1; i <= 4; i++) {
    add([`cfp${i}`, `deviceCustomFloatingPoint${i}`], plain(`DeviceCustomFloatingPoint${i}`));
    add([`cfp${i}Label`, `deviceCustomFloatingPoint${i}Label`], plain(`DeviceCustomFloatingPoint${i}Label`));
    add([`c6a${i}`, `deviceCustomIPv6Address${i}`], plain(`DeviceCustomIPv6Address${i}`));
    add([`c6a${i}Label`, `deviceCustomIPv6Address${i}Label`], plain(`DeviceCustomIPv6Address${i}Label`));
  }
  // The ArcSight dictionary itself spells this one with a capital C.
  rules.set('C6a4Label', plain('DeviceCustomIPv6Address4Label'));
  add(['externalId'], { kind: 'externalId' });
  add(['deviceDirection'], { kind: 'direction' });
  return rules;
}

/** Extension key (short or long form, case-sensitive) → how to store it. */
export const KEY_RULES: ReadonlyMap<string, KeyRule> = buildKeyRules();
