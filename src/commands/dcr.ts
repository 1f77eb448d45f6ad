import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { z } from 'zod';
import { optionError } from '../errors.js';
import { DCR_STREAM, renderDcr, type DcrResource } from '../dcr/render.js';

const WORKSPACE_RE = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.OperationalInsights\/workspaces\/([^/]+)$/i;
const DCE_RE = /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Insights\/dataCollectionEndpoints\/[^/]+$/i;

export const dcrOptionsSchema = z.object({
  location: z
    .string()
    .regex(/^[a-z0-9]+$/, 'must be an Azure region name such as eastus or westeurope')
    .default('eastus'),
  workspaceResourceId: z
    .string()
    .regex(
      WORKSPACE_RE,
      'must look like /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>',
    )
    .optional(),
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, -, _ or .')
    .default('sentinel-cef-dcr'),
  dceResourceId: z
    .string()
    .regex(DCE_RE, 'must look like /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Insights/dataCollectionEndpoints/<name>')
    .optional(),
  resourceGroup: z.string().min(1, 'must not be empty').optional(),
  assignee: z.string().min(1, 'must not be empty').optional(),
  output: z.string().min(1, 'must not be empty').optional(),
  json: z.boolean().default(false),
});
export type DcrOptions = z.input<typeof dcrOptionsSchema>;

export interface DcrPlan {
  rule: DcrResource;
  /** What `az monitor data-collection rule create --rule-file` takes: location, kind, properties. */
  ruleFile: { location: string; kind?: string; properties: DcrResource['properties'] };
  ruleFilePath: string;
  commands: { create: string; roleAssignment: string; show: string };
  notes: string[];
}

