import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { CliError, UsageError, formatConfigIssue, formatOptionError } from '../errors.js';
import { assertPrivateFile } from '../util/secrets.js';
import { stepFromLog, type Step } from '../system/progress.js';
import { DEFAULT_ADMIN, DEFAULT_CONFIG_PATH, forwarderConfigSchema, type Cloud } from '../config/schema.js';
import type { Exec } from '../system/exec.js';
import type { FsRoot } from '../system/fs-root.js';
import { detectIpv6, type Ipv6Mode } from '../system/ipv6.js';
import { listenUrlOf, parseHostPort } from '../config/listen.js';
import type { Choice, Prompter } from '../system/prompts.js';
import { detectDistro, type Distro } from '../system/detect-distro.js';
import { detectDaemon, type DaemonInfo, type SyslogDaemon } from '../system/detect-daemon.js';
import { detectInitSystem, type InitSystem } from '../system/processes.js';
import { findListeners, listListeners } from '../system/listeners.js';
import { detectFirewall, planFirewallFix } from '../system/firewall.js';
import { detectSelinux, planSelinuxFix } from '../system/selinux.js';
import { installOptionsSchema, type InstallOptions } from './options.js';
import { findRuleWorkspace, setupLogsIngestion } from '../azure/setup-logs-ingestion.js';
import { ARM_URLS, createAzureClient, type AzureClient, type AzureClientOptions, type ForwarderIdentity } from '../azure/azure-client.js';
import { MONITOR_SCOPES } from '../sinks/token.js';
import { DATA_COLLECTOR_RETIRED, legacyNotice, probeDataCollector, type LegacyProbe, type LegacyTarget } from './legacy-notice.js';
import { loadTemplate, packageRoot } from './templates.js';
import { hasRsyslogModule, scanRsyslogConfig } from './rsyslog-config.js';
import { scanSyslogNgConfig } from './syslog-ng-config.js';
import {
  insertRsyslogInclude,
  protocolsOf,
  renderRsyslogDropin,
  rsyslogHasExternalState,
  RSYSLOG_DROPIN,
  type RenderedDropin,
} from './render-rsyslog.js';
import { appendSyslogNgInclude, renderSyslogNgDropin, SYSLOG_NG_DROPIN } from './render-syslog-ng.js';
import { formatPlan, planFiles, summarizePlan, type DesiredFile, type FileChange } from './plan.js';
import {
  acquireLock,
  type Lock,
  FileTransaction,
  readState,
  removeEmptyDirs,
  sha256,
  writeState,
  STATE_DIR,
  STATE_FILE,
  type InstallState,
} from './transaction.js';
import {
  CONFIG_DIR,
  FORWARDER_PATH,
  INTAKE_STATE_FILE,
  LIB_DIR,
  SERVICE_USER,
  SUPERVISOR_PATH,
  UNIT_NAME,
  UNIT_PATH,
  renderForwarderUnit,
  needsPrivilegedPort,
  unitInputsFrom,
  type UnitInputs,
  SYNTAX_CHECK,
  checkDaemonSyntax,
  ensureServiceUser,
  syntaxErrorLine,
  forwarderLastLines,
  forwarderUnitState,
  lookupUser,
  removeServiceUser,
  systemServices,
  type Ctx,
  type Services,
  type UserIds,
} from './service.js';
import { unsupportedNodeMessage } from '../system/node-support.js';
import { UnsafePathError, type FileMeta } from '../system/fs-root.js';
import { buildProbeMessage, newProbeId, sendSyslog, waitForHealth, waitForProbe } from './probe.js';
import { CONTROL_CHARS } from '../util/control-chars.js';

export const SHARED_KEY_PATH = `${CONFIG_DIR}/shared-key`;
export const CLIENT_SECRET_PATH = `${CONFIG_DIR}/client-secret`;
export const DATA_DIR = `${STATE_DIR}/data`;

export interface InstallDeps {
  fs: FsRoot;
  exec: Exec;
  prompter: Prompter;
  /** Progress and warnings for people (stderr). */
  log: (line: string) => void;
  /** The plan and the result (stdout). */
  out: (text: string) => void;
  /** Shows a wait (spinner on a terminal); default: one log line per step. */
  step?: Step;
  env?: NodeJS.ProcessEnv;
  /** Path of the forwarder bundle to deploy (default: dist/forwarder.mjs of this package). */
  forwarderBundle?: string;
  /** Test seam: replaces the rendered daemon drop-in (to force a syntax failure). */
  mutateDropin?: (content: string) => string;
  /** Process control (systemd or direct); tests pass a fake. */
  services?: Services;
  /** Asks the Data Collector endpoint what it answers (default: a signed HTTPS post); tests pass a fake. */
  probeLegacy?: (target: LegacyTarget, sharedKey: string) => Promise<LegacyProbe>;
  /** Azure for `--workspace` (default: createAzureClient over HTTPS); tests pass one backed by the mocks. */
  azure?: (o: AzureClientOptions) => Promise<AzureClient>;
  /** Waits between role probes (tests: instant). */
  sleep?: (ms: number) => Promise<void>;
  /** Called as each named step starts (progress on a terminal). */
  onStep?: (name: InstallStepName) => void;
}

export type Destination = 'workspace-setup' | 'dcr' | 'file' | 'legacy';

/** The interactive choice of destination, the supported paths first and the retired one last. */
export const DESTINATION_CHOICES: readonly Choice<Destination>[] = [
  { value: 'workspace-setup', name: "Set up Logs Ingestion for me (create the DCR in the workspace's region and grant the role)" },
  { value: 'dcr', name: 'An existing data collection rule (Logs Ingestion API, the CommonSecurityLog table)' },
  { value: 'file', name: 'A local file (trials, CI)' },
  {
    value: 'legacy',
    name: `Workspace id and key (Data Collector API, retired ${DATA_COLLECTOR_RETIRED}; rows go to CommonSecurityLog_CL)`,
  },
];

export interface InstallResult {
  changed: boolean;
  dryRun: boolean;
  /** null with --forwarder-only: no daemon in the path. */
  daemon: SyslogDaemon | null;
  changes: FileChange[];
  warnings: string[];
  probe?: { id: string; received: boolean; accepted: boolean; latencyMs?: number; error?: string };
}

interface SinkChoice {
  sink: Record<string, unknown>;
  /** The workspace (GUID) the rows go to, when install knows it: troubleshoot reads probes back from it. */
  workspaceId?: string;
  secretFile?: { path: string; value: string };
  describe: string;
}

/** Everything one install run knows; each step reads what the steps before it filled in. */
export interface InstallContext {
  opts: InstallOptions;
  deps: InstallDeps;
  fs: FsRoot;
  exec: Exec;
  prompter: Prompter;
  log: (line: string) => void;
  svc: Services;
  env: NodeJS.ProcessEnv;
  warnings: string[];
  warn: (w: string) => void;
  // detect
  cloud: Cloud;
  sinkChoice: SinkChoice;
  nodePath: string;
  init: { kind: InitSystem; pid1: string };
  /** What the service helpers need (files, programs, init system, log). */
  ctx: Ctx;
  /** null with --forwarder-only: no daemon in the path. */
  daemon: SyslogDaemon | null;
  binary: string;
  /** What `rsyslogd -v` / `syslog-ng --version` said, or null when it did not answer. */
  daemonVersion: string | null;
  /** The readiness endpoint it listens on (forwarder-only: always; with a daemon: with --readiness). */
  readiness: { host: string; port: number } | null;
  /** rsyslog without omrelp, its package at the installed rsyslog's version: the command apply runs to add it. */
  relpInstall: string[] | null;
  /** --dry-run with no syslog daemon: the commands that would install one (the plan is for that daemon). */
  daemonInstall: string[][];
  /** --forwarder-only below port 1024: the unit gets CAP_NET_BIND_SERVICE, nothing else. */
  privilegedPort: boolean;
  /** What the systemd unit is rendered from, recorded in the install state for troubleshoot's forwarder.unit. */
  unitInputs: UnitInputs;
  // render
  desired: DesiredFile[];
  /** Files we only add to (the daemon's main file): edits there are the operator's, not ours to track. */
  sharedFiles: Set<string>;
  dropin: RenderedDropin | null;
  sinkFile: string | null;
  /** The forwarder's config as written (listeners, readiness). */
  forwarderConfig: { listen: string[]; readiness?: string; intakeStateFile?: string; limits?: { maxConnectionAgeSec: number } };
  // plan
  changes: FileChange[];
  sum: ReturnType<typeof summarizePlan>;
  changed: boolean;
  result: InstallResult;
  /** Files we own that changed since the last install wrote them: hand edits that this run would replace. */
  edited: FileChange[];
  fwCmds: string[][];
  seCmds: string[][];
}

export type InstallStepName = 'detect' | 'render' | 'plan' | 'confirm' | 'apply' | 'verify';

/** The install, in order; `--dry-run` runs the same steps up to and including `plan`. */
export const INSTALL_STEPS: ReadonlyArray<{ name: InstallStepName; run: (c: InstallContext) => Promise<void> }> = [
  { name: 'detect', run: detectStep },
  { name: 'render', run: renderStep },
  { name: 'plan', run: planStep },
  { name: 'confirm', run: confirmStep },
  { name: 'apply', run: applyStep },
  { name: 'verify', run: verifyStep },
];

export async function runInstall(opts: InstallOptions, deps: InstallDeps): Promise<InstallResult> {
  const c = createInstallContext(opts, deps);
  for (const step of INSTALL_STEPS) {
    deps.onStep?.(step.name);
    await step.run(c);
    if (step.name === 'plan' && opts.dryRun) {
      for (const cmd of [...c.daemonInstall, ...(c.relpInstall ? [c.relpInstall] : []), ...c.fwCmds, ...c.seCmds])
        deps.out(`would run: ${cmd.join(' ')}\n`);
      deps.out(c.changed ? 'Dry run: nothing was changed.\n' : 'Dry run: nothing to change, everything is already in place.\n');
      break;
    }
  }
  return c.result;
}

/** The context before any step: the seams and the warnings list; the steps fill in the rest. */
function createInstallContext(opts: InstallOptions, deps: InstallDeps): InstallContext {
  const warnings: string[] = [];
  const c = {
    opts,
    deps,
    fs: deps.fs,
    exec: deps.exec,
    prompter: deps.prompter,
    log: deps.log,
    svc: deps.services ?? systemServices,
    env: deps.env ?? process.env,
    warnings,
    warn: (w: string) => {
      warnings.push(w);
      deps.log(`warning: ${w}`);
    },
  };
  return c as InstallContext;
}

