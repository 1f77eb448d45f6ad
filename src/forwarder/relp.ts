/**
 * RELP server side (Reliable Event Logging Protocol, as spoken by rsyslog's omrelp through librelp):
 * https://github.com/rsyslog/librelp/blob/master/doc/relp.md
 *
 *   frame = TXNR SP COMMAND SP DATALEN [SP DATA] LF      (no SP DATA when DATALEN is 0)
 *
 * The client numbers its commands 1, 2, 3, … per session and keeps every `syslog` frame until the
 * server answers `TXNR rsp LEN 200 OK`; frames still unanswered when the session breaks are sent
 * again on the next session. So the forwarder answers a `syslog` only after the message is in the
 * disk queue (see Intake), and on a queue write failure it answers nothing and closes the session.
 * It never answers 500 to a `syslog`: librelp drops a frame the server refused (scrsp.c).
 *
 * Delivery is at-least-once: a message appended whose answer did not reach the client (the forwarder
 * killed between the write and the answer, or the connection cut) is sent again and queued twice.
 *
 * This file only parses frames and builds answers; it does no I/O.
 */
const LF = 10;
const SP = 32;
const MAX_NUMBER_DIGITS = 9;
const MAX_COMMAND_CHARS = 32;
/** librelp latches TXNR at this value and continues at 1. */
const MAX_TXNR = 999_999_999;

export class RelpProtocolError extends Error {}

export interface RelpCommand {
  txnr: number;
  command: string;
  /** The command's data; a view into the input for a frame that arrived in one read (copy before keeping). */
  data: Buffer;
  /** DATA was longer than the size limit and was cut to it. */
  truncated: boolean;
}

const enum St {
  Txnr,
  Command,
  DataLen,
  Data,
  Trailer,
}

/** Incremental RELP frame parser for one connection. */
export class RelpParser {
  private st = St.Txnr;
  private digits = 0;
  private txnr = 0;
  private command = '';
  private dataLen = 0;
  /** Bytes of DATA still to come. */
  private remaining = 0;
  private parts: Buffer[] = [];
  private kept = 0;
  private truncated = false;
  private nextTxnr = 1;

  /** maxBytes: DATA beyond this is read and discarded, the frame flagged truncated. */
  constructor(private readonly maxBytes: number) {}

  /** Bytes held of a frame not yet complete (0 between frames). */
  get pendingBytes(): number {
    return this.st === St.Txnr && this.digits === 0 ? 0 : this.kept + this.digits + this.command.length + 1;
  }

