import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { runDcr } from '../../src/commands/dcr.js';
import { buildDcrTemplate } from '../../src/dcr/render.js';
import { CSL_COLUMNS, CSL_COLUMN_TYPES } from '../../src/sinks/columns.js';

const root = new URL('../..', import.meta.url).pathname;
const WS = '/subscriptions/0000-1111/resourceGroups/sec-rg/providers/Microsoft.OperationalInsights/workspaces/sentinel-ws';

describe('DCR template', () => {
  it('is exactly what the column table generates (run scripts/gen-dcr-template.ts after changing columns)', () => {
    const stored = JSON.parse(readFileSync(join(root, 'templates/dcr/commonsecuritylog-dcr.json'), 'utf8'));
    expect(stored).toEqual(buildDcrTemplate());
  });

  it('declares every column with a DCR type, TimeGenerated first, and flows into Microsoft-CommonSecurityLog', () => {
    const t = buildDcrTemplate();
    const cols = t.properties.streamDeclarations['Custom-CommonSecurityLog']!.columns;
    expect(cols[0]).toEqual({ name: 'TimeGenerated', type: 'datetime' });
    expect(cols).toHaveLength(Object.keys(CSL_COLUMN_TYPES).length);
    expect(new Set(cols.map((c) => c.name)).size).toBe(cols.length);
    for (const c of cols) expect(['string', 'int', 'long', 'real', 'datetime']).toContain(c.type);
    expect(cols.find((c) => c.name === 'ReceivedBytes')!.type).toBe('long');
    expect(cols.find((c) => c.name === 'DestinationPort')!.type).toBe('int');
    expect(cols.find((c) => c.name === 'DeviceCustomFloatingPoint1')!.type).toBe('real');
    expect(cols.find((c) => c.name === 'ReceiptTime')!.type).toBe('string');
    expect(t.properties.dataFlows).toEqual([
      {
        streams: ['Custom-CommonSecurityLog'],
        destinations: ['sentinelWorkspace'],
        transformKql: 'source',
        outputStream: 'Microsoft-CommonSecurityLog',
      },
    ]);
    expect(t.kind).toBe('Direct');
    expect(CSL_COLUMNS).toHaveLength(cols.length);
  });
});

describe('runDcr', () => {
  it('fills in the workspace, derives the resource group and DCR id for the role assignment', () => {
    const plan = runDcr({ location: 'westeurope', workspaceResourceId: WS, name: 'cef-dcr', assignee: '1234-app' });
    expect(plan.rule.location).toBe('westeurope');
    expect(plan.rule.properties.destinations.logAnalytics[0]!.workspaceResourceId).toBe(WS);
    expect(plan.commands.create).toBe(
      'az monitor data-collection rule create --resource-group sec-rg --name cef-dcr --location westeurope --rule-file sentinel-cef-dcr.json',
    );
    expect(plan.commands.roleAssignment).toBe(
      "az role assignment create --assignee 1234-app --role 'Monitoring Metrics Publisher' --scope /subscriptions/0000-1111/resourceGroups/sec-rg/providers/Microsoft.Insights/dataCollectionRules/cef-dcr",
    );
    expect(plan.commands.show).toContain('endpoints.logsIngestion');
    expect(plan.ruleFile).toEqual({ location: 'westeurope', kind: 'Direct', properties: plan.rule.properties });
  });

  it('with a DCE: not kind Direct, points at the endpoint', () => {
    const dce = '/subscriptions/0000-1111/resourceGroups/sec-rg/providers/Microsoft.Insights/dataCollectionEndpoints/my-dce';
    const plan = runDcr({ workspaceResourceId: WS, dceResourceId: dce });
    expect(plan.rule.kind).toBeUndefined();
    expect(plan.rule.properties.dataCollectionEndpointId).toBe(dce);
    expect(plan.ruleFile).not.toHaveProperty('kind');
  });

  it.each([
    [{ location: 'East US' }, "--location must be an Azure region name such as eastus or westeurope, got 'East US'"],
    [{ workspaceResourceId: '/subscriptions/x/whatever' }, /--workspace-resource-id/],
    [{ name: 'bad name!' }, /--name/],
    [{ dceResourceId: 'dce' }, /--dce-resource-id/],
  ])('rejects %j with a usage error', (opts, msg) => {
    expect(() => runDcr(opts)).toThrow(msg);
    try {
      runDcr(opts);
    } catch (err) {
      expect((err as { exitCode: number }).exitCode).toBe(2);
    }
  });

  it('quotes shell-unsafe values in the printed commands', () => {
    const plan = runDcr({ workspaceResourceId: WS, resourceGroup: "rg with 'quote'" });
    expect(plan.commands.create).toContain(`--resource-group 'rg with '\\''quote'\\'''`);
  });
});

describe('sentinel-cef dcr (built CLI)', () => {
  it('--json prints the ARM resource; --output writes the rule file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dcr-cli-'));
    const out = join(dir, 'rule.json');
    const r = await execa(join(root, 'bin/sentinel-cef'), ['dcr', '--workspace-resource-id', WS, '--json', '--output', out], {
      env: { CI: 'true', NO_COLOR: '1' },
      reject: false,
    });
    expect(r.exitCode).toBe(0);
    const rule = JSON.parse(r.stdout);
    expect(rule.type).toBe('Microsoft.Insights/dataCollectionRules');
    expect(JSON.parse(readFileSync(out, 'utf8')).properties).toEqual(rule.properties);
  });
});