async function detectStep(c: InstallContext): Promise<void> {
  const { opts, deps, fs, exec, log, env, warn } = c;
  if (fs.isSystemRoot && typeof process.getuid === 'function' && process.getuid() !== 0 && !opts.dryRun) {
    throw new CliError('install changes system files and needs root', { suggestion: 'run it with sudo, or add --dry-run to see the plan' });
  }

  checkPortClashes(opts);
  c.readiness = checkForwarderOnlyOptions(opts);
  c.cloud = opts.usGov ? 'AzureUSGovernment' : (opts.cloud ?? 'AzureCloud');
  c.sinkChoice = await resolveSink(opts, c.cloud, deps, env, warn);

  // Before anything else, the package install we may offer included: the service runs this node, not ours, and
  // an old one crash-loops with a stack trace after we have changed the system.
  const nodePath = (c.nodePath = opts.node ?? (await exec.which('node')) ?? process.execPath);
  const nodeVersion = await exec.run(nodePath, ['--version'], { timeoutMs: 30_000 });
  if (opts.node && nodeVersion.exitCode !== 0)
    throw new UsageError(
      `--node ${opts.node} does not run: ${(nodeVersion.stderr.trim() || `exit ${nodeVersion.exitCode}`).split('\n')[0]}`,
      {
        suggestion: 'give the path of a node binary (`command -v node`)',
      },
    );
  const oldNode = unsupportedNodeMessage(
    nodeVersion.exitCode === 0 ? nodeVersion.stdout : '',
    `the service's node (${nodePath})`,
    opts.node ? 'then run install again' : 'then run install again, or pass --node PATH of a supported node',
  );
  if (oldNode) throw new CliError(oldNode, { code: 'ERR_NODE_VERSION', exitCode: 2 });
  const distro = await detectDistro(fs);
  const init = (c.init = await detectInitSystem(fs));
  c.ctx = { fs, exec, init: init.kind, log };
  log(
    `distribution: ${distro.name}${distro.supported ? '' : ' (not in the tested list; continuing)'}; init: ${init.kind === 'systemd' ? 'systemd' : `${init.pid1} (not systemd)`}`,
  );
  await refuseModeSwitch(fs, opts);
  c.daemon = null;
  c.binary = '';
  c.daemonVersion = null;
  c.daemonInstall = [];
  let addedDaemon = false;
  if (!opts.forwarderOnly) {
    let info = await detectDaemon(fs, exec, opts.daemon);
    if (opts.daemon && !info.installed.includes(opts.daemon)) info = { ...info, daemon: null };
    if (!info.daemon && opts.dryRun) {
      ({ info, commands: c.daemonInstall } = await planDaemonInstall(fs, distro, opts));
      addedDaemon = true;
    } else if (!info.daemon) {
      info = await offerDaemonInstall(distro, opts, deps);
      addedDaemon = true;
    }
    const daemon = (c.daemon = info.daemon!);
    if (!info.binary) throw unknownDaemonProgram(daemon, info.running);
    c.binary = info.binary;
    c.daemonVersion = info.version ?? null;
    if (info.running.some((r) => r.daemon !== daemon)) {
      warn(`${info.running.find((r) => r.daemon !== daemon)!.daemon} is running too; only ${daemon} is configured`);
    }
    log(
      `syslog daemon: ${daemon}${info.version ? ` ${info.version}` : ''} (${c.daemonInstall.length ? 'not installed: the plan is for the package it would install' : info.running.some((r) => r.daemon === daemon) ? 'running' : 'not running'})`,
    );
  }
  // Only with the rsyslog this run installs (apt has just shown it can fetch): an existing rsyslog's packages are the
  // operator's, and on a machine without a reachable mirror the extra package would fail the whole install.
  c.relpInstall =
    c.daemon === 'rsyslog' && addedDaemon && opts.installRelp
      ? opts.dryRun && distro.packageManager === 'apt-get'
        ? // Nothing installed to ask apt-cache about: the package comes with the rsyslog planned above.
          [...RELP_INSTALL]
        : await planRelpInstall(fs, exec, distro, warn)
      : null;
  if (c.relpInstall) log(`rsyslog has no omrelp: install adds package ${RELP_PACKAGE} (${c.relpInstall.join(' ')})`);
  // Only the capability it needs: none when every port it listens on is unprivileged.
  c.privilegedPort = needsPrivilegedPort(opts.forwarderOnly, opts.port, c.readiness?.port);
  if (!opts.forwarderOnly && c.readiness) {
    await checkReadinessPort(fs, c.readiness);
    if (c.privilegedPort && init.kind !== 'systemd') await refuseUnprivilegedBind(fs, opts, init.pid1);
  }
  if (opts.forwarderOnly) {
    await checkForwarderOnlyPorts(fs, opts, c.readiness!);
    if (c.privilegedPort && init.kind !== 'systemd') await refuseUnprivilegedBind(fs, opts, init.pid1);
    log(
      `forwarder-only: no syslog daemon is configured; the forwarder listens on port ${opts.port} (${protocolsOf(opts.protocol).join('+')}) itself`,
    );
  }
}

