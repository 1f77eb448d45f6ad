import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, optionError, showValue } from '../errors.js';
import { DEFAULT_CONFIG_PATH } from '../config/schema.js';
import { createDefaultDeps } from '../troubleshoot/deps.js';
import { runTroubleshoot } from '../troubleshoot/run.js';
import { renderHuman, renderJson, troubleshootExitCode, useColour } from '../troubleshoot/render.js';
import { writeSupportBundle } from '../troubleshoot/collect.js';
import { isInteractive } from '../system/prompts.js';
import { createSpinner } from '../system/progress.js';
import { troubleshootOptionsSchema, type TroubleshootOptionsInput } from '../troubleshoot/types.js';

interface Flags {
  json?: boolean;
  probes: string;
  probeSize?: string;
  timeout: string;
  fix?: boolean;
  yes?: boolean;
  collect?: string;
  config?: string;
  admin?: string;
  port?: string;
  protocol?: string;
  capture?: boolean;
  verbose?: boolean;
  root?: string;
  workspace?: string;
  readbackTimeout?: string;
  logsQueryEndpoint?: string;
  armEndpoint?: string;
}

/** Turns flags into validated options; every mistake is one UsageError line. */
export function parseTroubleshootFlags(workspaceId: string | undefined, f: Flags, configGiven = false): TroubleshootOptionsInput {
  if (f.yes && !f.fix)
    throw new UsageError('--yes only applies with --fix', { suggestion: 'add --fix to apply the safe fixes, or drop --yes' });
  // The default path missing is a finding (not installed); a path typed by hand missing is a typo.
  if (configGiven && f.config !== undefined && !existsSync(join(f.root ?? '/', f.config))) {
    throw new UsageError(`--config ${showValue(f.config)}: no such file`, { suggestion: `omit --config to use ${DEFAULT_CONFIG_PATH}` });
  }
  if (f.collect !== undefined && f.collect.trim() === '')
    throw new UsageError(`--collect must be a file path, got ${showValue(f.collect)}`);
  if (f.workspace !== undefined && workspaceId !== undefined && f.workspace.toLowerCase() !== workspaceId.toLowerCase()) {
    throw new UsageError(`--workspace ${showValue(f.workspace)} and <workspaceId> ${showValue(workspaceId)} differ`, {
      suggestion: 'give the workspace id once',
    });
  }
  const input: TroubleshootOptionsInput = {
    workspaceId: workspaceId ?? f.workspace,
    readbackTimeoutSec: f.readbackTimeout,
    logsQueryEndpoint: f.logsQueryEndpoint,
    armEndpoint: f.armEndpoint,
    // Unset port, protocol and config come from what install recorded (see install-options.ts).
    configPath: f.config,
    admin: f.admin,
    port: f.port,
    protocol: f.protocol as TroubleshootOptionsInput['protocol'],
    probes: f.probes,
    probeSize: f.probeSize,
    timeoutSec: f.timeout,
    capture: Boolean(f.capture),
    fix: Boolean(f.fix),
    yes: Boolean(f.yes),
  };
  const r = troubleshootOptionsSchema.safeParse(input, { reportInput: true });
  if (!r.success) {
    throw optionError(r.error, {
      workspaceId: f.workspace !== undefined ? '--workspace' : '<workspaceId>',
      configPath: '--config',
      timeoutSec: '--timeout',
      readbackTimeoutSec: '--readback-timeout',
      logsQueryEndpoint: '--logs-query-endpoint',
      armEndpoint: '--arm-endpoint',
    });
  }
  // Typed values for what was given; what was not stays unset, for install's recorded values to fill.
  const given = Object.entries(input)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => [k, r.data[k as keyof typeof r.data]]);
  return Object.fromEntries(given) as TroubleshootOptionsInput;
}

