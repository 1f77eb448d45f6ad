import { CSL_COLUMNS } from '../sinks/columns.js';
import template from '../../templates/dcr/commonsecuritylog-dcr.json' with { type: 'json' };

export const DCR_STREAM = 'Custom-CommonSecurityLog';
export const DCR_API_VERSION = '2023-03-11';
const DESTINATION = 'sentinelWorkspace';

export interface DcrResource {
  type: string;
  apiVersion: string;
  name: string;
  location: string;
  kind?: string;
  properties: {
    description: string;
    dataCollectionEndpointId?: string;
    streamDeclarations: Record<string, { columns: Array<{ name: string; type: string }> }>;
    destinations: { logAnalytics: Array<{ workspaceResourceId: string; name: string }> };
    dataFlows: Array<{ streams: string[]; destinations: string[]; transformKql: string; outputStream: string }>;
  };
}

/** The template as stored in templates/dcr, built from the column table (placeholders in {{ }}). */
export function buildDcrTemplate(): DcrResource {
  return {
    type: 'Microsoft.Insights/dataCollectionRules',
    apiVersion: DCR_API_VERSION,
    name: '{{name}}',
    location: '{{location}}',
    // Direct: the rule gets its own logs-ingestion endpoint, no DCE needed.
    kind: 'Direct',
    properties: {
      description: 'sentinel-cef: CEF and Cisco ASA events into the CommonSecurityLog table (Logs Ingestion API)',
      streamDeclarations: { [DCR_STREAM]: { columns: CSL_COLUMNS.map((c) => ({ name: c.name, type: c.type })) } },
      destinations: { logAnalytics: [{ workspaceResourceId: '{{workspaceResourceId}}', name: DESTINATION }] },
      dataFlows: [
        { streams: [DCR_STREAM], destinations: [DESTINATION], transformKql: 'source', outputStream: 'Microsoft-CommonSecurityLog' },
      ],
    },
  };
}

export interface RenderDcrOptions {
  name: string;
  location: string;
  workspaceResourceId: string;
  /** With a DCE the rule is not kind Direct and points at the endpoint instead. */
  dceResourceId?: string;
}

/** Fills the stored template. */
export function renderDcr(opts: RenderDcrOptions): DcrResource {
  const rule = structuredClone(template) as DcrResource;
  rule.name = opts.name;
  rule.location = opts.location;
  rule.properties.destinations.logAnalytics[0]!.workspaceResourceId = opts.workspaceResourceId;
  if (opts.dceResourceId) {
    delete rule.kind;
    rule.properties = { ...rule.properties, dataCollectionEndpointId: opts.dceResourceId };
  }
  return rule;
}