async function renderStep(c: InstallContext): Promise<void> {
  const { opts, deps, fs, warn, daemon, nodePath, init, sinkChoice } = c;
  const ipv6 = await detectIpv6(fs);
  const renderOpts = { port: opts.port, protocol: opts.protocol, forwarderPort: opts.forwarderPort, ipv6, durable: opts.durable };
  const desired: DesiredFile[] = (c.desired = []);
  const sharedFiles = (c.sharedFiles = new Set<string>());
  let dropin: RenderedDropin | null = null;
  let intakeStateFile: string | null = null;
  if (daemon === null) {
    // Forwarder-only: nothing of a daemon's is rendered.
  } else if (daemon === 'rsyslog') {
    const scan = await scanRsyslogConfig(fs, { exclude: [RSYSLOG_DROPIN] });
    // An unknown version (no `rsyslogd -v` answer) gets it: if rsyslogd -N1 refuses it, install rolls back.
    const stateOk = c.daemonVersion === null || rsyslogHasExternalState(c.daemonVersion);
    intakeStateFile = stateOk ? INTAKE_STATE_FILE : null;
    if (!stateOk) {
      warn(
        `rsyslog ${c.daemonVersion} predates action.externalstate.file (8.1904): the batch it holds while the forwarder is down is lost if rsyslog restarts then`,
      );
    }
    // Rendered for the module apply installs first; rsyslogd -N1 checks the result with it in place.
    if (c.relpInstall) scan.omrelp = true;
    if (opts.durable && scan.omrelp !== true) throw durableNeedsRelp('rsyslog without omrelp sends over plain TCP');
    dropin = renderRsyslogDropin(scan, { ...renderOpts, intakeStateFile });
    // --dry-run before the package is installed: its own rsyslog.conf (not on disk yet) includes rsyslog.d.
    const packageBringsMain = c.daemonInstall.length > 0 && !(await fs.exists(scan.mainFile));
    if (!scan.includesDropins && !packageBringsMain) {
      const main = (await fs.readText(scan.mainFile)) ?? '';
      sharedFiles.add(scan.mainFile);
      desired.push({
        path: scan.mainFile,
        content: insertRsyslogInclude(main),
        mode: (await fs.stat(scan.mainFile))?.mode ?? 0o644,
        why: 'include rsyslog.d drop-ins',
      });
    }
  } else {
    if (opts.durable) throw durableNeedsRelp('syslog-ng sends over plain TCP');
    const scan = await scanSyslogNgConfig(fs, { exclude: [SYSLOG_NG_DROPIN] });
    dropin = renderSyslogNgDropin(scan, renderOpts);
    // As for rsyslog: the package's own syslog-ng.conf (not on disk yet under --dry-run) includes conf.d.
    const packageBringsMain = c.daemonInstall.length > 0 && !(await fs.exists(scan.mainFile));
    if (!scan.includesConfD && !packageBringsMain) {
      // inspect() refuses a link here: its mode would be the link's 0777, its content another file's.
      const main = await fs.inspect(scan.mainFile);
      sharedFiles.add(scan.mainFile);
      desired.push({
        path: scan.mainFile,
        content: appendSyslogNgInclude(main?.bytes.toString('utf8') ?? ''),
        mode: main?.meta.mode ?? 0o644,
        why: 'include conf.d drop-ins',
      });
    }
  }
  c.dropin = dropin;
  dropin?.warnings.forEach(warn);
  const relp = dropin?.transport === 'relp';
  if (daemon === 'rsyslog' && !relp) {
    warn(
      'rsyslog has no omrelp module (package rsyslog-relp): it forwards over plain TCP, which can lose the events it holds in memory when it restarts while the forwarder is down; install rsyslog-relp and run install again',
    );
  }
  if (dropin && daemon) {
    const dropinContent = deps.mutateDropin ? deps.mutateDropin(dropin.content) : dropin.content;
    desired.push({
      path: dropin.path,
      content: `${dropinContent.trimEnd()}\n`,
      mode: 0o644,
      why: `route CEF to 127.0.0.1:${opts.forwarderPort}`,
    });
    await checkPortOwners(fs, opts, daemon);
  }

  const bundlePath = deps.forwarderBundle ?? path.join(packageRoot(), 'dist', 'forwarder.mjs');
  let bundle: Buffer;
  try {
    bundle = readFileSync(bundlePath);
  } catch {
    throw new CliError(`the forwarder bundle ${bundlePath} is missing`, { suggestion: 'run `npm run build` in the package first' });
  }
  if (/^\/(root|home)\//.test(nodePath))
    warn(`node is at ${nodePath}: the ${SERVICE_USER} user may not be able to run it; install node system-wide`);
  const group = { user: 'root', group: SERVICE_USER };
  const serviceOwner = { user: SERVICE_USER, group: SERVICE_USER };
  desired.push({ path: FORWARDER_PATH, content: bundle, mode: 0o644, generated: true, why: 'forwarder bundle' });
  // Under systemd the unit runs the forwarder: a supervisor there would be a file nothing runs.
  if (init.kind !== 'systemd') {
    desired.push({
      path: SUPERVISOR_PATH,
      content: loadTemplate('supervisor/sentinel-cef-supervise.mjs'),
      mode: 0o644,
      generated: true,
      why: 'supervisor (no systemd)',
    });
  }
  if (sinkChoice.secretFile) {
    desired.push({
      path: sinkChoice.secretFile.path,
      content: `${sinkChoice.secretFile.value}\n`,
      mode: 0o600,
      owner: serviceOwner,
      secret: true,
      why: 'secret, readable by the service user only',
    });
  }
  const config = {
    listen: opts.forwarderOnly
      ? forwarderOnlyListen(opts.port, opts.protocol, ipv6, opts.proxy)
      : [`${relp ? 'relp' : 'tcp'}://127.0.0.1:${opts.forwarderPort}`, `udp://127.0.0.1:${opts.forwarderPort}`],
    // Durable: a record counts as received (and RELP answers it) only once fsynced.
    queue: { dir: `${DATA_DIR}/queue`, ...(opts.durable ? { fsyncIntervalMs: 0 } : {}) },
    deadLetterFile: `${DATA_DIR}/dead-letter.ndjson`,
    sink: sinkChoice.sink,
    admin: DEFAULT_ADMIN,
    ...(opts.forwarderOnly || opts.readiness ? { readiness: opts.readiness ?? DEFAULT_READINESS } : {}),
    // Behind a balancer senders hold a connection for hours; ageing lets it spread them again (issue 18).
    ...(opts.forwarderOnly ? { limits: { maxConnectionAgeSec: opts.maxConnectionAge ?? DEFAULT_MAX_CONNECTION_AGE_SEC } } : {}),
    ...(intakeStateFile ? { intakeStateFile } : {}),
  };
  c.forwarderConfig = config;
  c.unitInputs = unitInputsFrom({
    nodePath,
    sink: sinkChoice.sink as { type: string; path?: unknown },
    ...(opts.forwarderOnly ? { mode: 'forwarder-only' as const } : {}),
    port: opts.port,
    ...(c.readiness ? { readinessPort: c.readiness.port } : {}),
    intakeStateFile,
  });
  const parsed = forwarderConfigSchema.safeParse(config);
  if (!parsed.success) throw new UsageError(`the forwarder config would be invalid: ${formatConfigIssue(parsed.error.issues[0])}`);
  desired.push({
    path: DEFAULT_CONFIG_PATH,
    content: `${JSON.stringify(config, null, 2)}\n`,
    mode: 0o640,
    owner: group,
    why: 'forwarder config',
  });
  const sinkFile = (c.sinkFile = sinkChoice.sink.type === 'file' ? String(sinkChoice.sink.path) : null);
  if (init.kind === 'systemd') {
    desired.push({
      path: UNIT_PATH,
      content: renderForwarderUnit(c.unitInputs),
      mode: 0o644,
      why: 'systemd unit',
    });
  }

  if (sinkFile && init.kind === 'systemd' && /^\/(root|home|run\/user)(\/|$)/.test(path.normalize(sinkFile))) {
    throw new UsageError(
      `--sink ${sinkFile}: the forwarder service cannot write under /root, /home or /run/user (its unit has ProtectHome=yes)`,
      {
        suggestion: 'choose a path such as /var/log/sentinel-cef-rows/rows.ndjson',
      },
    );
  }
}

/** Compares the rendered files with disk and prints the plan; firewall and SELinux fixes are planned too. */
async function planStep(c: InstallContext): Promise<void> {
  const { opts, deps, fs, exec, prompter, log, warn, daemon, binary, svc, desired, sharedFiles, dropin, sinkChoice, warnings } = c;
  const changes = (c.changes = await planFiles(fs, desired));
  const sum = (c.sum = summarizePlan(changes));
  const changed = (c.changed = sum.create + sum.update > 0 || c.relpInstall !== null || c.daemonInstall.length > 0);
  deps.out(
    `Plan (${daemon ?? 'forwarder-only'}, sink ${sinkChoice.describe}): ${sum.create} to create, ${sum.update} to update, ${sum.unchanged} unchanged\n${formatPlan(changes, { diffs: opts.dryRun || (prompter.interactive && !opts.yes), all: opts.diff === 'all' })}\n`,
  );
  c.result = { changed, dryRun: opts.dryRun, daemon, changes, warnings };
  // A daemon still to be installed (--dry-run) has no program to check a config with.
  if (daemon && dropin && c.daemonInstall.length === 0)
    await refuseBrokenDaemonConfig(c.ctx, daemon, binary, changes, dropin.path, svc, sharedFiles);
  const lastWritten = (await readState(fs))?.written ?? {};
  const edited = (c.edited = changes.filter(
    (ch) =>
      ch.contentChanged &&
      ch.before !== null &&
      !sharedFiles.has(ch.file.path) &&
      lastWritten[ch.file.path] !== undefined &&
      sha256(ch.before) !== lastWritten[ch.file.path],
  ));
  for (const e of edited) {
    // Without a TTY and without --yes the refusal in the confirm step is the whole answer: one line.
    if (opts.dryRun || opts.yes || prompter.interactive)
      log(`${e.file.path} was edited by hand since the last install; this install replaces it:\n${e.diff.trimEnd()}`);
    if (opts.dryRun) warn(`${e.file.path} has local edits that install would replace (the edited file would be backed up)`);
  }
  // Firewall and SELinux belong to the running system, not to a --root tree.
  const fw = fs.isSystemRoot ? await detectFirewall(exec) : { kind: 'none' as const, active: false, allowed: [] };
  c.fwCmds = planFirewallFix(
    fw,
    protocolsOf(opts.protocol).map((p) => ({ port: opts.port, protocol: p })),
  );
  const se = await detectSelinux(fs, fs.isSystemRoot ? exec : undefined);
  const written = changes.filter((ch) => ch.kind !== 'unchanged').map((ch) => ch.file.path);
  // Forwarder-only: no daemon connects to a forwarder port, so no port needs the syslog label.
  c.seCmds = planSelinuxFix(se, opts.forwarderPort, written).filter((cmd) => !(opts.forwarderOnly && cmd[0] === 'semanage'));
  if (fw.active) log(`firewall: ${fw.kind}${c.fwCmds.length ? ` (port ${opts.port} not open yet)` : ` (port ${opts.port} open)`}`);
  if (se.mode !== 'disabled') log(`SELinux: ${se.mode}`);
}

async function confirmStep(c: InstallContext): Promise<void> {
  const { opts, prompter } = c;
  for (const e of c.edited) {
    if (
      !(await prompter.confirm(`${e.file.path} was edited by hand since the last install. Replace it (the edited file is backed up)?`, {
        default: false,
        yes: opts.yes,
        flag: '--yes',
      }))
    ) {
      throw new CliError(`cancelled; nothing was changed (${e.file.path} keeps its local edits)`, { exitCode: 1 });
    }
  }
  if (c.changed && !(await prompter.confirm('Apply these changes?', { default: true, yes: opts.yes, flag: '--yes' }))) {
    throw new CliError('cancelled; nothing was changed', { exitCode: 1 });
  }
}

async function verifyStep(c: InstallContext): Promise<void> {
  if (c.opts.verify && c.fs.isSystemRoot) c.result.probe = await verifyChain(c.opts, c.daemon, c.sinkChoice.describe, c.deps);
}

/** Writes the plan with a rollback of every step on any failure or SIGINT/SIGTERM/SIGHUP. */
async function applyStep(c: InstallContext): Promise<void> {
  const {
    opts,
    deps,
    fs,
    exec,
    prompter,
    log,
    warn,
    svc,
    nodePath,
    init,
    ctx,
    daemon,
    binary,
    desired,
    sharedFiles,
    dropin,
    sinkFile,
    sinkChoice,
    changes,
    sum,
    changed,
    edited,
    fwCmds,
    seCmds,
  } = c;
  let release: Lock;
  try {
    release = await acquireLock(fs);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  // SIGINT/SIGTERM/SIGHUP during apply roll everything back instead of killing the process half-way.
  let signalled: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled ??= sig;
    log(`${sig} received: rolling back`);
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  try {
    await apply();
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    await release();
  }

  async function apply(): Promise<void> {
    const prior = await readState(fs);
    const priorState = await fs.inspect(STATE_FILE);
    const tx = new FileTransaction(fs);
    /** Undo steps, run newest first; `after` runs once every file is back (restarts on the old config). */
    const undo: Array<{ what: string; run: () => Promise<void> }> = [];
    const after: Array<{ what: string; run: () => Promise<void> }> = [];
    const checkpoint = () => {
      if (signalled) throw new StepError(`interrupted by ${signalled}`, '', SIGNAL_EXIT[signalled]);
    };
    const toWrite = changes.filter((c) => c.kind !== 'unchanged');
    // The main config we append an include to is the daemon's too.
    const isDaemonFile = (p: string) => daemon !== null && (p === dropin?.path || sharedFiles.has(p) || p.startsWith('/etc/syslog-ng/'));
    const daemonFilesChanged = toWrite.some((c) => isDaemonFile(c.file.path));
    const forwarderFilesChanged = toWrite.some((c) => !isDaemonFile(c.file.path));
    const createdDirs: string[] = [...release.made];
    let userCreated = false;
    const applied: string[][] = [];

    try {
      // 1. The state, marked in progress, naming every path (with its original's checksum) and every directory this
      // run may create: from here on a crash is undone by `uninstall`. Then the backups.
      const baseDirs = [
        CONFIG_DIR,
        LIB_DIR,
        STATE_DIR,
        DATA_DIR,
        ...(sinkFile ? [path.dirname(sinkFile)] : []),
        ...toWrite.map((c) => path.dirname(c.file.path)),
      ];
      const plannedDirs = new Set<string>(release.made);
      for (const d of baseDirs) for (const m of await fs.missingDirs(d)) plannedDirs.add(m);
      await tx.describe(toWrite.map((c) => ({ path: c.file.path, secret: c.file.secret })));
      const userExisted = (await lookupUser(fs, SERVICE_USER)) !== null;
      undo.push({
        what: 'install state',
        run: async () => {
          if (priorState)
            await fs.writeAtomic(STATE_FILE, priorState.bytes, {
              mode: priorState.meta.mode,
              uid: priorState.meta.uid,
              gid: priorState.meta.gid,
            });
          else await fs.remove(STATE_FILE);
        },
      });
      const userNow = { name: SERVICE_USER, createdByUs: !userExisted || Boolean(prior?.user?.createdByUs) };
      // Root looks into the sink's directory only when it is root's: one install made is the service user's, and
      // the forwarder makes its file there itself.
      const sinkDirOwner = sinkFile ? (await fs.stat(path.dirname(sinkFile)))?.uid : undefined;
      const serviceUid = (await lookupUser(fs, SERVICE_USER))?.uid;
      const sinkInRootDir =
        sinkFile !== null &&
        sinkDirOwner !== undefined &&
        sinkDirOwner !== serviceUid &&
        (sinkDirOwner === 0 || sinkDirOwner === process.geteuid?.());
      if (sinkFile) await fs.assertSafeParents(path.dirname(sinkFile));
      const sinkOriginal = sinkFile && sinkInRootDir ? await fs.inspect(sinkFile) : null;
      // The empty sink file this run may create is listed only while it runs: once installed, the rows are the operator's.
      const pending = [...tx.touched, ...(sinkFile && sinkInRootDir && !sinkOriginal ? [{ path: sinkFile, existed: false }] : [])];
      await writeState(fs, {
        ...mergeState(prior, pending, [...plannedDirs], {
          written: prior?.written ?? {},
          daemon,
          init: init.kind,
          user: userNow,
          applied: [],
        }),
        status: 'in-progress',
      });
      checkpoint();
      // tx.rollback() is idempotent: here it removes the backups, and once files are written (below) restores them.
      undo.push({ what: 'backups', run: () => tx.rollback() });
      await tx.backupAll();
      checkpoint();

      // 2. The service user.
      const user = await ensureServiceUser(ctx);
      if (user.created) {
        userCreated = true;
        undo.push({ what: `user ${SERVICE_USER}`, run: () => removeServiceUser(ctx) });
      }
      checkpoint();

      // 3. Directories: created ones are removed on rollback, existing ones get their old mode and owner back.
      const mkdir = async (d: string, mode: number, owner?: UserIds) => {
        const before = await fs.stat(d);
        if (before && !before.isDirectory)
          throw new UnsafePathError(
            `refusing to use ${d}: it is ${before.isSymlink ? `a symbolic link to ${await fs.readlink(d)}` : 'not a directory'}`,
          );
        if (!before) {
          const made: string[] = [];
          undo.push({ what: `directory ${d}`, run: () => removeEmptyDirs(fs, made) });
          await fs.mkdirp(d, { mode }, made);
          createdDirs.push(...made);
        } else {
          undo.push({
            what: `mode of ${d}`,
            run: async () => {
              await fs.chmod(d, before.mode);
              await fs.chown(d, before.uid, before.gid);
            },
          });
        }
        // Our directories get their modes even when they already existed (an earlier run, a hand-made one).
        await fs.chmod(d, mode);
        if (owner) await fs.chown(d, owner.uid, owner.gid);
        checkpoint();
      };
      await mkdir(CONFIG_DIR, 0o750, { uid: 0, gid: user.gid });
      await mkdir(LIB_DIR, 0o755);
      await mkdir(STATE_DIR, 0o755);
      await mkdir(DATA_DIR, 0o750, user);
      if (sinkFile) {
        await prepareSinkFile(fs, sinkFile, user, mkdir, sinkInRootDir, sinkOriginal?.meta ?? null, (what, run) =>
          undo.push({ what, run }),
        );
        checkpoint();
      }

      const forwarderWasRunning = init.kind === 'systemd' ? null : await svc.isForwarderSupervised(fs);
      const unitBefore = init.kind === 'systemd' ? await forwarderUnitState(ctx) : null;
      const daemonWasRunning = daemon === null || (await svc.runningDaemonPids(fs, daemon)).length > 0;

      // The RELP module before the files that load it; removed again on rollback, after the old files are back.
      if (c.relpInstall) {
        const env = { DEBIAN_FRONTEND: 'noninteractive' };
        log(`running ${c.relpInstall.join(' ')}`);
        const r = await exec.run(c.relpInstall[0], c.relpInstall.slice(1), { timeoutMs: 600_000, env });
        if (r.exitCode !== 0) throw new StepError(`${c.relpInstall.join(' ')} failed`, r.stderr.trim().split('\n').pop() ?? '');
        undo.push({
          what: `package ${RELP_PACKAGE}`,
          run: async () => {
            const u = await exec.run('apt-get', ['remove', '-y', RELP_PACKAGE], { timeoutMs: 600_000, env });
            if (u.exitCode !== 0) throw new Error(u.stderr.trim().split('\n').pop() ?? `exit ${u.exitCode}`);
          },
        });
        checkpoint();
      }

      // 4. Files (their undo runs before the directories' undo, which then finds them empty).
      undo.push({ what: 'files', run: () => tx.rollback() });
      for (const c of toWrite) {
        const owner = c.file.owner ? await resolveOwner(fs, c.file.owner) : { uid: 0, gid: 0 };
        await tx.write(c.file.path, c.file.content, { mode: c.file.mode, ...owner, secret: c.file.secret });
        checkpoint();
      }
      if (changed) log(`wrote ${sum.create + sum.update} file(s); backups in ${tx.backupDir}`);
      for (const c of edited) {
        const backup = tx.touched.find((o) => o.path === c.file.path)?.backup;
        warn(
          `LOCAL EDITS REPLACED: ${c.file.path} had been edited since the last install; the edited file is kept at ${backup ?? tx.backupDir}`,
        );
      }

      if (daemon && (daemonFilesChanged || !daemonWasRunning)) {
        const check = await checkDaemonSyntax(ctx, daemon, binary);
        if (!check.ok) throw new StepError(`${daemon} rejected the new configuration`, check.output);
        log(`${daemon} accepted the configuration (${daemon === 'rsyslog' ? 'rsyslogd -N1' : 'syslog-ng --syntax-only'})`);
        checkpoint();
      }

      // 5. The forwarder service (unit enabled and started, or the supervisor).
      if (forwarderFilesChanged || (unitBefore && !unitBefore.enabled)) {
        undo.push({
          what: 'forwarder service',
          run: async () => {
            if (init.kind === 'systemd' ? !unitBefore?.enabled : forwarderWasRunning === null) await svc.stopForwarder(ctx);
          },
        });
        after.push({
          what: 'forwarder service',
          run: async () => {
            if (init.kind === 'systemd') {
              // The unit file is back as it was (or gone): systemd must forget the failed run of the new one.
              await exec.run('systemctl', ['daemon-reload']);
              // The links `enable` made for the new unit's [Install] (rsyslog.service.wants/) go back to the old unit's.
              if (unitBefore?.enabled) await exec.run('systemctl', ['reenable', UNIT_NAME]);
              if (unitBefore?.active) await svc.startForwarder(ctx, { nodePath, configPath: DEFAULT_CONFIG_PATH, user, restart: true });
              else await exec.run('systemctl', ['reset-failed', UNIT_NAME]);
            } else if (forwarderWasRunning !== null) {
              await svc.startForwarder(ctx, { nodePath, configPath: DEFAULT_CONFIG_PATH, user, restart: true });
            }
          },
        });
      }
      try {
        log(
          await (deps.step ?? stepFromLog(log))(
            forwarderFilesChanged ? 'starting the forwarder on its new configuration' : 'starting the forwarder',
            () => svc.startForwarder(ctx, { nodePath, configPath: DEFAULT_CONFIG_PATH, user, restart: forwarderFilesChanged }),
          ),
        );
      } catch (err) {
        throw new StepError('the forwarder did not start', `${(err as Error).message}${await forwarderErrorLines(ctx)}`);
      }
      checkpoint();
      const healthy = await (deps.step ?? stepFromLog(log))('waiting for the forwarder to answer (up to 15 s)', async () =>
        svc.forwarderHealthy ? svc.forwarderHealthy(15_000) : !fs.isSystemRoot || (await waitForHealth(DEFAULT_ADMIN, 15_000)),
      );
      if (!healthy) {
        const lines = await forwarderErrorLines(ctx);
        throw new StepError(
          lines ? 'the forwarder did not start' : 'the forwarder does not answer on its admin API',
          lines ? lines.trim() : `no answer from http://${DEFAULT_ADMIN}/healthz`,
        );
      }
      checkpoint();

      // 6. The syslog daemon on the new configuration; on rollback it goes back to the old one.
      if (daemon && (daemonFilesChanged || !daemonWasRunning)) {
        if (daemonWasRunning) {
          after.push({
            what: `${daemon} restart`,
            run: async () => {
              const again = await svc.restartDaemon(ctx, daemon, binary, { port: opts.port, protocols: [] });
              log(
                again.ok
                  ? `${daemon} restarted on its previous config`
                  : `${daemon} could not be restarted on its previous config: ${again.detail}`,
              );
            },
          });
        }
        const r = await (deps.step ?? stepFromLog(log))(
          `restarting ${daemon} on the new configuration (up to 90 s, then 15 s to listen)`,
          () => svc.restartDaemon(ctx, daemon, binary, { port: opts.port, protocols: protocolsOf(opts.protocol) }),
        );
        if (!r.ok) throw new StepError(`restart of ${daemon} failed`, r.detail);
        log(`${daemon}: ${r.detail}`);
        checkpoint();
      }

      // 7. Firewall and SELinux: fixed with --yes or after a prompt, otherwise printed; each one undone on rollback.
      for (const [what, cmds] of [
        ['firewall', fwCmds],
        ['SELinux', seCmds],
      ] as const) {
        if (cmds.length === 0) continue;
        const fix =
          opts.yes ||
          (prompter.interactive &&
            (await prompter.confirm(`Apply the ${what} changes (${cmds.map((c) => c.join(' ')).join('; ')})?`, { default: true })));
        if (!fix) {
          warn(`${what} needs: ${cmds.map((c) => c.join(' ')).join(' && ')}`);
          continue;
        }
        for (const c of cmds) {
          const r = await exec.run(c[0], c.slice(1));
          if (r.exitCode !== 0) warn(`${c.join(' ')} failed: ${r.stderr.trim()}`);
          else {
            applied.push(c);
            const inverse = inverseCommands(c);
            if (inverse.length) {
              undo.push({
                what: c.join(' '),
                run: async () => {
                  for (const i of inverse) await exec.run(i[0], i.slice(1));
                },
              });
            }
          }
          checkpoint();
        }
      }

      // 8. The state, complete; then the backups that nothing needs any more (replaced secrets).
      const written = Object.fromEntries(
        desired.filter((f) => !f.secret && !sharedFiles.has(f.path)).map((f) => [f.path, sha256(Buffer.from(f.content))]),
      );
      const state = mergeState(prior, tx.touched, createdDirs, {
        written,
        daemon,
        init: init.kind,
        user: { name: SERVICE_USER, createdByUs: userCreated || Boolean(prior?.user?.createdByUs) },
        applied,
        options: {
          port: opts.port,
          protocol: opts.protocol,
          forwarderPort: opts.forwarderPort,
          daemon: daemon ?? 'none',
          configPath: DEFAULT_CONFIG_PATH,
          dropin: dropin?.path ?? '',
          sink: { type: String(sinkChoice.sink.type), describe: sinkChoice.describe },
          ...(opts.forwarderOnly ? { mode: 'forwarder-only' as const } : {}),
          ...(c.forwarderConfig.readiness ? { readiness: c.forwarderConfig.readiness } : {}),
          ...(sinkChoice.workspaceId ? { workspaceId: sinkChoice.workspaceId } : {}),
          ...(opts.durable ? { durable: true as const } : {}),
          ...(daemon === 'rsyslog' && dropin
            ? { transport: dropin.transport ?? 'tcp', intakeStateFile: c.forwarderConfig.intakeStateFile ?? null }
            : {}),
          ...(init.kind === 'systemd' ? { unit: c.unitInputs } : {}),
        },
      });
      await writeState(fs, { ...state, status: 'installed' });
      checkpoint();
    } catch (err) {
      const step = err instanceof StepError ? err : new StepError(`install failed: ${(err as Error).message}`, '');
      const failures: string[] = [];
      // Restarts included, this can take many seconds: say so before, not only "rolled back" after.
      await (deps.step ?? stepFromLog(log))(`${step.message}: rolling back every change`, async () => {
        for (const u of [...undo].reverse()) {
          // A rollback that could not finish keeps the in-progress state, so `uninstall` can finish it.
          if (u.what === 'install state' && failures.length > 0) continue;
          await u.run().catch((e: Error) => failures.push(`${u.what}: ${e.message}`));
        }
        for (const a of after) await a.run().catch((e: Error) => failures.push(`${a.what}: ${e.message}`));
      });
      if (failures.length > 0) {
        throw new CliError(`${step.message}; the rollback did not finish (${failures[0]})`, {
          exitCode: step.exitCode,
          suggestion: 'run `sentinel-cef uninstall --yes` to undo the rest (the install state lists every step)',
        });
      }
      log(`rolled back: every file is as it was before (${step.message})`);
      throw new CliError(`${step.message}; nothing was changed (rolled back)`, {
        exitCode: step.exitCode,
        suggestion: step.detail.split('\n').slice(0, 6).join(' | ') || undefined,
      });
    }
    // Only after the state says "installed": a backup of a replaced secret is no longer needed for a rollback.
    // The install is complete by now, so a failure here is a warning, not a reason to undo it.
    await tx
      .commit((await readState(fs))?.files ?? [])
      .catch((e: Error) => warn(`could not delete backups that are no longer needed in ${tx.backupDir}: ${e.message}`));
    const what = daemon
      ? `${daemon} routes CEF from port ${opts.port} to the forwarder on 127.0.0.1:${opts.forwarderPort}${c.forwarderConfig.readiness ? `; readiness on http://${c.forwarderConfig.readiness}/` : ''}`
      : `the forwarder listens on port ${opts.port} (${c.forwarderConfig.listen.join(', ')}); readiness on http://${c.forwarderConfig.readiness}/`;
    deps.out(changed ? `Installed: ${what}.\n` : 'Nothing to change: everything is already in place.\n');
  }
}

/**
 * Checks the daemon's config as it is, before we change it: a config that is already broken would fail the
 * check after our write, and the rollback would blame our files. An error in our own drop-in (an older
 * install's) does not count: that file is about to be replaced.
 */
async function refuseBrokenDaemonConfig(
  ctx: Ctx,
  daemon: SyslogDaemon,
  binary: string,
  changes: FileChange[],
  ourDropin: string,
  svc: Services,
  mainFiles: Set<string>,
): Promise<void> {
  const daemonFiles = changes.some(
    (c) => c.kind !== 'unchanged' && (c.file.path === ourDropin || mainFiles.has(c.file.path) || c.file.path.startsWith('/etc/syslog-ng/')),
  );
  if (!daemonFiles && (await svc.runningDaemonPids(ctx.fs, daemon)).length > 0) return;
  const check = await checkDaemonSyntax(ctx, daemon, binary);
  if (check.ok) return;
  if (!check.ran) {
    ctx.log(`could not run ${SYNTAX_CHECK[daemon]} to check the current configuration: ${syntaxErrorLine(check.output)}`);
    return;
  }
  if (check.output.includes(ourDropin)) return;
  throw new CliError(
    `${daemon}'s configuration is already invalid before any change (${SYNTAX_CHECK[daemon]}: ${syntaxErrorLine(check.output)})`,
    {
      code: 'ERR_DAEMON_CONFIG_BROKEN',
      exitCode: 1,
      suggestion: `nothing was changed; fix that file (\`${SYNTAX_CHECK[daemon]}\` shows the errors), then run install again`,
    },
  );
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

/** A failed install step: what failed, and the detail shown as the suggestion after the rollback. */
class StepError extends Error {
  constructor(
    message: string,
    readonly detail: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The commands that undo a firewall or SELinux change (none for a reload or a relabel of files put back). */
export function inverseCommands(c: string[]): string[][] {
  if (c[0] === 'firewall-cmd' && c[2]?.startsWith('--add-port=')) {
    return [
      ['firewall-cmd', '--permanent', c[2].replace('--add-port=', '--remove-port=')],
      ['firewall-cmd', '--reload'],
    ];
  }
  if (c[0] === 'ufw' && c[1] === 'allow') return [['ufw', 'delete', 'allow', ...c.slice(2)]];
  if (c[0] === 'semanage' && c[2] === '-a') return [['semanage', 'port', '-d', ...c.slice(3)]];
  return [];
}

async function verifyChain(
  opts: InstallOptions,
  daemon: SyslogDaemon | null,
  sinkDesc: string,
  deps: InstallDeps,
): Promise<InstallResult['probe']> {
  const id = newProbeId();
  // A TCP listener behind a balancer expects its PROXY header: UDP goes straight in when it is open.
  const protocol = opts.protocol === 'udp' || (opts.proxy && opts.protocol === 'both') ? 'udp' : 'tcp';
  const started = Date.now();
  const message = buildProbeMessage(id);
  if (protocol === 'tcp' && opts.proxy) await sendWithProxyHeader(message, opts.port, opts.proxy);
  else await sendSyslog([message], { host: '127.0.0.1', port: opts.port, protocol });
  const path = daemon ? `${daemon} and the forwarder` : 'the forwarder';
  const st = await (deps.step ?? stepFromLog(deps.log))(`waiting for probe ${id} to come through ${path} (up to 30 s)`, () =>
    waitForProbe(DEFAULT_ADMIN, id, 30_000),
  );
  const probe = {
    id,
    received: Boolean(st?.received),
    accepted: Boolean(st?.accepted),
    latencyMs: st?.latencyMs ?? Date.now() - started,
    error: st?.error,
  };
  if (probe.accepted) {
    deps.out(
      `Probe ${id}: port ${opts.port}/${protocol} -> ${daemon ? `${daemon} -> ` : ''}forwarder -> ${sinkDesc}: accepted after ${probe.latencyMs} ms.\n`,
    );
  } else if (probe.received) {
    throw new CliError(`probe ${id} reached the forwarder but the sink did not accept it${probe.error ? `: ${probe.error}` : ''}`, {
      suggestion: 'run `sentinel-cef troubleshoot` (the configuration stays installed)',
    });
  } else {
    throw new CliError(`probe ${id} sent to port ${opts.port}/${protocol} never reached the forwarder`, {
      suggestion: 'run `sentinel-cef troubleshoot` (the configuration stays installed)',
    });
  }
  return probe;
}

function mergeState(
  prior: InstallState | null,
  touched: readonly InstallState['files'][number][],
  createdDirs: string[],
  now: Pick<InstallState, 'daemon' | 'init' | 'user' | 'applied' | 'options'> & { written: Record<string, string> },
): InstallState {
  const at = new Date().toISOString();
  const files = [...(prior?.files ?? [])];
  // Only the first original of each path counts: uninstall goes back to before the first install.
  for (const t of touched) if (!files.some((f) => f.path === t.path)) files.push(t);
  const dirs = [...(prior?.dirs ?? [])];
  for (const d of createdDirs) if (!dirs.includes(d)) dirs.push(d);
  return {
    version: 1,
    installedAt: prior?.installedAt ?? at,
    updatedAt: at,
    daemon: now.daemon,
    init: now.init,
    user: now.user,
    files,
    dirs,
    applied: [...(prior?.applied ?? []), ...now.applied],
    written: { ...prior?.written, ...now.written },
    options: now.options ?? prior?.options,
  };
}

async function resolveOwner(fs: FsRoot, o: { user: string; group: string }): Promise<{ uid: number; gid: number }> {
  const u = o.user === 'root' ? { uid: 0, gid: 0 } : await lookupUser(fs, o.user);
  const g = o.group === 'root' ? { uid: 0, gid: 0 } : await lookupUser(fs, o.group);
  return { uid: u?.uid ?? 0, gid: g?.gid ?? 0 };
}

async function prepareSinkFile(
  fs: FsRoot,
  file: string,
  user: UserIds,
  mkdir: (d: string, mode: number, owner?: UserIds) => Promise<void>,
  inRootDir: boolean,
  original: FileMeta | null,
  onUndo: (what: string, run: () => Promise<void>) => void,
) {
  const dir = path.dirname(file);
  if (!(await fs.exists(dir))) await mkdir(dir, 0o750, user);
  else await assertWritableBy(fs, dir, user);
  // In a directory that is not root's, root touches nothing: the forwarder makes its file there as its own user.
  if (!inRootDir) return;
  if (!original) {
    onUndo(`sink file ${file}`, () => fs.remove(file));
    await fs.writeAtomic(file, '', { mode: 0o640, uid: user.uid, gid: user.gid });
  } else {
    onUndo(`owner of ${file}`, () => fs.chown(file, original.uid, original.gid));
    await fs.chown(file, user.uid, user.gid);
  }
}

/** The forwarder's last lines as a suffix for an error, or '' when it said nothing. */
async function forwarderErrorLines(ctx: Ctx): Promise<string> {
  const lines = await forwarderLastLines(ctx).catch(() => []);
  return lines.length ? `\nthe forwarder said:\n${lines.join('\n')}` : '';
}

/** The file sink rotates beside its file, so the service user needs the directory, not only the file. */
async function assertWritableBy(fs: FsRoot, dir: string, user: UserIds): Promise<void> {
  const st = await fs.stat(dir);
  if (!st?.isDirectory) throw new UsageError(`${dir} is not a directory`, { suggestion: 'choose another --sink file:PATH' });
  const ok =
    st.uid === user.uid ? (st.mode & 0o300) === 0o300 : st.gid === user.gid ? (st.mode & 0o030) === 0o030 : (st.mode & 0o003) === 0o003;
  if (!ok) {
    throw new UsageError(`the ${SERVICE_USER} user cannot write in ${dir}`, {
      suggestion: `use a path in a new directory (install creates it), or run: chown ${SERVICE_USER} ${dir}`,
    });
  }
}

/** Clashes among our own ports, refused before anything is detected: each would fail only at start. */
function checkPortClashes(opts: InstallOptions): void {
  const adminPort = Number(DEFAULT_ADMIN.split(':').pop());
  if (opts.forwarderPort === opts.port && !opts.forwarderOnly) {
    throw new UsageError(
      `--forwarder-port ${opts.forwarderPort} is the syslog port: the daemon listens there and forwards to the forwarder`,
      { suggestion: 'leave --forwarder-port at its default (25226)' },
    );
  }
  if (opts.forwarderPort === adminPort) {
    throw new UsageError(`--forwarder-port ${opts.forwarderPort} is the forwarder's admin API port (${DEFAULT_ADMIN})`, {
      suggestion: 'leave --forwarder-port at its default (25226)',
    });
  }
  if (opts.port === adminPort) {
    throw new UsageError(`--port ${opts.port} is the forwarder's admin API port (${DEFAULT_ADMIN})`, {
      suggestion: 'use the standard syslog port 514',
    });
  }
}

/**
 * --durable promises that a power cut loses nothing the daemon accepted. Over plain TCP the daemon counts a line
 * as sent once it is in the socket, so what sits in the socket buffers is not its to resend (syslog-ng, reliable
 * disk buffer: 12,601 of a 20,000-line burst lost in 1 of 3 cuts, docs/RELIABILITY.md); RELP's answer after the
 * forwarder's disk append is what closes that hop.
 */
function durableNeedsRelp(why: string): UsageError {
  return new UsageError(`--durable needs rsyslog with RELP: ${why}, and a power cut loses what sits in the socket buffers`, {
    suggestion: 'install rsyslog and rsyslog-relp (apt-get install rsyslog-relp; dnf install rsyslog-relp), or drop --durable',
  });
}

/** Where a forwarder-only node answers its balancer's health checks unless --readiness says otherwise. */
export const DEFAULT_READINESS = '0.0.0.0:8080';
/** limits.maxConnectionAgeSec of a forwarder-only node unless --max-connection-age says otherwise (README, deploy/). */
export const DEFAULT_MAX_CONNECTION_AGE_SEC = 600;

/** The flags that only mean something without a daemon, and the readiness address, checked before detection. */
function checkForwarderOnlyOptions(opts: InstallOptions): { host: string; port: number } | null {
  if (!opts.forwarderOnly) {
    // Behind a daemon the balancer's connections end at the daemon: a PROXY header or ageing at the forwarder means nothing.
    const stray = opts.proxy !== undefined ? '--proxy' : opts.maxConnectionAge !== undefined ? '--max-connection-age' : null;
    if (stray)
      throw new UsageError(`${stray} goes with --forwarder-only`, {
        suggestion: 'add --forwarder-only (the forwarder listens on --port itself), or drop the flag',
      });
    // The readiness endpoint reports the forwarder's own state (sink, queue, intake), whoever sends to it.
    return opts.readiness === undefined ? null : checkReadinessAddress(opts, opts.readiness);
  }
  if (opts.daemon)
    throw new UsageError('--daemon and --forwarder-only exclude each other: a forwarder-only node has no syslog daemon', {
      suggestion: 'drop one of them',
    });
  if (opts.durable)
    throw new UsageError("--durable and --forwarder-only exclude each other: --durable puts the syslog daemon's queue on disk", {
      suggestion: 'drop one of them',
    });
  return checkReadinessAddress(opts, opts.readiness ?? DEFAULT_READINESS);
}

function checkReadinessAddress(opts: InstallOptions, readiness: string): { host: string; port: number } {
  const r = parseHostPort(readiness, '--readiness', '0.0.0.0:8080');
  const adminPort = Number(DEFAULT_ADMIN.split(':').pop());
  if (r.port === adminPort)
    throw new UsageError(`--readiness port ${r.port} is the forwarder's admin API port (${DEFAULT_ADMIN})`, {
      suggestion: `use ${DEFAULT_READINESS}`,
    });
  if (r.port === opts.port && opts.protocol !== 'udp')
    throw new UsageError(`--readiness port ${r.port} is the syslog port: both are TCP`, { suggestion: `use ${DEFAULT_READINESS}` });
  if (!opts.forwarderOnly && r.port === opts.forwarderPort)
    throw new UsageError(`--readiness port ${r.port} is the forwarder port (--forwarder-port): both are TCP`, {
      suggestion: `use ${DEFAULT_READINESS}`,
    });
  return r;
}

/** Switching between a daemon in front and none is an uninstall and an install: neither leaves the other's files. */
async function refuseModeSwitch(fs: FsRoot, opts: InstallOptions): Promise<void> {
  const prior = await readState(fs);
  if (!prior?.options) return;
  const was = prior.options.mode ?? 'normal';
  const now = opts.forwarderOnly ? 'forwarder-only' : 'normal';
  if (was === now) return;
  throw new UsageError(
    was === 'forwarder-only'
      ? 'this machine is installed forwarder-only (no syslog daemon); a daemon in front of it is another install'
      : `this machine is installed with ${prior.options.daemon} in front of the forwarder; --forwarder-only is another install`,
    { suggestion: 'run `sentinel-cef uninstall --yes` first, then install again' },
  );
}

/**
 * Forwarder-only: the syslog port must be free for the forwarder (ours from an earlier run is fine). A syslog
 * daemon there is the usual case on a stock image, so it is named with the command that frees the port.
 */
async function checkForwarderOnlyPorts(fs: FsRoot, opts: InstallOptions, readiness: { port: number }): Promise<void> {
  const listeners = await listListeners(fs, { withProcesses: true });
  const ours = (comm: string | undefined) => !comm || comm === 'node' || comm === 'sentinel-cef';
  for (const proto of protocolsOf(opts.protocol)) {
    for (const l of findListeners(listeners, opts.port, proto)) {
      if (ours(l.comm)) continue;
      const unit = l.comm === 'rsyslogd' ? 'rsyslog' : l.comm === 'syslog-ng' ? 'syslog-ng' : null;
      throw new UsageError(`${proto} port ${opts.port} is held by ${l.comm} (pid ${l.pid}): a forwarder-only node listens there itself`, {
        suggestion: unit
          ? `stop it with \`systemctl disable --now ${unit}${unit === 'rsyslog' ? ' syslog.socket' : ''}\` (or remove its ${proto} input on port ${opts.port}), or choose another --port`
          : 'stop it, or choose another --port',
      });
    }
  }
  await checkReadinessPort(fs, readiness, listeners);
}

async function checkReadinessPort(
  fs: FsRoot,
  readiness: { port: number },
  listeners?: Awaited<ReturnType<typeof listListeners>>,
): Promise<void> {
  const ours = (comm: string | undefined) => !comm || comm === 'node' || comm === 'sentinel-cef';
  for (const l of findListeners(listeners ?? (await listListeners(fs, { withProcesses: true })), readiness.port, 'tcp')) {
    if (!ours(l.comm))
      throw new UsageError(`--readiness port ${readiness.port} is already in use by ${l.comm} (pid ${l.pid})`, {
        suggestion: 'choose another --readiness HOST:PORT',
      });
  }
}

/** Without systemd nothing grants CAP_NET_BIND_SERVICE to the service user: a port below the kernel's floor cannot work. */
async function refuseUnprivilegedBind(fs: FsRoot, opts: InstallOptions, pid1: string): Promise<void> {
  const floor = Number((await fs.readText('/proc/sys/net/ipv4/ip_unprivileged_port_start').catch(() => null))?.trim() ?? 1024);
  const low = [...(opts.forwarderOnly ? [opts.port] : []), Number((opts.readiness ?? DEFAULT_READINESS).split(':').pop())].filter(
    (p) => p < floor,
  );
  if (low.length === 0) return;
  throw new UsageError(
    `${opts.forwarderOnly ? '--forwarder-only' : 'the forwarder'} on port ${low[0]} needs systemd to grant CAP_NET_BIND_SERVICE to the ${SERVICE_USER} user (PID 1 here is ${pid1})`,
    {
      suggestion: `use ports from ${floor} up (--port, --readiness) and let the balancer map 514 to them, or run \`sentinel-cef forward\` in a container (deploy/)`,
    },
  );
}

/**
 * Listen URLs on every address. Node's TCP sockets on [::] take IPv4 too (libuv clears IPV6_V6ONLY); UDP ones
 * follow net.ipv6.bindv6only, so with `separate` UDP needs 0.0.0.0 beside [::].
 */
export function forwarderOnlyListen(port: number, protocol: InstallOptions['protocol'], ipv6: Ipv6Mode, proxy?: 'v1' | 'v2'): string[] {
  const out: string[] = [];
  for (const p of protocolsOf(protocol)) {
    const hosts = ipv6 === 'none' ? ['0.0.0.0'] : p === 'udp' && ipv6 === 'separate' ? ['0.0.0.0', '::'] : ['::'];
    for (const h of hosts) out.push(listenUrlOf(p, h, port, p === 'tcp' ? proxy : undefined));
  }
  return out;
}

/** The install probe over TCP to a ?proxy= listener: the header a balancer would send (LOCAL, v2), then the line. */
export async function sendWithProxyHeader(message: string, port: number, version: 'v1' | 'v2'): Promise<void> {
  const header =
    version === 'v1'
      ? Buffer.from('PROXY UNKNOWN\r\n')
      : Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00]);
  await new Promise<void>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(5000, () => s.destroy(new Error(`timed out sending to 127.0.0.1:${port}`)));
    s.once('error', reject);
    s.end(Buffer.concat([header, Buffer.from(`${message}\n`)]), () => resolve());
  });
}

async function checkPortOwners(fs: FsRoot, opts: InstallOptions, daemon: SyslogDaemon) {
  const listeners = await listListeners(fs, { withProcesses: true });
  const daemonComm = daemon === 'rsyslog' ? 'rsyslogd' : 'syslog-ng';
  for (const proto of protocolsOf(opts.protocol)) {
    for (const l of findListeners(listeners, opts.port, proto)) {
      if (l.comm && l.comm !== daemonComm) {
        throw new CliError(`${proto} port ${opts.port} is already in use by ${l.comm} (pid ${l.pid})`, {
          suggestion: `stop it or choose another port with --port`,
        });
      }
    }
  }
  for (const l of findListeners(listeners, opts.forwarderPort)) {
    if (l.comm && l.comm !== 'node' && l.comm !== 'sentinel-cef') {
      throw new CliError(`port ${opts.forwarderPort} is already in use by ${l.comm} (pid ${l.pid})`, {
        suggestion: 'choose another with --forwarder-port',
      });
    }
  }
}

/** Debian's package of rsyslog's RELP modules (omrelp, imrelp); RHEL's has the same name. */
const RELP_PACKAGE = 'rsyslog-relp';

/**
 * The command that adds omrelp to an installed rsyslog, or null: already there, not apt, or no candidate. The
 * candidate must be the installed rsyslog's own version, or apt would upgrade rsyslog too; then the operator decides.
 */
async function planRelpInstall(fs: FsRoot, exec: Exec, distro: Distro, warn: (w: string) => void): Promise<string[] | null> {
  if (distro.packageManager !== 'apt-get' || (await hasRsyslogModule(fs, 'omrelp'))) return null;
  const r = await exec.run('apt-cache', ['policy', 'rsyslog', RELP_PACKAGE], { timeoutMs: 60_000 });
  if (r.exitCode !== 0) return null;
  const policy = parseAptPolicy(r.stdout);
  const relp = policy.get(RELP_PACKAGE)?.candidate;
  const rsyslog = policy.get('rsyslog')?.installed;
  if (!relp || !rsyslog) return null;
  if (relp !== rsyslog) {
    warn(
      `${RELP_PACKAGE} ${relp} needs rsyslog ${relp} (installed: ${rsyslog}); install leaves packages alone then: run \`apt-get install ${RELP_PACKAGE}\` yourself and install again for RELP`,
    );
    return null;
  }
  return [...RELP_INSTALL];
}

const RELP_INSTALL = ['apt-get', 'install', '-y', '--no-install-recommends', RELP_PACKAGE] as const;

/**
 * --dry-run with no syslog daemon: what installing one would run (`apt-get update` first when the package lists
 * are empty, as on a fresh image), and the daemon to plan for, at its standard path (its version unknown).
 */
async function planDaemonInstall(fs: FsRoot, distro: Distro, opts: InstallOptions): Promise<{ info: DaemonInfo; commands: string[][] }> {
  const want = opts.daemon ?? 'rsyslog';
  if (!distro.packageManager) {
    throw new CliError(`no syslog daemon found and no known package manager on ${distro.name}`, {
      suggestion: `install ${want} and run again`,
    });
  }
  const emptyLists = distro.packageManager === 'apt-get' && (await fs.glob('/var/lib/apt/lists/*_Packages*')).length === 0;
  const commands = [...(emptyLists ? [['apt-get', 'update']] : []), [distro.packageManager, 'install', '-y', want]];
  const binary = want === 'rsyslog' ? '/usr/sbin/rsyslogd' : '/usr/sbin/syslog-ng';
  return { info: { daemon: want, running: [], installed: [], binary, version: null }, commands };
}

/** `apt-cache policy A B` → each package's Installed and Candidate versions (absent when `(none)`). */
export function parseAptPolicy(text: string): Map<string, { installed?: string; candidate?: string }> {
  const out = new Map<string, { installed?: string; candidate?: string }>();
  let cur: { installed?: string; candidate?: string } | null = null;
  for (const line of text.split('\n')) {
    const pkg = /^(\S+):$/.exec(line);
    if (pkg) out.set(pkg[1], (cur = {}));
    const v = /^\s+(Installed|Candidate):\s*(\S+)/.exec(line);
    if (cur && v && v[2] !== '(none)') cur[v[1] === 'Installed' ? 'installed' : 'candidate'] = v[2];
  }
  return out;
}

async function offerDaemonInstall(distro: Distro, opts: InstallOptions, deps: InstallDeps) {
  const want = opts.daemon ?? 'rsyslog';
  if (!distro.packageManager) {
    throw new CliError(`no syslog daemon found and no known package manager on ${distro.name}`, {
      suggestion: `install ${want} and run again`,
    });
  }
  const cmd = [distro.packageManager, 'install', '-y', want];
  // With rsyslog, the acknowledged transport to the forwarder too (the plan adds rsyslog-relp after this).
  const relp = want === 'rsyslog' && opts.installRelp && distro.packageManager === 'apt-get' ? ` ${RELP_PACKAGE}` : '';
  const ok = await deps.prompter.confirm(`No ${want} found. Install it with \`${cmd.join(' ')}\`${relp ? ` (then${relp})` : ''}?`, {
    default: true,
    yes: opts.yes,
    flag: '--yes',
  });
  if (!ok) throw new CliError(`no syslog daemon to configure`, { suggestion: `install ${want} and run again` });
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  deps.log(`running ${cmd.join(' ')} (this can take a minute)`);
  let r = await deps.exec.run(cmd[0], cmd.slice(1), { timeoutMs: 600_000, env });
  // A fresh Debian or Ubuntu image has empty package lists: apt cannot locate anything until they are fetched.
  if (r.exitCode !== 0 && distro.packageManager === 'apt-get' && /Unable to locate package|has no installation candidate/.test(r.stderr)) {
    deps.log('the package lists are empty or stale: running apt-get update, then trying again');
    const u = await deps.exec.run('apt-get', ['update'], { timeoutMs: 600_000, env });
    if (u.exitCode !== 0)
      throw new CliError(`apt-get update failed: ${u.stderr.trim().split('\n').pop()}`, {
        suggestion: `fix the package sources, then install ${want} and run again`,
      });
    r = await deps.exec.run(cmd[0], cmd.slice(1), { timeoutMs: 600_000, env });
    // apt-get update exits 0 when it could not reach a source: its warnings say why the package is still unknown.
    const fetchFailed = u.stderr.split('\n').find((l) => /^(W|E): (Failed to fetch|Some index files failed)/.test(l));
    if (r.exitCode !== 0 && fetchFailed) {
      throw new CliError(`${cmd.join(' ')} failed after apt-get update: ${r.stderr.trim().split('\n').pop()}`, {
        suggestion: `apt-get update could not reach a package source (${fetchFailed.slice(0, 160)}); fix the network or the sources, then install ${want} and run again`,
      });
    }
  }
  if (r.exitCode !== 0) throw new CliError(`${cmd.join(' ')} failed: ${r.stderr.trim().split('\n').pop()}`);
  deps.log(`installed ${want}`);
  const info = await detectDaemon(deps.fs, deps.exec, want);
  if (!info.binary) throw new CliError(`${want} was installed but its binary was not found`);
  return { ...info, daemon: want };
}

/** A daemon runs but its program is not on this system (a daemon of another container, or a removed package): nothing can check its config. */
function unknownDaemonProgram(daemon: SyslogDaemon, running: DaemonInfo['running']): UsageError {
  const r = running.find((p) => p.daemon === daemon);
  const seen = r ? ` (pid ${r.pid} runs ${r.exe ?? 'a program /proc does not name'}, which is not on this system)` : '';
  return new UsageError(`${daemon} is running but its program was not found${seen}`, {
    code: 'ERR_DAEMON_PROGRAM',
    suggestion: `install the ${daemon} package on this system, or use --forwarder-only to run without a syslog daemon`,
  });
}

async function resolveSink(
  opts: InstallOptions,
  cloud: Cloud,
  deps: InstallDeps,
  env: NodeJS.ProcessEnv,
  warn: (w: string) => void,
): Promise<SinkChoice> {
  const modes = [
    opts.sink ? 'file' : null,
    // With --workspace, --dce names a data collection endpoint for the new rule, not a destination.
    (opts.dce && !opts.workspace) || opts.dcr ? 'dce' : null,
    opts.workspaceId ? 'workspace' : null,
    opts.workspace ? 'setup' : null,
  ].filter(Boolean);
  if (modes.length === 0 && deps.prompter.interactive) opts = await askDestination(opts, deps.prompter);
  if (modes.length > 1)
    throw new UsageError('choose one destination: <workspaceId> <primaryKey>, --dce/--dcr, --workspace, or --sink file:PATH');
  let setUpId: string | undefined;
  let app: App | undefined;
  if (opts.workspace) ({ opts, workspaceId: setUpId, app } = await setUpWorkspace(opts, cloud, deps, env));
  if (opts.sink) {
    const p = opts.sink.slice('file:'.length);
    // The forwarder would refuse it at start (forward --check does too): say so before anything changes.
    const st = await deps.fs.stat(p);
    if (st && !st.isFile && !st.isSymlink) {
      throw new UsageError(`file sink ${p} is ${st.isDirectory ? 'a directory' : 'a device or other special file'}, not a regular file`, {
        suggestion: 'choose a file path for --sink file:PATH (rows are appended to it as NDJSON)',
      });
    }
    return { sink: { type: 'file', path: p }, describe: `file ${p}` };
  }
  if (opts.dce || opts.dcr) {
    if (!opts.dce || !opts.dcr)
      throw new UsageError('--dce and --dcr go together', { suggestion: 'pass both the ingestion endpoint and the DCR immutable id' });
    if (opts.endpoint) throw new UsageError('--endpoint is for the workspace (Data Collector) path; with Logs Ingestion use --dce');
    const sink: Record<string, unknown> = { type: 'logs-ingestion', endpoint: opts.dce, dcrImmutableId: opts.dcr, cloud };
    if (opts.stream) sink.stream = opts.stream;
    let secretFile: SinkChoice['secretFile'];
    if (opts.managedIdentity) {
      sink.auth = opts.clientId ? { kind: 'managed-identity', clientId: opts.clientId } : { kind: 'managed-identity' };
    } else {
      const a = app ?? (await resolveApp(opts, deps, env));
      secretFile = { path: CLIENT_SECRET_PATH, value: a.secret };
      sink.auth = { kind: 'client-secret', tenantId: a.tenantId, clientId: a.clientId, clientSecretFile: CLIENT_SECRET_PATH };
      if (opts.authorityHost) sink.authorityHost = opts.authorityHost;
    }
    const workspaceId = setUpId ?? (await ruleWorkspace(opts.dcr, opts.dce, opts.armEndpoint, cloud, deps, env));
    return { sink, secretFile, describe: `Logs Ingestion ${opts.dce} (DCR ${opts.dcr})`, ...(workspaceId ? { workspaceId } : {}) };
  }
  let workspaceId = opts.workspaceId;
  if (!workspaceId) {
    if (!deps.prompter.interactive) {
      throw new UsageError('no destination given', {
        suggestion: 'pass <workspaceId> <primaryKey>, --dce URL --dcr ID, or --sink file:PATH',
      });
    }
    workspaceId = await deps.prompter.input('Log Analytics workspace id', {
      flag: '<workspaceId>',
      validate: (v) => /^[0-9a-fA-F-]{36}$/.test(v.trim()) || 'a workspace id is a GUID',
    });
    workspaceId = workspaceId.trim();
  }
  if (!/^[0-9a-fA-F-]{36}$/.test(workspaceId)) throw new UsageError(`workspace id ${workspaceId} is not a GUID`);
  let key: string;
  if (opts.primaryKey) {
    key = opts.primaryKey;
    warn('the key on the command line is visible to other local users in /proc while install runs; prefer --key-file or SENTINEL_CEF_KEY');
  } else if (opts.keyFile) key = await readSecretFile(opts.keyFile, 'workspace key');
  else if (env.SENTINEL_CEF_KEY) key = env.SENTINEL_CEF_KEY;
  else key = await deps.prompter.password('Workspace primary key', { flag: '<primaryKey>, --key-file or SENTINEL_CEF_KEY' });
  key = key.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, 'base64').length < 16) {
    throw new UsageError('the workspace key is not a base64 key', { suggestion: "copy the primary key from the workspace's Agents page" });
  }
  deps.exec.registerSecret(key);
  const target: LegacyTarget = { workspaceId, cloud, endpoint: opts.endpoint };
  const probe = await (deps.step ?? stepFromLog(deps.log))('asking the Data Collector API what it answers today (up to 8 s)', () =>
    (deps.probeLegacy ?? ((t, k) => probeDataCollector(t, k, { env })))(target, key),
  );
  const [head, ...rest] = legacyNotice(probe, workspaceId);
  warn(head);
  rest.forEach((l) => deps.log(l));
  const sink: Record<string, unknown> = { type: 'log-analytics', workspaceId, sharedKeyFile: SHARED_KEY_PATH, cloud };
  if (opts.endpoint) sink.endpoint = opts.endpoint;
  return {
    sink,
    secretFile: { path: SHARED_KEY_PATH, value: key },
    workspaceId,
    describe: `workspace ${workspaceId} (${cloud}${opts.endpoint ? `, ${opts.endpoint}` : ''})`,
  };
}

