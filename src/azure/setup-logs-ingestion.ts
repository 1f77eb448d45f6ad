/**
 * The Azure side of `install --workspace` (issue 17 part 2): find the workspace, create or update a kind Direct
 * DCR from templates/dcr in the workspace's region, grant "Monitoring Metrics Publisher" on it, and wait until
 * ingestion accepts the identity. Every call goes through `deps.request`, so a dry run lists the writes it
 * would make and makes none, and tests run it against the control-plane mock.
 * api-versions (Azure/azure-rest-api-specs): workspaces 2025-02-01, dataCollectionRules 2023-03-11,
 * roleAssignments 2022-04-01, Resource Graph 2024-04-01, Logs Ingestion 2023-01-01.
 */
import { createHash } from 'node:crypto';
import { CliError } from '../errors.js';
import { DCR_API_VERSION, DCR_STREAM, renderDcr } from '../dcr/render.js';

export const WORKSPACES_API_VERSION = '2025-02-01';
export const ROLE_ASSIGNMENTS_API_VERSION = '2022-04-01';
export const RESOURCE_GRAPH_API_VERSION = '2024-04-01';
export const LOGS_INGESTION_API_VERSION = '2023-01-01';
const ROLE_WAIT_MS = 30 * 60_000;
/** Built-in role "Monitoring Metrics Publisher". */
export const MONITORING_METRICS_PUBLISHER_ID = '3913510d-42f4-4e42-8a64-420c390055eb';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WS_ID = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.OperationalInsights\/workspaces\/([^/]+)$/i;

export interface AzureCall {
  method: 'GET' | 'PUT' | 'POST';
  url: string;
  body?: unknown;
  /** Token scope the call needs. */
  scope: string;
  /** Sent as the forwarder's identity (the role probe), not as the signed-in operator. */
  asForwarder?: boolean;
}

export interface AzureAnswer {
  status: number;
  /** The parsed body, as Azure sent it (null when empty). */
  json: unknown;
}

/** What is read from an answer: ARM's ErrorResponse, a Resource Graph result, a workspace. */
interface ArmBody {
  error?: { code?: string; message?: string };
  data?: Array<{ id?: unknown; location?: unknown }>;
  id?: unknown;
  location?: unknown;
  properties?: { customerId?: unknown };
}

/** A data collection rule as ARM returns it (dataCollectionRules 2023-03-11), the fields compared or read. */
interface RuleBody {
  location?: unknown;
  kind?: unknown;
  properties?: {
    immutableId?: string;
    endpoints?: { logsIngestion?: string };
    dataCollectionEndpointId?: unknown;
    streamDeclarations?: unknown;
    destinations?: unknown;
    dataFlows?: unknown;
  };
}

