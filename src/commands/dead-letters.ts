/**
 * `sentinel-cef dead-letters list|replay`: what the forwarder could not deliver, and putting it back.
 *
 * Replay goes through the running forwarder: entries are POSTed in chunks to its loopback admin API
 * (POST /dead-letters/replay, authenticated by the token in <queue.dir>/replay.token), which appends
 * them to the disk queue; from there they take the normal path with the queue's durability and
 * at-least-once delivery. Without a running forwarder replay fails with one line: writing the queue
 * behind a running forwarder's back would corrupt it, and a queue nobody reads delivers nothing.
 * Entries with `raw` (parse failures) are parsed again and fail again unless the parser changed;
 * entries with `row` (refused by the sink) are queued as rows (FLAG_ROW) and sent as they stand.
 * Entries marked `accepted` (rows delivered with a truncated value, kept for reference) are never
 * replayed. Each chunk the forwarder accepted is recorded in the replay ledger (ledger.ts) before
 * the next is sent, so replay is idempotent per file range and a crash resends at most one chunk.
 */
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { deadLetterPath, loadForwarderConfig } from '../config/load.js';
import { parseHostPort } from '../config/listen.js';
import { DEFAULT_CONFIG_PATH, type ForwarderConfig } from '../config/schema.js';
import { CliError, UsageError, optionError } from '../errors.js';
import { intOption } from '../util/option-schemas.js';
import { REPLAY_PATH, REPLAY_TOKEN_FILE, REPLAY_TOKEN_HEADER, type ReplayRecord, type ReplayResponse } from '../forwarder/admin-types.js';
import { deadLetterFiles, readDeadLetterFile, type DeadLetterFileData, type StoredEntry } from '../dead-letters/files.js';
import { ledgerPath, mergeRanges, ReplayLedger, type Range } from '../dead-letters/ledger.js';

export const deadLettersOptionsSchema = z.object({
  action: z.enum(['list', 'replay']),
  config: z.string().min(1, 'must not be empty').optional(),
  /** One dead-letter file instead of the configured one and its rotations. */
  file: z.string().min(1, 'must not be empty').optional(),
  /** Case-insensitive substring of the reason. */
  reason: z.string().min(1, 'must not be empty').optional(),
  /** Entries written at or after this time. */
  since: z
    .union([z.date(), z.string()])
    .transform((v, ctx) => {
      const d = typeof v === 'string' ? sinceDate(v) : v;
      if (!d) {
        ctx.addIssue({ code: 'custom', message: SINCE_MUST });
        return z.NEVER;
      }
      return d;
    })
    .optional(),
  json: z.boolean().default(false),
  /** list: how many of the newest matching entries to show (0: all). */
  limit: intOption(0, 1_000_000).default(20),
  /** replay: entries per request (each request is one ledger line). */
  chunk: intOption(1, 10_000).default(500),
  dryRun: z.boolean().default(false),
});
export type DeadLettersOptions = z.input<typeof deadLettersOptionsSchema>;

export interface ListedEntry {
  file: string;
  offset: number;
  time?: string;
  kind: 'row' | 'raw' | 'none';
  reason: string;
  httpStatus?: number;
  accepted?: boolean;
  replayed: boolean;
}

export interface ListResult {
  files: Array<{ path: string; entries: number; malformed: number }>;
  /** Entries matching the filters (accepted-for-reference ones included). */
  total: number;
  replayed: number;
  accepted: number;
  malformed: number;
  from?: string;
  to?: string;
  byReason: Array<{ reason: string; count: number }>;
  entries: ListedEntry[];
}

export interface ReplayResult {
  dryRun: boolean;
  /** Entries the forwarder queued in this run (or would, with dryRun). */
  replayed: number;
  rows: number;
  raw: number;
  chunks: number;
  /** Matching entries skipped: replayed before (ledger), accepted for reference, or not replayable. */
  alreadyReplayed: number;
  accepted: number;
  malformed: number;
  ledger: string;
}

interface Context {
  config?: ForwarderConfig;
  files: string[];
  ledger: string;
}

const SINCE_AGE = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

const SINCE_MUST = 'must be an ISO time (2026-12-01T08:00:00Z) or an age (30m, 2h, 7d)';

