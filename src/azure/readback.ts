/**
 * Proof in the table: reads probe rows back from the workspace with the Logs Query API and, for a probe the
 * ingestion API accepted that never shows up, says why from the DCR (read through ARM).
 *
 * Logs Query: data-plane stable/v1 `POST {endpoint}/v1/workspaces/{workspaceId}/query` (Azure/azure-rest-api-specs
 * specification/operationalinsights/data-plane/.../stable/v1/OperationalInsights.json), through @azure/monitor-query-logs.
 * ARM: Resource Graph stable/2024-04-01 (`POST /providers/Microsoft.ResourceGraph/resources`, paged by `$skipToken`)
 * finds the rules by immutable id; our rule is then read through ARM, dataCollectionRules stable/2023-03-11
 * (`GET {id}?api-version=2023-03-11`: streamDeclarations, dataFlows, destinations).
 */
import type { Agent } from 'node:https';
import type { TokenCredential } from '@azure/identity';
import type { Cloud } from '../config/schema.js';
import { HttpTransport, describeNetworkError } from '../sinks/http.js';
import { buildProbeMessage } from '../forwarder/send-test.js';
import { parseLine } from '../parser/index.js';
import { ARM_URLS } from './arm-urls.js';
import { DCR_API_VERSION } from '../dcr/render.js';
import { RESOURCE_GRAPH_API_VERSION, type AzureAnswer } from './setup-logs-ingestion.js';

export const LOGS_QUERY_URLS: Record<Cloud, string> = {
  AzureCloud: 'https://api.loganalytics.io',
  AzureUSGovernment: 'https://api.loganalytics.us',
  AzureChinaCloud: 'https://api.loganalytics.azure.cn',
};
/** The built-in role that lets an identity query a workspace. */
export const READER_ROLE = 'Log Analytics Reader';

export class ReadbackError extends Error {
  constructor(
    message: string,
    readonly kind: 'forbidden' | 'not-found' | 'throttled' | 'sign-in' | 'other',
  ) {
    super(message);
  }
}

/** The outside world of readback; tests and `demo --azure-mock` pass one backed by the mocks. */
export interface ReadbackClient {
  /** Rows of a KQL query over the last `timespanMs`; throws ReadbackError. */
  query(workspaceId: string, kql: string, timespanMs: number): Promise<Array<Record<string, unknown>>>;
  /** An ARM call (Resource Graph); throws when ARM cannot be reached or no token can be had. */
  arm(method: 'GET' | 'POST', path: string, body?: unknown): Promise<AzureAnswer>;
}

export interface ReadbackClientOptions {
  env: NodeJS.ProcessEnv;
  cloud?: Cloud;
  /** Overrides (private clouds, tests, the demo). */
  logsQueryUrl?: string;
  armUrl?: string;
  /** Extra CA (PEM) to trust: the demo's mocks. Operators use NODE_EXTRA_CA_CERTS. */
  ca?: string;
  /** Device code sign-in is offered only on a terminal. */
  interactive?: boolean;
  /** Where the device code prompt goes (stderr). */
  prompt?: (text: string) => void;
  /** A ready credential (tests); otherwise the chain below. */
  credential?: TokenCredential;
}

/**
 * Signs in as the operator: service principal from AZURE_* variables, workload identity, managed identity (Azure VM
 * or Arc machine), Azure CLI login (all inside DefaultAzureCredential), then device code on a terminal.
 * Tokens are used, never printed or logged.
 */
export async function createReadbackCredential(opts: ReadbackClientOptions): Promise<TokenCredential> {
  if (opts.credential) return opts.credential;
  const identity = await import('@azure/identity');
  const env = opts.env;
  const agent = await caAgent(opts.ca);
  const authorityHost = env.AZURE_AUTHORITY_HOST;
  // A custom authority (private clouds, tests) is not in Microsoft's instance-discovery list.
  const common = { ...(authorityHost ? { authorityHost, disableInstanceDiscovery: true } : {}), ...(agent ? { agent } : {}) };
  const chain: TokenCredential[] = [new identity.DefaultAzureCredential(common)];
  if (opts.interactive) {
    chain.push(
      new identity.DeviceCodeCredential({
        ...common,
        tenantId: env.AZURE_TENANT_ID,
        userPromptCallback: (info) => opts.prompt?.(info.message),
      }),
    );
  }
  return chain.length === 1 ? chain[0] : new identity.ChainedTokenCredential(...chain);
}

