import { Command, Option } from 'commander';
import { optionError } from '../errors.js';
import { CLOUDS } from '../config/schema.js';
import { createExec } from '../system/exec.js';
import { createFsRoot } from '../system/fs-root.js';
import { createPrompter, inCi } from '../system/prompts.js';
import { createStep } from '../system/progress.js';
import { INSTALL_ARGUMENTS, installOptionsSchema } from '../install/options.js';
import { INSTALL_STEPS, runInstall, type InstallStepName } from '../install/run-install.js';

export function installCommand(): Command {
  return new Command('install')
    .description('Configure rsyslog or syslog-ng and the forwarder so CEF on port 514 reaches Microsoft Sentinel')
    .argument(
      '[workspaceId]',
      'legacy form: workspace id for the Data Collector API (retired 2026-09-14; rows go to CommonSecurityLog_CL) — use --workspace',
    )
    .argument('[primaryKey]', 'workspace primary key (prefer --key-file or SENTINEL_CEF_KEY: argv is visible in /proc)')
    .option(
      '--workspace <id>',
      'set up Logs Ingestion for this workspace (id or resource id): create the DCR, grant the role, configure the forwarder',
    )
    .option('--principal-id <id>', 'with --workspace: object id of the identity the forwarder sends as (default: read from its token)')
    .option('--arm-endpoint <url>', 'with --workspace: Azure Resource Manager URL (private clouds, tests)')
    .option('--key-file <path>', 'file holding the workspace key')
    .option('--dce <url>', 'Logs Ingestion endpoint (DCE)')
    .option('--dcr <id>', 'DCR immutable id')
    .option('--stream <name>', 'DCR stream (default Custom-CommonSecurityLog)')
    .option('--tenant <id>', 'Entra tenant id (client-secret auth)')
    .option('--client-id <id>', 'application (client) id')
    .option('--client-secret-file <path>', 'file holding the client secret')
    .option('--managed-identity', "authenticate with the machine's managed identity")
    .option('--authority-host <url>', 'Entra ID authority the forwarder gets its token from (sovereign or private clouds, tests)')
    .option('--sink <file:PATH>', 'write rows to a local file instead of Azure (trials, CI)')
    .option('--cloud <name>', `Azure cloud (${CLOUDS.join(', ')})`)
    .option('-F, --us-gov', "Azure US Government (the original installer's -FF)")
    .option('--port <n>', 'port the syslog daemon listens on', '514')
    .option('-p, --forwarder-port <n>', 'local forwarder port', '25226')
    .addOption(new Option('--protocol <p>', 'protocols to listen on').choices(['tcp', 'udp', 'both']).default('both'))
    .addOption(new Option('--daemon <name>', 'syslog daemon to configure').choices(['rsyslog', 'syslog-ng']))
    .option('--forwarder-only', 'no syslog daemon: the forwarder listens on --port itself, on every address (balancers, scale sets)')
    .option('--readiness <host:port>', "the balancer's readiness endpoint (default with --forwarder-only 0.0.0.0:8080, else none)")
    .option(
      '--max-connection-age <sec>',
      'with --forwarder-only: close connections older than this between frames, so the balancer spreads senders again (default 600; 0 = never)',
    )
    .addOption(
      new Option('--proxy <version>', 'with --forwarder-only: TCP connections start with a PROXY header from the balancer').choices([
        'v1',
        'v2',
      ]),
    )
    .option(
      '--durable',
      'keep what the syslog daemon accepted on disk, synced, until the forwarder has it: a power cut loses none of it (fewer events/s; docs/RELIABILITY.md)',
    )
    .option(
      '--no-install-relp',
      'when install puts rsyslog on the machine: do not add package rsyslog-relp too (rsyslog then sends over plain TCP)',
    )
    .option('--node <path>', 'the node binary the service runs (default: `node` on PATH; needs a supported version)')
    .option('--endpoint <url>', 'override the workspace endpoint (private link, tests)')
    .option('--no-verify', 'skip the end-to-end probe')
    .option('--dry-run', 'show the plan and diffs; change nothing')
    .addOption(
      new Option('--diff <which>', 'diffs in the plan: of files a person edits, or all (bundle, supervisor)')
        .choices(['edited', 'all'])
        .default('edited'),
    )
    .option('-y, --yes', 'accept the defaults and apply without asking')
    .addOption(new Option('--root <dir>', 'filesystem root (tests)').default('/').hideHelp())
    .addHelpText(
      'after',
      `
Examples:
  sentinel-cef install --workspace 11111111-2222-3333-4444-555555555555 --dry-run   # the Azure calls and the plan, nothing changed
  sentinel-cef install --workspace 11111111-2222-3333-4444-555555555555 --yes   # DCR, role for this machine's managed identity
  sentinel-cef install --workspace WORKSPACE_ID --tenant contoso.onmicrosoft.com --client-id APP_ID --client-secret-file /root/secret
  sentinel-cef install --dry-run --sink file:/var/tmp/cef.ndjson          # see the plan and diffs, change nothing
  sentinel-cef install --dce https://my-dce.eastus-1.ingest.monitor.azure.com --dcr dcr-0123456789abcdef0123456789abcdef \\
      --tenant contoso.onmicrosoft.com --client-id 00000000-0000-0000-0000-000000000000 --client-secret-file /root/secret
  SENTINEL_CEF_KEY=... sentinel-cef install 11111111-2222-3333-4444-555555555555 --yes   # legacy workspace key
  sentinel-cef install --forwarder-only --readiness 0.0.0.0:8080 --proxy v2 --managed-identity --dce URL --dcr ID --yes`,
    )
    .action(async (workspaceId: string | undefined, primaryKey: string | undefined, flags: Record<string, unknown>) => {
      const parsed = installOptionsSchema.safeParse({ ...flags, workspaceId, primaryKey });
      if (!parsed.success) throw optionError(parsed.error, INSTALL_ARGUMENTS);
      await runInstall(parsed.data, { ...deps(parsed.data.root), onStep: stepHeadings() });
    });
}

/** On a terminal, a heading per install step ("[2/6] render"); pipes and CI keep the plain log. */
function stepHeadings(): ((name: InstallStepName) => void) | undefined {
  if (!process.stderr.isTTY || inCi()) return undefined;
  return (name) => process.stderr.write(`[${INSTALL_STEPS.findIndex((s) => s.name === name) + 1}/${INSTALL_STEPS.length}] ${name}\n`);
}

export function deps(root: string) {
  return {
    fs: createFsRoot(root),
    exec: createExec(),
    prompter: createPrompter(),
    log: (line: string) => process.stderr.write(`${line}\n`),
    step: createStep(),
    out: (text: string) => process.stdout.write(text),
  };
}
