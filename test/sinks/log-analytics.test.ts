import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sinkSchema } from '../../src/config/schema.js';
import { createSink, type SinkOptions } from '../../src/sinks/index.js';
import { dataCollectorSignature, dataCollectorStringToSign, dataCollectorUrl } from '../../src/sinks/log-analytics.js';
import type { SendResult, Sink } from '../../src/sinks/types.js';
import { SecretError } from '../../src/util/secrets.js';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';

let mock: MockAzure;
let dir: string;
const sinks: Sink[] = [];

const row = (i: number, extra: Record<string, string | number> = {}) => ({
  TimeGenerated: new Date(1_700_000_000_000 + i * 1000).toISOString(),
  DeviceVendor: 'Acme',
  DeviceProduct: 'FW',
  Activity: `event ${i}`,
  DestinationPort: 443,
  ...extra,
});
const rows = (n: number) => Array.from({ length: n }, (_, i) => row(i));

function laSink(over: Record<string, unknown> = {}, opts: SinkOptions = {}, m: MockAzure = mock): Sink {
  const cfg = sinkSchema.parse({
    type: 'log-analytics',
    workspaceId: m.workspaceId,
    endpoint: m.url,
    sharedKeyFile: writeSecretFile(dir, `key-${Math.random()}`, m.sharedKey),
    ...over,
  });
  const sink = createSink(cfg, { ca: m.caPem, timeoutMs: 5000, ...opts });
  sinks.push(sink);
  return sink;
}
const calls = () => mock.requests.filter((q) => q.api === 'log-analytics');

beforeAll(async () => {
  mock = await startMockAzure();
  dir = mkdtempSync(join(tmpdir(), 'la-test-'));
});
afterAll(async () => {
  for (const s of sinks) await s.close?.();
  await mock.close();
});
beforeEach(() => {
  mock.clearFailures();
  mock.reset();
});

describe('Data Collector API signature', () => {
  it('matches an HMAC-SHA256 computed independently with openssl', () => {
    const key = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'utf8').toString('base64');
    const date = 'Mon, 04 Apr 2016 08:00:00 GMT';
    const body = JSON.stringify([{ Message: 'grüße 🚀' }]);
    const length = Buffer.byteLength(body, 'utf8');
    expect(length).toBeGreaterThan(body.length); // the UTF-8 byte count, not JS string length
    const toSign = dataCollectorStringToSign(length, date);
    expect(toSign).toBe(`POST\n${length}\napplication/json\nx-ms-date:${date}\n/api/logs`);
    const hexKey = Buffer.from(key, 'base64').toString('hex');
    const viaOpenssl = execFileSync('openssl', ['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${hexKey}`, '-binary'], {
      input: toSign,
    });
    expect(dataCollectorSignature(key, length, date)).toBe(viaOpenssl.toString('base64'));
  });

  it('matches a fixed vector', () => {
    // key = base64("secret-key-for-test"), computed once with: printf '%s' "$S" | openssl dgst -sha256 -hmac secret-key-for-test -binary | base64
    const key = Buffer.from('secret-key-for-test').toString('base64');
    expect(dataCollectorSignature(key, 2, 'Thu, 01 Jan 2026 00:00:00 GMT')).toBe(
      execFileSync('sh', [
        '-c',
        `printf 'POST\\n2\\napplication/json\\nx-ms-date:Thu, 01 Jan 2026 00:00:00 GMT\\n/api/logs' | openssl dgst -sha256 -hmac secret-key-for-test -binary | base64`,
      ])
        .toString()
        .trim(),
    );
  });
});

describe('Data Collector API URL', () => {
  const ws = '11111111-2222-3333-4444-555555555555';
  it.each([
    ['AzureCloud', `https://${ws}.ods.opinsights.azure.com/api/logs?api-version=2016-04-01`],
    ['AzureUSGovernment', `https://${ws}.ods.opinsights.azure.us/api/logs?api-version=2016-04-01`],
    ['AzureChinaCloud', `https://${ws}.ods.opinsights.azure.cn/api/logs?api-version=2016-04-01`],
  ] as const)('%s', (cloud, url) => {
    expect(dataCollectorUrl({ workspaceId: ws, cloud }).href).toBe(url);
  });
  it('endpoint override (private link)', () => {
    expect(dataCollectorUrl({ workspaceId: ws, cloud: 'AzureCloud', endpoint: 'https://pl.example:8443/ods' }).href).toBe(
      'https://pl.example:8443/ods/api/logs?api-version=2016-04-01',
    );
  });
});