async function caAgent(ca: string | undefined): Promise<Agent | undefined> {
  if (!ca) return undefined;
  const [{ Agent }, tls] = await Promise.all([import('node:https'), import('node:tls')]);
  return new Agent({ keepAlive: true, ca: [...tls.rootCertificates, ca] });
}

export async function createReadbackClient(opts: ReadbackClientOptions): Promise<ReadbackClient> {
  const { LogsQueryClient, LogsQueryResultStatus } = await import('@azure/monitor-query-logs');
  const credential = await createReadbackCredential(opts);
  const cloud = opts.cloud ?? 'AzureCloud';
  const queryBase = (opts.logsQueryUrl ?? LOGS_QUERY_URLS[cloud]).replace(/\/+$/, '');
  const armBase = (opts.armUrl ?? ARM_URLS[cloud]).replace(/\/+$/, '');
  const agent = await caAgent(opts.ca);
  const client = new LogsQueryClient(credential, {
    endpoint: `${queryBase}/v1`,
    credentials: { scopes: [`${LOGS_QUERY_URLS[cloud]}/.default`] },
    // The SDK honours Retry-After on 429 itself; bound it so a throttled workspace cannot stall the run.
    retryOptions: { maxRetries: 4, maxRetryDelayInMs: 30_000 },
    ...(agent ? { agent } : {}),
  });
  const transport = new HttpTransport({ env: opts.env, timeoutMs: 30_000, ...(opts.ca ? { ca: opts.ca } : {}) });
  return {
    async query(workspaceId, kql, timespanMs) {
      try {
        const r = await client.queryWorkspace(workspaceId, kql, { duration: `PT${Math.max(60, Math.ceil(timespanMs / 1000))}S` });
        if (r.status !== LogsQueryResultStatus.Success)
          throw new ReadbackError(`partial result: ${r.partialError?.message ?? ''}`, 'other');
        const t = r.tables[0];
        if (!t) return [];
        return t.rows.map((row) => Object.fromEntries(t.columnDescriptors.map((c, i) => [c.name ?? String(i), row[i]])));
      } catch (err) {
        throw toReadbackError(err);
      }
    },
    async arm(method, path, body) {
      let token: string;
      try {
        const t = await credential.getToken(`${ARM_URLS[cloud]}/.default`);
        if (!t) throw new Error('no token');
        token = t.token;
      } catch (err) {
        throw new ReadbackError(`cannot sign in to Azure Resource Manager: ${firstLine((err as Error).message)}`, 'sign-in');
      }
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      try {
        const res = await transport.request(new URL(`${armBase}${path}`), {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
          },
          body: data,
        });
        let json: unknown = null;
        try {
          json = res.body ? JSON.parse(res.body) : null;
        } catch {
          json = { error: { code: `HTTP${res.status}`, message: res.body.slice(0, 200) } };
        }
        return { status: res.status, json };
      } catch (err) {
        throw new ReadbackError(`cannot reach ${new URL(armBase).host}: ${describeNetworkError(err)}`, 'other');
      }
    },
  };
}

function toReadbackError(err: unknown): ReadbackError {
  if (err instanceof ReadbackError) return err;
  const e = err as { statusCode?: number; code?: string; message?: string; name?: string };
  const msg = firstLine(e.message ?? String(err));
  if (e.statusCode === 403 || e.code === 'InsufficientAccessError') return new ReadbackError(msg, 'forbidden');
  if (e.statusCode === 404 || e.code === 'WorkspaceNotFoundError' || e.code === 'PathNotFoundError')
    return new ReadbackError(msg, 'not-found');
  if (e.statusCode === 429) return new ReadbackError(msg, 'throttled');
  if (
    e.name === 'CredentialUnavailableError' ||
    e.name === 'AuthenticationError' ||
    e.name === 'AggregateAuthenticationError' ||
    // What the SDK's bearer-token policy throws when the credential's sign-in fails (a wrong secret, say).
    e.name === 'AuthenticationRequiredError'
  )
    return new ReadbackError(msg, 'sign-in');
  return new ReadbackError(msg, 'other');
}

/** One probe, followed hop by hop (epoch ms; a hop not reached is undefined). */
export interface ProbeHops {
  id: string;
  sentAt: number;
  /** The forwarder received it (so the daemon did too: the daemon is the only way in). */
  receivedAt?: number;
  /** The ingestion API accepted its batch. */
  acceptedAt?: number;
  accepted: boolean;
}

export interface ProbeReadback extends ProbeHops {
  /** When the row became queryable (ingestion_time()). */
  visibleAt?: number;
  /** When our poll first saw it. */
  seenAt?: number;
  /** The probe also landed in `Syslog` (a duplicate). */
  inSyslog?: boolean;
}

