import { Chalk, type ChalkInstance } from 'chalk';
import { describeOverrides } from './install-options.js';
import type { ProbeHopRow } from './checks/readback.js';
import type { CheckGroup, CheckResult, CheckStatus, TroubleshootReport } from './types.js';

const GROUP_TITLES: Record<CheckGroup, string> = {
  forwarder: 'Forwarder',
  azure: 'Azure',
  daemon: 'Syslog daemon',
  system: 'System',
  e2e: 'End to end',
};

export { useColour } from '../system/colour.js';

function mark(s: CheckStatus, c: ChalkInstance, colour: boolean): string {
  if (!colour) return { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' }[s];
  return { pass: c.green('✔'), warn: c.yellow('⚠'), fail: c.red('✖'), skip: c.dim('–') }[s];
}

/** The report for people: grouped, one line per check, every fail and warn with its fix beneath. */
export function renderHuman(report: TroubleshootReport, opts: { colour: boolean; verbose?: boolean }): string {
  const c = new Chalk({ level: opts.colour ? 1 : 0 });
  const lines: string[] = describeOverrides(report.settings).map((l) => c.yellow(`note: ${l}`));
  if (lines.length) lines.push('');
  const groups = [...new Set(report.checks.map((r) => r.group))];
  for (const g of groups) {
    lines.push(c.bold(GROUP_TITLES[g]));
    for (const r of report.checks.filter((x) => x.group === g)) {
      const msg = r.status === 'skip' ? c.dim(r.message) : r.message;
      lines.push(`  ${mark(r.status, c, opts.colour)} ${r.title} ${c.dim(`[${r.id}]`)}: ${msg}`);
      if (r.fix && (r.status === 'fail' || r.status === 'warn')) lines.push(`      ${c.cyan('fix:')} ${r.fix}`);
      const fix = r.details?.fix as { description: string; applied: boolean; error?: string } | undefined;
      if (fix) lines.push(`      ${c.magenta('fixed:')} ${fix.description}${fix.applied ? '' : ` (failed: ${fix.error})`}`);
      if (r.id === 'e2e.readback' && Array.isArray(r.details?.hops))
        lines.push(...renderHops(r.details!.hops as ProbeHopRow[]).map((l) => `      ${l}`));
      if (opts.verbose && r.id === 'e2e.probes' && Array.isArray(r.details?.probes)) {
        for (const p of r.details!.probes as Array<{ id: string; stage: string; latencyMs?: number }>) {
          lines.push(`      ${p.id}: ${p.stage}${p.latencyMs !== undefined ? ` in ${p.latencyMs} ms` : ''}`);
        }
      }
    }
    lines.push('');
  }
  const count = (s: CheckStatus) => report.checks.filter((r) => r.status === s).length;
  const summary = `${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed, ${count('skip')} skipped`;
  const unverified = new Set(report.checks.filter((r) => r.details?.unverified === true).map((r) => r.id));
  const late = report.unfinished?.filter((id) => !unverified.has(id)) ?? [];
  const unproven = report.unfinished?.length
    ? ` (${[
        ...(late.length ? [`${late.join(', ')} did not finish within --timeout`] : []),
        ...(unverified.size ? [`${[...unverified].join(', ')} could not verify the probes`] : []),
      ].join('; ')}: nothing proven there)`
    : '';
  lines.push(report.ok ? c.green(`OK: ${summary}`) : c.red(`NOT OK: ${summary}${unproven}`));
  return `${lines.join('\n')}\n`;
}

/** 0: every check finished and none failed; 1: a check failed; 3: none failed, but some did not finish (not proven). */
export function troubleshootExitCode(report: TroubleshootReport): number {
  if (report.checks.some((c) => c.status === 'fail')) return 1;
  return report.ok ? 0 : 3;
}

export function renderJson(report: TroubleshootReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

export function statusCounts(checks: CheckResult[]): Record<CheckStatus, number> {
  const out: Record<CheckStatus, number> = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of checks) out[c.status]++;
  return out;
}

const ms = (v: number | null) =>
  v === null
    ? '—'
    : v < 1000
      ? `+${v} ms`
      : v < 120_000
        ? `+${(v / 1000).toFixed(1)} s`
        : `+${Math.floor(v / 60_000)}m${String(Math.round((v % 60_000) / 1000)).padStart(2, '0')}s`;

/**
 * Each probe's hops, latency from the hop before: sent → daemon → forwarder → ingestion API → table. Without a
 * daemon in the path its column says n/a; with one, the forwarder's receive time is all that is known, so the
 * daemon column holds sent → forwarder and a note under the table says so.
 */
export function renderHops(hops: ProbeHopRow[]): string[] {
  const rows = [['probe', 'sent', 'daemon', 'forwarder', 'API accepted', 'in table', 'Syslog copy']];
  for (const h of hops) {
    rows.push([
      h.id,
      h.sent ? h.sent.slice(11, 19) : '—',
      h.daemon ? `${ms(h.daemonMs)}${h.daemonMs === null ? '' : '*'}` : 'n/a',
      h.daemon ? (h.daemonMs === null ? '—' : '*') : ms(h.forwarderMs),
      ms(h.apiMs),
      ms(h.tableMs),
      h.inSyslog ? 'yes' : 'no',
    ]);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const table = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(w[i]))
      .join('  ')
      .trimEnd(),
  );
  const daemon = hops.find((h) => h.daemon)?.daemon;
  if (daemon)
    table.push(
      `* sent → received by the forwarder through ${daemon}: the daemon's own receive time does not reach the forwarder, so this includes its hop to the forwarder`,
    );
  return table;
}
