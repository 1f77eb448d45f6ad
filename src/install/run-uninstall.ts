import { stepFromLog } from '../system/progress.js';
import { CliError } from '../errors.js';
import { detectInitSystem } from '../system/processes.js';
import type { SyslogDaemon } from '../system/detect-daemon.js';
import { findDaemonBinary } from '../system/detect-daemon.js';
import type { UninstallOptions } from './options.js';
import type { InstallDeps } from './run-install.js';
import {
  acquireLock,
  isUnchanged,
  restoreOriginal,
  readState,
  removeEmptyDirs,
  STATE_FILE,
  sha256,
  BACKUP_ROOT,
  type InstallState,
} from './transaction.js';
import { checkDaemonSyntax, LOG_DIR, removeServiceUser, RUN_DIR, systemServices, UNIT_NAME, UNIT_PATH, type Ctx } from './service.js';
import { CLIENT_SECRET_PATH, DATA_DIR, SHARED_KEY_PATH } from './run-install.js';
import type { FsRoot } from '../system/fs-root.js';

/** Secrets install writes; their backups never outlive an uninstall. */
const SECRET_PATHS = [SHARED_KEY_PATH, CLIENT_SECRET_PATH];

/** Deletes every backed-up copy of a secret under the backup root, from this version's runs and older ones. */
async function removeSecretBackups(fs: FsRoot, state: InstallState): Promise<void> {
  const paths = new Set([...SECRET_PATHS, ...state.files.filter((f) => f.secret).map((f) => f.path)]);
  for (const f of state.files) if (f.backup && paths.has(f.path)) await fs.remove(f.backup);
  for (const stamp of await fs.readdir(BACKUP_ROOT)) {
    for (const p of paths) await fs.remove(`${BACKUP_ROOT}/${stamp}/files${p}`);
  }
}
import { fetchJson } from './probe.js';
import { DEFAULT_ADMIN } from '../config/schema.js';
import type { Health } from '../forwarder/admin-types.js';

/** Records still queued, from the forwarder's admin API; null when it does not answer. */
async function queuedRecords(): Promise<number | null> {
  try {
    const r = await fetchJson<Health>(`http://${DEFAULT_ADMIN}/healthz`);
    return r.body?.queue?.records ?? null;
  } catch {
    return null;
  }
}

export interface UninstallResult {
  restored: string[];
  removed: string[];
  dryRun: boolean;
}

