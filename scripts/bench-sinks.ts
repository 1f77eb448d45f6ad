/**
 * Sink throughput against the mock Azure service running in its own process (HTTPS, real token flow).
 *   node --import tsx scripts/bench-sinks.ts [--rows N] [--batch N] [--latency-ms MS]
 * Prints rows/s per sink side by side, bytes on the wire vs raw JSON, the cost of row preparation
 * (per-field limit check) relative to plain JSON.stringify, and logs-ingestion with 1/2/4 calls in
 * flight when every data call takes MS longer (a stand-in for the round trip to Azure).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { sinkSchema } from '../src/config/schema.js';
import { prepareRow } from '../src/sinks/batch.js';
import { createSink } from '../src/sinks/index.js';
import type { CslRow } from '../src/parser/types.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '50000' },
    batch: { type: 'string', default: '5000' },
    'latency-ms': { type: 'string', default: '50' },
  },
});
const LATENCY = Number(values['latency-ms']);
const N = Number(values.rows);
const BATCH = Number(values.batch);
const dir = mkdtempSync(join(tmpdir(), 'bench-sinks-'));

function makeRow(i: number): CslRow {
  return {
    TimeGenerated: new Date(1_767_225_600_000 + i).toISOString(),
    DeviceVendor: 'Palo Alto Networks',
    DeviceProduct: 'PAN-OS',
    DeviceVersion: '10.2.4',
    DeviceEventClassID: 'TRAFFIC',
    Activity: 'end',
    LogSeverity: '3',
    Computer: 'fw-edge-01',
    SourceIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    DestinationIP: '203.0.113.17',
    SourcePort: 1024 + (i % 60000),
    DestinationPort: 443,
    Protocol: 'TCP',
    DeviceAction: 'allow',
    ReceivedBytes: 1234 + i,
    SentBytes: 5678,
    RequestURL: `https://example.com/api/v1/items/${i}?q=${(i * 7919) % 100000}`,
    DeviceCustomString1Label: 'Rule',
    DeviceCustomString1: 'allow-outbound-web',
    AdditionalExtensions: `PanOSSessionID=${i};PanOSRuleUUID=0b6b0c8a-2f5e-4c31-9d4e-${String(i).padStart(12, '0')}`,
    Message: `Traffic log entry number ${i} for session between hosts`,
  };
}
const rows = Array.from({ length: N }, (_, i) => makeRow(i));
const rawBytes = rows.reduce((n, r) => n + Buffer.byteLength(JSON.stringify(r)), 0);

const keyFile = join(dir, 'key');
const secretFile = join(dir, 'secret');
const mock = execa(
  process.execPath,
  ['--import', 'tsx', 'scripts/mock-azure.ts', '--key-file', keyFile, '--client-secret-file', secretFile, '--cert-dir', dir],
  {
    cwd: new URL('..', import.meta.url).pathname,
  },
);
const info = await new Promise<{
  url: string;
  workspaceId: string;
  tenantId: string;
  clientId: string;
  dcrImmutableId: string;
  caPath: string;
}>((resolve) => {
  mock.stdout!.on('data', (d: Buffer) => {
    const line = d
      .toString()
      .split('\n')
      .find((l) => l.startsWith('{'));
    if (line) resolve(JSON.parse(line));
  });
});
const ca = readFileSync(info.caPath, 'utf8');

async function run(name: string, config: unknown, concurrency?: number) {
  const sink = createSink(sinkSchema.parse(config), { ca, timeoutMs: 60_000, concurrency });
  await sink.start?.();
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < rows.length; i += BATCH) {
    const r = await sink.send(rows.slice(i, i + BATCH));
    if (r.status !== 'success') throw new Error(`${name}: ${JSON.stringify(r).slice(0, 300)}`);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  await sink.close?.();
  return { name, secs, rowsPerSec: N / secs, cpuMsPer1kRows: ((cpu.user + cpu.system) / 1000 / N) * 1000 };
}

// The mock's CA is self-signed: Node's fetch needs it via NODE_EXTRA_CA_CERTS, so read stats with https.
async function stats(): Promise<{ requests: number; wire: number; raw: number }> {
  const https = await import('node:https');
  const body = await new Promise<string>((resolve, reject) => {
    https
      .get(`${info.url}/_mock/requests`, { ca }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      })
      .on('error', reject);
  });
  const reqs = JSON.parse(body) as Array<{ api: string; bytes: number; rawBytes?: number }>;
  const data = reqs.filter((r) => r.api === 'logs-ingestion');
  return { requests: data.length, wire: data.reduce((n, r) => n + r.bytes, 0), raw: data.reduce((n, r) => n + (r.rawBytes ?? 0), 0) };
}

const results = [];
results.push(await run('file', { type: 'file', path: join(dir, 'out.ndjson') }));
results.push(
  await run('log-analytics', { type: 'log-analytics', workspaceId: info.workspaceId, endpoint: info.url, sharedKeyFile: keyFile }),
);
results.push(
  await run('logs-ingestion', {
    type: 'logs-ingestion',
    endpoint: info.url,
    dcrImmutableId: info.dcrImmutableId,
    authorityHost: info.url,
    auth: { kind: 'client-secret', tenantId: info.tenantId, clientId: info.clientId, clientSecretFile: secretFile },
  }),
);
const li = await stats();

async function control(path: string, body: unknown) {
  const https = await import('node:https');
  await new Promise<void>((resolve, reject) => {
    const req = https.request(`${info.url}/_mock/${path}`, { method: 'POST', ca }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
const liConfig = {
  type: 'logs-ingestion',
  endpoint: info.url,
  dcrImmutableId: info.dcrImmutableId,
  authorityHost: info.url,
  auth: { kind: 'client-secret', tenantId: info.tenantId, clientId: info.clientId, clientSecretFile: secretFile },
};
await control('fail', { api: 'logs-ingestion', delayMs: LATENCY });
const latency = [];
for (const c of [1, 2, 4]) latency.push(await run(`li c=${c} +${LATENCY}ms`, liConfig, c));
await control('clear', {});

// Row preparation overhead vs plain JSON.stringify, same rows, same run.
const t1 = process.hrtime.bigint();
let sink = 0;
for (const r of rows) sink += JSON.stringify(r).length;
const plain = Number(process.hrtime.bigint() - t1);
const t2 = process.hrtime.bigint();
for (const r of rows) sink += prepareRow(r, 64 * 1024).bytes;
const prepared = Number(process.hrtime.bigint() - t2);

mock.kill('SIGTERM');
await mock.catch(() => undefined);
rmSync(dir, { recursive: true, force: true });

console.log(`rows: ${N} (${(rawBytes / N).toFixed(0)} B/row JSON), batch ${BATCH}`);
for (const r of results) {
  console.log(
    `${r.name.padEnd(15)} ${r.rowsPerSec.toFixed(0).padStart(8)} rows/s  ${r.secs.toFixed(2)} s  client CPU ${r.cpuMsPer1kRows.toFixed(2)} ms/1k rows`,
  );
}
const la = results.find((r) => r.name === 'log-analytics')!;
const lis = results.find((r) => r.name === 'logs-ingestion')!;
console.log(`logs-ingestion/log-analytics throughput ratio: ${(lis.rowsPerSec / la.rowsPerSec).toFixed(2)}`);
console.log(
  `logs-ingestion: ${li.requests} calls, ${(li.raw / li.requests / 1e6).toFixed(2)} MB raw/call, gzip wire/raw ${(li.wire / li.raw).toFixed(3)}`,
);
for (const r of latency) console.log(`${r.name.padEnd(15)} ${r.rowsPerSec.toFixed(0).padStart(8)} rows/s  ${r.secs.toFixed(2)} s`);
console.log(
  `concurrency 2/1: ${(latency[1]!.rowsPerSec / latency[0]!.rowsPerSec).toFixed(2)}, 4/1: ${(latency[2]!.rowsPerSec / latency[0]!.rowsPerSec).toFixed(2)}`,
);
console.log(`prepareRow / JSON.stringify time ratio: ${(prepared / plain).toFixed(2)} (${sink > 0 ? 'ok' : ''})`);
