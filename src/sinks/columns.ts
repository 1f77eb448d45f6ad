/**
 * CommonSecurityLog columns we send and their Log Analytics types (protocols.md §3).
 * Single source for the DCR stream declaration and the mock service's type checks; the parser's
 * own column table should converge on this list.
 */
export type ColumnType = 'string' | 'int' | 'long' | 'real' | 'datetime';

const STRING_COLUMNS = [
  'Activity',
  'AdditionalExtensions',
  'ApplicationProtocol',
  'CollectorHostName',
  'CommunicationDirection',
  'Computer',
  'DestinationDnsDomain',
  'DestinationHostName',
  'DestinationIP',
  'DestinationMACAddress',
  'DestinationNTDomain',
  'DestinationProcessName',
  'DestinationServiceName',
  'DestinationTranslatedAddress',
  'DestinationUserID',
  'DestinationUserName',
  'DestinationUserPrivileges',
  'DeviceAction',
  'DeviceAddress',
  'DeviceCustomDate1',
  'DeviceCustomDate1Label',
  'DeviceCustomDate2',
  'DeviceCustomDate2Label',
  'DeviceCustomFloatingPoint1Label',
  'DeviceCustomFloatingPoint2Label',
  'DeviceCustomFloatingPoint3Label',
  'DeviceCustomFloatingPoint4Label',
  'DeviceCustomIPv6Address1',
  'DeviceCustomIPv6Address1Label',
  'DeviceCustomIPv6Address2',
  'DeviceCustomIPv6Address2Label',
  'DeviceCustomIPv6Address3',
  'DeviceCustomIPv6Address3Label',
  'DeviceCustomIPv6Address4',
  'DeviceCustomIPv6Address4Label',
  'DeviceCustomNumber1Label',
  'DeviceCustomNumber2Label',
  'DeviceCustomNumber3Label',
  'DeviceCustomString1',
  'DeviceCustomString1Label',
  'DeviceCustomString2',
  'DeviceCustomString2Label',
  'DeviceCustomString3',
  'DeviceCustomString3Label',
  'DeviceCustomString4',
  'DeviceCustomString4Label',
  'DeviceCustomString5',
  'DeviceCustomString5Label',
  'DeviceCustomString6',
  'DeviceCustomString6Label',
  'DeviceDnsDomain',
  'DeviceEventCategory',
  'DeviceEventClassID',
  'DeviceExternalID',
  'DeviceFacility',
  'DeviceInboundInterface',
  'DeviceMacAddress',
  'DeviceName',
  'DeviceNtDomain',
  'DeviceOutboundInterface',
  'DevicePayloadId',
  'DeviceProduct',
  'DeviceTimeZone',
  'DeviceTranslatedAddress',
  'DeviceVendor',
  'DeviceVersion',
  'EventOutcome',
  'ExtID',
  'FileCreateTime',
  'FileHash',
  'FileID',
  'FileModificationTime',
  'FileName',
  'FilePath',
  'FilePermission',
  'FileType',
  'FlexDate1',
  'FlexDate1Label',
  'FlexNumber1Label',
  'FlexNumber2Label',
  'FlexString1',
  'FlexString1Label',
  'FlexString2',
  'FlexString2Label',
  'LogSeverity',
  'Message',
  'OldFileCreateTime',
  'OldFileHash',
  'OldFileID',
  'OldFileModificationTime',
  'OldFileName',
  'OldFilePath',
  'OldFilePermission',
  'OldFileType',
  'ProcessName',
  'Protocol',
  'Reason',
  'ReceiptTime',
  'RequestClientApplication',
  'RequestContext',
  'RequestCookies',
  'RequestMethod',
  'RequestURL',
  'SourceDnsDomain',
  'SourceHostName',
  'SourceIP',
  'SourceMACAddress',
  'SourceNTDomain',
  'SourceProcessName',
  'SourceServiceName',
  'SourceTranslatedAddress',
  'SourceUserID',
  'SourceUserName',
  'SourceUserPrivileges',
] as const;

const INT_COLUMNS = [
  'DestinationPort',
  'DestinationProcessId',
  'DestinationTranslatedPort',
  'DeviceCustomNumber1',
  'DeviceCustomNumber2',
  'DeviceCustomNumber3',
  'EventCount',
  'EventType',
  'ExternalID',
  'FileSize',
  'FlexNumber1',
  'FlexNumber2',
  'OldFileSize',
  'ProcessID',
  'SourcePort',
  'SourceProcessId',
  'SourceTranslatedPort',
] as const;

const LONG_COLUMNS = [
  'FieldDeviceCustomNumber1',
  'FieldDeviceCustomNumber2',
  'FieldDeviceCustomNumber3',
  'ReceivedBytes',
  'SentBytes',
] as const;

const REAL_COLUMNS = [
  'DeviceCustomFloatingPoint1',
  'DeviceCustomFloatingPoint2',
  'DeviceCustomFloatingPoint3',
  'DeviceCustomFloatingPoint4',
] as const;

const DATETIME_COLUMNS = ['TimeGenerated', 'StartTime', 'EndTime'] as const;

function typed(names: readonly string[], type: ColumnType): Array<[string, ColumnType]> {
  return names.map((n) => [n, type]);
}

export const CSL_COLUMN_TYPES: Readonly<Record<string, ColumnType>> = Object.freeze(
  Object.fromEntries([
    ...typed(DATETIME_COLUMNS, 'datetime'),
    ...typed(STRING_COLUMNS, 'string'),
    ...typed(INT_COLUMNS, 'int'),
    ...typed(LONG_COLUMNS, 'long'),
    ...typed(REAL_COLUMNS, 'real'),
  ]),
);

/** TimeGenerated first, then alphabetical: the order of the DCR stream declaration. */
export const CSL_COLUMNS: ReadonlyArray<{ name: string; type: ColumnType }> = [
  { name: 'TimeGenerated', type: 'datetime' },
  ...Object.entries(CSL_COLUMN_TYPES)
    .filter(([name]) => name !== 'TimeGenerated')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, type]) => ({ name, type })),
];

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** Whether a JSON value fits a column type the way the ingestion pipeline converts it. */
export function valueFitsType(value: unknown, type: ColumnType): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX;
    case 'long':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'real':
      return typeof value === 'number' && Number.isFinite(value);
    case 'datetime':
      return typeof value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(value) && !Number.isNaN(Date.parse(value));
  }
}