describe('log-analytics sink against the mock service', () => {
  it('delivers rows the mock accepts after checking signature, date, Content-Length and Log-Type', async () => {
    const sink = laSink();
    const batch = [row(1, { Message: 'naïve café — 日本語 🚀' }), row(2)];
    expect(await sink.send(batch)).toEqual({ status: 'success', accepted: 2 });
    expect(mock.rows.map((r) => r.table)).toEqual(['CommonSecurityLog_CL', 'CommonSecurityLog_CL']);
    expect(mock.rows[0]!.row.Message).toBe('naïve café — 日本語 🚀');
    expect(calls()[0]!.status).toBe(200);
  });

  it('warns once at start() that the API is retired', async () => {
    const warnings: string[] = [];
    const sink = laSink({}, { logger: { info() {}, warn: (m) => warnings.push(m) } });
    await sink.start?.();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/retired.*2026-09-14.*CommonSecurityLog_CL.*logs-ingestion/s);
  });

  // 403 can heal by itself (a rotated key written to the key file, a clock fixed): retryable with
  // `auth`, which the delivery loop retries for retry.authFailureMaxSec before dead-lettering.
  it('a wrong shared key → retryable auth 403 with a key hint and the measured clock, key not in the text', async () => {
    const wrong = Buffer.alloc(64, 7).toString('base64');
    const sink = laSink({ sharedKeyFile: writeSecretFile(dir, 'wrong-key', wrong) });
    const r = (await sink.send(rows(3))) as Extract<SendResult, { status: 'retryable' }>;
    expect(r).toMatchObject({ status: 'retryable', httpStatus: 403 });
    expect(r.error).toMatch(/InvalidAuthorization.*shared key/);
    expect(r.auth?.hint).toMatch(/shared key.*clock is \d+ s off.*within the 15 minutes/);
    expect(Math.abs(r.auth!.clockSkewMs!)).toBeLessThan(5_000);
    expect(JSON.stringify(r)).not.toContain(wrong);
    expect(mock.rows).toHaveLength(0);
  });

  it('a clock 20 minutes off → retryable auth 403 that says how far off the clock is', async () => {
    const sink = laSink({}, { now: () => Date.now() - 20 * 60_000 });
    const r = (await sink.send(rows(1))) as Extract<SendResult, { status: 'retryable' }>;
    expect(r).toMatchObject({ status: 'retryable', httpStatus: 403 });
    expect(r.error).toMatch(/15 minutes/);
    expect(r.auth?.hint).toMatch(/clock is 1[12]\d\d s off \(behind the service's Date header\).*time sync/);
    expect(r.auth!.clockSkewMs!).toBeLessThan(-19 * 60_000);
  });

  it('the service clock 30 minutes ahead (mock skew mode) → the same auth 403 until the skew is gone', async () => {
    const sink = laSink();
    mock.setClockOffset(30 * 60_000);
    try {
      const r = (await sink.send(rows(2))) as Extract<SendResult, { status: 'retryable' }>;
      expect(r.auth?.hint).toMatch(/clock is 1[78]\d\d s off \(behind/);
    } finally {
      mock.setClockOffset(0);
    }
    expect(await sink.send(rows(2))).toEqual({ status: 'success', accepted: 2 });
  });

  it.each([500, 503, 502, 504])('%i → retryable', async (status) => {
    const sink = laSink();
    mock.fail({ api: 'log-analytics', status, count: 1 });
    expect(await sink.send(rows(2))).toMatchObject({ status: 'retryable', httpStatus: status });
  });

  it('429 with Retry-After seconds', async () => {
    const sink = laSink();
    mock.fail({ api: 'log-analytics', status: 429, retryAfter: '12', count: 1 });
    expect(await sink.send(rows(2))).toMatchObject({ status: 'retryable', httpStatus: 429, retryAfterMs: 12_000 });
  });

  it('a reused keep-alive socket reset by the server is retried once on a fresh connection', async () => {
    const sink = laSink();
    expect((await sink.send(rows(1))).status).toBe('success');
    mock.fail({ api: 'log-analytics', destroy: true, count: 1 });
    expect(await sink.send(rows(2))).toEqual({ status: 'success', accepted: 2 });
    expect(calls().map((c) => c.status)).toEqual([200, 0, 200]);
  });

  it('a reset on a fresh connection is not retried inside the call → retryable', async () => {
    const sink = laSink();
    mock.fail({ api: 'log-analytics', destroy: true, count: 1 });
    const r = await sink.send(rows(2));
    expect(r.status).toBe('retryable');
    expect((r as { error: string }).error).toMatch(/ECONNRESET|socket hang up/);
  });

  it('404 → failure', async () => {
    const sink = laSink();
    mock.fail({ api: 'log-analytics', status: 404, count: 1 });
    expect(await sink.send(rows(2))).toMatchObject({ status: 'failure', httpStatus: 404 });
  });

  it('a batch-level 400 (InvalidLogType) is not bisected', async () => {
    const sink = laSink();
    mock.fail({ api: 'log-analytics', status: 400, body: JSON.stringify({ Error: 'InvalidLogType', Message: 'bad' }) });
    const r = await sink.send(rows(32));
    expect(r).toMatchObject({ status: 'failure', httpStatus: 400 });
    expect(calls()).toHaveLength(1);
  });

  it('400 on one poison record → partial with that record rejected', async () => {
    const sink = laSink();
    mock.fail({
      api: 'log-analytics',
      poison: { field: 'Activity', equals: 'event 3' },
      body: JSON.stringify({ Error: 'InvalidDataFormat', Message: 'bad record' }),
    });
    const r = await sink.send(rows(8));
    expect(r.status).toBe('partial');
    const p = r as Extract<SendResult, { status: 'partial' }>;
    expect(p.accepted).toBe(7);
    expect(p.rejected.map((x) => x.row.Activity)).toEqual(['event 3']);
    expect(p.rejected[0]!.reason).toMatch(/InvalidDataFormat: bad record/);
  });

  it('413 → split in halves', async () => {
    const small = await startMockAzure({ maxDataCollectorBytes: 1000 });
    const sink = laSink({}, {}, small);
    expect(await sink.send(rows(20))).toEqual({ status: 'success', accepted: 20 });
    expect(small.requests.some((q) => q.status === 413)).toBe(true);
    expect(small.rows).toHaveLength(20);
    await small.close();
  });

  it('truncates values over 32 KB and flags them; rejects records with more than 500 columns', async () => {
    const sink = laSink();
    const long = row(1, { Message: 'm'.repeat(40_000) });
    const wide: Record<string, string | number> = row(2);
    for (let i = 0; i < 501; i++) wide[`Extra${i}`] = 'x';
    const r = await sink.send([long, wide, row(3)]);
    expect(r.status).toBe('partial');
    const p = r as Extract<SendResult, { status: 'partial' }>;
    expect(p.accepted).toBe(2);
    expect(p.rejected[0]!.row).toBe(wide);
    expect(p.rejected[0]!.reason).toMatch(/500/);
    expect(p.truncated?.[0]?.row).toBe(long);
    const got = mock.rows.find((x) => x.row.Activity === 'event 1')!.row;
    expect((got.Message as string).length).toBe(32 * 1024);
    expect(got.AdditionalExtensions).toBe('sentinelCefTruncated=Message:40000');
    expect(mock.stats().overlongFields).toBe(0);
  });

  it('azureResourceId and a custom Log-Type are sent', async () => {
    const sink = laSink({
      logType: 'CEFTest',
      azureResourceId: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z',
    });
    expect((await sink.send(rows(1))).status).toBe('success');
    expect(mock.rows[0]!.table).toBe('CEFTest_CL');
  });
});

describe('log-analytics secrets', () => {
  it('refuses a shared key file readable by others', () => {
    const p = writeSecretFile(dir, 'open-key', mock.sharedKey);
    chmodSync(p, 0o644);
    const cfg = sinkSchema.parse({ type: 'log-analytics', workspaceId: mock.workspaceId, sharedKeyFile: p });
    expect(() => createSink(cfg)).toThrow(SecretError);
    expect(() => createSink(cfg)).toThrow(/mode 644/);
    try {
      createSink(cfg);
    } catch (err) {
      expect((err as SecretError).suggestion).toBe(`run: chmod 600 ${p}`);
    }
  });

  it('takes the key from SENTINEL_CEF_KEY when no file is configured', async () => {
    const cfg = sinkSchema.parse({ type: 'log-analytics', workspaceId: mock.workspaceId, endpoint: mock.url });
    const sink = createSink(cfg, { ca: mock.caPem, env: { SENTINEL_CEF_KEY: `  ${mock.sharedKey}\n` } });
    sinks.push(sink);
    expect((await sink.send(rows(1))).status).toBe('success');
  });

  it('refuses a key that is not base64', () => {
    const cfg = sinkSchema.parse({ type: 'log-analytics', workspaceId: mock.workspaceId });
    expect(() => createSink(cfg, { env: { SENTINEL_CEF_KEY: 'not base64 at all!' } })).toThrow(/not valid base64/);
    expect(() => createSink(cfg, { env: {} })).toThrow(/SENTINEL_CEF_KEY/);
  });
});
