import type { Context } from '../context.js';
import type { CheckOutcome } from '../types.js';
import { renderForwarderUnit, UNIT_NAME, UNIT_PATH } from '../../install/service.js';
import { BACKUP_ROOT, FileTransaction, readState, sha256, STATE_FILE, writeState } from '../../install/transaction.js';

const G = 'forwarder' as const;

/** The version in the header changes with every release: an upgrade alone is not drift. */
function normalise(text: string): string {
  return text.replace(/^# Managed by sentinel-cef \S+\./m, '# Managed by sentinel-cef.').replace(/\s+$/, '');
}

/** ExecStart's first word: the node install chose (a system fact it recorded in the unit). */
function nodeOf(unit: string): string | undefined {
  return /^ExecStart=(\S+)/m.exec(unit)?.[1];
}

async function systemctl(ctx: Context, args: string[]): Promise<void> {
  const r = await ctx.deps.exec.run('systemctl', args, { timeoutMs: 60_000 });
  if (r.exitCode !== 0)
    throw new Error(`systemctl ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.exitCode}`}`);
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
  const c = (await ctx.config()).config;
  const readinessPort = Number(/:(\d+)$/.exec(rec.readiness ?? '')?.[1] ?? 65535);
  const expected = renderForwarderUnit({
    nodePath: nodeOf(onDisk) ?? (await ctx.deps.exec.which('node')) ?? '/usr/bin/node',
    sinkFile: c?.sink.type === 'file' ? String(c.sink.path) : null,
    bindPrivilegedPort: Math.min(rec.mode === 'forwarder-only' ? rec.port : 65535, readinessPort) < 1024,
    intakeStateFile: rec.intakeStateFile !== undefined ? rec.intakeStateFile : (c?.intakeStateFile ?? null),
  });
  if (normalise(onDisk) === normalise(expected)) return { ...base, status: 'pass', message: `${UNIT_PATH} matches what install renders` };
  const have = new Set(onDisk.split('\n').map((l) => l.trim()));
  const lacking = expected.split('\n').filter((l) => /^(After|PartOf|WantedBy)=rsyslog\.service$/.test(l) && !have.has(l));
  const x = normalise(onDisk).split('\n');
  const y = normalise(expected).split('\n');
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
        // Plan: the unit's bytes, mode and owner are noted and backed up before the write; any failing step puts them back.
        const tx = new FileTransaction(ctx.fs);
        await tx.describe([{ path: UNIT_PATH }]);
        await tx.backupAll();
        try {
          await tx.write(UNIT_PATH, expected, { mode: 0o644 });
          await systemctl(ctx, ['daemon-reload']);
          // The [Install] links (rsyslog.service.wants/) follow WantedBy= only when enabled again.
          await systemctl(ctx, ['reenable', UNIT_NAME]);
        } catch (err) {
          await tx.rollback();
          await systemctl(ctx, ['daemon-reload']).catch(() => {});
          await systemctl(ctx, ['reenable', UNIT_NAME]).catch(() => {});
          throw err;
        }
        ctx.deps.progress(`rewrote ${UNIT_PATH}; the previous one is in ${tx.backupDir}`);
        // Our own text now: a later install must not take it for a hand edit.
        if (state) {
          state.written = { ...state.written, [UNIT_PATH]: sha256(Buffer.from(expected)) };
          await writeState(ctx.fs, state);
        }
      },
    },
  };
}