function sinceDate(value: string, now = Date.now()): Date | null {
  const m = SINCE_AGE.exec(value.trim());
  if (m) return new Date(now - Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
  const t = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  return Number.isNaN(t) ? null : new Date(t);
}

function context(o: z.infer<typeof deadLettersOptionsSchema>): Context {
  const path = o.config ?? DEFAULT_CONFIG_PATH;
  const config = o.config !== undefined || existsSync(path) ? loadForwarderConfig({ config: path }) : undefined;
  if (o.file !== undefined) {
    if (!existsSync(o.file))
      throw new UsageError(`--file ${o.file} does not exist`, {
        suggestion: 'pass a dead-letter file (the configured path or a rotated <path>.N)',
      });
    return { config, files: [o.file], ledger: ledgerPath(config ? deadLetterPath(config) : o.file) };
  }
  if (!config) throw new UsageError(`no config file at ${path}`, { suggestion: 'pass --config FILE, or --file DEAD_LETTER_FILE' });
  const dl = deadLetterPath(config);
  return { config, files: deadLetterFiles(dl), ledger: ledgerPath(dl) };
}

function read(path: string): DeadLetterFileData {
  try {
    return readDeadLetterFile(path);
  } catch (err) {
    throw new CliError(`cannot read dead-letter file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      code: 'ERR_DEAD_LETTER_READ',
      suggestion: 'run as root (the file is 0600)',
    });
  }
}

function matches(e: StoredEntry, o: z.infer<typeof deadLettersOptionsSchema>): boolean {
  if (o.reason !== undefined && !e.reason.toLowerCase().includes(o.reason.toLowerCase())) return false;
  if (o.since !== undefined) {
    const t = e.time === undefined ? NaN : Date.parse(e.time);
    if (Number.isNaN(t) || t < o.since.getTime()) return false;
  }
  return true;
}

function openLedger(path: string): ReplayLedger {
  try {
    return new ReplayLedger(path);
  } catch (err) {
    throw new CliError(`cannot read the replay ledger ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      code: 'ERR_LEDGER_READ',
      suggestion: 'run as root (the ledger is 0600)',
    });
  }
}

const kindOf = (e: StoredEntry): ListedEntry['kind'] => (e.row !== undefined ? 'row' : e.raw !== undefined ? 'raw' : 'none');

function parseOptions(options: DeadLettersOptions): z.infer<typeof deadLettersOptionsSchema> {
  const r = deadLettersOptionsSchema.safeParse(options, { reportInput: true });
  if (!r.success) throw optionError(r.error);
  return r.data;
}

export async function runDeadLetters(options: DeadLettersOptions & { action: 'list' }): Promise<ListResult>;
export async function runDeadLetters(options: DeadLettersOptions & { action: 'replay' }): Promise<ReplayResult>;
export async function runDeadLetters(options: DeadLettersOptions): Promise<ListResult | ReplayResult>;
export async function runDeadLetters(options: DeadLettersOptions): Promise<ListResult | ReplayResult> {
  const o = parseOptions(options);
  const ctx = context(o);
  return o.action === 'list' ? list(o, ctx) : replay(o, ctx);
}

function list(o: z.infer<typeof deadLettersOptionsSchema>, ctx: Context): ListResult {
  const ledger = openLedger(ctx.ledger);
  const res: ListResult = { files: [], total: 0, replayed: 0, accepted: 0, malformed: 0, byReason: [], entries: [] };
  const reasons = new Map<string, number>();
  for (const path of ctx.files) {
    const f = read(path);
    let malformed = 0;
    for (const at of f.entries) {
      const e = at.entry;
      if (!e) {
        malformed++;
        continue;
      }
      if (!matches(e, o)) continue;
      res.total++;
      const replayed = ledger.covers(f.id, at.start, at.end);
      if (replayed) res.replayed++;
      if (e.accepted) res.accepted++;
      reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
      if (e.time !== undefined) {
        if (res.from === undefined || e.time < res.from) res.from = e.time;
        if (res.to === undefined || e.time > res.to) res.to = e.time;
      }
      res.entries.push({
        file: path,
        offset: at.start,
        time: e.time,
        kind: kindOf(e),
        reason: e.reason,
        ...(e.httpStatus !== undefined ? { httpStatus: e.httpStatus } : {}),
        ...(e.accepted ? { accepted: true } : {}),
        replayed,
      });
      if (o.limit > 0 && res.entries.length > o.limit) res.entries.shift();
    }
    res.malformed += malformed;
    res.files.push({ path, entries: f.entries.length, malformed });
  }
  res.byReason = [...reasons]
    .map(([reason, count]) => ({ reason, count }))
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  return res;
}

