import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { setupLogsIngestion, type AzureCall, type SetupDeps, type SetupOptions } from '../../src/azure/setup-logs-ingestion.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';
import { startMockControl, type MockControl } from '../helpers/mock-azure-control.js';

let edge: MockAzure;
let ctl: MockControl;
beforeEach(async () => {
  edge = await startMockAzure({ https: false, quiet: true });
  ctl = await startMockControl({ edge });
});
afterEach(async () => {
  await ctl.close();
  await edge.close();
});

/** Real HTTP against the mocks, tokens from the mock authority (client credentials). */
function deps(log: string[], clock = { t: 0 }): SetupDeps {
  const tokens = new Map<string, string>();
  return {
    async request(call: AzureCall) {
      let token = tokens.get(call.scope);
      if (!token) {
        const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: edge.clientId, client_secret: edge.clientSecret, scope: call.scope });
        token = ((await (await fetch(`${edge.url}/${edge.tenantId}/oauth2/v2.0/token`, { method: 'POST', body: form })).json()) as { access_token: string }).access_token;
        tokens.set(call.scope, token);
      }
      const r = await fetch(call.url, {
        method: call.method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
      });
      const text = await r.text();
      return { status: r.status, json: text ? JSON.parse(text) : null };
    },
    log: (l) => log.push(l),
    sleep: async (ms) => void (clock.t += ms),
    now: () => clock.t,
  };
}

const opts = (o: Partial<SetupOptions> = {}): SetupOptions => ({
  workspace: edge.workspaceId,
  principalId: randomUUID(),
  armUrl: ctl.url,
  armScope: 'https://management.azure.com/.default',
  ingestionScope: 'https://monitor.azure.com//.default',
  dryRun: false,
  pollMs: 10_000,
  roleWaitMs: 60_000,
  ...o,
});

const writesSeen = () => ctl.requests.filter((r) => r.method === 'PUT');

describe('install --workspace: the Azure side (against the control-plane mock)', () => {
  it('finds the workspace by its id, creates a kind Direct DCR in its region, grants the role; a second run changes nothing', async () => {
    const o = opts();
    const log: string[] = [];
    const r = await setupLogsIngestion(o, deps(log));
    expect(r.location).toBe(ctl.workspaces[0].location);
    expect(r.endpoint).toBe(edge.url);
    expect(r.dcrImmutableId).toBe(edge.dcrImmutableId);
    expect(r.writes.map((w) => w.method)).toEqual(['PUT', 'PUT']);
    expect([...ctl.dcrs.values()][0].location).toBe(ctl.workspaces[0].location);
    const [ra] = [...ctl.roleAssignments.values()];
    expect(ra.properties.principalId).toBe(o.principalId);
    expect(ra.properties.roleDefinitionId).toMatch(/3913510d-42f4-4e42-8a64-420c390055eb$/);
    expect(log).toContain('ingestion accepts the identity');

    const puts = writesSeen().length;
    const log2: string[] = [];
    const again = await setupLogsIngestion(o, deps(log2));
    expect(again.writes).toEqual([]);
    expect(writesSeen().length).toBe(puts);
    expect(log2).toContain('Azure: nothing to change, everything is already in place');
    expect(again.dcrImmutableId).toBe(r.dcrImmutableId);
  });

  it('a workspace resource id works as well', async () => {
    const w = ctl.workspaces[0];
    const id = `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${w.name}`;
    const r = await setupLogsIngestion(opts({ workspace: id }), deps([]));
    expect(r.workspaceResourceId).toBe(id);
  });

  it('--dry-run lists every write with its URL and body and changes nothing', async () => {
    const log: string[] = [];
    const r = await setupLogsIngestion(opts({ dryRun: true }), deps(log));
    expect(writesSeen()).toHaveLength(0);
    expect(ctl.dcrs.size).toBe(0);
    expect(r.writes.map((w) => `${w.method} ${new URL(w.url).pathname}`)).toEqual([
      expect.stringMatching(/^PUT \/subscriptions\/.+\/providers\/Microsoft\.Insights\/dataCollectionRules\/sentinel-cef-dcr$/),
      expect.stringMatching(/^PUT .+\/providers\/Microsoft\.Authorization\/roleAssignments\/[0-9a-f-]{36}$/),
    ]);
    expect((r.writes[0].body as { kind: string }).kind).toBe('Direct');
    expect(log.filter((l) => l.startsWith('would call: PUT'))).toHaveLength(2);
  });

  it('a missing permission is one line naming the role', async () => {
    ctl.deny('Microsoft.Authorization/roleAssignments/write');
    await expect(setupLogsIngestion(opts(), deps([]))).rejects.toThrow(
      /^Azure refused Microsoft\.Authorization\/roleAssignments\/write: the signed-in identity needs "User Access Administrator"/,
    );
  });

  it('waits for a new role with progress lines, bounded', async () => {
    await ctl.close();
    ctl = await startMockControl({ edge, roleDelayMs: 60_000 });
    const log: string[] = [];
    await expect(setupLogsIngestion(opts({ roleWaitMs: 30_000 }), deps(log))).rejects.toThrow(/has not applied yet/);
    expect(log.filter((l) => l.startsWith('waiting for the role to apply')).length).toBeGreaterThanOrEqual(2);
  });
});
