import type { Context } from '../context.js';
import type { CheckOutcome } from '../types.js';
import { mustRun, renderForwarderUnit, unitInputsFrom, UNIT_NAME, UNIT_PATH } from '../../install/service.js';
import { firstSystemdWord } from '../../install/config-escape.js';
import { comparableRender } from '../../install/config-text.js';
import { parseHostPort } from '../../config/listen.js';
import {
  acquireLock,
  BACKUP_ROOT,
  FileTransaction,
  readState,
  sha256,
  STATE_FILE,
  writeState,
  type InstallState,
} from '../../install/transaction.js';

const G = 'forwarder' as const;

/**
 * The unit install renders from this record: its recorded inputs, or for a record older than them, inputs derived
 * as install derives them, with the node install chose read back from ExecStart (unescaped as systemd reads it).
 */
async function expectedUnit(ctx: Context, state: InstallState, onDisk: string): Promise<string | null> {
  const rec = state.options!;
  if (rec.unit) return renderForwarderUnit(rec.unit);
  const c = (await ctx.config()).config;
  // Without the config the sink's ReadWritePaths= cannot be derived: a unit rendered anyway would lock it out.
  if (!c) return null;
  const execStart = /^ExecStart=(.*)$/m.exec(onDisk)?.[1];
  const readinessPort = rec.readiness ? readinessPortOf(rec.readiness) : undefined;
  return renderForwarderUnit(
    unitInputsFrom({
      nodePath: (execStart !== undefined ? firstSystemdWord(execStart) : null) ?? (await ctx.deps.exec.which('node')) ?? '/usr/bin/node',
      sink: c.sink,
      ...(rec.mode ? { mode: rec.mode } : {}),
      port: rec.port,
      ...(readinessPort !== undefined ? { readinessPort } : {}),
      intakeStateFile: rec.intakeStateFile !== undefined ? rec.intakeStateFile : (c.intakeStateFile ?? null),
    }),
  );
}

/** The recorded --readiness address's port, read as install read it. */
function readinessPortOf(readiness: string): number | undefined {
  try {
    return parseHostPort(readiness, '--readiness').port;
  } catch {
    return undefined;
  }
}

/**
 * The installed systemd unit against what install renders from its record: fixes to the unit (the ordering against
 * rsyslog that stops restart loss, issue 15) reach an existing install only when the unit is rendered again.
 */
export async function checkUnit(ctx: Context): Promise<CheckOutcome> {
  const base = { id: 'forwarder.unit', title: 'Forwarder systemd unit current', group: G };
  if (!(await ctx.systemd())) return { ...base, status: 'skip', message: 'PID 1 is not systemd (the supervisor runs the forwarder)' };
  let state: Awaited<ReturnType<typeof readState>>;
  try {
    state = await readState(ctx.fs);
  } catch (err) {
    // A torn or unreadable record is not "nothing installed": say so rather than skip.
    return {
      ...base,
      status: 'fail',
      message: `${STATE_FILE} cannot be read: ${(err as Error).message}`,
      fix: 're-run `sentinel-cef install`',
    };
  }
  const rec = state?.options;
  if (!rec) return { ...base, status: 'skip', message: 'no install record to render the unit from' };
  const onDisk = await ctx.readText(UNIT_PATH);
  if (onDisk === null) {
    return { ...base, status: 'fail', message: `${UNIT_PATH} is missing`, fix: 're-run `sentinel-cef install`' };
  }
  const expected = await expectedUnit(ctx, state!, onDisk);
  if (expected === null) {
    return {
      ...base,
      status: 'skip',
      message: `cannot derive the unit while the config is invalid: fix ${ctx.opts.configPath} first (see forwarder.config)`,
    };
  }
  if (comparableRender(onDisk) === comparableRender(expected))
    return { ...base, status: 'pass', message: `${UNIT_PATH} matches what install renders` };
  const have = new Set(onDisk.split('\n').map((l) => l.trim()));
  const lacking = expected.split('\n').filter((l) => /^(After|PartOf|WantedBy)=rsyslog\.service$/.test(l) && !have.has(l));
  const x = comparableRender(onDisk).split('\n');
  const y = comparableRender(expected).split('\n');
  const i = x.findIndex((l, n) => l !== y[n]);
  const diff = `line ${(i < 0 ? x.length : i) + 1}: on disk "${(x[i] ?? '<end>').trim()}", expected "${(y[i < 0 ? x.length : i] ?? '<end>').trim()}"`;
  return {
    ...base,
    status: 'fail',
    message: lacking.length
      ? `${UNIT_PATH} lacks ${lacking.join(', ')}: a restart of rsyslog can lose the batch it was sending (an install older than the fix)`
      : `${UNIT_PATH} differs from what install renders (${diff})`,
    fix: `\`sentinel-cef troubleshoot --fix\` (or \`sentinel-cef install\`) rewrites it, then runs systemctl daemon-reload and systemctl reenable ${UNIT_NAME}`,
    details: { path: UNIT_PATH, ...(lacking.length ? { lacking } : {}) },
    safeFix: {
      description: `rewrite ${UNIT_PATH} as install renders it (backed up under ${BACKUP_ROOT}), systemctl daemon-reload, systemctl reenable ${UNIT_NAME}`,
      async apply() {
        // One writer at a time: install or uninstall may run meanwhile; the record is read again under the lock.
        const release = await acquireLock(ctx.fs);
        try {
          const now = await readState(ctx.fs);
          if (!now?.options) throw new Error(`${STATE_FILE} no longer records an install`);
          const unit = await expectedUnit(ctx, now, (await ctx.fs.readText(UNIT_PATH)) ?? '');
          if (unit === null) throw new Error(`cannot derive the unit while ${ctx.opts.configPath} is invalid`);
          const run = { exec: ctx.deps.exec };
          // Plan: the unit's bytes, mode and owner are noted and backed up before the write; any failing step puts them back.
          const tx = new FileTransaction(ctx.fs);
          await tx.describe([{ path: UNIT_PATH }]);
          await tx.backupAll();
          try {
            await tx.write(UNIT_PATH, unit, { mode: 0o644 });
            await mustRun(run, 'systemctl', ['daemon-reload']);
            // The [Install] links (rsyslog.service.wants/) follow WantedBy= only when enabled again.
            await mustRun(run, 'systemctl', ['reenable', UNIT_NAME]);
          } catch (err) {
            await tx.rollback();
            // The unit is back; systemd must read it again. Failures here are reported with the cause, not hidden.
            const also: string[] = [];
            for (const args of [['daemon-reload'], ['reenable', UNIT_NAME]]) {
              await mustRun(run, 'systemctl', args).catch((e: unknown) => also.push((e as Error).message));
            }
            if (also.length) throw new Error(`${(err as Error).message}; after restoring ${UNIT_PATH}: ${also.join('; ')}`, { cause: err });
            throw err;
          }
          ctx.deps.progress(`rewrote ${UNIT_PATH}; the previous one is in ${tx.backupDir}`);
          // Our own text now: a later install must not take it for a hand edit.
          now.written = { ...now.written, [UNIT_PATH]: sha256(Buffer.from(unit)) };
          await writeState(ctx.fs, now);
        } finally {
          await release();
        }
      },
    },
  };
}