export interface DcrFinding {
  /** Why accepted rows never reach CommonSecurityLog, one line each; empty: the rule looks right. */
  causes: string[];
  /** Other rules that also send CEF to CommonSecurityLog (duplicates). */
  otherRules: string[];
  /** The rule could not be read (no access, not found): one line. */
  unreadable?: string;
  ruleId?: string;
}

export interface ReadbackResult {
  probes: ProbeReadback[];
  /** The table could not be read at all: no role, wrong workspace, no sign-in. */
  error?: ReadbackError;
  dcr?: DcrFinding;
  waitedMs: number;
}

export interface ReadbackDeps {
  client: ReadbackClient;
  now(): number;
  sleep(ms: number): Promise<void>;
  progress(text: string): void;
}

export interface ReadbackOptions {
  workspaceId: string;
  probes: ProbeHops[];
  timeoutMs: number;
  pollMs?: number;
  /** The sink's rule (its immutable id) and input stream, for the diagnosis. */
  dcrImmutableId?: string;
  stream?: string;
}

const kqlString = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;

/**
 * Polls CommonSecurityLog for the accepted probes until all are visible or the timeout passes (a progress line per
 * poll); then checks Syslog for copies and, when a probe stays invisible or duplicates appear, reads the DCRs.
 */
export async function readBackProbes(opts: ReadbackOptions, deps: ReadbackDeps): Promise<ReadbackResult> {
  const start = deps.now();
  const probes: ProbeReadback[] = opts.probes.map((p) => ({ ...p }));
  const wanted = probes.filter((p) => p.accepted);
  const pollMs = opts.pollMs ?? 15_000;
  const since = Math.min(...probes.map((p) => p.sentAt), start);
  // The query window covers the probes with margin for clock skew between here and Azure.
  const span = () => deps.now() - since + 15 * 60_000;
  const result: ReadbackResult = { probes, waitedMs: 0 };
  if (wanted.length === 0) return result;
  const ids = wanted.map((p) => p.id);
  for (;;) {
    const missing = wanted.filter((p) => p.visibleAt === undefined);
    if (missing.length === 0) break;
    let rows: Array<Record<string, unknown>>;
    try {
      rows = await deps.client.query(
        opts.workspaceId,
        `CommonSecurityLog | where DeviceCustomString2 in (${missing.map((p) => kqlString(p.id)).join(', ')}) | extend IngestedAt = ingestion_time() | project DeviceCustomString2, TimeGenerated, IngestedAt`,
        span(),
      );
    } catch (err) {
      result.error = err as ReadbackError;
      break;
    }
    const seen = deps.now();
    for (const r of rows) {
      const p = missing.find((x) => x.id === r.DeviceCustomString2);
      if (!p || p.visibleAt !== undefined) continue;
      p.visibleAt = toMs(r.IngestedAt) ?? seen;
      p.seenAt = seen;
    }
    const left = wanted.filter((p) => p.visibleAt === undefined).length;
    const waited = deps.now() - start;
    if (left === 0) break;
    if (waited + pollMs > opts.timeoutMs) break;
    deps.progress(
      `readback: ${wanted.length - left}/${wanted.length} probes in CommonSecurityLog after ${Math.round(waited / 1000)}s (ingestion takes minutes; waiting up to ${Math.round(opts.timeoutMs / 1000)}s)`,
    );
    await deps.sleep(pollMs);
  }
  result.waitedMs = deps.now() - start;
  if (result.error) return result;

  // Duplicates: the same probes collected again as Syslog (AMA on the same facility).
  try {
    const rows = await deps.client.query(
      opts.workspaceId,
      `Syslog | where SyslogMessage has_any (${ids.map(kqlString).join(', ')}) | project SyslogMessage`,
      span(),
    );
    for (const p of wanted) if (rows.some((r) => String(r.SyslogMessage ?? '').includes(p.id))) p.inSyslog = true;
  } catch {
    // Syslog is only a second opinion: a failure here leaves the CommonSecurityLog verdict standing.
  }

  const invisible = wanted.some((p) => p.visibleAt === undefined);
  if (opts.dcrImmutableId && (invisible || wanted.some((p) => p.inSyslog))) {
    result.dcr = await inspectDcrs(deps.client, opts.dcrImmutableId, opts.stream ?? 'Custom-CommonSecurityLog', opts.workspaceId);
  }
  return result;
}