export interface SetupDeps {
  request(call: AzureCall): Promise<AzureAnswer>;
  log(line: string): void;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface SetupOptions {
  /** Workspace id (the customer id GUID) or its ARM resource id. */
  workspace: string;
  /** Object id of the identity the forwarder sends as. */
  principalId: string;
  armUrl: string;
  /** Scope of ARM tokens (`<armUrl>/.default` in each cloud). */
  armScope: string;
  ingestionScope: string;
  dcrName?: string;
  /** A data collection endpoint for the rule (only when the user asks for one; else the rule's own endpoint). */
  dceResourceId?: string;
  dryRun: boolean;
  /** How long to wait for a new role assignment to apply (Azure: up to ~30 min). */
  roleWaitMs?: number;
  /** Install ends with the end-to-end probe (listed in a dry run). */
  verify?: boolean;
  pollMs?: number;
}

export interface SetupResult {
  workspaceResourceId: string;
  /** The workspace id (GUID) operators know: troubleshoot reads the probes back from it. */
  customerId?: string;
  location: string;
  /** Unknown in a dry run that would create the rule. */
  endpoint?: string;
  dcrImmutableId?: string;
  /** Writes made (or, in a dry run, that would be made). */
  writes: AzureCall[];
  /** Every call, reads included, in order. */
  calls: AzureCall[];
}

/** One line naming the role that grants what ARM refused. */
const ROLE_FOR: Array<[RegExp, string]> = [
  [/roleAssignments\/write/i, '"User Access Administrator" (or "Role Based Access Control Administrator", or Owner) on the resource group'],
  [/dataCollectionRules\/(write|read)/i, '"Monitoring Contributor" (or Contributor) on the resource group'],
  [/workspaces\/read|ResourceGraph/i, '"Log Analytics Reader" (or Reader) on the workspace'],
];

export async function setupLogsIngestion(opts: SetupOptions, deps: SetupDeps): Promise<SetupResult> {
  const calls: AzureCall[] = [];
  const writes: AzureCall[] = [];
  const arm = (path: string, apiVersion: string) => `${opts.armUrl.replace(/\/+$/, '')}${path}?api-version=${apiVersion}`;
  const send = async (call: AzureCall, ok: number[]): Promise<AzureAnswer> => {
    calls.push(call);
    const a = await deps.request(call);
    if (opts.dryRun)
      deps.log(`called: ${call.method} ${call.url}${call.body === undefined ? '' : ` ${JSON.stringify(call.body)}`} -> HTTP ${a.status}`);
    const reply = a.json as ArmBody | null;
    if (a.status === 403 && reply?.error?.code === 'AuthorizationFailed') {
      const msg = String(reply.error.message ?? '');
      const role = ROLE_FOR.find(([re]) => re.test(msg))?.[1] ?? 'a role that allows it';
      const action = /action '([^']+)'/.exec(msg)?.[1] ?? `${call.method} ${new URL(call.url).pathname}`;
      throw new CliError(`Azure refused ${action}: the signed-in identity needs ${role}`, { exitCode: 1 });
    }
    if (!ok.includes(a.status)) {
      const e = reply?.error;
      throw new CliError(
        `Azure answered HTTP ${a.status} to ${call.method} ${new URL(call.url).pathname}${e ? `: ${e.code}: ${e.message}` : ''}`,
        { exitCode: 1 },
      );
    }
    return a;
  };
  const write = async (call: AzureCall, ok: number[]): Promise<AzureAnswer | null> => {
    writes.push(call);
    if (opts.dryRun) {
      deps.log(`would call: ${call.method} ${call.url} ${JSON.stringify(call.body)}`);
      return null;
    }
    return send(call, ok);
  };

  // ---- the workspace ----
  let wsId: string;
  let location: string;
  let customerId: string | undefined;
  if (GUID.test(opts.workspace)) {
    const query = `Resources | where type =~ 'microsoft.operationalinsights/workspaces' | where properties.customerId =~ '${opts.workspace}' | project id, location`;
    const a = await send(
      {
        method: 'POST',
        url: arm('/providers/Microsoft.ResourceGraph/resources', RESOURCE_GRAPH_API_VERSION),
        body: { query },
        scope: opts.armScope,
      },
      [200],
    );
    const hit = (a.json as ArmBody | null)?.data?.[0];
    if (!hit)
      throw new CliError(`no workspace with id ${opts.workspace} is visible to the signed-in identity`, {
        exitCode: 1,
        suggestion: 'pass the workspace resource id, or grant "Log Analytics Reader" on it',
      });
    wsId = String(hit.id);
    location = String(hit.location);
    customerId = opts.workspace;
  } else if (WS_ID.test(opts.workspace)) {
    const a = await send({ method: 'GET', url: arm(opts.workspace, WORKSPACES_API_VERSION), scope: opts.armScope }, [200, 404]);
    const ws = a.json as ArmBody;
    if (a.status === 404)
      throw new CliError(`workspace ${opts.workspace} was not found (${ws?.error?.code ?? 'HTTP 404'})`, {
        exitCode: 1,
        suggestion: 'check the subscription, resource group and name (az monitor log-analytics workspace list --query "[].id")',
      });
    wsId = String(ws.id);
    location = String(ws.location);
    const cid = ws.properties?.customerId;
    if (typeof cid === 'string' && GUID.test(cid)) customerId = cid;
  } else {
    throw new CliError('--workspace must be a workspace id (GUID) or a workspace resource id', { exitCode: 2 });
  }
  const [, sub, rg] = WS_ID.exec(wsId)!;
  deps.log(`workspace: ${wsId} (${location})`);

  // ---- the DCE, when asked for: the rule sends through it, so it must be in the workspace's region ----
  let dceEndpoint: string | undefined;
  if (opts.dceResourceId) {
    const a = await send({ method: 'GET', url: arm(opts.dceResourceId, DCR_API_VERSION), scope: opts.armScope }, [200, 404]);
    const dce = a.json as { location?: unknown; properties?: { logsIngestion?: { endpoint?: unknown } } } | null;
    if (a.status === 404) throw new CliError(`data collection endpoint ${opts.dceResourceId} was not found`, { exitCode: 1 });
    if (String(dce?.location ?? '').toLowerCase() !== location.toLowerCase())
      throw new CliError(`data collection endpoint ${opts.dceResourceId} is in ${String(dce?.location)}, the workspace in ${location}`, {
        exitCode: 1,
        suggestion: `pass a data collection endpoint in ${location}, or none (the rule then has its own endpoint)`,
      });
    const ep = dce?.properties?.logsIngestion?.endpoint;
    if (typeof ep !== 'string')
      throw new CliError(`data collection endpoint ${opts.dceResourceId} has no logs ingestion endpoint`, { exitCode: 1 });
    dceEndpoint = ep;
  }

  // ---- the DCR ----
  const dcrPath = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Insights/dataCollectionRules/${opts.dcrName ?? 'sentinel-cef-dcr'}`;
  const desired = renderDcr({
    name: opts.dcrName ?? 'sentinel-cef-dcr',
    location,
    workspaceResourceId: wsId,
    ...(opts.dceResourceId ? { dceResourceId: opts.dceResourceId } : {}),
  });
  const body = { location: desired.location, ...(desired.kind ? { kind: desired.kind } : {}), properties: desired.properties };
  const current = await send({ method: 'GET', url: arm(dcrPath, DCR_API_VERSION), scope: opts.armScope }, [200, 404]);
  let dcr = current.status === 200 ? (current.json as RuleBody | null) : null;
  if (dcr && sameRule(dcr, body)) {
    deps.log(`data collection rule ${dcrPath}: unchanged`);
  } else {
    const a = await write({ method: 'PUT', url: arm(dcrPath, DCR_API_VERSION), body, scope: opts.armScope }, [200, 201]);
    if (a) {
      dcr = a.json as RuleBody | null;
      deps.log(`data collection rule ${dcrPath}: ${a.status === 201 ? 'created' : 'updated'}`);
    }
  }
  const endpoint: string | undefined = dceEndpoint ?? dcr?.properties?.endpoints?.logsIngestion;
  const immutableId: string | undefined = dcr?.properties?.immutableId;
  if (dcr && !endpoint) throw new CliError(`the rule ${dcrPath} has no logs ingestion endpoint (not kind Direct)`, { exitCode: 1 });

  // ---- the role ----
  const raName = deterministicGuid(`${dcrPath.toLowerCase()}|${opts.principalId}|${MONITORING_METRICS_PUBLISHER_ID}`);
  const raPath = `${dcrPath}/providers/Microsoft.Authorization/roleAssignments/${raName}`;
  const existing =
    dcr && current.status === 200
      ? await send({ method: 'GET', url: arm(raPath, ROLE_ASSIGNMENTS_API_VERSION), scope: opts.armScope }, [200, 404])
      : null;
  if (existing?.status === 200) {
    deps.log('role "Monitoring Metrics Publisher" on the rule: unchanged');
  } else {
    const raBody = {
      properties: {
        roleDefinitionId: `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions/${MONITORING_METRICS_PUBLISHER_ID}`,
        principalId: opts.principalId,
        principalType: 'ServicePrincipal',
      },
    };
    const a = await write(
      { method: 'PUT', url: arm(raPath, ROLE_ASSIGNMENTS_API_VERSION), body: raBody, scope: opts.armScope },
      [200, 201, 409],
    );
    if (a) {
      const granted = a.status === 201;
      deps.log(
        `role "Monitoring Metrics Publisher" on the rule: ${a.status === 409 ? 'already assigned' : granted ? 'granted' : 'unchanged'}`,
      );
    }
  }
  const ingest = `${endpoint ?? '{logs-ingestion-endpoint-of-the-new-rule}'}/dataCollectionRules/${immutableId ?? '{immutable-id-of-the-new-rule}'}/streams/${DCR_STREAM}?api-version=${LOGS_INGESTION_API_VERSION}`;
  if (opts.dryRun) {
    deps.log(
      `would call: POST ${ingest} [] (as the forwarder, repeated until the role applies: up to ${Math.round((opts.roleWaitMs ?? ROLE_WAIT_MS) / 60_000)} min)`,
    );
    if (opts.verify) deps.log(`would call: POST ${ingest} [<one probe row>] (the end-to-end probe, sent by the forwarder)`);
    deps.log(
      writes.length
        ? `dry run: ${writes.length} change(s) listed above; nothing was changed in Azure`
        : 'dry run: nothing to change in Azure',
    );
    return { workspaceResourceId: wsId, customerId, location, endpoint, dcrImmutableId: immutableId, writes, calls };
  }
  if (writes.length === 0) deps.log('Azure: nothing to change, everything is already in place');

  // ---- wait until ingestion accepts the identity (a new assignment takes up to ~30 min) ----
  const deadline = deps.now() + (opts.roleWaitMs ?? ROLE_WAIT_MS);
  const probe: AzureCall = {
    method: 'POST',
    url: ingest,
    body: [],
    scope: opts.ingestionScope,
    asForwarder: true,
  };
  for (;;) {
    calls.push(probe);
    const a = await deps.request(probe);
    if (a.status >= 200 && a.status < 300) break;
    const e = (a.json as ArmBody | null)?.error;
    if (a.status !== 403)
      throw new CliError(`the ingestion endpoint answered HTTP ${a.status} to a probe${e ? `: ${e.code}` : ''}`, { exitCode: 1 });
    if (deps.now() >= deadline) {
      throw new CliError('the "Monitoring Metrics Publisher" role has not applied yet (ingestion still answers 403)', {
        exitCode: 1,
        suggestion:
          'role assignments take up to 30 minutes: run the same install again later (it changes nothing in Azure and waits again)',
      });
    }
    deps.log(`waiting for the role to apply (ingestion answers 403; ${Math.ceil((deadline - deps.now()) / 60_000)} min left)…`);
    await deps.sleep(opts.pollMs ?? 15_000);
  }
  deps.log('ingestion accepts the identity');
  return { workspaceResourceId: wsId, customerId, location, endpoint, dcrImmutableId: immutableId, writes, calls };
}

/**
 * The parts of a rule we own; ARM adds immutableId, endpoints, provisioningState and each Log Analytics
 * destination's read-only workspaceId (dataCollectionRules 2023-03-11, LogAnalyticsDestination).
 */
function sameRule(actual: RuleBody, want: RuleBody): boolean {
  const dests = (d: unknown) =>
    d && typeof d === 'object' && 'logAnalytics' in d && Array.isArray(d.logAnalytics)
      ? { ...d, logAnalytics: (d.logAnalytics as Array<Record<string, unknown>>).map(({ workspaceId: _ro, ...x }) => x) }
      : d;
  const pick = (r: RuleBody) =>
    canonical({
      location: String(r.location ?? '').toLowerCase(),
      kind: r.kind ? String(r.kind).trim() : undefined,
      dataCollectionEndpointId: r.properties?.dataCollectionEndpointId
        ? String(r.properties.dataCollectionEndpointId).toLowerCase()
        : undefined,
      streamDeclarations: r.properties?.streamDeclarations,
      destinations: dests(r.properties?.destinations),
      dataFlows: r.properties?.dataFlows,
    });
  return pick(actual) === pick(want);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, x[k]]),
        )
      : x,
  );
}

/** A stable GUID for one (scope, principal, role): a second run addresses the same assignment. */
export function deterministicGuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The workspace an existing rule sends to (`--dce/--dcr` installs), for troubleshoot's readback: the rule found by
 * its immutable id in Resource Graph, then its first Log Analytics destination's workspaceId (read-only, filled
 * by ARM), else that destination's workspace read by resource id. Undefined when the rule or workspace is not visible.
 */
export async function findRuleWorkspace(
  immutableId: string,
  opts: { armUrl: string; armScope: string },
  request: (call: AzureCall) => Promise<AzureAnswer>,
): Promise<string | undefined> {
  const base = opts.armUrl.replace(/\/+$/, '');
  const query = `Resources | where type =~ 'microsoft.insights/datacollectionrules' | where properties.immutableId =~ '${immutableId}' | project id, properties`;
  const a = await request({
    method: 'POST',
    url: `${base}/providers/Microsoft.ResourceGraph/resources?api-version=${RESOURCE_GRAPH_API_VERSION}`,
    body: { query },
    scope: opts.armScope,
  });
  if (a.status !== 200) throw new Error(`Resource Graph answered HTTP ${a.status}${armError(a)}`);
  const rule = (a.json as { data?: Array<{ properties?: { destinations?: unknown } }> } | null)?.data?.[0];
  if (!rule) return undefined;
  const dests = (rule.properties?.destinations as { logAnalytics?: Array<{ workspaceId?: unknown; workspaceResourceId?: unknown }> })
    ?.logAnalytics;
  const d = dests?.[0];
  if (typeof d?.workspaceId === 'string' && GUID.test(d.workspaceId)) return d.workspaceId;
  if (typeof d?.workspaceResourceId !== 'string' || !WS_ID.test(d.workspaceResourceId)) return undefined;
  const ws = await request({
    method: 'GET',
    url: `${base}${d.workspaceResourceId}?api-version=${WORKSPACES_API_VERSION}`,
    scope: opts.armScope,
  });
  if (ws.status !== 200) throw new Error(`reading workspace ${d.workspaceResourceId}: HTTP ${ws.status}${armError(ws)}`);
  const cid = (ws.json as ArmBody | null)?.properties?.customerId;
  return typeof cid === 'string' && GUID.test(cid) ? cid : undefined;
}

function armError(a: AzureAnswer): string {
  const e = (a.json as ArmBody | null)?.error;
  return e?.code ? ` (${e.code})` : '';
}
