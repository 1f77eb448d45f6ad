import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { renderDcr } from '../../src/dcr/render.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';
import {
  API_VERSIONS,
  ARM_AUDIENCE,
  LOGS_QUERY_AUDIENCE,
  MONITORING_METRICS_PUBLISHER,
  startMockControl,
  type MockControl,
} from '../helpers/mock-azure-control.js';

let edge: MockAzure;
let ctl: MockControl;
const tokens: Record<string, string> = {};

async function token(scope: string): Promise<string> {
  if (tokens[scope]) return tokens[scope];
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: edge.clientId, client_secret: edge.clientSecret, scope });
  const r = await fetch(`${edge.url}/${edge.tenantId}/oauth2/v2.0/token`, { method: 'POST', body });
  expect(r.status).toBe(200);
  tokens[scope] = ((await r.json()) as { access_token: string }).access_token;
  return tokens[scope];
}

/** ARM's ErrorResponse. */
type ArmError = { error: { code: string; message: string } };
/** What ARM adds to a data collection rule. */
type RuleAnswer = { properties: { immutableId: string; endpoints: { logsIngestion: string } } };
/** A Logs Query result. */
type QueryAnswer = { tables: Array<{ columns: Array<{ name: string; type: string }>; rows: unknown[][] }> };

/** The answer's body is taken to be T: the assertions on it check that. */
async function call<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  scope = `${ARM_AUDIENCE}/.default`,
): Promise<{ status: number; json: T }> {
  const r = await fetch(`${ctl.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${await token(scope)}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as T };
}

beforeAll(async () => {
  edge = await startMockAzure({ https: false, quiet: true });
  ctl = await startMockControl({ edge });
});
afterAll(async () => {
  await ctl.close();
  await edge.close();
});

const ws = () => ctl.workspaces[0];
const wsPath = () =>
  `/subscriptions/${ws().subscriptionId}/resourceGroups/${ws().resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${ws().name}`;
const dcrPath = (name = 'sentinel-cef-dcr') =>
  `/subscriptions/${ws().subscriptionId}/resourceGroups/${ws().resourceGroup}/providers/Microsoft.Insights/dataCollectionRules/${name}`;

describe('mock ARM, Resource Graph and Logs Query', () => {
  it('Resource Graph finds the workspace by its customer id', async () => {
    const q = `Resources | where type =~ 'microsoft.operationalinsights/workspaces' | where properties.customerId =~ '${ws().customerId}' | project id, location, resourceGroup, subscriptionId`;
    const r = await call('POST', `/providers/Microsoft.ResourceGraph/resources?api-version=${API_VERSIONS.resourceGraph[0]}`, { query: q });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ count: 1, resultTruncated: 'false', data: [{ id: wsPath(), location: ws().location }] });
    const none = await call<{ count: number }>(
      'POST',
      `/providers/Microsoft.ResourceGraph/resources?api-version=${API_VERSIONS.resourceGraph[0]}`,
      { query: q.replace(ws().customerId, randomUUID()) },
    );
    expect(none.json.count).toBe(0);
  });

  it('workspace GET answers the ARM shape; a wrong api-version or token audience is refused as ARM does', async () => {
    const r = await call('GET', `${wsPath()}?api-version=2025-02-01`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      id: wsPath(),
      type: 'Microsoft.OperationalInsights/workspaces',
      properties: { customerId: ws().customerId },
    });
    expect((await call<ArmError>('GET', `${wsPath()}?api-version=2015-01-01`)).json.error.code).toBe('InvalidApiVersionParameter');
    expect((await call<ArmError>('GET', wsPath())).json.error.code).toBe('MissingApiVersionParameter');
    const wrongAud = await call('GET', `${wsPath()}?api-version=2025-02-01`, undefined, 'https://monitor.azure.com//.default');
    expect(wrongAud.status).toBe(401);
  });

  it('our DCR template is accepted; PUT is idempotent and keeps the immutable id; kind Direct gets its own ingestion endpoint', async () => {
    const rule = renderDcr({ name: 'sentinel-cef-dcr', location: ws().location, workspaceResourceId: wsPath() });
    const first = await call<RuleAnswer>('PUT', `${dcrPath()}?api-version=2023-03-11`, rule);
    expect(first.status, JSON.stringify(first.json)).toBe(201);
    expect(first.json.properties.immutableId).toMatch(/^dcr-[0-9a-f]{32}$/);
    expect(first.json.properties.endpoints.logsIngestion).toBe(edge.url);
    const again = await call<RuleAnswer>('PUT', `${dcrPath()}?api-version=2023-03-11`, rule);
    expect(again.status).toBe(200);
    expect(again.json.properties.immutableId).toBe(first.json.properties.immutableId);
    const got = await call<RuleAnswer>('GET', `${dcrPath()}?api-version=2023-03-11`);
    expect(got.json.properties.immutableId).toBe(first.json.properties.immutableId);
    const broken = await call('PUT', `${dcrPath('bad')}?api-version=2023-03-11`, {
      ...rule,
      properties: { ...rule.properties, dataFlows: [] },
    });
    expect(broken.status).toBe(400);
  });

  it('role assignment: created once, a duplicate under a new name is 409, a missing permission is 403 AuthorizationFailed', async () => {
    const scope = dcrPath();
    const body = {
      properties: {
        roleDefinitionId: `/subscriptions/${ws().subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${MONITORING_METRICS_PUBLISHER}`,
        principalId: randomUUID(),
        principalType: 'ServicePrincipal',
      },
    };
    const name = randomUUID();
    const created = await call('PUT', `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}?api-version=2022-04-01`, body);
    expect(created.status).toBe(201);
    expect(
      (await call('PUT', `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}?api-version=2022-04-01`, body)).status,
    ).toBe(200);
    const dup = await call(
      'PUT',
      `${scope}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`,
      body,
    );
    expect(dup).toMatchObject({ status: 409, json: { error: { code: 'RoleAssignmentExists' } } });
    ctl.deny('Microsoft.Authorization/roleAssignments/write');
    const denied = await call<ArmError>(
      'PUT',
      `${scope}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`,
      { properties: { ...body.properties, principalId: randomUUID() } },
    );
    ctl.allow('Microsoft.Authorization/roleAssignments/write');
    expect(denied.status).toBe(403);
    expect(denied.json.error.code).toBe('AuthorizationFailed');
    expect(denied.json.error.message).toContain("'Microsoft.Authorization/roleAssignments/write'");
  });

  it('Logs Query finds a probe row the edge accepted, only after the ingestion delay', async () => {
    const probeId = randomUUID();
    const dcr = ctl.dcrs.get(dcrPath().toLowerCase())!;
    const up = await fetch(
      `${dcr.properties.endpoints!.logsIngestion}/dataCollectionRules/${dcr.properties.immutableId}/streams/Custom-CommonSecurityLog?api-version=2023-01-01`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${await token('https://monitor.azure.com//.default')}`, 'content-type': 'application/json' },
        body: JSON.stringify([
          {
            TimeGenerated: new Date().toISOString(),
            DeviceVendor: 'sentinel-cef',
            DeviceCustomString2Label: 'ProbeId',
            DeviceCustomString2: probeId,
          },
        ]),
      },
    );
    expect(up.status).toBe(204);
    const query = {
      query: `CommonSecurityLog | where DeviceCustomString2 == "${probeId}" | extend Ingested = ingestion_time()`,
      timespan: 'PT1H',
    };
    ctl.setIngestionDelay(60_000);
    const early = await call<QueryAnswer>('POST', `/v1/workspaces/${ws().customerId}/query`, query, `${LOGS_QUERY_AUDIENCE}/.default`);
    expect(early.status).toBe(200);
    expect(early.json.tables[0].rows).toHaveLength(0);
    ctl.setIngestionDelay(0);
    const late = await call<QueryAnswer>('POST', `/v1/workspaces/${ws().customerId}/query`, query, `${LOGS_QUERY_AUDIENCE}/.default`);
    const t = late.json.tables[0];
    expect(t.rows).toHaveLength(1);
    const col = (n: string) => t.columns.findIndex((c) => c.name === n);
    expect(t.rows[0][col('DeviceCustomString2')]).toBe(probeId);
    expect(t.columns[col('Ingested')].type).toBe('datetime');
    // The ARM token is not a Logs Query token.
    expect((await call('POST', `/v1/workspaces/${ws().customerId}/query`, query)).status).toBe(401);
    expect((await call('POST', `/v1/workspaces/${randomUUID()}/query`, query, `${LOGS_QUERY_AUDIENCE}/.default`)).status).toBe(404);
  });
});
