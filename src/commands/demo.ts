import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type chalk from 'chalk';
import { Chalk } from 'chalk';
import { useColour } from '../system/colour.js';
import { Command } from 'commander';
import { z } from 'zod';
import { forwarderConfigSchema } from '../config/schema.js';
import { CliError, UsageError, optionError } from '../errors.js';
import { secondsOption } from '../util/option-schemas.js';
import type { Health, ProbeStatus } from '../forwarder/admin-types.js';
import { startForwarder, type RunningForwarder } from '../forwarder/forwarder.js';
import { createLogger } from '../forwarder/logger.js';
import { buildProbeMessage, newProbeId, sendSyslog, wrapSyslog } from '../forwarder/send-test.js';
import type { CslRow } from '../parser/types.js';
import { DEMO_SAMPLES } from '../demo/samples.js';

/** Vendor samples in the shapes appliances send (CEF 0, escapes, a Cisco ASA line). */

export interface DemoOptions {
  json?: boolean;
  keep?: boolean;
  timeout?: string;
  azureMock?: boolean;
  ingestionDelay?: string;
}

export const demoOptionsSchema = z.object({
  json: z.boolean().optional(),
  keep: z.boolean().optional(),
  timeout: secondsOption(600).default(20),
});

export interface DemoResult {
  ok: boolean;
  dir: string;
  /** The temp directory is still there (--keep); otherwise it was deleted. */
  kept: boolean;
  rows: CslRow[];
  counters: Health['counters'];
  probes: ProbeStatus[];
  problems: string[];
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  return (await r.json()) as T;
}

