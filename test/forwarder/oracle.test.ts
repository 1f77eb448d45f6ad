/**
 * The end-to-end oracle: a generated corpus (vendor shapes from test/fixtures/parser, long values,
 * non-ASCII, CEF escapes, pipes in the header, Cisco ASA/FTD lines, troubleshoot probes, lines that
 * are not CEF) through the real forwarder (TCP in, disk queue, delivery loop) into every sink, with
 * parse workers 0 and auto and batch.inFlight 1 and the default. Every row that comes out must equal
 * what `sentinel-cef parse` makes of its line (runParse's parseLine, at the receive time the row
 * carries), through the sink's documented per-field limit for the Azure sinks; each line exactly once;
 * every line of the file valid JSON and in input order; every line that does not parse in the
 * dead-letter file.
 */
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startForwarder, setWorkerEntry } from '../../src/forwarder/forwarder.js';
import { buildProbeMessage, newProbeId } from '../../src/forwarder/send-test.js';
import { parseLine } from '../../src/parser/index.js';
import type { CslRow } from '../../src/parser/types.js';
import { prng } from '../helpers/faults.js';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';
import { buildForwarderBundle, makeConfig, silent, tcpConnect, tempDir, waitFor, writeAndEnd } from './helpers.js';

const LINES = 1200;

type SinkKind = 'file' | 'logs-ingestion' | 'log-analytics';

/** Per-field limits of the APIs (protocols.md): 32 KB Data Collector, 64 KB Logs Ingestion; a file has none. */
const FIELD_LIMIT: Record<SinkKind, number> = { file: Infinity, 'log-analytics': 32 * 1024, 'logs-ingestion': 64 * 1024 };

/** `s` cut to at most `max` UTF-8 bytes without splitting a character. */
function cutUtf8(s: string, max: number): string {
  let bytes = 0;
  let i = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > max) break;
    bytes += n;
    i += ch.length;
  }
  return s.slice(0, i);
}

/**
 * The transformation the README documents for the Azure sinks, written here on its own: a value over
 * the per-field limit is cut and flagged in AdditionalExtensions as sentinelCefTruncated=<Column>:<bytes>
 * (the flag appended to what AdditionalExtensions holds, which is cut to leave room for it).
 */
function documented(kind: SinkKind, row: CslRow): CslRow {
  const max = FIELD_LIMIT[kind];
  const out: CslRow = { ...row };
  const notes: string[] = [];
  for (const [k, v] of Object.entries(row)) {
    if (typeof v !== 'string' || Buffer.byteLength(v, 'utf8') <= max) continue;
    out[k] = cutUtf8(v, max);
    notes.push(`${k}:${Buffer.byteLength(v, 'utf8')}`);
  }
  if (!notes.length) return row;
  const flag = `sentinelCefTruncated=${notes.join(',')}`;
  const ae = typeof out.AdditionalExtensions === 'string' ? out.AdditionalExtensions : '';
  out.AdditionalExtensions = ae ? `${cutUtf8(ae, max - Buffer.byteLength(flag, 'utf8') - 1)};${flag}` : flag;
  return out;
}

const fixtures = new URL('../fixtures/parser/', import.meta.url).pathname;

/** Fixture lines as bytes (one is Latin-1, not UTF-8), without blank lines and frames a syslog sender would not send. */
function fixtureLines(): Buffer[] {
  const out: Buffer[] = [];
  for (const f of readdirSync(fixtures)
    .filter((n) => n.endsWith('.log'))
    .sort()) {
    const buf = readFileSync(join(fixtures, f));
    let start = 0;
    for (let nl = buf.indexOf(10); start < buf.length; nl = buf.indexOf(10, start)) {
      const end = nl === -1 ? buf.length : nl;
      const line = buf.subarray(start, end);
      start = end + 1;
      // A frame starting with a digit reads as octet counting on TCP; blank lines are no messages.
      if (line.toString('latin1').trim() && !/^\d/.test(line.toString('latin1'))) out.push(line);
    }
  }
  return out;
}

const TEXTS = [
  'Zürich café ✓ 日本語 🚀',
  'a\\=b\\\\c\\nsecond line',
  'plain text',
  'path C:\\\\Windows\\\\System32',
  'quote " and <tag> & amp',
];

