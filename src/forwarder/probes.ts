import type { ProbeStatus } from './admin-types.js';
import { PROBE_ID_KEY, PROBE_ID_LABEL, PROBE_VENDOR } from './admin-types.js';
import type { CslRow } from '../parser/types.js';

const VENDOR_BYTES = Buffer.from(`|${PROBE_VENDOR}|`);
const ID_RE = new RegExp(`(?:^|\\s)${PROBE_ID_KEY}=([^\\s]+)`);
const LABEL_RE = new RegExp(`(?:^|\\s)${PROBE_ID_KEY}Label=${PROBE_ID_LABEL}(?:\\s|$)`);

/** Probe id of a raw message, or null; a cheap byte search first, since almost no message is a probe. */
export function probeIdOfRaw(raw: Buffer): string | null {
  if (raw.indexOf(VENDOR_BYTES) < 0) return null;
  const text = raw.toString('utf8');
  if (!LABEL_RE.test(text)) return null;
  const m = ID_RE.exec(text);
  return m ? m[1] : null;
}

/** Probe id of a parsed row (DeviceCustomString2 with label ProbeId), or null. */
export function probeIdOfRow(row: CslRow): string | null {
  if (row.DeviceVendor !== PROBE_VENDOR || row.DeviceCustomString2Label !== PROBE_ID_LABEL) return null;
  const id = row.DeviceCustomString2;
  return typeof id === 'string' && id ? id : null;
}

/** What happened to each recent probe; bounded, oldest forgotten first. */
export class ProbeTracker {
  private readonly map = new Map<string, ProbeStatus>();

  constructor(private readonly max = 10_000) {}

  private entry(id: string, receivedAt?: number): ProbeStatus {
    let e = this.map.get(id);
    if (!e) {
      e = { id, received: true, accepted: false, ...(receivedAt ? { receivedAt: new Date(receivedAt).toISOString() } : {}) };
      this.map.set(id, e);
      if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
    }
    return e;
  }

  received(id: string, at: number): void {
    const e = this.entry(id, at);
    e.receivedAt ??= new Date(at).toISOString();
  }

  accepted(id: string, receivedAt: number, at: number): void {
    const e = this.entry(id, receivedAt);
    e.accepted = true;
    e.acceptedAt = new Date(at).toISOString();
    e.latencyMs = at - receivedAt;
    delete e.error;
  }

  failed(id: string, receivedAt: number, error: string): void {
    const e = this.entry(id, receivedAt);
    if (!e.accepted) e.error = error;
  }

  deadLettered(id: string, receivedAt: number, reason: string): void {
    const e = this.entry(id, receivedAt);
    e.deadLettered = true;
    e.error = reason;
  }

  get(id: string): ProbeStatus {
    return this.map.get(id) ?? { id, received: false, accepted: false };
  }
}