/** A service principal the forwarder sends as; the secret is registered with exec so no output shows it. */
type App = Extract<ForwarderIdentity, { kind: 'client-secret' }>;

/** The service principal from the flags, then AZURE_* (with --workspace), then prompts on a terminal. */
async function resolveApp(opts: InstallOptions, deps: InstallDeps, env: NodeJS.ProcessEnv, fromEnv = false): Promise<App> {
  const tenantId =
    opts.tenant ??
    (fromEnv ? env.AZURE_TENANT_ID : undefined) ??
    (await deps.prompter.input('Entra tenant id', { flag: '--tenant (or --managed-identity)' }));
  const clientId =
    opts.clientId ??
    (fromEnv ? env.AZURE_CLIENT_ID : undefined) ??
    (await deps.prompter.input('Application (client) id', { flag: '--client-id' }));
  let secret: string;
  if (opts.clientSecretFile) secret = (await readSecretFile(opts.clientSecretFile, 'client secret')).trim();
  else if (env.AZURE_CLIENT_SECRET) secret = env.AZURE_CLIENT_SECRET.trim();
  else secret = (await deps.prompter.password('Client secret', { flag: '--client-secret-file (or AZURE_CLIENT_SECRET)' })).trim();
  if (!secret) throw new UsageError('the client secret is empty');
  if (CONTROL_CHARS.test(secret))
    throw new UsageError('the client secret holds a control character or newline', { suggestion: 'put the secret alone on one line' });
  deps.exec.registerSecret(secret);
  return { kind: 'client-secret', tenantId, clientId, secret };
}

