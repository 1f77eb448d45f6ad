import { readBackProbes, READER_ROLE, SYSLOG_DEDUP_TRANSFORM, type ProbeReadback, type ReadbackResult } from '../../azure/readback.js';
import type { Context } from '../context.js';
import type { CheckOutcome } from '../types.js';
import { runProbes } from './e2e.js';
import { readerRoleCommand } from '../../azure/role-commands.js';

const G = 'e2e' as const;

/** One probe's way, hop by hop: each latency is from the hop before (ms); null where it did not get. */
export interface ProbeHopRow {
  id: string;
  transport: string;
  sent: string | null;
  /** The syslog daemon the probe was sent to (rsyslog, syslog-ng); null: none in the path (demo, --forwarder-only). */
  daemon: string | null;
  /**
   * Sent → received by the forwarder through the daemon. The drop-in passes the raw message on, so the daemon's
   * own receive time never reaches the forwarder: this hop includes the daemon's delivery to the forwarder.
   */
  daemonMs: number | null;
  /** Sent → received by the forwarder, when no daemon is in the path (with one, that time is daemonMs). */
  forwarderMs: number | null;
  apiMs: number | null;
  tableMs: number | null;
  inSyslog: boolean;
}

export function hopRows(probes: Array<ProbeReadback & { transport: string }>, daemon: string | null): ProbeHopRow[] {
  return probes.map((p) => {
    const received = p.receivedAt !== undefined ? Math.max(0, p.receivedAt - p.sentAt) : null;
    return {
      id: p.id,
      transport: p.transport,
      sent: p.sentAt ? new Date(p.sentAt).toISOString() : null,
      daemon,
      daemonMs: daemon ? received : null,
      forwarderMs: daemon ? null : received,
      apiMs: p.accepted && p.acceptedAt !== undefined && p.receivedAt !== undefined ? Math.max(0, p.acceptedAt - p.receivedAt) : null,
      tableMs: p.visibleAt !== undefined ? Math.max(0, p.visibleAt - (p.acceptedAt ?? p.sentAt)) : null,
      inSyslog: Boolean(p.inSyslog),
    };
  });
}

/**
 * The query itself failed, so nothing is known about the probes: not a pass and not a warning the run can be OK
 * with. Marked unfinished, as a check that ran out of time is, so the report is NOT OK and the exit code 3.
 */
function unverified(o: Omit<CheckOutcome, 'status'>): CheckOutcome {
  return { ...o, status: 'warn', details: { ...o.details, unfinished: true, unverified: true } };
}