export function troubleshootCommand(): Command {
  return new Command('troubleshoot')
    .description('Prove that CEF sent to this machine reaches Sentinel; if not, show where it stops and the fix')
    .argument('[workspaceId]', 'expected Log Analytics workspace id (checked against the config)')
    .option('--json', 'print {"ok", "checks"} (and "settings" taken from install or overriding it) as JSON on stdout and nothing else')
    .option(
      '--probes <n>',
      'probe messages to send per transport (TCP and UDP), spread over the address families the daemon listens on (at least one each); 0 to skip',
      '3',
    )
    .option(
      '--probe-size <bytes>',
      'bytes per probe: the longest line your devices send (default: just under the smallest configured limit)',
    )
    .option('--timeout <seconds>', 'how long to wait for the probes to be delivered', '10')
    .option(
      '--workspace <id>',
      'read the probes back from this workspace\'s CommonSecurityLog (needs "Log Analytics Reader"); same as <workspaceId>',
    )
    .option(
      '--readback-timeout <seconds>',
      'with a workspace: how long to wait for the probes to appear in the table (ingestion takes minutes; 0 = no readback)',
      '300',
    )
    .addOption(new Option('--logs-query-endpoint <url>', 'Logs Query API base URL (private clouds, tests)').hideHelp())
    .addOption(new Option('--arm-endpoint <url>', 'Azure Resource Manager URL (private clouds, tests)').hideHelp())
    .option('--port <port>', "the syslog daemon's CEF port (default: the one install used, else 514)")
    .option('--protocol <tcp|udp|both>', 'transports the daemon accepts (default: what install used, else both)')
    .option('--config <file>', `forwarder config (default: the one install wrote, else ${DEFAULT_CONFIG_PATH})`)
    .option('--admin <host:port>', 'forwarder admin endpoint (default: from the config)')
    .option('--capture', 'capture the probes with tcpdump on the daemon and forwarder ports')
    .option('--fix', 'apply safe fixes (restart services, re-render our drop-in, open the firewall port) after asking')
    .option('-y, --yes', 'with --fix: apply without asking')
    .option('--collect <file>', 'also write a redacted support bundle (tar.gz) to FILE')
    .option('-v, --verbose', 'show each probe')
    .addOption(new Option('--root <dir>', 'filesystem root to inspect (tests)').hideHelp())
    .addHelpText(
      'after',
      `
Exit status: 0 when every check finished and none failed, 1 when one failed, 2 on a usage error, 3 when none failed
but some did not finish within --timeout (nothing proven there).
Examples:
  sentinel-cef troubleshoot
  sentinel-cef troubleshoot --json --probes 5          # CI smoke check after install
  sentinel-cef troubleshoot --fix --yes
  sentinel-cef troubleshoot --workspace <id>           # also prove the probes are in CommonSecurityLog
  sentinel-cef troubleshoot --collect /tmp/sentinel-cef-support.tar.gz`,
    )
    .action(async (workspaceId: string | undefined, flags: Flags, cmd: Command) => {
      const options = parseTroubleshootFlags(workspaceId, flags, cmd.getOptionValueSource('config') === 'cli');
      if (options.fix && !options.yes && !isInteractive()) {
        throw new UsageError('--fix needs a terminal to ask before each fix', {
          suggestion: 'add --yes to apply the safe fixes without asking',
        });
      }
      const spinner = flags.json ? null : createSpinner('Checking forwarder, daemon, system and Azure…');
      spinner?.start();
      let done = 0;
      const deps = createDefaultDeps({
        root: flags.root,
        progress: (t) => {
          if (spinner) spinner.text = t;
        },
      });
      const report = await runTroubleshoot(options, deps, {
        onResult: (r) => {
          done++;
          if (spinner) spinner.text = `${done} checks done (last: ${r.id})`;
        },
        confirmFix: async (check, description) => {
          spinner?.stop();
          const ok = await deps.confirm(`${check.id} failed: ${description}?`);
          spinner?.start();
          return ok;
        },
      });
      spinner?.stop();
      if (flags.collect) {
        const b = await writeSupportBundle(flags.collect, report, options, deps);
        process.stderr.write(`support bundle written: ${b.file} (${b.entries.length} files, secrets redacted)\n`);
      }
      process.stdout.write(
        flags.json ? renderJson(report) : renderHuman(report, { colour: useColour(process.stdout), verbose: flags.verbose }),
      );
      process.exitCode = troubleshootExitCode(report);
    });
}