function toMs(v: unknown): number | undefined {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'string' || typeof v === 'number') {
    const t = new Date(v).getTime();
    return Number.isFinite(t) ? t : undefined;
  }
  return undefined;
}

/** Columns a probe row carries, as the forwarder sends it. */
export function probeColumns(): string[] {
  const r = parseLine(buildProbeMessage('probe-columns', 'rfc3164', 'host'));
  return r.ok ? Object.keys(r.row) : [];
}

/** The parts of a data collection rule readback looks at (DataCollectionRuleResource, api-version 2023-03-11). */
interface RuleFlow {
  streams?: string[];
  outputStream?: string;
  transformKql?: string;
  destinations?: string[];
}
interface RuleProperties {
  immutableId?: string;
  dataFlows?: RuleFlow[];
  destinations?: { logAnalytics?: Array<{ workspaceId?: string; workspaceResourceId?: string; name?: string }> };
  streamDeclarations?: Record<string, { columns?: Array<{ name: string; type?: string }> }>;
}

/** Who may read a rule: ARM and Resource Graph show it only to these (built-in roles). */
export const RULE_READER_ROLES = '"Monitoring Reader" (or "Reader")';

interface GraphRule {
  id: string;
  name: string;
  properties: RuleProperties;
}

/**
 * Our rule (by immutable id) and every rule that sends to CommonSecurityLog, from Resource Graph, every page
 * ($skipToken): a tenant with many rules would otherwise hide ours past the first page.
 */
async function findRules(client: ReadbackClient, immutableId: string): Promise<GraphRule[] | string> {
  const lit = `'${immutableId.replace(/['\\]/g, '\\$&')}'`;
  const query =
    `resources | where type =~ 'microsoft.insights/datacollectionrules'` +
    ` | where properties.immutableId =~ ${lit} or tostring(properties.dataFlows) contains 'Microsoft-CommonSecurityLog'` +
    ` | project id, name, properties`;
  const rules: GraphRule[] = [];
  let skipToken: string | undefined;
  // Bounded: 50 pages of 1,000 rules is far past any tenant's count of rules sending to CommonSecurityLog.
  for (let page = 0; page < 50; page++) {
    let answer: AzureAnswer;
    try {
      answer = await client.arm('POST', `/providers/Microsoft.ResourceGraph/resources?api-version=${RESOURCE_GRAPH_API_VERSION}`, {
        query,
        options: { $top: 1000, ...(skipToken ? { $skipToken: skipToken } : {}) },
      });
    } catch (err) {
      return (err as Error).message;
    }
    if (answer.status === 403)
      return `cannot search the data collection rules (Resource Graph): the signed-in identity needs ${RULE_READER_ROLES} on the rule's resource group`;
    if (answer.status !== 200) return `Resource Graph answered ${armError(answer)}`;
    const json = answer.json as { data?: GraphRule[]; $skipToken?: string } | null;
    rules.push(...(json?.data ?? []).filter((r) => r && r.properties));
    skipToken = json?.$skipToken;
    if (!skipToken) break;
  }
  return rules;
}

function armError(answer: AzureAnswer): string {
  const e = (answer.json as { error?: { code?: string; message?: string } } | null)?.error;
  return `HTTP ${answer.status}${e ? `: ${e.code ?? ''} ${firstLine(e.message ?? '')}` : ''}`;
}

/**
 * Finds our rule by immutable id (Resource Graph), reads it through ARM (dataCollectionRules GET, api-version
 * 2023-03-11: Resource Graph's copy can lag a rule just fixed) and checks it against what we send: a flow for our
 * stream, its output to CommonSecurityLog, the declared columns holding the probe's, a transform that keeps rows.
 * Also lists other rules that bring CEF into CommonSecurityLog.
 */