  /** Parses a chunk; throws RelpProtocolError on anything that is not a RELP frame. */
  push(chunk: Buffer, out: RelpCommand[] = []): RelpCommand[] {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.st) {
        case St.Txnr: {
          const c = chunk[i++]!;
          if (c >= 0x30 && c <= 0x39) {
            if (++this.digits > MAX_NUMBER_DIGITS) throw new RelpProtocolError('transaction number too long');
            this.txnr = this.txnr * 10 + c - 0x30;
          } else if (c === SP && this.digits > 0) {
            this.st = St.Command;
          } else {
            throw new RelpProtocolError(`invalid byte 0x${c.toString(16)} in transaction number`);
          }
          break;
        }
        case St.Command: {
          const c = chunk[i++]!;
          if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a)) {
            if (this.command.length >= MAX_COMMAND_CHARS) throw new RelpProtocolError('command too long');
            this.command += String.fromCharCode(c);
          } else if (c === SP && this.command.length > 0) {
            this.st = St.DataLen;
            this.digits = 0;
          } else {
            throw new RelpProtocolError(`invalid byte 0x${c.toString(16)} in command`);
          }
          break;
        }
        case St.DataLen: {
          const c = chunk[i++]!;
          if (c >= 0x30 && c <= 0x39) {
            if (++this.digits > MAX_NUMBER_DIGITS) throw new RelpProtocolError('data length too long');
            this.dataLen = this.dataLen * 10 + c - 0x30;
          } else if (this.digits === 0) {
            throw new RelpProtocolError('missing data length');
          } else if (this.dataLen === 0) {
            // No data: this byte is the trailer.
            if (c !== LF) throw new RelpProtocolError('missing frame trailer');
            this.emit(Buffer.alloc(0), out);
          } else if (c === SP) {
            this.st = St.Data;
            this.remaining = this.dataLen;
          } else {
            throw new RelpProtocolError(`invalid byte 0x${c.toString(16)} after data length`);
          }
          break;
        }
        case St.Data: {
          const take = Math.min(this.remaining, n - i);
          const room = this.maxBytes - this.kept;
          if (take <= room) {
            this.parts.push(chunk.subarray(i, i + take));
            this.kept += take;
          } else {
            if (room > 0) this.parts.push(chunk.subarray(i, i + room));
            this.kept += Math.max(0, room);
            this.truncated = true;
          }
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.st = St.Trailer;
          else if (this.parts.length > 0) {
            // The rest comes in a later read: own the bytes held so far.
            const held = Buffer.concat(this.parts);
            this.parts = [held];
          }
          break;
        }
        case St.Trailer: {
          if (chunk[i++] !== LF) throw new RelpProtocolError('missing frame trailer');
          const parts = this.parts;
          this.emit(parts.length === 1 ? parts[0]! : Buffer.concat(parts), out);
          break;
        }
      }
    }
    return out;
  }

  private emit(data: Buffer, out: RelpCommand[]): void {
    const txnr = this.txnr;
    // TXNR 0 carries hints, which are not numbered.
    if (txnr !== 0) {
      if (txnr !== this.nextTxnr) throw new RelpProtocolError(`transaction number ${txnr} out of sequence (expected ${this.nextTxnr})`);
      this.nextTxnr = txnr === MAX_TXNR ? 1 : txnr + 1;
    }
    out.push({ txnr, command: this.command, data, truncated: this.truncated });
    this.st = St.Txnr;
    this.digits = 0;
    this.txnr = 0;
    this.command = '';
    this.dataLen = 0;
    this.parts = [];
    this.kept = 0;
    this.truncated = false;
  }
}

/** The answer to a command: `TXNR rsp DATALEN DATA LF`. */
export function relpResponse(txnr: number, data: string): string {
  return `${txnr} rsp ${Buffer.byteLength(data)} ${data}\n`;
}

const OK_TAIL = ' rsp 6 200 OK\n';

/** `200 OK` answers to many commands as one write. */
export function relpAcks(txnrs: readonly number[]): string {
  let s = '';
  for (const t of txnrs) s += t + OK_TAIL;
  return s;
}

/**
 * The answer to `open`: the offers the forwarder accepts. It speaks RELP version 0 (what librelp
 * calls the current version) and only the `syslog` command; a client that does not offer `syslog`
 * gets a 500 and the session ends.
 */
export function relpOpenResponse(txnr: number, offers: Buffer): { response: string; ok: boolean } {
  const lines = offers.toString('latin1').split('\n');
  let version: number | null = null;
  let syslog = false;
  for (const line of lines) {
    const eq = line.indexOf('=');
    const name = eq < 0 ? line : line.slice(0, eq);
    const values = eq < 0 ? [] : line.slice(eq + 1).split(',');
    if (name === 'relp_version' && /^\d+$/.test(values[0] ?? '')) version = Number(values[0]);
    if (name === 'commands' && values.includes('syslog')) syslog = true;
  }
  if (version === null) return { response: relpResponse(txnr, '500 relp_version offer missing'), ok: false };
  if (!syslog) return { response: relpResponse(txnr, '500 required command not supported by client'), ok: false };
  return { response: relpResponse(txnr, '200 OK\nrelp_version=0\nrelp_software=sentinel-cef\ncommands=syslog'), ok: true };
}

/** The hint a server may send before it closes a session (TXNR 0, not answered). */
export const RELP_SERVERCLOSE = '0 serverclose 0\n';