/**
 * `--workspace`: creates what Logs Ingestion needs in Azure, then continues as `--dce URL --dcr ID` with the
 * forwarder's identity: the service principal given (--tenant/--client-secret-file, or AZURE_TENANT_ID,
 * AZURE_CLIENT_ID and AZURE_CLIENT_SECRET), else the machine's managed identity.
 */
async function setUpWorkspace(
  opts: InstallOptions,
  cloud: Cloud,
  deps: InstallDeps,
  env: NodeJS.ProcessEnv,
): Promise<{ opts: InstallOptions; workspaceId?: string; app?: App }> {
  const appGiven = opts.tenant !== undefined || opts.clientSecretFile !== undefined;
  const appInEnv = Boolean(env.AZURE_CLIENT_SECRET && env.AZURE_CLIENT_ID && env.AZURE_TENANT_ID);
  const app = !opts.managedIdentity && (appGiven || appInEnv) ? await resolveApp(opts, deps, env, true) : undefined;
  const forwarder: ForwarderIdentity = app ?? { kind: 'managed-identity', ...(opts.clientId ? { clientId: opts.clientId } : {}) };
  const azure = await (deps.azure ?? createAzureClient)({
    env,
    scope: MONITOR_SCOPES[cloud],
    forwarder,
    interactive: deps.prompter.interactive,
    prompt: deps.log,
  });
  const principalId = opts.principalId ?? (await azure.forwarderPrincipalId());
  const armUrl = opts.armEndpoint ?? ARM_URLS[cloud];
  const r = await setupLogsIngestion(
    {
      workspace: opts.workspace!,
      principalId,
      armUrl,
      armScope: `${ARM_URLS[cloud]}/.default`,
      ingestionScope: MONITOR_SCOPES[cloud],
      ...(opts.dce ? { dceResourceId: opts.dce } : {}),
      dryRun: opts.dryRun,
      verify: opts.verify,
    },
    {
      request: (c) => azure.request(c),
      log: deps.log,
      sleep: deps.sleep ?? ((ms) => new Promise((res) => setTimeout(res, ms))),
      now: Date.now,
    },
  );
  let dce = r.endpoint;
  let dcr = r.dcrImmutableId;
  if (!dce || !dcr) {
    deps.log('the rule does not exist yet: its endpoint and immutable id are placeholders in the plan below');
    dce = 'https://new-dcr-endpoint.invalid';
    dcr = `dcr-${'0'.repeat(32)}`;
  }
  const auth = app ? { tenant: app.tenantId, clientId: app.clientId, managedIdentity: false } : { managedIdentity: true };
  return { opts: { ...opts, workspace: undefined, dce, dcr, ...auth }, workspaceId: r.customerId, app };
}

