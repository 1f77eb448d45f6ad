/**
 * The record format of queue segments (unchanged since the first release; old queues must open):
 *
 *   magic 0x5c 0xef (2) | payload length u32 LE (4) | CRC32 of the payload u32 LE (4) | payload
 *   payload = receivedAt ms f64 LE (8) | flags u8 (1) | raw message bytes
 *
 * The reader (segment-reader.ts) validates magic, length bound and CRC in place; this file writes.
 */
import * as zlib from 'node:zlib';

// A namespace import: a named one fails at link time on a Node without zlib.crc32, before the version check runs.
const crc32 = zlib.crc32;

export const RECORD_HEADER = 10;
export const PAYLOAD_PREFIX = 9;
export const MAGIC0 = 0x5c;
export const MAGIC1 = 0xef;
/** No record is larger than this; a bigger length means corruption. */
export const MAX_RECORD = 16 * 1024 * 1024;

export const FLAG_TRUNCATED = 1;
/** The record holds a row as JSON (a dead-letter replay), not a syslog message: it skips the parser. */
export const FLAG_ROW = 2;

export interface QueueMessage {
  data: Buffer;
  truncated: boolean;
  /** A row as JSON (FLAG_ROW). */
  row?: boolean;
}

/** On-disk bytes of the records for these messages. */
export function encodedSize(messages: ReadonlyArray<QueueMessage>): number {
  let total = 0;
  for (const m of messages) total += RECORD_HEADER + PAYLOAD_PREFIX + m.data.length;
  return total;
}

/**
 * Encodes one append's records into one reusable buffer: write(2) is synchronous, so the buffer is
 * free again when the append returns, and no buffer is made per record.
 */
export class RecordEncoder {
  buffer = Buffer.alloc(0);
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private readonly prefix = Buffer.alloc(PAYLOAD_PREFIX);

  /** Encodes messages (total = encodedSize(messages)) into buffer[0, total). */
  encode(messages: ReadonlyArray<QueueMessage>, receivedAt: number, total: number): void {
    if (this.buffer.length < total) {
      this.buffer = Buffer.allocUnsafe(Math.max(total, this.buffer.length * 2, 64 * 1024));
      this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.length);
    }
    const out = this.buffer;
    const dv = this.view;
    // The payload prefix differs between records of one call only in its flag: CRC both variants once
    // and chain each message's bytes onto them (crc32(prefix ‖ data) = crc32(data, crc32(prefix))), so
    // no view per record is made.
    const pre = this.prefix;
    pre.writeDoubleLE(receivedAt, 0);
    pre[8] = 0;
    const crcPlain = crc32(pre);
    pre[8] = FLAG_TRUNCATED;
    const crcTruncated = crc32(pre);
    let crcRow = -1;
    let p = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const data = m.data;
      let flag = m.truncated ? FLAG_TRUNCATED : 0;
      let crc = m.truncated ? crcTruncated : crcPlain;
      if (m.row) {
        if (crcRow < 0) {
          pre[8] = FLAG_ROW;
          crcRow = crc32(pre);
        }
        flag = FLAG_ROW;
        crc = crcRow;
      }
      out[p] = MAGIC0;
      out[p + 1] = MAGIC1;
      dv.setUint32(p + 2, PAYLOAD_PREFIX + data.length, true);
      dv.setUint32(p + 6, crc32(data, crc), true);
      dv.setFloat64(p + RECORD_HEADER, receivedAt, true);
      out[p + RECORD_HEADER + 8] = flag;
      // TypedArray set of a whole view: Buffer#copy makes a new view per call.
      out.set(data, p + RECORD_HEADER + PAYLOAD_PREFIX);
      p += RECORD_HEADER + PAYLOAD_PREFIX + data.length;
    }
  }
}
