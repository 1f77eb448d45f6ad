import { randomUUID } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { hostname } from 'node:os';
import { connect, isIP } from 'node:net';
import { isLoopback } from '../config/listen.js';
import { PROBE_ID_KEY, PROBE_ID_LABEL, PROBE_VENDOR } from './admin-types.js';

export type SyslogFormat = 'rfc3164' | 'rfc5424';

/** local4.warn, as `logger -p local4.warn` sends it (20*8+4). */
export const PROBE_PRI = 164;

export function newProbeId(): string {
  return `probe-${randomUUID()}`;
}

/** The CEF body of Microsoft's mock message (cef_troubleshoot.py) plus the probe id. */
export function probeCef(id: string): string {
  return (
    `CEF:0|${PROBE_VENDOR}|MOCK|common=event-format-test|end|TRAFFIC|1|rt=$common=event-formatted-receive_time ` +
    `deviceExternalId=0002D01655 src=1.1.1.1 dst=2.2.2.2 sourceTranslatedAddress=1.1.1.1 ` +
    `destinationTranslatedAddress=3.3.3.3 cs1Label=Rule cs1=CEF_TEST_InternetDNS ` +
    `${PROBE_ID_KEY}Label=${PROBE_ID_LABEL} ${PROBE_ID_KEY}=${id}`
  );
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Wraps a CEF body in a syslog header the way `logger -p local4.warn -t CEF:` does: `CEF:` becomes
 * the tag and the rest the message.
 */
export function wrapSyslog(cef: string, opts: { format?: SyslogFormat; host?: string; date?: Date; pri?: number } = {}): string {
  const d = opts.date ?? new Date();
  const host = (opts.host ?? hostname()).replace(/\s/g, '') || '-';
  const pri = opts.pri ?? PROBE_PRI;
  const body = cef.startsWith('CEF:') ? cef.slice(4) : cef;
  if (opts.format === 'rfc5424') {
    return `<${pri}>1 ${d.toISOString()} ${host} CEF - - - ${cef}`;
  }
  const ts = `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${d.toTimeString().slice(0, 8)}`;
  return cef.startsWith('CEF:') ? `<${pri}>${ts} ${host} CEF: ${body}` : `<${pri}>${ts} ${host} ${cef}`;
}

/** A complete probe syslog line. */
export function buildProbeMessage(id: string, format: SyslogFormat = 'rfc3164', host?: string): string {
  return wrapSyslog(probeCef(id), { format, host });
}

/** Probe padding fields, each kept under the smallest per-field limit (Data Collector's 32 KiB) so a probe is not truncated. */
const PAD_FIELDS = ['cs3', 'cs4', 'cs5', 'cs6', 'cs2', 'flexString1', 'flexString2'];
const PAD_FIELD_MAX = 30_000;

/**
 * A probe of `size` bytes (when longer than the plain probe): padding follows the id in custom strings, so a hop that
 * cuts the message keeps the id and the forwarder's tail hash (probes.ts) shows the cut. `tail` is what should arrive.
 * Beyond the padding fields' room (~200 KiB) the last one takes the rest and the sink truncates it.
 */
export function buildSizedProbe(id: string, size: number, host?: string): { message: string; tail: string } {
  const plain = buildProbeMessage(id, 'rfc3164', host);
  let left = size - Buffer.byteLength(plain);
  let pad = '';
  for (let i = 0; i < PAD_FIELDS.length; i++) {
    const f = PAD_FIELDS[i]!;
    const head = i === 0 ? ` ${f}Label=ProbePadding ${f}=` : ` ${f}=`;
    if (left <= head.length) break;
    const n = i === PAD_FIELDS.length - 1 ? left - head.length : Math.min(PAD_FIELD_MAX, left - head.length);
    pad += head + 'x'.repeat(n);
    left -= head.length + n;
  }
  // Fewer bytes left than a field's head: lengthen the last padding instead.
  if (pad && left > 0) pad += 'x'.repeat(left);
  return { message: plain + pad, tail: `${PROBE_ID_KEY}=${id}${pad}` };
}

export interface SendOptions {
  host: string;
  port: number;
  protocol: 'tcp' | 'udp';
  /** TCP framing: newline (default) or RFC 6587 octet counting. */
  octetCount?: boolean;
  timeoutMs?: number;
  /**
   * UDP to a loopback host: send on a connected socket and wait `confirmMs` for the ICMP port-unreachable that the
   * kernel turns into ECONNREFUSED, so "nothing listens" is an error as over TCP. Elsewhere UDP cannot tell.
   */
  confirmMs?: number;
}

/** Sends syslog messages: TCP on one connection (newline or octet-counted), UDP one datagram each. */
export async function sendSyslog(messages: string[], o: SendOptions): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 5000;
  if (o.protocol === 'udp') {
    const sock = createSocket(isIP(o.host) === 6 ? 'udp6' : 'udp4');
    if (o.confirmMs !== undefined && isLoopback(o.host)) {
      let refused: Error | undefined;
      sock.on('error', (err) => (refused ??= err));
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.connect(o.port, o.host, () => resolve());
        });
        for (const m of messages) {
          if (refused) break;
          await new Promise<void>((resolve, reject) => sock.send(Buffer.from(m), (err) => (err ? reject(err) : resolve())));
        }
        if (!refused) await new Promise((r) => setTimeout(r, o.confirmMs));
      } finally {
        sock.close();
      }
      if (refused) throw refused;
      return;
    }
    try {
      for (const m of messages) {
        await new Promise<void>((resolve, reject) => sock.send(Buffer.from(m), o.port, o.host, (err) => (err ? reject(err) : resolve())));
      }
    } finally {
      sock.close();
    }
    return;
  }
  const payload = messages.map((m) => (o.octetCount ? `${Buffer.byteLength(m)} ${m}` : `${m}\n`)).join('');
  await new Promise<void>((resolve, reject) => {
    const s = connect({ host: o.host, port: o.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`timed out sending to ${o.host}:${o.port} after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.once('connect', () => {
      s.end(payload, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  });
}