const secs = (ms: number) =>
  ms < 120_000
    ? `${Math.round(ms / 100) / 10}s`
    : `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;

/**
 * Reads the probes back from CommonSecurityLog (Logs Query API) and, when the API accepted one that never shows up,
 * says why from the DCR. Passes only when every accepted probe is in the table.
 */
export async function checkReadback(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'e2e.readback', title: 'Probes in the CommonSecurityLog table', group: G };
  const o = ctx.opts;
  if (o.probes === 0) return { ...base, status: 'skip', message: 'no probes (--probes 0)' };
  const c = await ctx.config();
  const sink = c.config?.sink;
  // Only a Logs Ingestion sink can be read back: telling a file or Data Collector user to pass --workspace misleads.
  if (sink?.type === 'file') return { ...base, status: 'skip', message: 'file sink: nothing goes to a workspace' };
  if (!o.workspaceId)
    return {
      ...base,
      status: 'skip',
      message:
        sink?.type === 'log-analytics'
          ? 'the Data Collector API writes to CommonSecurityLog_CL, so no probe can be read back from CommonSecurityLog (see forwarder.config)'
          : 'not asked: pass --workspace <workspace id> to read the probes back from CommonSecurityLog',
    };
  if (o.readbackTimeoutSec === 0) return { ...base, status: 'skip', message: 'disabled with --readback-timeout 0' };
  if (!sink) return { ...base, status: 'skip', message: 'no valid config' };
  if (sink.type === 'log-analytics') {
    return {
      ...base,
      status: 'warn',
      message:
        'the Data Collector API (retired 2026-09-14) writes to the custom table CommonSecurityLog_CL, not CommonSecurityLog: Sentinel analytics on CommonSecurityLog never see these events',
      fix: `move to the Logs Ingestion API: \`sentinel-cef install --workspace ${o.workspaceId}\``,
    };
  }
  if (!ctx.deps.readbackClient) return { ...base, status: 'skip', message: 'readback is not available in this build' };
  const run = await runProbes(ctx);
  const accepted = run.results.filter((r) => r.accepted);
  if (accepted.length === 0)
    return { ...base, status: 'skip', message: 'no probe was accepted by the ingestion API, so none can be in the table (see e2e.probes)' };

  ctx.deps.progress(`reading ${accepted.length} probes back from workspace ${o.workspaceId} (up to ${o.readbackTimeoutSec}s)`);
  let rb: ReadbackResult;
  try {
    const client = await ctx.deps.readbackClient({ cloud: sink.cloud, logsQueryUrl: o.logsQueryEndpoint, armUrl: o.armEndpoint });
    rb = await readBackProbes(
      {
        workspaceId: o.workspaceId,
        probes: run.results.map((r) => ({
          id: r.id,
          sentAt: r.sentAt ?? ctx.startedAt,
          receivedAt: r.receivedAt,
          acceptedAt: r.acceptedAt,
          accepted: r.accepted,
        })),
        timeoutMs: o.readbackTimeoutSec * 1000,
        pollMs: Math.min(15_000, Math.max(1000, (o.readbackTimeoutSec * 1000) / 20)),
        dcrImmutableId: sink.dcrImmutableId,
        stream: sink.stream,
      },
      { client, now: ctx.deps.now, sleep: ctx.deps.sleep, progress: ctx.deps.progress },
    );
  } catch (err) {
    return unverified({
      ...base,
      message: `cannot read the workspace: ${(err as Error).message}`,
      fix: 'sign in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET',
    });
  }
  const probes = rb.probes.map((p, i) => ({ ...p, transport: run.results[i].transport }));
  // The probes go to the daemon's port unless the forwarder listens there itself.
  const hops = hopRows(probes, o.forwarderOnly ? null : ((await ctx.daemon()).name ?? 'syslog daemon'));
  const details: Record<string, unknown> = { workspaceId: o.workspaceId, waitedMs: rb.waitedMs, hops, ...(rb.dcr ? { dcr: rb.dcr } : {}) };

  if (rb.error) {
    const e = rb.error;
    if (e.kind === 'forbidden') {
      return unverified({
        ...base,
        message: `cannot query workspace ${o.workspaceId}: the signed-in identity needs "${READER_ROLE}" on it (probes not verified in the table)`,
        fix: `grant "${READER_ROLE}" on the workspace to whoever runs troubleshoot: \`${readerRoleCommand(READER_ROLE, o.workspaceId)}\``,
        details: { ...details, error: e.message },
      });
    }
    if (e.kind === 'not-found') {
      return {
        ...base,
        status: 'fail',
        message: `workspace ${o.workspaceId} was not found: ${e.message}`,
        fix: 'check the workspace id (the GUID on the workspace Overview page)',
        details,
      };
    }
    return unverified({
      ...base,
      message: `cannot query workspace ${o.workspaceId}: ${e.message} (probes not verified in the table)`,
      fix:
        e.kind === 'sign-in'
          ? 'sign in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET'
          : e.kind === 'throttled'
            ? 'the workspace is throttling queries: run again in a few minutes'
            : 'run again later; the Logs Query API did not give a full answer',
      details: { ...details, error: e.message, kind: e.kind },
    });
  }

  const acc = probes.filter((p) => p.accepted);
  const visible = acc.filter((p) => p.visibleAt !== undefined);
  const dup = acc.filter((p) => p.inSyslog);
  const lat = hops
    .map((h) => h.tableMs)
    .filter((x): x is number => x !== null)
    .sort((a, b) => a - b);
  const latText = lat.length ? `; accepted → table p50 ${secs(lat[Math.floor(lat.length / 2)])}, max ${secs(lat.at(-1)!)}` : '';
  const others = rb.dcr?.otherRules.length ? ` Other rules also sending to CommonSecurityLog: ${rb.dcr.otherRules.join(', ')}.` : '';

  if (visible.length < acc.length) {
    const missing = acc.length - visible.length;
    const causes = rb.dcr?.causes ?? [];
    if (causes.length) {
      return {
        ...base,
        status: 'fail',
        message: `${missing}/${acc.length} probes accepted by the ingestion API are not in CommonSecurityLog: ${causes.join('; ')}.${others}`,
        fix: `fix the rule (or let \`sentinel-cef install --workspace ${o.workspaceId}\` rewrite it): it must declare the columns we send and route the stream to Microsoft-CommonSecurityLog with transform \`source\``,
        details: { ...details, stoppedAt: 'table' },
      };
    }
    return {
      ...base,
      status: 'fail',
      message:
        `${missing}/${acc.length} probes accepted by the ingestion API are not in CommonSecurityLog after ${secs(rb.waitedMs)}` +
        `${visible.length ? ` (${visible.length} are${latText})` : ''}${rb.dcr?.unreadable ? `; ${rb.dcr.unreadable}` : rb.dcr ? '; the rule looks right' : ''}.${others}`,
      fix: `ingestion can take several minutes: run again with a longer --readback-timeout (e.g. ${Math.min(3600, o.readbackTimeoutSec * 3)}); if they never arrive, check the DCR's transform and the workspace's daily cap`,
      details: { ...details, stoppedAt: 'table' },
    };
  }
  if (dup.length) {
    return {
      ...base,
      status: 'warn',
      message: `${visible.length}/${acc.length} probes in CommonSecurityLog${latText}, but ${dup.length} also landed in Syslog: every event is stored twice.${others}`,
      fix: `stop the Syslog collection of the CEF facility, or give its rule (AMA's) the transform \`${SYSLOG_DEDUP_TRANSFORM}\` (AMA 1.41 keeps "CEF:0" in SyslogMessage, so the documented ProcessName filter alone no longer works)`,
      details,
    };
  }
  return { ...base, status: 'pass', message: `${visible.length}/${acc.length} probes in CommonSecurityLog${latText}`, details };
}
