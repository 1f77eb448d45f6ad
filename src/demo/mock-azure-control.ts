/**
 * The Azure control plane beside the edge mock (mock-azure.ts): ARM (Log Analytics workspaces, data collection
 * rules, role assignments), Azure Resource Graph and the Logs Query API. Bearer tokens come from the edge
 * mock's Entra authority and are checked for this API's audience; rows for Logs Query are the rows the edge
 * mock accepted, visible after a configurable ingestion delay. Shapes follow Azure/azure-rest-api-specs:
 *  - workspaces GET: Microsoft.OperationalInsights stable/2025-02-01 (examples/WorkspacesGet.json)
 *  - dataCollectionRules PUT/GET: Microsoft.Insights stable/2023-03-11 (examples/DataCollectionRulesCreateEmbeddedDCE.json:
 *    kind Direct answers properties.immutableId and properties.endpoints.logsIngestion)
 *  - roleAssignments PUT: Microsoft.Authorization stable/2022-04-01 (examples/RoleAssignments_CreateForResource.json)
 *  - Resource Graph: Microsoft.ResourceGraph stable/2024-04-01 (examples/ResourcesBasicQuery.json)
 *  - Logs Query: operationalinsights data-plane stable/v1, POST /v1/workspaces/{workspaceId}/query (examples/oms-post-example.json;
 *    body QueryBody {query, timespan?, workspaces?}; 403 InsufficientAccessError without a reader role, 429 with Retry-After)
 * Rows reach CommonSecurityLog the way Azure routes them: through the rule holding the edge's immutable id, keeping
 * only the stream's declared columns, dropped when its transform filters them out, nowhere when its output stream is
 * another table. With `syslogCopies`, each accepted CEF row is also in `Syslog` the way AMA 1.41 writes it (the
 * `CEF:0|` text kept in SyslogMessage), as a machine that also runs AMA on the same facility duplicates it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import type { AcceptedRow, MockAzure } from './mock-azure.js';

export const ARM_AUDIENCE = 'https://management.azure.com';
export const LOGS_QUERY_AUDIENCE = 'https://api.loganalytics.io';
/** Built-in role "Monitoring Metrics Publisher" (Microsoft's built-in roles list). */
export const MONITORING_METRICS_PUBLISHER = '3913510d-42f4-4e42-8a64-420c390055eb';

/** api-versions each resource accepts; the first is the one the specs above were read at. */
export const API_VERSIONS = {
  workspaces: ['2025-02-01', '2023-09-01', '2022-10-01'],
  dataCollectionRules: ['2023-03-11', '2024-03-11', '2022-06-01'],
  roleAssignments: ['2022-04-01'],
  resourceGraph: ['2024-04-01', '2022-10-01', '2021-03-01'],
} as const;

export interface ControlWorkspace {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  /** The workspace id operators know (properties.customerId). */
  customerId: string;
  location: string;
}

export interface ControlRequest {
  at: number;
  method: string;
  path: string;
  apiVersion: string | null;
  status: number;
  body?: unknown;
}

export interface MockControlOptions {
  /** Token authority and ingestion edge: its tokens are trusted, its accepted rows are what Logs Query reads. */
  edge: MockAzure;
  /** Default: one workspace whose customerId is the edge's workspaceId. */
  workspaces?: ControlWorkspace[];
  /** Rows become queryable this long after the edge accepted them (Azure: typically minutes). */
  ingestionDelayMs?: number;
  /** ARM actions the caller lacks (e.g. 'Microsoft.Authorization/roleAssignments/write'): 403 AuthorizationFailed. */
  deny?: string[];
  /** After a role assignment is created, ingestion answers 403 for this long (propagation). */
  roleDelayMs?: number;
  /** Every accepted CEF row also lands in `Syslog` (AMA collecting the same facility). */
  syslogCopies?: boolean;
  /** The caller holds no reader role on the workspace: queries answer 403 InsufficientAccessError. */
  noReader?: boolean;
}

/** A data collection rule's properties (dataCollectionRules 2023-03-11): the parts the mock reads, the rest kept as sent. */
export interface DcrProperties {
  immutableId?: string;
  endpoints?: { logsIngestion: string; metricsIngestion: string };
  streamDeclarations?: Record<string, { columns?: Array<{ name: string; type: string }> }>;
  destinations?: { logAnalytics?: Array<{ name: string; workspaceResourceId?: string; workspaceId?: string }> };
  dataFlows?: Array<{ streams?: string[]; destinations?: string[]; transformKql?: string; outputStream?: string }>;
  [other: string]: unknown;
}