export async function inspectDcrs(client: ReadbackClient, immutableId: string, stream: string, workspaceId: string): Promise<DcrFinding> {
  const found = await findRules(client, immutableId);
  if (typeof found === 'string') return { causes: [], otherRules: [], unreadable: found };
  const rules = found;
  const ours = rules.find((r) => String(r.properties.immutableId ?? '').toLowerCase() === immutableId.toLowerCase());
  const toCsl = (r: { properties: RuleProperties }) =>
    (r.properties.dataFlows ?? []).some(
      (f) => f.outputStream === 'Microsoft-CommonSecurityLog' || (f.streams ?? []).includes('Microsoft-CommonSecurityLog'),
    );
  const toWorkspace = (r: { properties: RuleProperties }) =>
    (r.properties.destinations?.logAnalytics ?? []).some(
      (d) => !d.workspaceId || String(d.workspaceId).toLowerCase() === workspaceId.toLowerCase(),
    );
  const otherRules = rules.filter((r) => r !== ours && toCsl(r) && toWorkspace(r)).map((r) => r.name);
  if (!ours)
    return {
      causes: [],
      otherRules,
      unreadable: `no data collection rule with immutable id ${immutableId} is visible to the signed-in identity: reading it needs ${RULE_READER_ROLES} on the rule's resource group`,
    };
  let got: AzureAnswer;
  try {
    got = await client.arm('GET', `${ours.id}?api-version=${DCR_API_VERSION}`);
  } catch (err) {
    return { causes: [], otherRules, unreadable: (err as Error).message, ruleId: ours.id };
  }
  if (got.status !== 200) {
    const group = /\/resourceGroups\/([^/]+)/i.exec(ours.id)?.[1] ?? '?';
    return {
      causes: [],
      otherRules,
      ruleId: ours.id,
      unreadable:
        got.status === 403
          ? `cannot read rule ${ours.name} through ARM: the signed-in identity needs ${RULE_READER_ROLES} on resource group ${group}`
          : `reading rule ${ours.name} through ARM answered ${armError(got)}`,
    };
  }
  const causes: string[] = [];
  const p = ((got.json as { properties?: RuleProperties } | null)?.properties ?? {}) as RuleProperties;
  const flows = (p.dataFlows ?? []).filter((f) => (f.streams ?? []).includes(stream));
  if (flows.length === 0)
    causes.push(`rule ${ours.name} has no data flow for the stream ${stream} the forwarder sends: rows are accepted and discarded`);
  const csl = flows.filter((f) => (f.outputStream ?? '') === 'Microsoft-CommonSecurityLog');
  if (flows.length > 0 && csl.length === 0) {
    causes.push(
      `rule ${ours.name} sends ${stream} to ${flows.map((f) => f.outputStream ?? '(no output stream)').join(', ')}, not Microsoft-CommonSecurityLog`,
    );
  }
  const declared = new Set<string>((p.streamDeclarations?.[stream]?.columns ?? []).map((c) => c.name));
  const need = probeColumns();
  const undeclared = need.filter((c) => !declared.has(c));
  if (undeclared.includes('DeviceCustomString2') || undeclared.includes('TimeGenerated')) {
    causes.push(
      `rule ${ours.name} does not declare ${undeclared.filter((c) => c === 'DeviceCustomString2' || c === 'TimeGenerated').join(' and ')} in ${stream}: the service drops undeclared columns (${undeclared.length} of the ${need.length} columns a probe carries are undeclared: ${undeclared.slice(0, 6).join(', ')}${undeclared.length > 6 ? ', …' : ''})`,
    );
  } else if (undeclared.length) {
    causes.push(`rule ${ours.name} does not declare ${undeclared.join(', ')} in ${stream}: those columns are dropped from every row`);
  }
  for (const f of csl) {
    const kql = String(f.transformKql ?? 'source').trim();
    if (kql !== 'source' && transformDrops(kql)) causes.push(`the transform of rule ${ours.name} drops the probes: ${kql}`);
  }
  return { causes, otherRules, ruleId: ours.id };
}

/** A `where` in the transform that would filter out the probe row. */
function transformDrops(kql: string): boolean {
  const r = parseLine(buildProbeMessage(`probe-${'0'.repeat(8)}`, 'rfc3164', 'host'));
  const row: Record<string, unknown> = r.ok ? r.row : {};
  for (const m of kql.matchAll(/\|\s*where\s+([^|]+)/g)) {
    const cond = m[1].trim();
    if (/^false$/i.test(cond)) return true;
    const c = /^([A-Za-z0-9_]+)\s*(==|!=|!contains|contains|!has|has)\s*"([^"]*)"$/.exec(cond);
    if (!c) continue;
    const v = String(row[c[1]] ?? '').toLowerCase();
    const x = c[3].toLowerCase();
    const keep = {
      '==': v === x,
      '!=': v !== x,
      contains: v.includes(x),
      has: v.includes(x),
      '!contains': !v.includes(x),
      '!has': !v.includes(x),
    }[c[2]];
    if (!keep) return true;
  }
  return false;
}

/** The documented duplicate filter, as AMA 1.41 (June 2026) needs it: the CEF token now stays in SyslogMessage. */
export const SYSLOG_DEDUP_TRANSFORM = 'source | where ProcessName !contains "CEF" and SyslogMessage !contains "CEF:0"';

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}
