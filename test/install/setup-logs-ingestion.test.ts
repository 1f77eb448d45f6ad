import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { execa } from 'execa';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { ChainedTokenCredential, DefaultAzureCredential } from '@azure/identity';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createAzureClient, type AzureClient, type AzureClientOptions, type ForwarderIdentity } from '../../src/azure/azure-client.js';
import { CLIENT_SECRET_PATH, runInstall } from '../../src/install/run-install.js';
import { STATE_FILE } from '../../src/install/transaction.js';
import { buildDcrTemplate } from '../../src/dcr/render.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import { installDeps } from './install-helpers.js';
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

/**
 * Real HTTP against the mocks, tokens from the mock authority (client credentials); calls made as the forwarder sign
 * in with `forwarder`'s tenant, id and secret when it is a service principal (the authority checks the secret).
 */
function deps(log: string[], clock = { t: 0 }, forwarder?: ForwarderIdentity): SetupDeps {
  const tokens = new Map<string, string>();
  return {
    async request(call: AzureCall) {
      const app = call.asForwarder && forwarder?.kind === 'client-secret' ? forwarder : undefined;
      const key = `${app ? 'fwd' : 'op'} ${call.scope}`;
      let token = tokens.get(key);
      if (!token) {
        const form = new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: app?.clientId ?? edge.clientId,
          client_secret: app?.secret ?? edge.clientSecret,
          scope: call.scope,
        });
        const res = await fetch(`${edge.url}/${app?.tenantId ?? edge.tenantId}/oauth2/v2.0/token`, { method: 'POST', body: form });
        if (!res.ok) throw new Error(`mock authority refused the sign-in: HTTP ${res.status}`);
        token = ((await res.json()) as { access_token: string }).access_token;
        tokens.set(key, token);
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
    expect(r.customerId).toBe(edge.workspaceId);
    expect(r.location).toBe(ctl.workspaces[0].location);
    expect(r.endpoint).toBe(edge.url);
    expect(r.dcrImmutableId).toBe(edge.dcrImmutableId);
    expect(r.writes.map((w) => w.method)).toEqual(['PUT', 'PUT']);
    expect([...ctl.dcrs.values()][0].location).toBe(ctl.workspaces[0].location);
    const [ra] = [...ctl.roleAssignments.values()];
    expect(ra.properties.principalId).toBe(o.principalId);
    expect(ra.properties.roleDefinitionId).toMatch(/3913510d-42f4-4e42-8a64-420c390055eb$/);
    expect(log).toContain('ingestion accepts the identity');
    // The role probe goes out as the forwarder, who holds the role, not as the operator who signed in.
    expect(r.calls.filter((c) => c.method === 'POST' && c.url.includes('/dataCollectionRules/')).every((c) => c.asForwarder)).toBe(true);

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
    expect(r.customerId).toBe(w.customerId);
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

describe('sentinel-cef install --workspace (runInstall against the mocks)', () => {
  const temps: string[] = [];
  const temp = (p: string) => {
    const d = mkdtempSync(path.join(tmpdir(), p));
    temps.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });
  const fixture = () => {
    const dir = temp('scef-ws-');
    cpSync(path.resolve(import.meta.dirname, '../fixtures/install/debian12-rsyslog'), dir, { recursive: true });
    return dir;
  };
  const principal = randomUUID();
  /** The service principal's object id (the `oid` of its tokens); `principal` stands for the managed identity. */
  const spObjectId = randomUUID();
  const given: AzureClientOptions[] = [];
  const azure =
    () =>
    async (o: AzureClientOptions): Promise<AzureClient> => {
      given.push(o);
      return {
        request: deps([], { t: 0 }, o.forwarder).request,
        forwarderPrincipalId: async () => (o.forwarder.kind === 'client-secret' ? spObjectId : principal),
      };
    };
  const installOpts = (o: Record<string, unknown>) =>
    installOptionsSchema.parse({ yes: true, verify: false, workspace: edge.workspaceId, armEndpoint: ctl.url, ...o });

  it('--dry-run lists the Azure writes, writes no file and calls no Azure write', async () => {
    const root = fixture();
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    const r = await runInstall(installOpts({ dryRun: true, verify: true }), d.deps);
    expect(r.dryRun).toBe(true);
    expect(writesSeen()).toHaveLength(0);
    // Every Azure call install would make, the ingestion POSTs included: the role wait and the end-to-end probe.
    const ingest = /would call: POST \S+\/dataCollectionRules\/\S+\/streams\/Custom-CommonSecurityLog\?api-version=2023-01-01 /;
    expect(d.stream.filter(([, l]) => ingest.test(l)).map(([, l]) => l.replace(ingest, ''))).toEqual([
      expect.stringMatching(/^\[\] \(as the forwarder, repeated until the role applies/),
      expect.stringMatching(/^\[<one probe row>\] \(the end-to-end probe/),
    ]);
    expect(edge.requests.filter((q) => q.path.includes('/dataCollectionRules/'))).toHaveLength(0);
    expect(d.text()).toMatch(/would call: PUT .*\/dataCollectionRules\/sentinel-cef-dcr\?api-version=2023-03-11/);
    expect(d.text()).toMatch(/would call: PUT .*\/roleAssignments\/[0-9a-f-]{36}\?api-version=2022-04-01/);
    expect(existsSync(path.join(root, 'etc/sentinel-cef'))).toBe(false);
  });

  it('applies: the forwarder config points at the new rule with the managed identity; a second run changes nothing', async () => {
    const root = fixture();
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    await runInstall(installOpts({}), d.deps);
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink).toMatchObject({
      type: 'logs-ingestion',
      endpoint: edge.url,
      dcrImmutableId: edge.dcrImmutableId,
      auth: { kind: 'managed-identity' },
    });
    expect([...ctl.roleAssignments.values()][0].properties.principalId).toBe(principal);
    const puts = writesSeen().length;
    const d2 = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    const again = await runInstall(installOpts({}), d2.deps);
    expect(writesSeen().length).toBe(puts);
    expect(again.changed).toBe(false);
    expect(d2.text()).toContain('Azure: nothing to change, everything is already in place');
    expect(d2.text()).toContain('Nothing to change: everything is already in place.');
  });

  it('a service principal given by flags: the role goes to it, the probe signs in as it, its secret is stored 0600', async () => {
    const root = fixture();
    const secretFile = path.join(temp('scef-sp-'), 'secret');
    writeFileSync(secretFile, `${edge.clientSecret}\n`, { mode: 0o600 });
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    await runInstall(installOpts({ tenant: edge.tenantId, clientId: edge.clientId, clientSecretFile: secretFile }), d.deps);
    expect(given.at(-1)!.forwarder).toEqual({
      kind: 'client-secret',
      tenantId: edge.tenantId,
      clientId: edge.clientId,
      secret: edge.clientSecret,
    });
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink.auth).toEqual({
      kind: 'client-secret',
      tenantId: edge.tenantId,
      clientId: edge.clientId,
      clientSecretFile: CLIENT_SECRET_PATH,
    });
    const stored = path.join(root, CLIENT_SECRET_PATH);
    expect(readFileSync(stored, 'utf8').trim()).toBe(edge.clientSecret);
    expect(statSync(stored).mode & 0o777).toBe(0o600);
    expect([...ctl.roleAssignments.values()].map((r) => r.properties.principalId)).toEqual([spObjectId]);
    expect(d.text()).not.toContain(edge.clientSecret);
  });

  it('the sign-in offers device code only on a terminal, its prompt on stderr', async () => {
    const quiet = await createAzureClient({
      env: {},
      scope: 'https://monitor.azure.com//.default',
      forwarder: { kind: 'managed-identity' },
    });
    expect(quiet.signIn).toBeInstanceOf(DefaultAzureCredential);
    const tty = await createAzureClient({
      env: {},
      scope: 'https://monitor.azure.com//.default',
      forwarder: { kind: 'managed-identity' },
      interactive: true,
      prompt: () => {},
    });
    expect(tty.signIn).toBeInstanceOf(ChainedTokenCredential);
    // install hands the terminal (or its absence) and its stderr log to the sign-in.
    for (const interactive of [true, false]) {
      const d = installDeps(temp, fixture(), {
        azure: azure(),
        sleep: async () => {},
        prompter: { ...createScriptedPrompter([]), interactive },
      });
      await runInstall(installOpts({ dryRun: true }), d.deps);
      expect(given.at(-1)!.interactive).toBe(interactive);
      given.at(-1)!.prompt!('To sign in, use a web browser to open the page https://microsoft.com/devicelogin');
      expect(d.stream).toContainEqual(['log', expect.stringContaining('devicelogin')]);
    }
  });

  it('a missing permission: one line naming the role, no file written', async () => {
    const root = fixture();
    ctl.deny('Microsoft.Insights/dataCollectionRules/write');
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    await expect(runInstall(installOpts({}), d.deps)).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringMatching(
        /^Azure refused Microsoft\.Insights\/dataCollectionRules\/write: the signed-in identity needs "Monitoring Contributor"/,
      ),
    });
    expect(existsSync(path.join(root, 'etc/sentinel-cef'))).toBe(false);
  });

  it.each([
    ['a workspace id no workspace has', () => randomUUID(), /^no workspace with id [0-9a-f-]{36} is visible to the signed-in identity$/],
    [
      'a workspace resource id that does not exist',
      () => `/subscriptions/${randomUUID()}/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/nope`,
      /^workspace \/subscriptions\/\S+\/workspaces\/nope was not found \(ResourceNotFound\)$/,
    ],
  ])('%s: one line, nothing written in Azure or on disk', async (_, workspace, message) => {
    const root = fixture();
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    await expect(runInstall(installOpts({ workspace: workspace() }), d.deps)).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringMatching(message),
    });
    expect(writesSeen()).toHaveLength(0);
    expect(existsSync(path.join(root, 'etc/sentinel-cef'))).toBe(false);
  });

  it('a workspace the signed-in identity cannot read: one line naming the role, nothing written', async () => {
    const root = fixture();
    ctl.deny('Microsoft.OperationalInsights/workspaces/read');
    const w = ctl.workspaces[0];
    const id = `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${w.name}`;
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    await expect(runInstall(installOpts({ workspace: id }), d.deps)).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringMatching(
        /^Azure refused Microsoft\.OperationalInsights\/workspaces\/read: the signed-in identity needs "Log Analytics Reader"/,
      ),
    });
    expect(writesSeen()).toHaveLength(0);
    expect(existsSync(path.join(root, 'etc/sentinel-cef'))).toBe(false);
  });

  it('role propagation: ingestion answers 403, then accepts; install waits with progress lines and finishes', async () => {
    await ctl.close();
    ctl = await startMockControl({ edge, roleDelayMs: 1500 });
    const root = fixture();
    const d = installDeps(temp, root, { azure: azure(), sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 200))) });
    await runInstall(installOpts({}), d.deps);
    const lines = d.stream.map(([, l]) => l);
    const waits = lines.filter((l) => l.startsWith('waiting for the role to apply (ingestion answers 403'));
    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(lines.indexOf('ingestion accepts the identity')).toBeGreaterThan(lines.indexOf(waits[0]));
    expect(edge.requests.some((q) => q.path.includes('/dataCollectionRules/') && q.status === 403)).toBe(true);
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink).toMatchObject({ type: 'logs-ingestion', dcrImmutableId: edge.dcrImmutableId });
  });

  /** install --dce/--dcr of the edge endpoint and a rule, signed in to the control-plane mock (no verify, no waits). */
  async function installEdgeRule(dcr: string) {
    const root = fixture();
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    await runInstall(
      installOptionsSchema.parse({ yes: true, verify: false, dce: edge.url, dcr, managedIdentity: true, armEndpoint: ctl.url }),
      d.deps,
    );
    return { root, d };
  }

  it('--dce/--dcr of an existing rule: its workspace is read from the rule and recorded for readback', async () => {
    const w = ctl.workspaces[0];
    const wsId = `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${w.name}`;
    const t = buildDcrTemplate();
    t.properties.destinations.logAnalytics[0].workspaceResourceId = wsId;
    ctl.addDcr(
      `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.Insights/dataCollectionRules/existing`,
      {
        location: w.location,
        kind: 'Direct',
        properties: { ...t.properties, immutableId: edge.dcrImmutableId },
      },
    );
    const { root, d } = await installEdgeRule(edge.dcrImmutableId);
    const state = JSON.parse(readFileSync(path.join(root, STATE_FILE), 'utf8'));
    expect(state.options.workspaceId).toBe(edge.workspaceId);
    expect(d.text()).toContain(`sends to workspace ${edge.workspaceId}: troubleshoot reads the probes back from it`);
    expect(writesSeen()).toHaveLength(0);
  });

  it('--dce/--dcr of a rule nobody can read: install goes on, one line says readback will need --workspace', async () => {
    const { root, d } = await installEdgeRule(`dcr-${'a'.repeat(32)}`);
    expect(JSON.parse(readFileSync(path.join(root, STATE_FILE), 'utf8')).options.workspaceId).toBeUndefined();
    expect(d.text()).toMatch(/is not visible to the signed-in identity: troubleshoot will need --workspace/);
  });

  it('--workspace with --dce <resource id>: the rule sends through that endpoint, which the forwarder then uses', async () => {
    const w = ctl.workspaces[0];
    const dceId = `/subscriptions/${w.subscriptionId}/resourceGroups/${w.resourceGroup}/providers/Microsoft.Insights/dataCollectionEndpoints/my-dce`;
    ctl.addDce(dceId, w.location);
    const root = fixture();
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {} });
    await runInstall(installOpts({ dce: dceId }), d.deps);
    const [rule] = [...ctl.dcrs.values()];
    expect(rule.kind).toBeUndefined();
    expect(rule.properties.dataCollectionEndpointId).toBe(dceId);
    const cfg = JSON.parse(readFileSync(path.join(root, 'etc/sentinel-cef/forwarder.json'), 'utf8'));
    expect(cfg.sink).toMatchObject({ type: 'logs-ingestion', endpoint: edge.url, dcrImmutableId: rule.properties.immutableId });
    // A second run changes nothing; a DCE in another region is one line, before any write.
    const puts = writesSeen().length;
    await runInstall(installOpts({ dce: dceId }), installDeps(temp, root, { azure: azure(), sleep: async () => {} }).deps);
    expect(writesSeen().length).toBe(puts);
    const far = dceId.replace('my-dce', 'far-dce');
    ctl.addDce(far, 'eastus');
    await expect(runInstall(installOpts({ dce: far }), installDeps(temp, fixture(), { azure: azure() }).deps)).rejects.toThrow(
      /^data collection endpoint \S+far-dce is in eastus, the workspace in westeurope$/,
    );
    expect(writesSeen().length).toBe(puts);
    // With --workspace, --dce is an endpoint's resource id, not a URL.
    expect(() => installOpts({ dce: edge.url })).toThrow(/with --workspace, --dce is the resource id of a data collection endpoint/);
  });

  it('on a terminal, "set up Logs Ingestion for me" asks for the workspace and does the same', async () => {
    const root = fixture();
    const p = createScriptedPrompter(['workspace-setup', edge.workspaceId]);
    const d = installDeps(temp, root, { azure: azure(), sleep: async () => {}, prompter: p });
    await runInstall(installOptionsSchema.parse({ yes: true, verify: false, armEndpoint: ctl.url, dryRun: true }), d.deps);
    expect(p.asked).toEqual(['Where should the forwarder send events?', 'Workspace id (GUID) or workspace resource id']);
    expect(d.text()).toContain('would call: PUT');
  });
});