/** Azure's own ingestion hosts (a DCR's or a DCE's): only they have a rule in Azure Resource Manager to read. */
const AZURE_INGESTION_HOST = /\.ingest\.monitor\.azure\.(com|us|cn)$/i;

/**
 * An existing rule's workspace, recorded so troubleshoot can read the probes back without --workspace. Best effort
 * and never interactive: install goes on without it (one line says why).
 */
async function ruleWorkspace(
  dcr: string,
  dce: string,
  armUrl: string | undefined,
  cloud: Cloud,
  deps: InstallDeps,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  if (!armUrl && !AZURE_INGESTION_HOST.test(new URL(dce).hostname)) return undefined;
  try {
    const azure = await (deps.azure ?? createAzureClient)({ env, scope: MONITOR_SCOPES[cloud], forwarder: { kind: 'managed-identity' } });
    const found = await findRuleWorkspace(dcr, { armUrl: armUrl ?? ARM_URLS[cloud], armScope: `${ARM_URLS[cloud]}/.default` }, (c) =>
      azure.request(c),
    );
    if (found) deps.log(`the rule ${dcr} sends to workspace ${found}: troubleshoot reads the probes back from it`);
    else deps.log(`the rule ${dcr} is not visible to the signed-in identity: troubleshoot will need --workspace to read probes back`);
    return found;
  } catch (err) {
    const why = (err as Error).message.split('\n')[0].slice(0, 200);
    deps.log(`cannot read the rule ${dcr} to find its workspace (${why}): troubleshoot will need --workspace to read probes back`);
    return undefined;
  }
}