/** Undoes install: stops the forwarder, puts every file back as it was before the first install. */
export async function runUninstall(
  opts: UninstallOptions,
  deps: Omit<InstallDeps, 'forwarderBundle' | 'mutateDropin'>,
): Promise<UninstallResult> {
  const { fs, exec, log } = deps;
  const svc = deps.services ?? systemServices;
  const state = await readState(fs);
  if (!state) {
    deps.out('Nothing to uninstall: no install state found.\n');
    return { restored: [], removed: [], dryRun: opts.dryRun };
  }
  const restored = state.files.filter((f) => f.existed).map((f) => f.path);
  const removed = state.files.filter((f) => !f.existed).map((f) => f.path);
  // A crashed install is undone whole, its user included; --purge removes everything install created.
  const crashed = state.status === 'in-progress';
  const dropUser = (opts.removeUser || opts.purge || crashed) && Boolean(state.user?.createdByUs);
  if (crashed) deps.out('The last install did not finish: undoing all of it.\n');
  const lines = [
    ...restored.map((p) => `  restore   ${p}`),
    ...removed.map((p) => `  remove    ${p}`),
    `  stop      the forwarder`,
    ...(dropUser ? [`  delete    user ${state.user!.name}`] : []),
    ...(opts.purge
      ? [
          `  delete    ${DATA_DIR} (queue and dead letters)`,
          `  delete    ${BACKUP_ROOT} (backups)`,
          `  delete    ${LOG_DIR} (forwarder logs)`,
        ]
      : []),
  ];
  deps.out(`Uninstall plan:\n${lines.join('\n')}\n`);
  if (opts.dryRun) {
    deps.out('Dry run: nothing was changed.\n');
    return { restored, removed, dryRun: true };
  }
  if (!(await deps.prompter.confirm('Uninstall sentinel-cef?', { default: false, yes: opts.yes, flag: '--yes' }))) {
    throw new CliError('cancelled; nothing was changed');
  }
  const release = await acquireLock(fs).catch((err: Error) => {
    throw new CliError(err.message);
  });
  const dirs = state.dirs.filter((d) => opts.purge || !(d === DATA_DIR || d.startsWith(`${DATA_DIR}/`)));
  try {
    await undo(state);
  } finally {
    // The state directory goes too once the lock in it is gone, if install made it and it is empty.
    await release(dirs);
  }
  deps.out(
    opts.purge
      ? 'Uninstalled; everything install created is deleted.\n'
      : `Uninstalled. Backups kept in ${BACKUP_ROOT} (secrets excepted).\n`,
  );
  return { restored, removed, dryRun: false };

  async function undo(state: InstallState): Promise<void> {
    // Check every path, then every backup, before touching anything, so neither a planted link nor a damaged
    // backup can leave a half-restored system.
    for (const f of state.files) {
      await fs.assertSafeParents(f.path);
      if (f.existed && (await fs.stat(f.path))?.isSymlink) await fs.inspect(f.path);
    }
    for (const f of state.files.filter((x) => x.existed)) {
      if (await isUnchanged(fs, f)) continue;
      const b = await fs.readBytes(f.backup!);
      if (!b || (f.sha256 && sha256(b) !== f.sha256)) {
        throw new CliError(`the backup of ${f.path} (${f.backup}) is missing or damaged; nothing was changed`);
      }
    }
    const init = await detectInitSystem(fs);
    const ctx: Ctx = { fs, exec, init: init.kind, log };
    const queued = await queuedRecords();
    await (deps.step ?? stepFromLog(log))('stopping the forwarder (it delivers what it holds first)', () => svc.stopForwarder(ctx));
    log('forwarder stopped');
    for (const f of [...state.files].reverse()) await restoreOriginal(fs, f);
    // The unit keeps its runtime directory across stops (the intake state file must outlive the forwarder).
    await fs.removeTree(RUN_DIR);
    if (state.files.some((f) => f.path === UNIT_PATH) && init.kind === 'systemd') {
      await exec.run('systemctl', ['daemon-reload']);
      await exec.run('systemctl', ['reset-failed', UNIT_NAME]);
    }
    await removeSecretBackups(fs, state);
    log(`restored ${restored.length} file(s), removed ${removed.length}`);

    const daemon = state.daemon as SyslogDaemon | null;
    if (daemon && (await svc.runningDaemonPids(fs, daemon)).length > 0) {
      const binary = await findDaemonBinary(fs, daemon);
      if (binary) {
        const check = await checkDaemonSyntax(ctx, daemon, binary);
        if (!check.ok) log(`warning: ${daemon} rejects its restored configuration; not restarting it: ${check.output.split('\n')[0]}`);
        else {
          const r = await (deps.step ?? stepFromLog(log))(`restarting ${daemon} on its original configuration (up to 90 s)`, () =>
            svc.restartDaemon(ctx, daemon, binary, { port: 0, protocols: [] }),
          );
          log(r.ok ? `${daemon} restarted on its original configuration` : `warning: ${daemon} restart failed: ${r.detail}`);
        }
      }
    }
    if (opts.purge) {
      await fs.removeTree(DATA_DIR);
      await fs.removeTree(BACKUP_ROOT);
      await fs.removeTree(LOG_DIR);
    } else if (queued !== 0) {
      log(
        `warning: ${DATA_DIR}/queue ${queued === null ? 'may hold' : `holds ${queued}`} undelivered record(s); kept (use --purge to delete)`,
      );
    }
    if (dropUser) await removeServiceUser(ctx);
    if (state.applied.length > 0) {
      // Opening a port or labelling one may serve other software by now: say what was done, undo nothing blindly.
      log(`kept the firewall/SELinux changes install made: ${state.applied.map((c) => c.join(' ')).join('; ')}`);
    }
    await fs.remove(STATE_FILE);
    await removeEmptyDirs(fs, dirs);
  }
}