/** The corpus: fixture lines tagged with a sequence number, synthetic CEF, long values, probes. */
function corpus(seed: number): Buffer[] {
  const rand = prng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)]!;
  const base = fixtureLines();
  const lines: Buffer[] = [];
  for (let i = 0; i < LINES; i++) {
    const r = rand();
    if (r < 0.4) {
      const line = pick(base);
      // A CEF line gets its sequence as an extra extension (AdditionalExtensions); others go as they are.
      lines.push(
        line.includes('CEF:') && !line.toString('latin1').endsWith('|') ? Buffer.concat([line, Buffer.from(` oracleSeq=${i}`)]) : line,
      );
    } else if (r < 0.43) {
      lines.push(Buffer.from(buildProbeMessage(newProbeId(), rand() < 0.5 ? 'rfc3164' : 'rfc5424', `probe-host-${i % 3}`)));
    } else {
      // Long values: over the Data Collector's 32 KB and the Logs Ingestion 64 KB field limits.
      const long = rand() < 0.04 ? ` cs5Label=long cs5=${pick(TEXTS)}${'é日x'.repeat(Math.floor(5000 + rand() * 9000))}` : '';
      const msg = `${pick(TEXTS)} ${i}`;
      const head = `CEF:0|Ven\\|dor ${i % 5}|Prod\\\\uct|1.${i % 3}|sig-${i}|Name with \\| pipe ${pick(TEXTS)}|${i % 11}|`;
      const ext = `src=10.0.${i % 256}.${(i * 7) % 256} dst=192.0.2.${i % 200} spt=${1024 + i} dpt=443 act=allow suser=${pick(TEXTS)} msg=${msg} cs1Label=escaped cs1=a\\=b\\\\c\\nd cn1Label=n cn1=${i}${long} oracleSeq=${i}`;
      const fmt = rand();
      lines.push(
        Buffer.from(
          fmt < 0.5
            ? `<134>Nov 22 10:00:${String(i % 60).padStart(2, '0')} host-${i % 13} ${head}${ext}`
            : fmt < 0.8
              ? `<134>1 2026-11-22T10:00:00.${String(i % 1000).padStart(3, '0')}Z host-${i % 13} CEF - - - ${head}${ext}`
              : `<13>Nov 22 10:00:00 host-${i % 13} CEF: ${head.slice(4)}${ext}`,
        ),
      );
    }
  }
  return lines;
}

function withoutTime(row: CslRow): string {
  const { TimeGenerated: _t, ...rest } = row;
  return JSON.stringify(rest);
}

let bundle: URL;
let bundleDir = '';
let mock: MockAzure;

