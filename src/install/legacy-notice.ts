import type { Cloud } from '../config/schema.js';
import { dataCollectorHeaders, dataCollectorUrl } from '../sinks/log-analytics.js';
import { describeNetworkError, HttpTransport } from '../sinks/http.js';
import { redact } from '../util/secrets.js';

/** Microsoft ended the HTTP Data Collector API on this day (protocols.md §8). */
export const DATA_COLLECTOR_RETIRED = '2026-09-14';
export const LEGACY_LOG_TYPE = 'CommonSecurityLog';

/** The one command that moves a legacy install to Logs Ingestion: DCR, role and forwarder config in one go. */
export function switchCommand(workspaceId: string): string {
  return `sentinel-cef install --workspace ${workspaceId}`;
}

export interface LegacyProbe {
  url: string;
  status?: number;
  /** The start of the answer's body, secrets removed, on one line. */
  body?: string;
  error?: string;
}

export interface LegacyTarget {
  workspaceId: string;
  cloud: Cloud;
  endpoint?: string;
}

/**
 * Asks the Data Collector endpoint what it answers today: a post signed exactly as the sink signs it, with an
 * empty array as body, so no row is written even where the API still accepts data.
 */
export async function probeDataCollector(
  target: LegacyTarget,
  sharedKey: string,
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; now?: () => number } = {},
): Promise<LegacyProbe> {
  const url = dataCollectorUrl(target);
  const body = Buffer.from('[]');
  const date = new Date((opts.now ?? Date.now)()).toUTCString();
  const headers = dataCollectorHeaders(target.workspaceId, sharedKey, body.length, date, LEGACY_LOG_TYPE);
  const transport = new HttpTransport({ timeoutMs: opts.timeoutMs ?? 8000, env: opts.env, maxSockets: 1 });
  const shown = `${url.origin}${url.pathname}${url.search}`;
  try {
    const res = await transport.request(url, { method: 'POST', headers, body });
    return { url: shown, status: res.status, body: excerpt(res.body, sharedKey) };
  } catch (err) {
    return { url: shown, error: excerpt(describeNetworkError(err), sharedKey) };
  }
}

function excerpt(text: string, secret: string): string {
  const one = redact(text, [secret]).replace(/\s+/g, ' ').trim();
  return one.length > 200 ? `${one.slice(0, 200)}…` : one;
}

/** What install says before it applies a workspace-key setup: the API's status, its answer today, where rows go, the way out. */
export function legacyNotice(probe: LegacyProbe, workspaceId: string): string[] {
  const answer = probe.error
    ? `got no answer (${probe.error})`
    : `answered HTTP ${probe.status}${probe.body ? `: ${probe.body}` : ' (empty body)'}`;
  return [
    `the Data Collector API (workspace id + key) was retired by Microsoft on ${DATA_COLLECTOR_RETIRED}: this path is unsupported`,
    `  a signed probe to POST ${probe.url} ${answer}`,
    `  rows sent this way go to the custom table ${LEGACY_LOG_TYPE}_CL, not to CommonSecurityLog (Sentinel's CEF content reads CommonSecurityLog)`,
    `  switch to the Logs Ingestion API (creates the DCR and grants the role): \`${switchCommand(workspaceId)}\``,
  ];
}
