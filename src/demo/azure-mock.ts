/**
 * `demo --azure-mock`: the whole modern path, locally, without an Azure account: the Azure mocks the tests use
 * (Entra ID, ARM, Logs Ingestion, Logs Query) on loopback over TLS with a throwaway CA, then the same code as
 * `install --workspace` (setup), a forwarder sending to the DCR (ingest) and troubleshoot's readback.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { createReadbackClient, readBackProbes, type ProbeReadback } from '../azure/readback.js';
import { setupLogsIngestion, type AzureCall, type AzureAnswer } from '../azure/setup-logs-ingestion.js';
import { forwarderConfigSchema } from '../config/schema.js';
import { DCR_STREAM } from '../dcr/render.js';
import { optionError } from '../errors.js';
import type { ProbeStatus } from '../forwarder/admin-types.js';
import { startForwarder, type RunningForwarder } from '../forwarder/forwarder.js';
import { createLogger } from '../forwarder/logger.js';
import { buildProbeMessage, newProbeId, sendSyslog, wrapSyslog } from '../forwarder/send-test.js';
import { createSink } from '../sinks/index.js';
import { HttpTransport } from '../sinks/http.js';
import { hopRows, type ProbeHopRow } from '../troubleshoot/checks/readback.js';
import { DEMO_SAMPLES } from './samples.js';
import { secondsOption } from '../util/option-schemas.js';

export const azureDemoOptionsSchema = z.object({
  /** Seconds the mock takes to make accepted rows queryable (Azure: minutes). */
  ingestionDelaySec: secondsOption(600, { allowZero: true }).default(5),
  timeoutSec: secondsOption(600).default(60),
});
export type AzureDemoOptions = z.input<typeof azureDemoOptionsSchema>;

export interface AzureDemoResult {
  ok: boolean;
  workspaceId: string;
  dcrImmutableId: string;
  endpoint: string;
  hops: ProbeHopRow[];
  rowsInTable: number;
  problems: string[];
}

