import type { ProbeStatus } from '../forwarder/admin-types.js';

// The probe itself is the forwarder's (`send-test`): one sender, one message format.
export { buildProbeMessage, newProbeId, sendSyslog } from '../forwarder/send-test.js';

export async function fetchJson<T>(url: string, timeoutMs = 3000): Promise<{ status: number; body: T | null }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: T | null;
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
