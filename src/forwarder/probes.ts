import { createHash } from 'node:crypto';
import type { ProbeStatus } from './admin-types.js';
import { PROBE_ID_KEY, PROBE_ID_LABEL, PROBE_VENDOR } from './admin-types.js';
import type { CslRow } from '../parser/types.js';

/** Longest probe id tracked: the admin API refuses longer ones, so they could never be asked for. */
export const MAX_PROBE_ID_CHARS = 200;
/** Longest error or dead-letter reason kept per probe. */
const MAX_ERROR_CHARS = 300;
/** Bytes counted per tracked probe besides its strings: map slot, object, date strings. */
const ENTRY_OVERHEAD = 400;

const VENDOR_BYTES = Buffer.from(`|${PROBE_VENDOR}|`);
// Matched on the latin1 text of the bytes, where string offsets are byte offsets; ASCII whitespace
// only, since latin1 would read UTF-8 continuation bytes 0x85 and 0xA0 as spaces.
const ID_RE = new RegExp(`(?:^|[ \\t\\n\\v\\f\\r])${PROBE_ID_KEY}=([^ \\t\\n\\v\\f\\r]+)`, 'd');
const LABEL_RE = new RegExp(`(?:^|[ \\t\\n\\v\\f\\r])${PROBE_ID_KEY}Label=${PROBE_ID_LABEL}(?:[ \\t\\n\\v\\f\\r]|$)`);

/**
 * Probe id of a raw message, or null; a cheap byte search first, since almost no message is a probe.
 * The id is decoded from its own bytes: a match in the decoded message would be a slice that keeps
 * the whole message alive for as long as the id is tracked.
 */
export function probeIdOfRaw(raw: Buffer): string | null {
  if (raw.indexOf(VENDOR_BYTES) < 0) return null;
  const text = raw.toString('latin1');
  if (!LABEL_RE.test(text)) return null;
  const m = ID_RE.exec(text);
  if (!m) return null;
  const [start, end] = m.indices![1]!;
  return raw.toString('utf8', start, end);
}

/**
 * Size and hash of the probe as it arrived, from its id to its end (line ends left out): troubleshoot sends
 * padding after the id and compares, so a hop that cut the message shows (probes only, never the hot path).
 */
export function probeTail(raw: Buffer, id: string): Pick<ProbeStatus, 'bytes' | 'tailBytes' | 'tailSha256'> {
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
  const start = raw.indexOf(`${PROBE_ID_KEY}=${id}`);
  if (start < 0) return { bytes: raw.length };
  const tail = raw.subarray(start, end);
  return { bytes: raw.length, tailBytes: tail.length, tailSha256: createHash('sha256').update(tail).digest('hex') };
}

/** A copy of s that shares no memory with a longer string it may be a slice of. */
function ownCopy(s: string): string {
  return Buffer.from(s, 'utf16le').toString('utf16le');
}

/** Probe id of a parsed row (DeviceCustomString2 with label ProbeId), or null. */
export function probeIdOfRow(row: CslRow): string | null {
  if (row.DeviceVendor !== PROBE_VENDOR || row.DeviceCustomString2Label !== PROBE_ID_LABEL) return null;
  const id = row.DeviceCustomString2;
  return typeof id === 'string' && id ? id : null;
}

/**
 * What happened to each recent probe; bounded in count and in bytes, oldest forgotten first. Ids
 * longer than the admin API accepts are not tracked (the message is still delivered).
 */
export class ProbeTracker {
  private readonly map = new Map<string, ProbeStatus>();
  private size = 0;

  constructor(
    private readonly max = 10_000,
    private readonly maxBytes = 8 * 1024 * 1024,
  ) {}

  /** Estimated bytes held (strings at two bytes a character plus a fixed cost per probe). */
  get bytes(): number {
    return this.size;
  }
  get count(): number {
    return this.map.size;
  }

  private entry(id: string, receivedAt?: number): ProbeStatus | null {
    let e = this.map.get(id);
    if (!e) {
      if (id.length > MAX_PROBE_ID_CHARS) return null;
      id = ownCopy(id);
      e = { id, received: true, accepted: false, ...(receivedAt ? { receivedAt: new Date(receivedAt).toISOString() } : {}) };
      this.map.set(id, e);
      this.size += ENTRY_OVERHEAD + 2 * id.length;
      this.evict();
    }
    return e;
  }

  private evict(): void {
    while (this.map.size > this.max || (this.size > this.maxBytes && this.map.size > 1)) {
      const [id, e] = this.map.entries().next().value as [string, ProbeStatus];
      this.map.delete(id);
      this.size -= ENTRY_OVERHEAD + 2 * (id.length + (e.error?.length ?? 0));
    }
  }

  private setError(e: ProbeStatus, error: string | undefined): void {
    const next = error === undefined ? undefined : ownCopy(error.length > MAX_ERROR_CHARS ? error.slice(0, MAX_ERROR_CHARS) : error);
    this.size += 2 * ((next?.length ?? 0) - (e.error?.length ?? 0));
    if (next === undefined) delete e.error;
    else e.error = next;
    this.evict();
  }

  /** False when the id is not tracked (longer than MAX_PROBE_ID_CHARS). */
  received(id: string, at: number, raw?: Buffer): boolean {
    const e = this.entry(id, at);
    if (!e) return false;
    e.receivedAt ??= new Date(at).toISOString();
    if (raw && e.bytes === undefined) Object.assign(e, probeTail(raw, id));
    return true;
  }

  accepted(id: string, receivedAt: number, at: number): void {
    const e = this.entry(id, receivedAt);
    if (!e) return;
    e.accepted = true;
    e.acceptedAt = new Date(at).toISOString();
    e.latencyMs = at - receivedAt;
    this.setError(e, undefined);
  }

  failed(id: string, receivedAt: number, error: string): void {
    const e = this.entry(id, receivedAt);
    if (e && !e.accepted) this.setError(e, error);
  }

  deadLettered(id: string, receivedAt: number, reason: string): void {
    const e = this.entry(id, receivedAt);
    if (!e) return;
    e.deadLettered = true;
    this.setError(e, reason);
  }

  get(id: string): ProbeStatus {
    return this.map.get(id) ?? { id, received: false, accepted: false };
  }
}