beforeAll(async () => {
  // Parse workers run the self-contained bundle, as deployed.
  bundle = pathToFileURL(await buildForwarderBundle('oracle-bundle-'));
  bundleDir = dirname(bundle.pathname);
  mock = await startMockAzure({ https: false, quiet: true });
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = mock.url;
}, 60_000);
const savedImds = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
afterAll(async () => {
  setWorkerEntry(null);
  if (savedImds === undefined) delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
  else process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = savedImds;
  await mock?.close();
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

function sinkConfig(kind: SinkKind, dir: string): Record<string, unknown> {
  switch (kind) {
    case 'file':
      return { type: 'file', path: join(dir, 'rows.ndjson') };
    case 'log-analytics':
      return {
        type: 'log-analytics',
        workspaceId: mock.workspaceId,
        endpoint: mock.url,
        sharedKeyFile: writeSecretFile(dir, 'workspace.key', mock.sharedKey),
      };
    case 'logs-ingestion':
      // Managed identity: its token endpoint may be plain HTTP (AZURE_POD_IDENTITY_AUTHORITY_HOST, set below).
      return { type: 'logs-ingestion', endpoint: mock.url, dcrImmutableId: mock.dcrImmutableId, auth: { kind: 'managed-identity' } };
  }
}

const matrix: Array<[SinkKind, 0 | 'auto', 1 | 'default']> = [];
for (const sink of ['file', 'logs-ingestion', 'log-analytics'] as const)
  for (const workers of [0, 'auto'] as const) for (const inFlight of [1, 'default'] as const) matrix.push([sink, workers, inFlight]);

describe('oracle: every row out equals `sentinel-cef parse` of its line', () => {
  it.each(matrix)(
    '%s sink, parse workers %s, batch.inFlight %s',
    async (kind, workers, inFlight) => {
      const dir = tempDir('oracle-');
      const lines = corpus(matrix.findIndex((m) => m[0] === kind && m[1] === workers && m[2] === inFlight) + 1);
      const ref = new Date();
      // What parse makes of each line; the key (the row without TimeGenerated) finds a row's line.
      const byKey = new Map<string, number[]>();
      const valid: number[] = [];
      const invalid: string[] = [];
      lines.forEach((line, i) => {
        const r = parseLine(line, ref);
        if (!r.ok) return void invalid.push(line.toString('utf8'));
        valid.push(i);
        const key = withoutTime(documented(kind, r.row));
        byKey.set(key, [...(byKey.get(key) ?? []), i]);
      });
      expect(valid.length).toBeGreaterThan(LINES * 0.9);
      expect(invalid.length).toBeGreaterThan(0);

      const config = makeConfig(dir, {
        listen: ['tcp://127.0.0.1:0'],
        admin: false,
        batch: { maxRecords: 200, flushMs: 20, parseWorkers: workers, ...(inFlight === 1 ? { inFlight: 1 } : {}) },
        limits: { maxMessageBytes: 256 * 1024 },
        sink: sinkConfig(kind, dir),
      });
      expect(config.batch.inFlight).toBe(inFlight === 1 ? 1 : 8);
      mock.reset();
      setWorkerEntry(workers === 'auto' ? bundle : null);
      const f = await startForwarder(config, { logger: silent });
      try {
        const s = await tcpConnect(f.addresses[0]!.port);
        await writeAndEnd(s, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
        await waitFor(
          () => f.metrics.totals.delivered >= valid.length && f.metrics.totals.parseFailures >= invalid.length,
          20_000,
          'every line settled',
        );
        await new Promise((r) => setTimeout(r, 100)); // nothing more arrives
      } finally {
        await f.shutdown();
        setWorkerEntry(null);
      }
      expect(f.metrics.totals.delivered).toBe(valid.length);

      let out: CslRow[];
      if (kind === 'file') {
        const text = readFileSync(config.sink.type === 'file' ? config.sink.path : '', 'utf8');
        expect(text.endsWith('\n')).toBe(true);
        out = text
          .split('\n')
          .slice(0, -1)
          .map((l, n) => {
            try {
              return JSON.parse(l) as CslRow;
            } catch {
              throw new Error(`line ${n + 1} of the file is not JSON: ${l.slice(0, 120)}`);
            }
          });
      } else {
        out = mock.rows.filter((r) => r.api === kind).map((r) => r.row as CslRow);
      }
      expect(out.length).toBe(valid.length);
      // The corpus reaches the paths it is meant to: probes, and values over the Azure field limits.
      expect(out.some((r) => r.DeviceCustomString2Label === 'ProbeId')).toBe(true);
      if (kind !== 'file') expect(out.some((r) => String(r.AdditionalExtensions ?? '').includes('sentinelCefTruncated='))).toBe(true);

      // Each row: its line (found by key, each line used once) parsed at the row's receive time.
      const used = new Map<string, number>();
      const order: number[] = [];
      for (const row of out) {
        const key = withoutTime(row);
        const candidates = byKey.get(key);
        const k = used.get(key) ?? 0;
        expect(candidates, `a row no line gives: ${key.slice(0, 300)}`).toBeDefined();
        expect(k, `a row more often than its line was sent: ${key.slice(0, 300)}`).toBeLessThan(candidates!.length);
        used.set(key, k + 1);
        const i = candidates![k]!;
        order.push(i);
        const r = parseLine(lines[i]!, new Date(row.TimeGenerated as string));
        expect(r.ok).toBe(true);
        expect(row).toEqual(documented(kind, (r as { row: CslRow }).row));
      }
      if (kind === 'file') expect(order).toEqual(valid);

      // Lines that do not parse are kept, not dropped.
      const dead = existsSync(f.deadLetterFile)
        ? readFileSync(f.deadLetterFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { raw?: string; accepted?: boolean; row?: CslRow })
        : [];
      expect(
        dead
          .filter((d) => d.raw !== undefined)
          .map((d) => d.raw)
          .sort(),
      ).toEqual([...invalid].sort());
      // A row accepted with a value cut keeps its full original there.
      const cut = out.filter((r) => String(r.AdditionalExtensions ?? '').includes('sentinelCefTruncated='));
      const kept = dead.filter((d) => d.accepted).map((d) => withoutTime(d.row!));
      expect(kept.length).toBe(cut.length);
      for (const k of kept) expect(k).not.toContain('sentinelCefTruncated=');
      rmSync(dir, { recursive: true, force: true });
    },
    30_000,
  );
});