/** Runs a forwarder with a file sink in a temp dir, sends probes and samples, verifies delivery. */
export async function runDemo(opts: DemoOptions = {}, log: (s: string) => void = () => {}): Promise<DemoResult> {
  const parsed = demoOptionsSchema.safeParse(opts, { reportInput: true });
  if (!parsed.success) throw optionError(parsed.error);
  const timeoutMs = parsed.data.timeout * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-cef-demo-'));
  const sinkPath = join(dir, 'rows.ndjson');
  const config = forwarderConfigSchema.parse({
    listen: ['tcp://127.0.0.1:0', 'udp://127.0.0.1:0'],
    queue: { dir: join(dir, 'queue') },
    batch: { flushMs: 200 },
    sink: { type: 'file', path: sinkPath },
    deadLetterFile: join(dir, 'dead-letter.ndjson'),
    admin: '127.0.0.1:0',
    drainTimeoutSec: 2,
    logLevel: 'warn',
  });
  let fwd: RunningForwarder | null = null;
  try {
    fwd = await startForwarder(config, { logger: createLogger('warn', process.stderr) });
    const tcp = fwd.addresses.find((a) => a.protocol === 'tcp')!;
    const udp = fwd.addresses.find((a) => a.protocol === 'udp')!;
    log(`forwarder listening on ${tcp.url} and ${udp.url}, admin http://${fwd.adminAddress}, files in ${dir}`);
    const probeIds = [newProbeId(), newProbeId()];
    const host = 'demo-host';
    const tcpLines = [
      buildProbeMessage(probeIds[0], 'rfc3164', host),
      ...DEMO_SAMPLES.cef.slice(0, 2).map((c) => wrapSyslog(c, { host })),
      wrapSyslog(DEMO_SAMPLES.asa, { host: 'asa-1', pri: 166 }),
      wrapSyslog(DEMO_SAMPLES.malformed, { host }),
    ];
    const udpLines = [
      buildProbeMessage(probeIds[1], 'rfc5424', host),
      ...DEMO_SAMPLES.cef.slice(2).map((c) => wrapSyslog(c, { host, format: 'rfc5424' })),
    ];
    // TCP with RFC 6587 octet counting, as rsyslog's omfwd sends with TCP_Framing="octet-counted".
    await sendSyslog(tcpLines, { host: tcp.host, port: tcp.port, protocol: 'tcp', octetCount: true });
    await sendSyslog(udpLines, { host: udp.host, port: udp.port, protocol: 'udp' });
    const sent = tcpLines.length + udpLines.length;
    const expectRows = sent - 1;
    log(
      `sent ${tcpLines.length} messages over TCP and ${udpLines.length} over UDP (2 probes, ${DEMO_SAMPLES.cef.length} vendor CEF, 1 Cisco ASA, 1 malformed)`,
    );
    const base = `http://${fwd.adminAddress}`;
    const end = Date.now() + timeoutMs;
    let h = await getJson<Health>(`${base}/healthz`);
    while (Date.now() < end) {
      h = await getJson<Health>(`${base}/healthz`);
      const settled = h.counters.received >= sent && h.queue.records === 0;
      if (settled) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const probes = await Promise.all(probeIds.map((id) => getJson<ProbeStatus>(`${base}/probes/${encodeURIComponent(id)}`)));
    const rows = existsSync(sinkPath)
      ? readFileSync(sinkPath, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as CslRow)
      : [];
    const problems: string[] = [];
    if (h.counters.received !== sent) problems.push(`received ${h.counters.received} of ${sent} messages`);
    if (rows.length !== expectRows) problems.push(`${rows.length} rows in the file sink, expected ${expectRows}`);
    if (h.counters.parseFailures !== 1) problems.push(`${h.counters.parseFailures} parse failures, expected 1 (the malformed line)`);
    if (h.counters.deadLettered !== 1) problems.push(`${h.counters.deadLettered} dead-lettered, expected 1`);
    for (const p of probes)
      if (!p.accepted)
        problems.push(`probe ${p.id} ${p.received ? 'received but not accepted' : 'not received'}${p.error ? `: ${p.error}` : ''}`);
    if (!rows.some((r) => r.DeviceVendor === 'Cisco')) problems.push('the Cisco ASA line did not become a row');
    return { ok: problems.length === 0, dir, kept: Boolean(opts.keep), rows, counters: h.counters, probes, problems };
  } finally {
    await fwd?.shutdown();
    if (opts.keep) log(`kept ${dir} (queue, rows, dead-letter file)`);
    else {
      rmSync(dir, { recursive: true, force: true });
      log(`deleted ${dir} (pass --keep to keep it)`);
    }
  }
}

const COLUMNS: Array<[string, string]> = [
  ['DeviceVendor', 'Vendor'],
  ['DeviceProduct', 'Product'],
  ['Activity', 'Activity'],
  ['LogSeverity', 'Sev'],
  ['SourceIP', 'Source'],
  ['DestinationIP', 'Destination'],
  ['DeviceAction', 'Action'],
  ['Computer', 'Computer'],
];

export function renderRowsTable(rows: CslRow[], c: typeof chalk): string {
  const cell = (v: unknown, w: number) => {
    const s = v === undefined ? '' : String(v);
    return s.length > w ? s.slice(0, w - 1) + '…' : s.padEnd(w);
  };
  const widths = COLUMNS.map(([k, title]) => Math.min(28, Math.max(title.length, ...rows.map((r) => String(r[k] ?? '').length))));
  const lines = [c.bold(COLUMNS.map(([, t], i) => cell(t, widths[i])).join('  '))];
  lines.push(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const r of rows) lines.push(COLUMNS.map(([k], i) => cell(r[k], widths[i])).join('  '));
  return lines.join('\n');
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('Run a local forwarder with a file sink, send probes and vendor samples, and show the rows (no root, no Azure)')
    .option('--json', 'print the result as JSON')
    .option('--keep', 'keep the temp directory (queue, rows, dead-letter file)')
    .option('--timeout <seconds>', 'how long to wait for delivery (1-600)', '20')
    .option(
      '--azure-mock',
      'instead: setup → ingest → readback against local mocks of Entra ID, ARM, Logs Ingestion and Logs Query (no Azure account)',
    )
    .option('--ingestion-delay <seconds>', 'with --azure-mock: how long the mock takes to make rows queryable (default 5)')
    .addHelpText(
      'after',
      `
Examples:
  sentinel-cef demo                 # rows table, counters, probes; the temp folder is deleted after
  sentinel-cef demo --json --keep   # the result as JSON; keep the folder to look at the queue and rows
  sentinel-cef demo --azure-mock    # install --workspace, forwarding and troubleshoot's readback, against mocks`,
    )
    .action(async (opts: DemoOptions) => {
      const c = new Chalk({ level: useColour(process.stdout) ? 1 : 0 });
      if (!opts.azureMock && opts.ingestionDelay !== undefined) {
        throw new UsageError('--ingestion-delay goes with --azure-mock', { suggestion: 'add --azure-mock, or drop the flag' });
      }
      if (opts.azureMock) {
        const { runAzureDemo } = await import('../demo/azure-mock.js');
        const { renderHops } = await import('../troubleshoot/render.js');
        const r = await runAzureDemo({ ingestionDelaySec: opts.ingestionDelay, timeoutSec: opts.timeout }, (s) =>
          process.stderr.write(`${s}\n`),
        );
        if (opts.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        else {
          process.stdout.write(`${renderHops(r.hops).join('\n')}\n\n`);
          process.stdout.write(`${r.rowsInTable} rows in CommonSecurityLog of mock workspace ${r.workspaceId} (DCR ${r.dcrImmutableId})\n`);
          if (r.ok) process.stdout.write(c.green('demo passed: setup, ingest and readback all worked; every probe is in the table\n'));
        }
        if (!r.ok) throw new CliError(`demo failed: ${r.problems.join('; ')}`);
        return;
      }
      const r = await runDemo(opts, (s) => process.stderr.write(`${s}\n`));
      if (opts.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      } else {
        process.stdout.write(`${renderRowsTable(r.rows, c)}\n\n`);
        const t = r.counters;
        process.stdout.write(
          `received ${t.received}  delivered ${t.delivered}  parse failures ${t.parseFailures}  dead-lettered ${t.deadLettered}  retried ${t.retried}  dropped ${t.dropped}\n`,
        );
        for (const p of r.probes) {
          process.stdout.write(
            `probe ${p.id}: ${p.accepted ? c.green(`accepted after ${p.latencyMs} ms`) : c.red(p.received ? 'received, not accepted' : 'not received')}\n`,
          );
        }
        process.stdout.write(r.ok ? c.green('demo passed: every expected event arrived\n') : '');
      }
      if (!r.ok) throw new CliError(`demo failed: ${r.problems.join('; ')}`);
    });
}