/** A rule as a PUT sends it. */
export interface DcrBody {
  location: string;
  kind?: string;
  tags?: Record<string, string>;
  properties: DcrProperties;
}

/** A rule as ARM stores and answers it. */
export interface StoredDcr extends DcrBody {
  id: string;
  name: string;
  type?: string;
  etag?: string;
}

/** A role assignment (roleAssignments 2022-04-01) as ARM answers it. */
export interface StoredRoleAssignment {
  id: string;
  type: string;
  name: string;
  properties: { roleDefinitionId: string; principalId: string; principalType: string; scope: string };
}

export interface MockControl {
  readonly url: string;
  readonly workspaces: ControlWorkspace[];
  readonly requests: ControlRequest[];
  /** DCRs by lower-cased resource id. */
  readonly dcrs: Map<string, StoredDcr>;
  /** Role assignments by lower-cased resource id. */
  readonly roleAssignments: Map<string, StoredRoleAssignment>;
  deny(action: string): void;
  allow(action: string): void;
  setIngestionDelay(ms: number): void;
  /** The next `n` queries answer 429 ThrottledError with `Retry-After: retryAfterSec`. */
  throttleQueries(n: number, retryAfterSec?: number): void;
  /** The next `n` queries answer this error (e.g. 503 with Retry-After 0, so the SDK's retries are quick). */
  failQueries(n: number, error: { status: number; code: string; message: string; retryAfterSec?: number }): void;
  /** The next `n` queries answer 200 with their rows and an `error` (a partial result, e.g. a timed-out shard). */
  partialQueries(n: number): void;
  /** Rows per Resource Graph page when the request asks for more (the service's own limit; default 1000). */
  setGraphPageSize(n: number): void;
  /** Resource Graph answers these properties for rule `id` (its index lags ARM); undefined: no lag. */
  setGraphLag(id: string | undefined, properties?: DcrProperties): void;
  /** Stores a rule as if created elsewhere (another tool, AMA's CEF rule); the id names its group and name. */
  addDcr(id: string, resource: DcrBody): void;
  /** Stores a data collection endpoint (dataCollectionEndpoints 2023-03-11) whose logs ingestion URL is the edge's. */
  addDce(id: string, location: string): void;
  setSyslogCopies(on: boolean): void;
  setReader(on: boolean): void;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WS_PATH = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.OperationalInsights\/workspaces\/([^/]+)$/i;
const DCR_PATH = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Insights\/dataCollectionRules\/([^/]+)$/i;
const DCE_PATH = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Insights\/dataCollectionEndpoints\/([^/]+)$/i;
const RA_PATH = /^(\/.+)\/providers\/Microsoft\.Authorization\/roleAssignments\/([^/]+)$/i;
const QUERY_PATH = /^\/v1\/workspaces\/([^/]+)\/query$/;

export async function startMockControl(options: MockControlOptions): Promise<MockControl> {
  const edge = options.edge;
  const workspaces = options.workspaces ?? [
    {
      subscriptionId: randomUUID(),
      resourceGroup: 'sentinel-rg',
      name: 'sentinel-ws',
      customerId: edge.workspaceId,
      location: 'westeurope',
    },
  ];
  const denied = new Set(options.deny ?? []);
  let ingestionDelayMs = options.ingestionDelayMs ?? 0;
  const requests: ControlRequest[] = [];
  const dcrs = new Map<string, StoredDcr>();
  const roleAssignments = new Map<string, StoredRoleAssignment>();
  const dces = new Map<string, { id: string; name: string; location: string; properties: { logsIngestion: { endpoint: string } } }>();
  let edgeDcrUsed = false;
  let syslogCopies = options.syslogCopies ?? false;
  let noReader = options.noReader ?? false;
  let failure: { n: number; status: number; code: string; message: string; retryAfterSec?: number } = {
    n: 0,
    status: 429,
    code: '',
    message: '',
  };
  let partial = 0;
  let graphPageSize = 1000;
  let graphLag: { id: string; properties: DcrProperties } | undefined;

  const wsId = (w: ControlWorkspace) =>
    `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${w.name}`;
  const findWs = (id: string) => workspaces.find((w) => wsId(w).toLowerCase() === id.toLowerCase());

  function requireVersion(url: URL, allowed: readonly string[]) {
    const v = url.searchParams.get('api-version');
    if (!v)
      throw new HttpError(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      );
    if (!allowed.includes(v)) {
      throw new HttpError(
        400,
        'InvalidApiVersionParameter',
        `The api-version '${v}' is invalid. The supported versions are '${allowed.join(',')}'.`,
      );
    }
  }

  function authorize(req: http.IncomingMessage, audience: string) {
    const why = edge.checkToken(req.headers.authorization, audience);
    if (why) throw new HttpError(401, audience === ARM_AUDIENCE ? 'InvalidAuthenticationToken' : 'InvalidTokenError', why);
  }

  function permit(action: string, scope: string) {
    if (denied.has(action)) {
      throw new HttpError(
        403,
        'AuthorizationFailed',
        `The client '${edge.clientId}' with object id '${edge.clientId}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
      );
    }
  }

  function workspaceResource(w: ControlWorkspace) {
    return {
      properties: {
        customerId: w.customerId,
        provisioningState: 'Succeeded',
        sku: { name: 'PerGB2018' },
        retentionInDays: 90,
        publicNetworkAccessForIngestion: 'Enabled',
        publicNetworkAccessForQuery: 'Enabled',
      },
      id: wsId(w),
      name: w.name,
      type: 'Microsoft.OperationalInsights/workspaces',
      location: w.location,
    };
  }

  /** What ARM validates on a DCR PUT that our rule could get wrong. */
  function validateDcr(body: unknown, location: string | undefined): asserts body is DcrBody {
    const bad = (m: string) => new HttpError(400, 'InvalidPayload', `Data collection rule is invalid: ${m}`);
    if (!body || typeof body !== 'object') throw bad('the request body is not a JSON object');
    // Read as the rule the client means to send; the fields are checked below.
    const rule = body as Partial<DcrBody>;
    if (typeof rule.location !== 'string' || !rule.location) throw bad("'location' is required");
    if (location && rule.location.toLowerCase() !== location.toLowerCase()) {
      throw new HttpError(
        400,
        'InvalidResourceLocation',
        `The resource already exists in location '${location}'; it cannot be moved to '${rule.location}'.`,
      );
    }
    const p = rule.properties;
    if (!p || typeof p !== 'object') throw bad("'properties' is required");
    const flows = Array.isArray(p.dataFlows) ? p.dataFlows : [];
    if (flows.length === 0) throw bad('at least one data flow is required');
    if (flows.length > 10) throw bad('a rule holds at most 10 data flows');
    const la = p.destinations?.logAnalytics ?? [];
    const destNames = new Set(la.map((d) => d.name));
    for (const d of la) {
      if (!findWs(String(d.workspaceResourceId ?? ''))) throw bad(`destination ${d.name}: workspace ${d.workspaceResourceId} not found`);
    }
    const dceId = p.dataCollectionEndpointId;
    if (dceId !== undefined) {
      const dce = dces.get(String(dceId).toLowerCase());
      if (!dce) throw bad(`data collection endpoint ${String(dceId)} not found`);
      if (dce.location.toLowerCase() !== rule.location.toLowerCase())
        throw bad(`data collection endpoint ${String(dceId)} is in ${dce.location}, not in the rule's region ${rule.location}`);
    }
    const declared = new Set(Object.keys(p.streamDeclarations ?? {}));
    for (const f of flows) {
      for (const s of f.streams ?? [])
        if (String(s).startsWith('Custom-') && !declared.has(s)) throw bad(`stream ${s} is not declared in streamDeclarations`);
      for (const d of f.destinations ?? []) if (!destNames.has(d)) throw bad(`destination ${d} is not defined`);
      if (typeof f.transformKql === 'string' && f.transformKql.length > 15_360) throw bad('transformKql is longer than 15360 characters');
    }
  }

  function withWorkspaceIds(d: DcrProperties['destinations']): DcrProperties['destinations'] {
    if (!d || !Array.isArray(d.logAnalytics)) return d;
    return {
      ...d,
      logAnalytics: d.logAnalytics.map((x) => ({ ...x, workspaceId: findWs(String(x.workspaceResourceId ?? ''))?.customerId })),
    };
  }

  /**
   * Resource Graph paging (QueryRequestOptions `$top`, at most 1000, and `$skipToken`; QueryResponse `$skipToken`
   * while rows remain): a page holds `$top` rows, else the service's page size (`graphPageSize`).
   */
  function pager(search: { options?: { $top?: unknown; $skipToken?: unknown } }) {
    const top = search.options?.$top;
    if (top !== undefined && (typeof top !== 'number' || !Number.isInteger(top) || top < 1 || top > 1000))
      throw new HttpError(400, 'BadRequest', 'options.$top must be an integer from 1 to 1000');
    const token = search.options?.$skipToken;
    let from = 0;
    if (token !== undefined) {
      const m = typeof token === 'string' ? /^page:(\d+)$/.exec(Buffer.from(token, 'base64').toString()) : null;
      if (!m) throw new HttpError(400, 'InvalidSkipToken', 'The $skipToken is invalid.');
      from = Number(m[1]);
    }
    const size = Math.min(typeof top === 'number' ? top : 1000, graphPageSize);
    return <T>(rows: T[]) => {
      const data = rows.slice(from, from + size);
      const more = from + size < rows.length;
      return {
        totalRecords: rows.length,
        count: data.length,
        resultTruncated: 'false',
        ...(more ? { $skipToken: Buffer.from(`page:${from + size}`).toString('base64') } : {}),
        facets: [],
        data,
      };
    };
  }

  function arm(req: http.IncomingMessage, url: URL, body: unknown): [number, unknown] {
    authorize(req, ARM_AUDIENCE);
    const path = url.pathname;
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && path.toLowerCase() === '/providers/microsoft.resourcegraph/resources') {
      requireVersion(url, API_VERSIONS.resourceGraph);
      permit('Microsoft.ResourceGraph/resources/read', '/');
      const search = body as
        { query?: unknown; subscriptions?: unknown; options?: { $top?: unknown; $skipToken?: unknown } } | null | undefined;
      if (typeof search?.query !== 'string' || !search.query.trim())
        throw new HttpError(400, 'BadRequest', 'Please provide below info when asking for support: query is required');
      const q = search.query;
      const subs: string[] | undefined = Array.isArray(search.subscriptions) ? search.subscriptions : undefined;
      const page = pager(search);
      if (/microsoft\.insights\/datacollectionrules/i.test(q)) {
        // `where properties.immutableId =~ 'x'`, optionally `or tostring(properties.dataFlows) contains 'y'` (either matches).
        const imm = /immutableId\s*(?:==|=~)\s*['"]([^'"]+)['"]/i.exec(q)?.[1];
        const flows = /dataFlows\)?\s+contains\s+['"]([^'"]+)['"]/i.exec(q)?.[1];
        // Resource Graph shows only what the caller may read: no rule read permission, no rules.
        const readable = !denied.has('Microsoft.Insights/dataCollectionRules/read');
        const data = [...dcrs.values()]
          .filter(() => readable)
          .filter(
            (d) =>
              (!imm && !flows) ||
              (imm && String(d.properties?.immutableId).toLowerCase() === imm.toLowerCase()) ||
              (flows && JSON.stringify(d.properties?.dataFlows ?? []).includes(flows)),
          )
          .filter((d) => !subs || subs.includes(String(d.id).split('/')[2]))
          .map((d) => ({
            id: d.id,
            name: d.name,
            type: 'microsoft.insights/datacollectionrules',
            location: d.location,
            resourceGroup: String(d.id).split('/')[4],
            subscriptionId: String(d.id).split('/')[2],
            kind: d.kind ?? '',
            properties: graphLag?.id.toLowerCase() === String(d.id).toLowerCase() ? graphLag.properties : d.properties,
          }));
        return [200, page(data)];
      }
      const wantType = /microsoft\.operationalinsights\/workspaces/i.test(q);
      const cid = /customerId\s*(?:==|=~)\s*['"]([0-9a-f-]{36})['"]/i.exec(q)?.[1];
      const data = workspaces
        .filter((w) => wantType && (!cid || w.customerId.toLowerCase() === cid.toLowerCase()) && (!subs || subs.includes(w.subscriptionId)))
        .map((w) => ({
          id: wsId(w),
          name: w.name,
          type: 'microsoft.operationalinsights/workspaces',
          location: w.location,
          resourceGroup: w.resourceGroup,
          subscriptionId: w.subscriptionId,
          properties: { customerId: w.customerId },
        }));
      return [200, page(data)];
    }
    if ((m = WS_PATH.exec(path))) {
      requireVersion(url, API_VERSIONS.workspaces);
      if (req.method !== 'GET') throw new HttpError(405, 'MethodNotAllowed', `${req.method} is not supported here`);
      permit('Microsoft.OperationalInsights/workspaces/read', path);
      const w = findWs(path);
      if (!w)
        throw new HttpError(
          404,
          'ResourceNotFound',
          `The Resource 'Microsoft.OperationalInsights/workspaces/${m[3]}' under resource group '${m[2]}' was not found.`,
        );
      return [200, workspaceResource(w)];
    }
    if ((m = DCE_PATH.exec(path))) {
      requireVersion(url, API_VERSIONS.dataCollectionRules);
      if (req.method !== 'GET') throw new HttpError(405, 'MethodNotAllowed', `${req.method} is not supported here`);
      permit('Microsoft.Insights/dataCollectionEndpoints/read', path);
      const dce = dces.get(path.toLowerCase());
      if (!dce)
        throw new HttpError(
          404,
          'ResourceNotFound',
          `The Resource 'Microsoft.Insights/dataCollectionEndpoints/${m[3]}' under resource group '${m[2]}' was not found.`,
        );
      return [200, { ...dce, type: 'Microsoft.Insights/dataCollectionEndpoints' }];
    }
    if ((m = DCR_PATH.exec(path))) {
      requireVersion(url, API_VERSIONS.dataCollectionRules);
      const key = path.toLowerCase();
      const existing = dcrs.get(key);
      if (req.method === 'GET') {
        permit('Microsoft.Insights/dataCollectionRules/read', path);
        if (!existing)
          throw new HttpError(
            404,
            'ResourceNotFound',
            `The Resource 'Microsoft.Insights/dataCollectionRules/${m[3]}' under resource group '${m[2]}' was not found.`,
          );
        return [200, existing];
      }
      if (req.method !== 'PUT') throw new HttpError(405, 'MethodNotAllowed', `${req.method} is not supported here`);
      permit('Microsoft.Insights/dataCollectionRules/write', path);
      validateDcr(body, existing?.location);
      // The immutable id survives updates; the first rule gets the edge's, so ingestion through it works.
      const immutableId =
        existing?.properties.immutableId ??
        (edgeDcrUsed ? `dcr-${randomBytes(16).toString('hex')}` : ((edgeDcrUsed = true), edge.dcrImmutableId));
      const direct =
        String(body.kind ?? '')
          .trim()
          .toLowerCase() === 'direct';
      const resource = {
        id: path,
        name: m[3],
        type: 'Microsoft.Insights/dataCollectionRules',
        location: body.location,
        ...(body.kind ? { kind: String(body.kind).trim() } : {}),
        ...(body.tags ? { tags: body.tags } : {}),
        properties: {
          ...body.properties,
          // ARM fills the destination's workspaceId (the customer id) on read.
          destinations: withWorkspaceIds(body.properties.destinations),
          immutableId,
          ...(direct ? { endpoints: { logsIngestion: edge.url, metricsIngestion: edge.url } } : {}),
          provisioningState: 'Succeeded',
        },
        etag: `"${randomUUID()}"`,
      };
      dcrs.set(key, resource);
      return [existing ? 200 : 201, resource];
    }
    if ((m = RA_PATH.exec(path))) {
      requireVersion(url, API_VERSIONS.roleAssignments);
      const [, scope, name] = m;
      if (req.method === 'GET') {
        permit('Microsoft.Authorization/roleAssignments/read', scope);
        const ra = roleAssignments.get(path.toLowerCase());
        if (!ra) throw new HttpError(404, 'RoleAssignmentNotFound', `The role assignment '${name}' is not found.`);
        return [200, ra];
      }
      if (req.method !== 'PUT') throw new HttpError(405, 'MethodNotAllowed', `${req.method} is not supported here`);
      permit('Microsoft.Authorization/roleAssignments/write', scope);
      if (!GUID.test(name))
        throw new HttpError(
          400,
          'InvalidRoleAssignmentId',
          `The role assignment ID '${name}' is not valid. The role assignment ID must be a GUID.`,
        );
      if (DCR_PATH.test(scope) && !dcrs.has(scope.toLowerCase()))
        throw new HttpError(404, 'ResourceNotFound', `The scope '${scope}' does not exist.`);
      const props = (
        body as { properties?: { roleDefinitionId?: unknown; principalId?: unknown; principalType?: string } } | null | undefined
      )?.properties;
      if (!props || typeof props.roleDefinitionId !== 'string' || typeof props.principalId !== 'string') {
        throw new HttpError(400, 'InvalidRequestContent', 'properties.roleDefinitionId and properties.principalId are required');
      }
      const roleGuid = props.roleDefinitionId.split('/').pop()!.toLowerCase();
      if (!/\/providers\/Microsoft\.Authorization\/roleDefinitions\/[0-9a-f-]{36}$/i.test(props.roleDefinitionId)) {
        throw new HttpError(400, 'InvalidRoleDefinitionId', `The role definition ID '${props.roleDefinitionId}' is not valid.`);
      }
      const same = [...roleAssignments.values()].find(
        (r) =>
          r.properties.scope.toLowerCase() === scope.toLowerCase() &&
          r.properties.principalId === props.principalId &&
          r.properties.roleDefinitionId.split('/').pop()!.toLowerCase() === roleGuid,
      );
      if (same && same.name !== name) throw new HttpError(409, 'RoleAssignmentExists', 'The role assignment already exists.');
      const resource = {
        properties: {
          roleDefinitionId: `/providers/Microsoft.Authorization/roleDefinitions/${roleGuid}`,
          principalId: props.principalId,
          principalType: props.principalType ?? 'ServicePrincipal',
          scope,
        },
        id: path,
        type: 'Microsoft.Authorization/roleAssignments',
        name,
      };
      const existed = roleAssignments.has(path.toLowerCase());
      roleAssignments.set(path.toLowerCase(), resource);
      if (!existed && options.roleDelayMs && roleGuid === MONITORING_METRICS_PUBLISHER) {
        edge.fail({
          api: 'logs-ingestion',
          status: 403,
          durationMs: options.roleDelayMs,
          body: JSON.stringify({
            error: {
              code: 'OperationFailed',
              message:
                'The authentication token provided does not have access to ingest data for the data collection rule with immutable Id. PipelineAccessResult: AccessGranted: False, IsRbacPresent: False',
            },
          }),
        });
      }
      return [existed ? 200 : 201, resource];
    }
    throw new HttpError(404, 'InvalidResourceType', `The resource type could not be found for ${path}`);
  }

  /**
   * What an accepted Logs Ingestion row becomes in CommonSecurityLog: routed by the rule with the edge's immutable
   * id (none stored: as sent), cut to the stream's declared columns, filtered by the transform. Null: not there.
   */
  function throughDcr(r: AcceptedRow): Record<string, unknown> | null {
    const rule = [...dcrs.values()].find((d) => d.properties?.immutableId === edge.dcrImmutableId);
    if (!rule) return r.row;
    const flow = (rule.properties.dataFlows ?? []).find((f) => (f.streams ?? []).includes(r.table));
    if (!flow) return null;
    const out = flow.outputStream ?? (String(r.table).startsWith('Microsoft-') ? r.table : undefined);
    if (out !== 'Microsoft-CommonSecurityLog') return null;
    const declared = new Set<string>((rule.properties.streamDeclarations?.[r.table]?.columns ?? []).map((c) => c.name));
    const row = Object.fromEntries(Object.entries(r.row).filter(([k]) => declared.has(k)));
    return transformKeeps(String(flow.transformKql ?? 'source'), row) ? row : null;
  }

  /** The transforms rules use: `source`, `source | where false`, `source | where Col != "x"` / `!contains "x"` / `== "x"`. */
  function transformKeeps(kql: string, row: Record<string, unknown>): boolean {
    for (const m of kql.matchAll(/\|\s*where\s+([^|]+)/g)) {
      const cond = m[1].trim();
      if (/^false$/i.test(cond)) return false;
      const c = /^([A-Za-z0-9_]+)\s*(==|!=|!contains|contains|has|!has)\s*"([^"]*)"$/.exec(cond);
      if (!c) continue;
      const v = String(row[c[1]] ?? '');
      const ok = {
        '==': v === c[3],
        '!=': v !== c[3],
        contains: v.toLowerCase().includes(c[3].toLowerCase()),
        has: v.toLowerCase().includes(c[3].toLowerCase()),
        '!contains': !v.toLowerCase().includes(c[3].toLowerCase()),
        '!has': !v.toLowerCase().includes(c[3].toLowerCase()),
      }[c[2]];
      if (!ok) return false;
    }
    return true;
  }

  /** AMA 1.41's Syslog row for a CEF message: the `CEF:0|` token stays in SyslogMessage. */
  function asSyslog(r: Record<string, unknown>): Record<string, unknown> {
    const ext = Object.entries(r)
      .filter(([k]) => /^DeviceCustomString\d(Label)?$/.test(k))
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    return {
      TimeGenerated: r.TimeGenerated,
      Computer: r.Computer ?? 'forwarder',
      Facility: 'local4',
      SeverityLevel: 'warning',
      ProcessName: 'CEF',
      SyslogMessage: `CEF:0|${r.DeviceVendor}|${r.DeviceProduct}|${r.DeviceVersion}|${r.DeviceEventClassID}|${r.Activity}|${r.LogSeverity}| ${ext} cs2=${r.DeviceCustomString2 ?? ''}`,
    };
  }

  /**
   * The Logs Query subset our queries use: `<Table> | where <col> == "x"` / `in ("x", ...)` / `has "x"` /
   * `has_any ("x", ...)`, optional `| extend X = ingestion_time()`. Tables: CommonSecurityLog, Syslog, *_CL.
   */
  function logsQuery(req: http.IncomingMessage, workspace: string, request: unknown): [number, unknown] {
    const body = request as { query?: unknown; timespan?: unknown } | null | undefined;
    authorize(req, LOGS_QUERY_AUDIENCE);
    const w = workspaces.find((x) => x.customerId.toLowerCase() === workspace.toLowerCase());
    if (!w) throw new HttpError(404, 'WorkspaceNotFoundError', `The workspace ${workspace} could not be found`);
    const syntax = (m: string) => new HttpError(400, 'BadArgumentError', `The request had some invalid properties: ${m}`);
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) throw syntax('Content-Type must be application/json');
    for (const k of Object.keys(body ?? {})) if (!['query', 'timespan', 'workspaces'].includes(k)) throw syntax(`unknown property '${k}'`);
    if (body?.timespan !== undefined && (typeof body.timespan !== 'string' || !/^(P|\d{4}-)/.test(body.timespan)))
      throw syntax('timespan must be an ISO 8601 duration or interval');
    if (noReader) {
      throw new HttpError(
        403,
        'InsufficientAccessError',
        'The provided credentials have insufficient access to perform the requested operation',
      );
    }
    const q = typeof body?.query === 'string' ? body.query.trim() : '';
    if (!q) throw syntax('query is required');
    const table = /^([A-Za-z_][A-Za-z0-9_]*)/.exec(q)?.[1];
    if (table !== 'CommonSecurityLog' && table !== 'Syslog' && !table?.endsWith('_CL'))
      throw syntax(`'${table ?? q.slice(0, 30)}' is not a table this mock holds`);
    const where = /\|\s*where\s+([A-Za-z0-9_]+)\s*(==|in|has_any|has)\s*(\([^)]*\)|"[^"]*"|'[^']*')/.exec(q);
    const extend = /\|\s*extend\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*ingestion_time\(\)/.exec(q)?.[1];
    const wanted = where ? [...where[3].matchAll(/"([^"]*)"|'([^']*)'/g)].map((x) => x[1] ?? x[2]) : null;
    const contains = where && where[2].startsWith('has');
    const now = Date.now();
    const visible = edge.rows.filter((r) => r.at + ingestionDelayMs <= now);
    let source: Array<{ r: AcceptedRow; v: Record<string, unknown> }>;
    if (table === 'CommonSecurityLog') {
      source = visible
        .filter((r) => r.api === 'logs-ingestion')
        .flatMap((r) => {
          const v = throughDcr(r);
          return v ? [{ r, v }] : [];
        });
    } else if (table === 'Syslog') {
      source = syslogCopies
        ? visible.filter((r) => r.api === 'logs-ingestion' || r.api === 'log-analytics').map((r) => ({ r, v: asSyslog(r.row) }))
        : [];
    } else {
      // The Data Collector API suffixes custom columns by type (_s, _d, _b): the _CL table is not CommonSecurityLog.
      source = visible
        .filter((r) => r.api === 'log-analytics' && r.table === table)
        .map((r) => ({
          r,
          v: Object.fromEntries(
            Object.entries(r.row).map(([k, v]) => [
              k === 'TimeGenerated' ? k : `${k}_${typeof v === 'number' ? 'd' : typeof v === 'boolean' ? 'b' : 's'}`,
              v,
            ]),
          ),
        }));
    }
    const rows = source.filter(({ v }) => {
      if (!wanted) return true;
      const val = String(v[where![1]] ?? '');
      return contains ? wanted.some((x) => val.includes(x)) : wanted.includes(val);
    });
    const columns: Array<{ name: string; type: string }> = [];
    const seen = new Set<string>();
    for (const { v } of rows) {
      for (const [k, val] of Object.entries(v)) {
        if (seen.has(k)) continue;
        seen.add(k);
        columns.push({
          name: k,
          type:
            k === 'TimeGenerated'
              ? 'datetime'
              : typeof val === 'number'
                ? Number.isInteger(val)
                  ? 'long'
                  : 'real'
                : typeof val === 'boolean'
                  ? 'bool'
                  : 'string',
        });
      }
    }
    if (extend) columns.push({ name: extend, type: 'datetime' });
    const out = rows.map(({ r, v }) => [
      ...columns.map((c) => (c.name === extend ? new Date(r.at + ingestionDelayMs).toISOString() : (v[c.name] ?? null))),
    ]);
    return [200, { tables: [{ name: 'PrimaryResult', columns, rows: out }] }];
  }

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://mock');
      const record: ControlRequest = {
        at: Date.now(),
        method: req.method ?? '',
        path: url.pathname,
        apiVersion: url.searchParams.get('api-version'),
        status: 0,
      };
      requests.push(record);
      let status: number;
      let payload: unknown;
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        if (text) {
          try {
            body = JSON.parse(text);
          } catch {
            throw new HttpError(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized');
          }
        }
        record.body = body;
        const q = QUERY_PATH.exec(url.pathname);
        if (q && failure.n > 0) {
          failure.n--;
          record.status = failure.status;
          res.writeHead(failure.status, {
            'content-type': 'application/json; charset=utf-8',
            ...(failure.retryAfterSec !== undefined ? { 'retry-after': String(failure.retryAfterSec) } : {}),
            'x-ms-request-id': randomUUID(),
          });
          res.end(JSON.stringify({ error: { code: failure.code, message: failure.message } }));
          return;
        }
        [status, payload] = q && req.method === 'POST' ? logsQuery(req, decodeURIComponent(q[1]), body) : arm(req, url, body);
        if (q && status === 200 && partial > 0) {
          partial--;
          // LogsQueryResult with `error`: rows from the shards that answered (the SDK reports PartialFailure).
          payload = {
            ...(payload as object),
            error: {
              code: 'PartialError',
              message: 'There were some errors when processing your query.',
              details: [{ code: 'EngineError', message: 'Query execution timed out on a shard.' }],
            },
          };
        }
      } catch (err) {
        if (err instanceof HttpError) {
          status = err.status;
          payload = { error: { code: err.code, message: err.message } };
        } else {
          status = 500;
          payload = { error: { code: 'MockError', message: String(err) } };
        }
      }
      record.status = status;
      const json = JSON.stringify(payload);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-ms-request-id': randomUUID() });
      res.end(json);
    });
  };

  const tls =
    edge.https && edge.caPath
      ? { cert: readFileSync(edge.caPath), key: readFileSync(edge.caPath.replace(/-cert\.pem$/, '-key.pem')) }
      : undefined;
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    workspaces,
    requests,
    dcrs,
    roleAssignments,
    deny: (a) => void denied.add(a),
    allow: (a) => void denied.delete(a),
    setIngestionDelay: (ms) => void (ingestionDelayMs = ms),
    throttleQueries: (n, retryAfterSec = 1) =>
      void (failure = {
        n,
        status: 429,
        code: 'ThrottledError',
        message: 'Your request was throttled; retry after the given time.',
        retryAfterSec,
      }),
    failQueries: (n, error) => void (failure = { n, ...error }),
    partialQueries: (n) => void (partial = n),
    setGraphPageSize: (n) => void (graphPageSize = n),
    setGraphLag: (id, properties) => void (graphLag = id && properties ? { id, properties } : undefined),
    addDcr: (id, resource) => void dcrs.set(id.toLowerCase(), { ...resource, id, name: id.split('/').pop()! }),
    addDce: (id, location) =>
      void dces.set(id.toLowerCase(), { id, name: id.split('/').pop()!, location, properties: { logsIngestion: { endpoint: edge.url } } }),
    setSyslogCopies: (on) => void (syslogCopies = on),
    setReader: (on) => void (noReader = !on),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
