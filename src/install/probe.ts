import { randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import type { ProbeStatus } from '../forwarder/admin-types.js';
import { PROBE_ID_KEY, PROBE_ID_LABEL, PROBE_VENDOR } from '../forwarder/admin-types.js';

/** A TestCommonEventFormat line carrying its id in cs2 (what `troubleshoot` and the admin API look for). */
export function probeLine(id: string, host = os.hostname()): string {
  const cef = `CEF:0|${PROBE_VENDOR}|sentinel-cef|1.0|probe|sentinel-cef install probe|1|rt=${Date.now()} ${PROBE_ID_KEY}Label=${PROBE_ID_LABEL} ${PROBE_ID_KEY}=${id} msg=install check`;
  // RFC 3164 local4.warn (PRI 164), what `logger -p local4.warn` sends.
  const ts = new Date().toString().slice(4, 19);
  return `<164>${ts} ${host} ${cef}`;
}

export function newProbeId(): string {
  return `install-${randomUUID()}`;
}

export async function sendSyslogLine(line: string, opts: { host: string; port: number; protocol: 'udp' | 'tcp' }): Promise<void> {
  if (opts.protocol === 'udp') {
    const sock = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve, reject) => sock.send(Buffer.from(line), opts.port, opts.host, (e) => (e ? reject(e) : resolve())));
    } finally {
      sock.close();
    }
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(opts.port, opts.host, () => s.end(`${line}\n`));
    s.setTimeout(5000, () => s.destroy(new Error(`timed out sending to ${opts.host}:${opts.port}`)));
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

export async function fetchJson<T>(url: string, timeoutMs = 3000): Promise<{ status: number; body: T | null }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: T | null = null;
  try {
    body = JSON.parse(text) as T;
  } catch {
    body = null;
  }
  return { status: res.status, body };
}

/** Polls GET /probes/:id until the sink accepted the probe or the deadline passes. */
export async function waitForProbe(admin: string, id: string, timeoutMs: number): Promise<ProbeStatus | null> {
  const end = Date.now() + timeoutMs;
  let last: ProbeStatus | null = null;
  while (Date.now() < end) {
    try {
      const r = await fetchJson<ProbeStatus>(`http://${admin}/probes/${encodeURIComponent(id)}`);
      if (r.body) last = r.body;
      if (last?.accepted || last?.deadLettered) return last;
    } catch {
      // Forwarder not answering yet.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}

export async function waitForHealth(admin: string, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      const r = await fetchJson(`http://${admin}/healthz`);
      if (r.status === 200 || r.status === 503) return true;
    } catch {
      // Not up yet.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}