/** The forwarder's admin endpoint and replay token, or a one-line error saying why replay cannot run. */
function endpoint(ctx: Context): { base: string; token: string } {
  const config = ctx.config;
  if (!config)
    throw new UsageError('replay needs the forwarder config (its admin endpoint and queue directory)', {
      suggestion: `pass --config FILE (default ${DEFAULT_CONFIG_PATH})`,
    });
  if (config.admin === false) {
    throw new CliError('the admin endpoint is off in the config, and replay goes through it', {
      code: 'ERR_ADMIN_OFF',
      suggestion: 'set "admin": "127.0.0.1:25227" and restart the forwarder',
    });
  }
  const { host, port } = parseHostPort(config.admin, 'admin address');
  const tokenFile = join(config.queue.dir, REPLAY_TOKEN_FILE);
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read the replay token ${tokenFile}: ${code ?? (err as Error).message}`, {
      code: 'ERR_REPLAY_TOKEN',
      suggestion:
        code === 'ENOENT' ? 'is the forwarder running? start it (systemctl start sentinel-cef) and run replay again' : 'run as root',
    });
  }
  return { base: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, token };
}

/**
 * One HTTP call to the admin endpoint. node:http rather than fetch: fetch refuses some ports outright
 * ("bad port"), and the admin port is the operator's choice.
 */
function call(
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: string; timeoutMs: number },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method, headers: init.headers, timeout: init.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${init.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(init.body);
  });
}

function notRunning(base: string, err: unknown): CliError {
  const cause = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  const what = cause === 'ETIMEDOUT' ? 'the forwarder does not answer' : 'the forwarder is not running';
  return new CliError(`${what} (nothing answers at ${base}: ${cause})`, {
    code: 'ERR_FORWARDER_DOWN',
    suggestion: 'start it (systemctl start sentinel-cef) and run replay again; replay queues entries through it',
  });
}

async function replay(o: z.infer<typeof deadLettersOptionsSchema>, ctx: Context): Promise<ReplayResult> {
  const res: ReplayResult = {
    dryRun: o.dryRun,
    replayed: 0,
    rows: 0,
    raw: 0,
    chunks: 0,
    alreadyReplayed: 0,
    accepted: 0,
    malformed: 0,
    ledger: ctx.ledger,
  };
  const target = o.dryRun ? null : endpoint(ctx);
  if (target) {
    try {
      await call(`${target.base}/healthz`, { method: 'GET', timeoutMs: 5000 });
    } catch (err) {
      throw notRunning(target.base, err);
    }
  }
  const ledger = openLedger(ctx.ledger);
  try {
    for (const path of ctx.files) {
      const f = read(path);
      let records: ReplayRecord[] = [];
      let ranges: Range[] = [];
      let bytes = 0;
      const flush = async () => {
        if (!records.length) return;
        if (target) await post(target, records, res);
        // Recorded only after the forwarder queued the chunk: a crash before this line resends it.
        if (!o.dryRun) {
          try {
            ledger.record(f.id, mergeRanges(ranges), records.length);
          } catch (err) {
            throw new CliError(
              `cannot record the replay in ${ctx.ledger}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
              {
                code: 'ERR_LEDGER_WRITE',
                suggestion: `the forwarder queued the last ${records.length} entries; free the disk and run replay again (it sends those once more, nothing else twice)`,
              },
            );
          }
        }
        res.chunks++;
        res.replayed += records.length;
        records = [];
        ranges = [];
        bytes = 0;
      };
      for (const at of f.entries) {
        const e = at.entry;
        if (!e) {
          res.malformed++;
          continue;
        }
        if (!matches(e, o)) continue;
        if (e.accepted) {
          res.accepted++;
          continue;
        }
        if (ledger.covers(f.id, at.start, at.end)) {
          res.alreadyReplayed++;
          continue;
        }
        if (e.row !== undefined && e.row !== null && typeof e.row === 'object') {
          records.push({ row: e.row as Record<string, unknown> });
          res.rows++;
        } else if (typeof e.raw === 'string') {
          records.push(e.receivedAt !== undefined ? { raw: e.raw, receivedAt: e.receivedAt } : { raw: e.raw });
          res.raw++;
        } else {
          res.malformed++;
          continue;
        }
        ranges.push([at.start, at.end]);
        bytes += at.end - at.start;
        if (records.length >= o.chunk || bytes >= 1024 * 1024) await flush();
      }
      await flush();
    }
  } finally {
    ledger.close();
  }
  return res;
}

