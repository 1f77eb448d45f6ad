import { describe, expect, it } from 'vitest';
import { CSL_COLUMN_TYPES, valueFitsType } from '../../src/sinks/columns.js';

describe('column types', () => {
  it('types the columns protocols.md §3 names', () => {
    for (const c of ['TimeGenerated', 'StartTime', 'EndTime']) expect(CSL_COLUMN_TYPES[c]).toBe('datetime');
    for (const c of ['SourcePort', 'DestinationPort', 'EventCount', 'FileSize', 'FlexNumber1', 'DeviceCustomNumber3', 'ExternalID'])
      expect(CSL_COLUMN_TYPES[c]).toBe('int');
    for (const c of ['ReceivedBytes', 'SentBytes', 'FieldDeviceCustomNumber1']) expect(CSL_COLUMN_TYPES[c]).toBe('long');
    for (const c of ['DeviceCustomFloatingPoint4']) expect(CSL_COLUMN_TYPES[c]).toBe('real');
    for (const c of ['ReceiptTime', 'FileCreateTime', 'DeviceCustomDate1', 'ExtID', 'AdditionalExtensions', 'CommunicationDirection'])
      expect(CSL_COLUMN_TYPES[c]).toBe('string');
  });

  it.each([
    ['int', 443, true],
    ['int', 2 ** 31, false],
    ['int', 1.5, false],
    ['int', '443', false],
    ['long', 2 ** 40, true],
    ['real', 0.25, true],
    ['real', Number.NaN, false],
    ['datetime', '2026-01-01T00:00:00.000Z', true],
    ['datetime', '2026-01-01T00:00:00+02:00', true],
    ['datetime', 'Jan 01 2026 00:00:00', false],
    ['string', 'x', true],
    ['string', 1, false],
  ] as const)('%s accepts %j: %s', (type, value, ok) => {
    expect(valueFitsType(value, type)).toBe(ok);
  });
});