export async function runAzureDemo(input: AzureDemoOptions, log: (s: string) => void): Promise<AzureDemoResult> {
  const parsed = azureDemoOptionsSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) throw optionError(parsed.error, { ingestionDelaySec: '--ingestion-delay', timeoutSec: '--timeout' });
  const o = parsed.data;
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-cef-azure-demo-'));
  // Loaded for this command only: the rest of the CLI never pays for the mocks.
  const { startMockAzure } = await import('./mock-azure.js');
  const { startMockControl } = await import('./mock-azure-control.js');
  const edge = await startMockAzure({ https: true, quiet: true, certDir: dir });
  const ctl = await startMockControl({ edge, ingestionDelayMs: o.ingestionDelaySec * 1000 });
  let fwd: RunningForwarder | null = null;
  const problems: string[] = [];
  try {
    const ca = edge.caPem!;
    const identity = await import('@azure/identity');
    // A service principal of the mock tenant signs in for every step (the operator and the forwarder are one here).
    const credential = new identity.ClientSecretCredential(edge.tenantId, edge.clientId, edge.clientSecret, {
      authorityHost: edge.url,
      disableInstanceDiscovery: true,
      agent: new https.Agent({ ca: [...tls.rootCertificates, ca] }),
    });
    log(
      `mock Azure on ${edge.url} (Entra ID, Logs Ingestion) and ${ctl.url} (ARM, Resource Graph, Logs Query); workspace ${edge.workspaceId}`,
    );

    // 1. Setup, as `install --workspace` does it.
    log('1/3 setup: find the workspace, create the DCR in its region, grant "Monitoring Metrics Publisher"');
    const transport = new HttpTransport({ ca, timeoutMs: 30_000 });
    const request = async (call: AzureCall): Promise<AzureAnswer> => {
      const t = await credential.getToken(call.scope);
      const body = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
      const res = await transport.request(new URL(call.url), {
        method: call.method,
        headers: {
          authorization: `Bearer ${t!.token}`,
          ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}),
        },
        body,
      });
      return { status: res.status, json: res.body ? JSON.parse(res.body) : null };
    };
    const principalId = randomUUID();
    const setup = await setupLogsIngestion(
      {
        workspace: edge.workspaceId,
        principalId,
        armUrl: ctl.url,
        armScope: 'https://management.azure.com/.default',
        ingestionScope: 'https://monitor.azure.com//.default',
        dryRun: false,
      },
      { request, log: (l) => log(`    ${l}`), sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 200))), now: Date.now },
    );
    const endpoint = setup.endpoint!;
    const dcr = setup.dcrImmutableId!;
    log(`    DCR ${dcr}, logs ingestion endpoint ${endpoint}`);

    // 2. Ingest: a forwarder sending to that DCR, probes and vendor samples through it.
    log('2/3 ingest: forwarder → Logs Ingestion API (DCR stream Custom-CommonSecurityLog)');
    writeFileSync(join(dir, 'client.secret'), `${edge.clientSecret}\n`, { mode: 0o600 });
    const config = forwarderConfigSchema.parse({
      listen: ['tcp://127.0.0.1:0'],
      queue: { dir: join(dir, 'queue') },
      batch: { flushMs: 200 },
      admin: '127.0.0.1:0',
      drainTimeoutSec: 2,
      logLevel: 'warn',
      deadLetterFile: join(dir, 'dead-letter.ndjson'),
      sink: {
        type: 'logs-ingestion',
        endpoint,
        dcrImmutableId: dcr,
        stream: DCR_STREAM,
        authorityHost: edge.url,
        auth: { kind: 'client-secret', tenantId: edge.tenantId, clientId: edge.clientId, clientSecretFile: join(dir, 'client.secret') },
      },
    });
    const logger = createLogger('warn', process.stderr);
    fwd = await startForwarder(config, { logger, sink: createSink(config.sink, { ca, logger }) });
    const tcp = fwd.addresses.find((a) => a.protocol === 'tcp')!;
    const ids = [newProbeId(), newProbeId()];
    const sentAt = Date.now();
    await sendSyslog(
      [
        ...ids.map((id) => buildProbeMessage(id, 'rfc3164', 'demo-host')),
        ...DEMO_SAMPLES.cef.map((c) => wrapSyslog(c, { host: 'demo-host' })),
      ],
      {
        host: tcp.host,
        port: tcp.port,
        protocol: 'tcp',
      },
    );
    log(`    sent ${ids.length} probes and ${DEMO_SAMPLES.cef.length} vendor CEF events to ${tcp.url}`);
    const end = Date.now() + o.timeoutSec * 1000;
    let status: ProbeStatus[] = [];
    while (Date.now() < end) {
      status = await Promise.all(
        ids.map(async (id) => (await fetch(`http://${fwd!.adminAddress}/probes/${encodeURIComponent(id)}`)).json() as Promise<ProbeStatus>),
      );
      if (status.every((s) => s.accepted)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const s of status)
      log(
        `    ${s.id}: ${s.accepted ? `accepted by the API after ${s.latencyMs} ms` : s.received ? `received, not accepted${s.error ? `: ${s.error}` : ''}` : 'not received'}`,
      );

    // 3. Readback: the probes in CommonSecurityLog, as `troubleshoot --workspace` reads them.
    log(`3/3 readback: Logs Query API, CommonSecurityLog (the mock makes rows queryable after ${o.ingestionDelaySec}s)`);
    const client = await createReadbackClient({ env: {}, credential, logsQueryUrl: ctl.url, armUrl: ctl.url, ca });
    const rb = await readBackProbes(
      {
        workspaceId: edge.workspaceId,
        probes: status.map((s) => ({
          id: s.id,
          sentAt,
          receivedAt: s.receivedAt ? Date.parse(s.receivedAt) : undefined,
          acceptedAt: s.acceptedAt ? Date.parse(s.acceptedAt) : undefined,
          accepted: s.accepted,
        })),
        timeoutMs: Math.max(1000, end - Date.now()),
        pollMs: 1000,
        dcrImmutableId: dcr,
        stream: DCR_STREAM,
      },
      { client, now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), progress: (t) => log(`    ${t}`) },
    );
    const probes: Array<ProbeReadback & { transport: string }> = rb.probes.map((p) => ({ ...p, transport: 'tcp' }));
    if (rb.error) problems.push(`readback: ${rb.error.message}`);
    for (const p of probes) if (p.visibleAt === undefined) problems.push(`probe ${p.id} is not in CommonSecurityLog`);
    for (const c of rb.dcr?.causes ?? []) problems.push(c);
    const rows = await client.query(edge.workspaceId, 'CommonSecurityLog', 3600_000).catch(() => []);
    return {
      ok: problems.length === 0,
      workspaceId: edge.workspaceId,
      dcrImmutableId: dcr,
      endpoint,
      // The demo sends straight to the forwarder: no syslog daemon in the path.
      hops: hopRows(probes, null),
      rowsInTable: rows.length,
      problems,
    };
  } finally {
    await fwd?.shutdown();
    await ctl.close();
    await edge.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