describe('the built CLI with the real @azure/identity chain (DefaultAzureCredential against the mock authority)', () => {
  it('install --workspace --dry-run: signs in, reads, lists the writes with bodies, changes nothing, never prints the secret', async () => {
    const httpsEdge = await startMockAzure({ quiet: true });
    const httpsCtl = await startMockControl({ edge: httpsEdge });
    const root = mkdtempSync(path.join(tmpdir(), 'scef-ws-cli-'));
    try {
      cpSync(path.resolve(import.meta.dirname, '../fixtures/install/debian12-rsyslog'), root, { recursive: true });
      const bin = path.resolve(import.meta.dirname, '../../bin/sentinel-cef');
      const r = await execa(
        bin,
        [
          'install',
          '--workspace',
          httpsEdge.workspaceId,
          '--arm-endpoint',
          httpsCtl.url,
          '--principal-id',
          randomUUID(),
          '--root',
          root,
          '--dry-run',
        ],
        {
          env: {
            CI: 'true',
            NO_COLOR: '1',
            AZURE_TENANT_ID: httpsEdge.tenantId,
            AZURE_CLIENT_ID: httpsEdge.clientId,
            AZURE_CLIENT_SECRET: httpsEdge.clientSecret,
            AZURE_AUTHORITY_HOST: httpsEdge.url,
            NODE_EXTRA_CA_CERTS: httpsEdge.caPath!,
          },
          reject: false,
          timeout: 120_000,
        },
      );
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(
        /called: POST https:\/\/127\.0\.0\.1:\d+\/providers\/Microsoft\.ResourceGraph\/resources\?api-version=2024-04-01 \{"query":/,
      );
      expect(r.stderr).toMatch(
        /would call: PUT \S+\/dataCollectionRules\/sentinel-cef-dcr\?api-version=2023-03-11 \{"location":"westeurope","kind":"Direct"/,
      );
      expect(r.stderr).toContain('nothing was changed in Azure');
      expect(httpsCtl.requests.filter((q) => q.method === 'PUT')).toHaveLength(0);
      expect(r.stdout + r.stderr).not.toContain(httpsEdge.clientSecret);
      expect(existsSync(path.join(root, 'etc/sentinel-cef'))).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
      await httpsCtl.close();
      await httpsEdge.close();
    }
  });
});
