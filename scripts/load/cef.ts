/**
 * Sequence-numbered CEF events for load and chaos runs (in the manner of rsyslog's tcpflood).
 *
 * Every event carries its stream and position: `cs6=<stream>` (stream = run id + connection +
 * segment, see gen.ts), `externalId=<seq>` and the send time in ms as `cn3`. After parsing they are
 * the CommonSecurityLog columns DeviceCustomString6, ExtID and FieldDeviceCustomNumber3, which is
 * what chkseq.ts reads back from the sink. The message is padded with `msg=` to the requested size.
 */
export const STREAM_LABEL = 'LoadStream';

/** Smallest line the fixed fields fit in. */
export const MIN_LINE = 200;
export const MAX_LINE = 8 * 1024;

const HEAD = '<134>Nov 22 08:00:00 loadgen-host CEF:0|Bench|LoadGen|1.0|';

/** One event line of exactly `size` bytes including the trailing newline (ASCII only). */
export function cefLine(stream: string, seq: number, sentAt: number, size = 500): string {
  const s = seq;
  const head = `${HEAD}${100 + (s % 50)}|Connection allowed|3|`;
  const ext =
    `externalId=${s} cs6=${stream} cs6Label=${STREAM_LABEL} cn3=${sentAt} cn3Label=sentAtMs ` +
    `src=10.1.${s & 255}.${(s >> 8) & 255} dst=203.0.113.${s % 250} spt=${1024 + (s % 60000)} dpt=443 proto=TCP act=allow ` +
    `suser=user${s % 1000}@example.com msg=`;
  const pad = size - 1 - head.length - ext.length;
  return head + ext + (pad > 0 ? 'x'.repeat(pad) : '') + '\n';
}

/** The fields chkseq needs, from a CommonSecurityLog row (ours) or a flat JSON object (peers). */
export interface SeqFields {
  stream: string;
  seq: number;
  sentAt?: number;
}

export function seqOfRow(row: Record<string, unknown>): SeqFields | null {
  const stream = row.DeviceCustomString6 ?? row.cs6 ?? row['.cef.cs6'];
  const seq = row.ExtID ?? row.ExternalID ?? row.externalId ?? row['.cef.externalId'];
  if (stream === undefined || seq === undefined) return null;
  const sent = row.FieldDeviceCustomNumber3 ?? row.DeviceCustomNumber3 ?? row.cn3 ?? row['.cef.cn3'];
  const n = Number(seq);
  if (!Number.isInteger(n)) return null;
  return { stream: String(stream), seq: n, ...(sent !== undefined ? { sentAt: Number(sent) } : {}) };
}