/** On a terminal with no destination flag: which path, then the values that path needs (checked as the flags are). */
async function askDestination(opts: InstallOptions, prompter: Prompter): Promise<InstallOptions> {
  const pick = await prompter.select('Where should the forwarder send events?', DESTINATION_CHOICES, {
    flag: '--dce/--dcr, --sink or <workspaceId>',
  });
  // Checked as the flag is, and worded by the same formatter (it names the flag for the next, scripted, run).
  const check = (key: 'dce' | 'dcr' | 'sink' | 'workspace') => (v: string) => {
    const r = installOptionsSchema.shape[key].safeParse(v.trim(), { reportInput: true });
    return r.success || formatOptionError({ issues: r.error.issues.map((i) => ({ ...i, path: [key, ...i.path] })) });
  };
  if (pick === 'dcr') {
    const dce = (
      await prompter.input('Logs ingestion endpoint of the DCR (or of its DCE)', { flag: '--dce', validate: check('dce') })
    ).trim();
    const dcr = (await prompter.input('DCR immutable id (dcr-…)', { flag: '--dcr', validate: check('dcr') })).trim();
    return { ...opts, dce, dcr };
  }
  if (pick === 'file') {
    const file = (
      await prompter.input('File for the rows (NDJSON), an absolute path', {
        flag: '--sink file:PATH',
        validate: (v) => check('sink')(`file:${v.trim()}`),
      })
    ).trim();
    return { ...opts, sink: `file:${file}` };
  }
  if (pick === 'workspace-setup') {
    const workspace = (
      await prompter.input('Workspace id (GUID) or workspace resource id', {
        flag: '--workspace',
        validate: check('workspace'),
      })
    ).trim();
    return { ...opts, workspace };
  }
  return opts;
}

/** The same rule as `forward --check`: a secret file other users can read is refused, an empty one named as empty. */
async function readSecretFile(p: string, label: string): Promise<string> {
  let text: string;
  try {
    assertPrivateFile(p, label);
    text = readFileSync(p, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw new UsageError(err.message, { suggestion: err.suggestion });
    throw new UsageError(`cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!text.trim()) throw new UsageError(`the ${label} file ${p} is empty`, { suggestion: `put the ${label} in it, alone on one line` });
  return text;
}
