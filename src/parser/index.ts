// TEMPORARY minimal parser so other modules compile and run; replaced by the real parser.
import type { ParseResult } from './types.js';
export type { CslRow, ParseResult } from './types.js';

export function parseLine(line: string | Buffer, receivedAt: Date = new Date()): ParseResult {
  const text = typeof line === 'string' ? line : line.toString('utf8');
  const i = text.indexOf('CEF:');
  if (i < 0) return { ok: false, reason: 'no CEF header' };
  const parts = text.slice(i + 4).split('|');
  if (parts.length < 8) return { ok: false, reason: 'CEF header has fewer than 7 fields' };
  const row: Record<string, string | number> = {
    TimeGenerated: receivedAt.toISOString(),
    DeviceVendor: parts[1],
    DeviceProduct: parts[2],
    DeviceVersion: parts[3],
    DeviceEventClassID: parts[4],
    Activity: parts[5],
    LogSeverity: parts[6],
  };
  const ext = parts.slice(7).join('|');
  for (const m of ext.matchAll(/(\w+)=(\S*)/g)) {
    if (m[1] === 'cs2') row.DeviceCustomString2 = m[2];
    if (m[1] === 'cs2Label') row.DeviceCustomString2Label = m[2];
  }
  return { ok: true, kind: 'cef', row };
}