async function post(target: { base: string; token: string }, records: ReplayRecord[], done: ReplayResult): Promise<void> {
  let r: { status: number; body: string };
  try {
    const body = JSON.stringify({ records });
    r = await call(`${target.base}${REPLAY_PATH}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        [REPLAY_TOKEN_HEADER]: target.token,
      },
      body,
      timeoutMs: 60_000,
    });
  } catch (err) {
    throw notRunning(target.base, err);
  }
  let body: ReplayResponse | undefined;
  try {
    body = JSON.parse(r.body) as ReplayResponse;
  } catch {
    // reported below with the status
  }
  if (r.status === 200 && body?.appended === records.length) return;
  const so = `${done.replayed} entries replayed and recorded before this`;
  throw new CliError(`the forwarder refused the replay (HTTP ${r.status}: ${body?.error ?? 'no detail'}); ${so}`, {
    code: 'ERR_REPLAY_REFUSED',
    suggestion:
      r.status === 503
        ? 'run replay again once the queue has drained'
        : r.status === 403
          ? 'the forwarder restarted during replay (new token): run replay again'
          : 'check the forwarder log',
  });
}

function renderList(r: ListResult): string {
  const out: string[] = [];
  for (const f of r.files) out.push(`${f.path}: ${f.entries} entries${f.malformed ? ` (${f.malformed} malformed)` : ''}`);
  if (!r.files.length) out.push('no dead-letter files');
  out.push(
    `${r.total} matching entries${r.total ? ` from ${r.from ?? '?'} to ${r.to ?? '?'}` : ''}; ${r.replayed} replayed before, ${r.accepted} accepted (kept for reference, never replayed)`,
  );
  for (const { reason, count } of r.byReason)
    out.push(`${String(count).padStart(8)}  ${reason.length > 160 ? `${reason.slice(0, 160)}…` : reason}`);
  if (r.entries.length) {
    out.push(r.entries.length < r.total ? `newest ${r.entries.length}:` : 'entries:');
    for (const e of r.entries) {
      const flags = [e.kind, e.accepted ? 'accepted' : '', e.replayed ? 'replayed' : ''].filter(Boolean).join(',');
      out.push(`${e.time ?? '?'}  ${flags}  ${e.reason.length > 120 ? `${e.reason.slice(0, 120)}…` : e.reason}`);
    }
  }
  return out.join('\n') + '\n';
}

function renderReplay(r: ReplayResult): string {
  const out = [
    `${r.dryRun ? 'would replay' : 'replayed'} ${r.replayed} entries (${r.rows} rows, ${r.raw} raw messages) in ${r.chunks} request(s); skipped ${r.alreadyReplayed} replayed before, ${r.accepted} accepted for reference, ${r.malformed} malformed`,
  ];
  if (r.raw) out.push('note: raw messages are parsed again and fail again unless the parser changed; pick entries with --reason');
  if (!r.dryRun) out.push(`ledger: ${r.ledger}`);
  return out.join('\n') + '\n';
}

interface Flags {
  config?: string;
  file?: string;
  reason?: string;
  since?: string;
  json?: boolean;
  limit?: string;
  chunk?: string;
  dryRun?: boolean;
}

function optionsOf(action: 'list' | 'replay', f: Flags): DeadLettersOptions {
  return {
    action,
    config: f.config,
    file: f.file,
    reason: f.reason,
    since: f.since,
    json: Boolean(f.json),
    limit: f.limit,
    chunk: f.chunk,
    dryRun: Boolean(f.dryRun),
  };
}

function common(cmd: Command): Command {
  return cmd
    .option('--config <file>', `forwarder config (default ${DEFAULT_CONFIG_PATH})`)
    .option('--file <path>', 'read only this dead-letter file (default: the configured one and its rotations <path>.N, oldest first)')
    .option('--reason <text>', 'only entries whose reason contains TEXT (case-insensitive)')
    .option('--since <time>', 'only entries written since an ISO time or an age (30m, 2h, 7d)')
    .option('--json', 'print the result as JSON on stdout');
}

export function deadLettersCommand(): Command {
  const cmd = new Command('dead-letters')
    .description('List what the forwarder could not deliver, and replay it once the cause is fixed')
    .addHelpText(
      'after',
      `
Examples:
  sentinel-cef dead-letters list --since 2h
  sentinel-cef dead-letters replay --reason 403 --dry-run`,
    );
  cmd.addCommand(
    common(new Command('list').description('Show entries with their reason, counts per reason and the time range'))
      .option('--limit <n>', 'newest matching entries to show (0: all)', '20')
      .addHelpText(
        'after',
        `\nExamples:\n  sentinel-cef dead-letters list --limit 0 --json\n  sentinel-cef dead-letters list --reason 'HTTP 413' --since 7d`,
      )
      .action(async (f: Flags) => {
        const r = await runDeadLetters({ ...optionsOf('list', f), action: 'list' });
        process.stdout.write(f.json ? JSON.stringify(r) + '\n' : renderList(r));
      })
      .exitOverride(),
  );
  cmd.addCommand(
    common(new Command('replay').description('Queue entries again through the running forwarder (at-least-once; each file range once)'))
      .option('--dry-run', 'show what would be replayed; send and record nothing')
      .addOption(new Option('--chunk <n>', 'entries per request (one ledger record each)').default('500'))
      .addHelpText(
        'after',
        `\nExamples:\n  sentinel-cef dead-letters replay --dry-run\n  sentinel-cef dead-letters replay --since 1h --reason 403`,
      )
      .action(async (f: Flags) => {
        const r = await runDeadLetters({ ...optionsOf('replay', f), action: 'replay' });
        if (f.json) process.stdout.write(JSON.stringify(r) + '\n');
        else process.stderr.write(renderReplay(r));
      })
      .exitOverride(),
  );
  return cmd;
}
