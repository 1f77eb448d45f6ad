/**
 * The mock Azure service's own CPU per event, side by side in one run: Logs Ingestion calls of 1000
 * forwarder-serialised rows (real parser, prepareRow, gzip level 1 as the sink sends them) posted over
 * HTTPS by a client in another process, to a mock that sequence-checks every row either from
 * JSON.parse (onRows) or by scanning (scanBody + scanSeqRows), column checks on 1 call in 20 in both.
 *
 *   npx tsx scripts/load/bench-mock.ts [--calls 200] [--rounds 2]
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { parseLine } from '../../src/parser/index.js';
import { bodyOf, prepareRow } from '../../src/sinks/batch.js';
import { startMockAzure, type MockAzure } from '../../test/helpers/mock-azure.js';
import { cefLine, scanSeqRows } from './cef.js';
import { SeqChecker } from './chkseq.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '2' },
    role: { type: 'string', default: 'main' },
    url: { type: 'string' },
    bodies: { type: 'string' },
  },
});
const calls = Number(values.calls);

/** Posts the bodies on 4 keep-alive connections, as the sink does. */
async function client(): Promise<void> {
  const bodies = (JSON.parse(readFileSync(values.bodies!, 'utf8')) as string[]).map((b) => Buffer.from(b, 'base64'));
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
  let next = 0;
  const post = (body: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const req = https.request(
        values.url!,
        {
          method: 'POST',
          agent,
          headers: {
            Authorization: `Bearer ${process.env.BENCH_MOCK_TOKEN}`,
            'Content-Type': 'application/json',
            'Content-Encoding': 'gzip',
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const worker = async () => {
    while (next < calls) await post(bodies[next++ % bodies.length]!);
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

function token(m: MockAzure): Promise<string> {
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: m.clientId,
    client_secret: m.clientSecret,
    scope: 'https://monitor.azure.com//.default',
  });
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${m.url}/${m.tenantId}/oauth2/v2.0/token`,
      { method: 'POST', ca: m.caPem, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        let b = '';
        res.on('data', (c: string) => (b += c));
        res.on('end', () => resolve((JSON.parse(b) as { access_token: string }).access_token));
      },
    );
    req.on('error', reject);
    req.end(form.toString());
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-mock-'));
  const bodiesFile = join(dir, 'bodies.json');
  const distinct = Math.min(calls, 50);
  const bodies: string[] = [];
  const sentAt = Date.now();
  for (let c = 0; c < distinct; c++) {
    const rows = [];
    for (let i = 0; i < 1000; i++) {
      const r = parseLine(cefLine(`bm-${c % 4}-0`, c * 1000 + i, sentAt + i).trimEnd(), new Date());
      if (!r.ok) throw new Error('generated line did not parse');
      rows.push(prepareRow(r.row, 64 * 1024));
    }
    bodies.push(gzipSync(bodyOf(rows), { level: 1 }).toString('base64'));
  }
  writeFileSync(bodiesFile, JSON.stringify(bodies));
  console.log(`${calls} Logs Ingestion calls of 1000 rows (~0.8 MB JSON each) over HTTPS, 4 connections; column checks on 1 call in 20`);
  const results: Record<string, number[]> = { parse: [], scan: [] };
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const mode of ['parse', 'scan'] as const) {
      const checker = new SeqChecker();
      const mock = await startMockAzure({
        certDir: dir,
        keepRows: false,
        validateEvery: 20,
        onRows: (rows) => {
          for (const r of rows) checker.addRow(r.row, r.at);
        },
        ...(mode === 'scan'
          ? {
              scanBody: (raw: Buffer) => {
                const s = scanSeqRows(raw);
                return s && { rows: s.seqs.length, accept: (at: number) => checker.addScanned(s, at) };
              },
            }
          : {}),
      });
      const path = `/dataCollectionRules/${mock.dcrImmutableId}/streams/${mock.stream}?api-version=2023-01-01`;
      const args = ['--role', 'client', '--calls', String(calls), '--url', `${mock.url}${path}`, '--bodies', bodiesFile];
      // The token goes by environment, not argv (no bearer token in a process listing).
      const env = { ...process.env, NODE_EXTRA_CA_CERTS: mock.caPath, BENCH_MOCK_TOKEN: await token(mock) };
      const c0 = process.cpuUsage();
      const t0 = Date.now();
      const child = fork(new URL(import.meta.url).pathname, args, { env, stdio: 'inherit' });
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      const c = process.cpuUsage(c0);
      const ms = Date.now() - t0;
      const st = mock.stats();
      await mock.close();
      if (code !== 0) throw new Error(`client exited with ${code}`);
      if (checker.received !== distinct * 1000 || st.rowsAccepted['logs-ingestion'] !== calls * 1000)
        throw new Error(`${mode}: rows went missing`);
      const us = (c.user + c.system) / (calls * 1000);
      results[mode]!.push(us);
      console.log(
        `${mode === 'parse' ? 'JSON.parse + onRows' : 'scanBody (scanSeqRows)'}: mock CPU ${((c.user + c.system) / 1000).toFixed(0)} ms = ${us.toFixed(2)} µs per event (wall ${ms} ms; scanned ${st.scannedCalls}, column-checked ${st.validatedCalls} calls)`,
      );
    }
  }
  const best = (a: number[]) => Math.min(...a);
  console.log(`scan/parse CPU per event (best of each): ${(best(results.scan!) / best(results.parse!)).toFixed(2)}`);
  rmSync(dir, { recursive: true, force: true });
}

await (values.role === 'client' ? client() : main());