/** Quote for a POSIX shell: values come from flags, so never trust them in a command line. */
function sh(value: string): string {
  return /^[A-Za-z0-9_./:@=-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function runDcr(input: DcrOptions): DcrPlan {
  const parsed = dcrOptionsSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) throw optionError(parsed.error);
  const o = parsed.data;
  const ws = o.workspaceResourceId ? WORKSPACE_RE.exec(o.workspaceResourceId) : null;
  const subscription = ws?.[1] ?? '<subscription-id>';
  const resourceGroup = o.resourceGroup ?? ws?.[2] ?? '<resource-group>';
  const workspaceResourceId =
    o.workspaceResourceId ??
    '/subscriptions/<subscription-id>/resourceGroups/<resource-group>/providers/Microsoft.OperationalInsights/workspaces/<workspace-name>';
  const rule = renderDcr({ name: o.name, location: o.location, workspaceResourceId, dceResourceId: o.dceResourceId });
  const ruleFile = { location: rule.location, ...(rule.kind ? { kind: rule.kind } : {}), properties: rule.properties };
  const ruleFilePath = o.output ?? 'sentinel-cef-dcr.json';
  const dcrId = `/subscriptions/${subscription}/resourceGroups/${resourceGroup}/providers/Microsoft.Insights/dataCollectionRules/${o.name}`;
  const commands = {
    create: `az monitor data-collection rule create --resource-group ${sh(resourceGroup)} --name ${sh(o.name)} --location ${sh(o.location)} --rule-file ${sh(ruleFilePath)}`,
    roleAssignment: `az role assignment create --assignee ${sh(o.assignee ?? '<app-client-id-or-managed-identity-principal-id>')} --role 'Monitoring Metrics Publisher' --scope ${sh(dcrId)}`,
    show: `az monitor data-collection rule show --resource-group ${sh(resourceGroup)} --name ${sh(o.name)} --query '{dcrImmutableId: immutableId, endpoint: endpoints.logsIngestion}'`,
  };
  const notes = [
    `Stream ${DCR_STREAM} flows into the CommonSecurityLog table (outputStream Microsoft-CommonSecurityLog, transformKql source).`,
    o.dceResourceId
      ? 'The rule uses your data collection endpoint: set "endpoint" in the forwarder config to that DCE\'s logs ingestion URL.'
      : 'kind Direct: the rule has its own logs ingestion endpoint (the "endpoint" printed by the show command).',
    'A new role assignment can take up to 30 minutes to apply; until then ingestion answers 403 (the forwarder keeps the data queued).',
  ];
  if (!o.workspaceResourceId)
    notes.push('Pass --workspace-resource-id to fill in the workspace (az monitor log-analytics workspace show --query id).');
  return { rule, ruleFile, ruleFilePath, commands, notes };
}

export function dcrCommand(): Command {
  return new Command('dcr')
    .description('Print the Data Collection Rule that routes our events into CommonSecurityLog, and the az commands to create it')
    .option('--location <region>', 'Azure region of the workspace', 'eastus')
    .option('--workspace-resource-id <id>', 'resource id of the Log Analytics workspace behind Sentinel')
    .option('--name <name>', 'name of the data collection rule', 'sentinel-cef-dcr')
    .option('--dce-resource-id <id>', 'use this data collection endpoint instead of a kind Direct rule')
    .option('--resource-group <rg>', "resource group for the rule (default: the workspace's)")
    .option('--assignee <id>', 'app (client) id or managed identity principal id that sends the data')
    .option('-o, --output <file>', 'write the rule file for `az monitor data-collection rule create --rule-file` here')
    .option('--json', 'print only the ARM resource JSON', false)
    .addHelpText(
      'after',
      `
The rule is JSON on stdout; the az commands and notes go to stderr, so \`sentinel-cef dcr > rule.json\` works.
Examples:
  sentinel-cef dcr --location westeurope --workspace-resource-id /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.OperationalInsights/workspaces/WS --output rule.json
  sentinel-cef dcr --json > dcr-resource.json`,
    )
    .action((opts: DcrOptions) => {
      const plan = runDcr(opts);
      if (plan.ruleFilePath && opts.output) writeFileSync(opts.output, JSON.stringify(plan.ruleFile, null, 2) + '\n');
      if (opts.json) {
        process.stdout.write(JSON.stringify(plan.rule, null, 2) + '\n');
        return;
      }
      // stdout is only the rule file (so `dcr > rule.json` works); how to use it goes to stderr.
      if (!opts.output) process.stdout.write(JSON.stringify(plan.ruleFile, null, 2) + '\n');
      const out: string[] = [];
      if (opts.output) out.push(`# wrote the rule file ${plan.ruleFilePath}`);
      else out.push(`# the rule file is on stdout; save it first:  sentinel-cef dcr ${reflags(opts)} > ${plan.ruleFilePath}`);
      out.push('# 1. create the rule', plan.commands.create, '', '# 2. let the sender publish to it', plan.commands.roleAssignment, '');
      out.push('# 3. read the values for the forwarder config (sink type logs-ingestion)', plan.commands.show, '');
      out.push('# 4. point the forwarder at it (or --tenant ID --client-id ID --client-secret-file FILE for an app)', INSTALL_WITH_DCR, '');
      for (const n of plan.notes) out.push(`# ${n}`);
      process.stderr.write(out.join('\n') + '\n');
    });
}

/** The install line for the values step 3 prints. */
export const INSTALL_WITH_DCR = 'sentinel-cef install --dce <endpoint> --dcr <dcrImmutableId> --managed-identity';

function reflags(o: DcrOptions): string {
  const parts: string[] = [];
  if (o.location) parts.push(`--location ${sh(o.location)}`);
  if (o.workspaceResourceId) parts.push(`--workspace-resource-id ${sh(o.workspaceResourceId)}`);
  if (o.name) parts.push(`--name ${sh(o.name)}`);
  if (o.dceResourceId) parts.push(`--dce-resource-id ${sh(o.dceResourceId)}`);
  if (o.resourceGroup) parts.push(`--resource-group ${sh(o.resourceGroup)}`);
  return parts.join(' ');
}
