import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { sinkSchema } from '../../src/config/schema.js';
import { createSink, type SinkOptions } from '../../src/sinks/index.js';
import { ingestionUrl } from '../../src/sinks/logs-ingestion.js';
import { authorityHostFor, scopeFor } from '../../src/sinks/token.js';
import type { SendResult, Sink } from '../../src/sinks/types.js';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';

let mock: MockAzure;
let dir: string;
const sinks: Sink[] = [];

function row(i: number, extra: Record<string, string | number> = {}) {
  return {
    TimeGenerated: new Date(1_700_000_000_000 + i).toISOString(),
    DeviceVendor: 'Acme',
    DeviceProduct: 'FW',
    Activity: `event ${i}`,
    SourcePort: 1000 + i,
    ...extra,
  };
}
const rows = (n: number) => Array.from({ length: n }, (_, i) => row(i));

function ingestionSink(over: Record<string, unknown> = {}, opts: SinkOptions = {}, m: MockAzure = mock): Sink {
  const cfg = sinkSchema.parse({
    type: 'logs-ingestion',
    endpoint: m.url,
    dcrImmutableId: m.dcrImmutableId,
    authorityHost: m.url,
    auth: {
      kind: 'client-secret',
      tenantId: m.tenantId,
      clientId: m.clientId,
      clientSecretFile: writeSecretFile(dir, `secret-${Math.random()}`, m.clientSecret),
    },
    ...over,
  });
  const sink = createSink(cfg, { ca: m.caPem, timeoutMs: 5000, ...opts });
  sinks.push(sink);
  return sink;
}

function dataCalls(m: MockAzure = mock) {
  return m.requests.filter((q) => q.api === 'logs-ingestion');
}

beforeAll(async () => {
  mock = await startMockAzure();
  dir = mkdtempSync(join(tmpdir(), 'li-test-'));
});
afterAll(async () => {
  for (const s of sinks) await s.close?.();
  await mock.close();
});
beforeEach(() => {
  mock.clearFailures();
  mock.reset();
  mock.setTokenLifetime(3600);
});

describe('logs-ingestion: delivery and auth', () => {
  it('gets a token through @azure/identity from the mock authority over HTTPS and delivers gzip JSON', async () => {
    const sink = ingestionSink();
    await sink.start?.();
    const r = await sink.send([row(1), row(2)]);
    expect(r).toEqual({ status: 'success', accepted: 2 });
    expect(mock.rows.map((x) => x.row.Activity)).toEqual(['event 1', 'event 2']);
    expect(mock.rows[0]!.table).toBe('Custom-CommonSecurityLog');
    expect(mock.stats().tokensIssued).toBe(1);
    const call = dataCalls()[0]!;
    expect(call.status).toBe(204);
    expect(call.rawBytes).toBeGreaterThan(call.bytes); // gzip on the wire
    expect(mock.stats().typeMismatches).toEqual([]);
  });

  it('reuses the cached token and one keep-alive connection across sends', async () => {
    const sink = ingestionSink({}, { concurrency: 1 });
    for (let i = 0; i < 5; i++) expect((await sink.send(rows(3))).status).toBe('success');
    expect(mock.stats().tokensIssued).toBe(1);
    expect(dataCalls()).toHaveLength(5);
    // token fetch + data calls share the pool: far fewer TLS connections than requests
    expect(mock.stats().connectionsOpened).toBeLessThanOrEqual(2);
  });

  it('caches the token and asks the credential again ahead of expiry', async () => {
    let now = Date.now();
    let calls = 0;
    const credential = {
      async getToken(scope: string | string[]) {
        calls++;
        expect(scope).toBe('https://monitor.azure.com//.default');
        // A real token from the mock authority, valid for 200 s from the injected clock.
        const t = await new ClientSecretCredential(mock.tenantId, mock.clientId, mock.clientSecret, {
          authorityHost: mock.url,
          disableInstanceDiscovery: true,
          tlsOptions: { ca: mock.caPem },
        }).getToken(scope);
        return { token: t.token, expiresOnTimestamp: now + 200_000 };
      },
    };
    const sink = ingestionSink({}, { now: () => now, credential });
    expect((await sink.send(rows(1))).status).toBe('success');
    now += 50_000;
    expect((await sink.send(rows(1))).status).toBe('success');
    expect(calls).toBe(1);
    now += 60_000; // less than half the lifetime left: refresh ahead of expiry
    expect((await sink.send(rows(1))).status).toBe('success');
    expect(calls).toBe(2);
  });

  it('401 → refreshes the token once and resends', async () => {
    const sink = ingestionSink();
    expect((await sink.send(rows(2))).status).toBe('success');
    mock.revokeTokens();
    const r = await sink.send(rows(2));
    expect(r).toEqual({ status: 'success', accepted: 2 });
    expect(dataCalls().map((c) => c.status)).toEqual([204, 401, 204]);
    expect(mock.stats().tokensIssued).toBe(2);
  });

  it('401 again after the refresh → retryable (credentials problem, data stays queued)', async () => {
    const sink = ingestionSink();
    mock.fail({ api: 'logs-ingestion', status: 401, count: 2 });
    const r = await sink.send(rows(2));
    expect(r).toMatchObject({ status: 'retryable', httpStatus: 401, retryAfterMs: 60_000 });
    expect(dataCalls()).toHaveLength(2);
  });

  it("a wrong client secret → retryable with the authority's words and no secret in the text", async () => {
    const sink = ingestionSink({
      auth: {
        kind: 'client-secret',
        tenantId: mock.tenantId,
        clientId: mock.clientId,
        clientSecretFile: writeSecretFile(dir, 'bad-secret', 'not-the-secret-value'),
      },
    });
    const r = await sink.send(rows(1));
    expect(r.status).toBe('retryable');
    const text = (r as { error: string }).error;
    expect(text).toMatch(/AADSTS7000215/);
    expect(text).not.toContain('not-the-secret-value');
    expect((r as { retryAfterMs?: number }).retryAfterMs).toBe(60_000);
    expect(dataCalls()).toHaveLength(0);
  });

  it('start() does not throw when the authority is unreachable', async () => {
    const warnings: string[] = [];
    const sink = ingestionSink({ authorityHost: 'https://127.0.0.1:1' }, { logger: { info() {}, warn: (m) => warnings.push(m) } });
    await expect(sink.start?.()).resolves.toBeUndefined();
    expect(warnings.join('\n')).toMatch(/cannot get a token yet/);
  });
});

describe('logs-ingestion: status classification', () => {
  it.each([500, 502, 503, 504])('%i → retryable', async (status) => {
    const sink = ingestionSink();
    mock.fail({ api: 'logs-ingestion', status, count: 1 });
    const r = await sink.send(rows(2));
    expect(r).toMatchObject({ status: 'retryable', httpStatus: status });
    expect(mock.rows).toHaveLength(0);
  });

  it.each([
    ['seconds', { retryAfter: '7' }, 7000],
    ['retry-after-ms', { retryAfterMs: 1500 }, 1500],
  ])('429 with Retry-After (%s) → retryable with retryAfterMs', async (_n, rule, ms) => {
    const sink = ingestionSink();
    mock.fail({ api: 'logs-ingestion', status: 429, count: 1, ...rule });
    const r = await sink.send(rows(2));
    expect(r).toMatchObject({ status: 'retryable', httpStatus: 429, retryAfterMs: ms });
  });

  it('429 with an HTTP-date Retry-After', async () => {
    const sink = ingestionSink();
    const at = new Date(Date.now() + 30_000).toUTCString();
    mock.fail({ api: 'logs-ingestion', status: 429, count: 1, retryAfter: at });
    const r = (await sink.send(rows(1))) as Extract<SendResult, { status: 'retryable' }>;
    expect(r.retryAfterMs).toBeGreaterThan(25_000);
    expect(r.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it('403 → retryable during the role-propagation grace, then failure with the role hint', async () => {
    let now = Date.now();
    const sink = ingestionSink({}, { now: () => now, forbiddenGraceMs: 30 * 60_000 });
    mock.fail({ api: 'logs-ingestion', status: 403 });
    const first = await sink.send(rows(2));
    expect(first).toMatchObject({ status: 'retryable', httpStatus: 403 });
    expect((first as { error: string }).error).toMatch(/Monitoring Metrics Publisher/);
    now += 31 * 60_000;
    const later = await sink.send(rows(2));
    expect(later).toMatchObject({ status: 'failure', httpStatus: 403 });
    expect((later as { error: string }).error).toMatch(/Monitoring Metrics Publisher.*30 minutes/);
  });

  it('403 and 401 carry `auth` (role hint, clock skew from the Date header) and stay retryable by default', async () => {
    let now = Date.now();
    const sink = ingestionSink({}, { now: () => now });
    mock.fail({ api: 'logs-ingestion', status: 403 });
    const first = (await sink.send(rows(2))) as Extract<SendResult, { status: 'retryable' }>;
    expect(first.auth?.hint).toMatch(/Monitoring Metrics Publisher.*clock is \d+ s off/);
    expect(Math.abs(first.auth!.clockSkewMs!)).toBeLessThan(5_000);
    now += 2 * 60 * 60_000; // the delivery loop, not the sink, bounds the hold (retry.authFailureMaxSec)
    const later = (await sink.send(rows(2))) as Extract<SendResult, { status: 'retryable' }>;
    expect(later).toMatchObject({ status: 'retryable', httpStatus: 403 });
    expect(later.auth!.clockSkewMs!).toBeGreaterThan(7_000_000);
    mock.clearFailures();
    mock.fail({ api: 'logs-ingestion', status: 401, count: 2 });
    const unauth = (await sink.send(rows(1))) as Extract<SendResult, { status: 'retryable' }>;
    expect(unauth).toMatchObject({ status: 'retryable', httpStatus: 401 });
    expect(unauth.auth?.hint).toMatch(/fresh token was refused/);
  });

  it('404 (unknown DCR) → failure naming what to check', async () => {
    const sink = ingestionSink({ dcrImmutableId: 'dcr-00000000000000000000000000000000' });
    const r = await sink.send(rows(3));
    expect(r).toMatchObject({ status: 'failure', httpStatus: 404 });
    expect((r as { error: string }).error).toMatch(/dcrImmutableId/);
  });

  it('400 on a poison record → the record is isolated and rejected, the rest accepted', async () => {
    const sink = ingestionSink();
    mock.fail({ api: 'logs-ingestion', poison: { field: 'Activity', equals: 'event 5' } });
    const r = await sink.send(rows(16));
    expect(r.status).toBe('partial');
    const p = r as Extract<SendResult, { status: 'partial' }>;
    expect(p.accepted).toBe(15);
    expect(p.rejected.map((x) => x.row.Activity)).toEqual(['event 5']);
    expect(p.rejected[0]!.reason).toMatch(/HTTP 400/);
    expect(mock.rows).toHaveLength(15);
    // bisection stays logarithmic: 1 + 2*log2(16) calls at most
    expect(dataCalls().length).toBeLessThanOrEqual(9);
  });

  it('400 on every row → failure for the batch, bounded number of calls', async () => {
    const sink = ingestionSink();
    mock.fail({ api: 'logs-ingestion', poison: { field: 'DeviceVendor', equals: 'Acme' } });
    const r = await sink.send(rows(64));
    expect(r).toMatchObject({ status: 'failure', httpStatus: 400 });
    expect(dataCalls().length).toBeLessThanOrEqual(1 + 32);
  });

  it('connection refused → retryable', async () => {
    const other = await startMockAzure();
    const sink = ingestionSink({}, {}, other);
    expect((await sink.send(rows(1))).status).toBe('success');
    await other.refuseConnections();
    const r = await sink.send(rows(1));
    expect(r.status).toBe('retryable');
    expect((r as { error: string }).error).toMatch(/ECONNREFUSED|ECONNRESET|socket/);
    await other.acceptConnections();
    expect((await sink.send(rows(1))).status).toBe('success');
    await other.close();
  });

  it('a slow service → retryable after the per-request timeout', async () => {
    const sink = ingestionSink({}, { timeoutMs: 300 });
    await sink.send(rows(1)); // token first
    mock.fail({ api: 'logs-ingestion', delayMs: 1500, status: 503, count: 1 }); // 503 after the delay: the abandoned call lands no rows later
    const t0 = Date.now();
    const r = await sink.send(rows(1));
    expect(r.status).toBe('retryable');
    expect((r as { error: string }).error).toMatch(/no response within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(1400);
  });
});

describe('logs-ingestion: abort', () => {
  it('an aborted send → retryable, nothing assumed delivered', async () => {
    const sink = ingestionSink();
    await sink.send(rows(1));
    mock.reset();
    // Ends in 503 so the abandoned request cannot land rows in a later test.
    mock.fail({ api: 'logs-ingestion', delayMs: 2000, status: 503, count: 1 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('shutting down')), 100);
    const r = await sink.send(rows(2), { signal: ac.signal });
    expect(r.status).toBe('retryable');
    expect((r as { error: string }).error).toMatch(/shutting down/);
  });
});

describe('logs-ingestion: size limits', () => {
  it('splits a batch over the per-call limit before sending', async () => {
    const sink = ingestionSink({}, { limits: { maxCallBytes: 2000 } });
    const r = await sink.send(rows(40));
    expect(r).toEqual({ status: 'success', accepted: 40 });
    for (const c of dataCalls()) expect(c.rawBytes!).toBeLessThanOrEqual(2000);
    expect(dataCalls().length).toBeGreaterThan(1);
    // Calls run concurrently, so arrival order across calls is not part of the contract.
    expect(mock.rows.map((x) => String(x.row.Activity)).sort()).toEqual(
      rows(40)
        .map((x) => String(x.Activity))
        .sort(),
    );
  });

  it('413 → splits in halves recursively until accepted', async () => {
    const small = await startMockAzure({ maxIngestionBytes: 1500 });
    const sink = ingestionSink({}, {}, small);
    const r = await sink.send(rows(30));
    expect(r).toEqual({ status: 'success', accepted: 30 });
    const statuses = small.requests.filter((q) => q.api === 'logs-ingestion').map((q) => q.status);
    expect(statuses).toContain(413);
    expect(small.rows).toHaveLength(30);
    await small.close();
  });

  it('a record the service refuses alone as too large → partial, that row rejected', async () => {
    const small = await startMockAzure({ maxIngestionBytes: 3000 });
    const sink = ingestionSink({}, {}, small);
    const big = row(99, { Message: 'x'.repeat(20_000).replace(/x/g, () => String.fromCharCode(33 + Math.floor(Math.random() * 90))) });
    const r = await sink.send([row(1), big, row(2)]);
    expect(r.status).toBe('partial');
    const p = r as Extract<SendResult, { status: 'partial' }>;
    expect(p.accepted).toBe(2);
    expect(p.rejected[0]!.row).toBe(big);
    expect(p.rejected[0]!.reason).toMatch(/too large/);
    await small.close();
  });

  it('a record over our per-call limit is rejected without a call', async () => {
    const sink = ingestionSink({}, { limits: { maxCallBytes: 5000, maxFieldBytes: 64 * 1024 } });
    const big = row(7, { Message: 'y'.repeat(6000) });
    const r = await sink.send([big, row(1)]);
    expect(r).toMatchObject({ status: 'partial', accepted: 1 });
    expect((r as Extract<SendResult, { status: 'partial' }>).rejected[0]!.reason).toMatch(/over the 5000-byte limit/);
  });

  it('truncates an over-long field to 64 KB, flags it in-row and reports the original', async () => {
    const sink = ingestionSink();
    const long = 'é'.repeat(40_000); // 80,000 UTF-8 bytes
    const original = row(3, { Message: long, AdditionalExtensions: 'foo=bar' });
    const r = await sink.send([original]);
    expect(r.status).toBe('success');
    const s = r as Extract<SendResult, { status: 'success' }>;
    expect(s.truncated?.[0]?.row).toBe(original);
    expect(s.truncated?.[0]?.reason).toMatch(/Message:80000/);
    const got = mock.rows[0]!.row;
    expect(Buffer.byteLength(got.Message as string)).toBeLessThanOrEqual(64 * 1024);
    expect((got.Message as string).endsWith('é')).toBe(true);
    expect(got.AdditionalExtensions).toBe('foo=bar;sentinelCefTruncated=Message:80000');
    expect(mock.stats().overlongFields).toBe(0);
  });

  it('a retryable error after part of a split batch was accepted reports progress', async () => {
    const sink = ingestionSink({}, { limits: { maxCallBytes: 800 } });
    mock.fail({ api: 'logs-ingestion', status: 503, poison: { field: 'Activity', equals: 'event 9' } });
    const r = await sink.send(rows(12));
    expect(r.status).toBe('retryable');
    const p = (r as Extract<SendResult, { status: 'retryable' }>).progress!;
    expect(p.accepted).toBe(mock.rows.length);
    expect(p.accepted).toBeGreaterThan(0);
    expect(p.accepted + p.pending.length).toBe(12);
    expect(p.pending.map((x) => x.Activity)).toContain('event 9');
  });

  it('sends the calls of a large batch concurrently and keeps every row', async () => {
    // Calls abandoned by earlier tests (timeouts, aborts) may still be held by the mock: let them end first.
    await vi.waitFor(() => expect(mock.stats().inFlight).toBe(0), { timeout: 10_000 });
    mock.reset();
    const sink = ingestionSink({}, { limits: { maxCallBytes: 1000 }, concurrency: 4 });
    mock.fail({ api: 'logs-ingestion', delayMs: 40 });
    const r = await sink.send(rows(60));
    expect(r).toEqual({ status: 'success', accepted: 60 });
    expect(new Set(mock.rows.map((x) => x.row.Activity)).size).toBe(60);
    expect(mock.stats().maxInFlight).toBeGreaterThanOrEqual(2);
    expect(mock.stats().maxInFlight).toBeLessThanOrEqual(4);
  });
});

describe('logs-ingestion: clouds and endpoints', () => {
  it('derives scope and authority host from the cloud, with overrides', () => {
    expect(scopeFor({ cloud: 'AzureCloud' })).toBe('https://monitor.azure.com//.default');
    expect(scopeFor({ cloud: 'AzureUSGovernment' })).toBe('https://monitor.azure.us//.default');
    expect(scopeFor({ cloud: 'AzureChinaCloud' })).toBe('https://monitor.azure.cn//.default');
    expect(scopeFor({ cloud: 'AzureCloud', scope: 'api://x/.default' })).toBe('api://x/.default');
    expect(authorityHostFor({ cloud: 'AzureCloud' })).toBe('https://login.microsoftonline.com');
    expect(authorityHostFor({ cloud: 'AzureUSGovernment' })).toBe('https://login.microsoftonline.us');
    expect(authorityHostFor({ cloud: 'AzureChinaCloud' })).toBe('https://login.chinacloudapi.cn');
    expect(authorityHostFor({ cloud: 'AzureChinaCloud', authorityHost: 'https://login.example' })).toBe('https://login.example');
  });

  it('builds the ingestion URL under the endpoint (path prefixes kept for private links)', () => {
    expect(
      ingestionUrl({
        endpoint: 'https://my-dce.eastus-1.ingest.monitor.azure.com',
        dcrImmutableId: 'dcr-abc',
        stream: 'Custom-CommonSecurityLog',
      }).href,
    ).toBe(
      'https://my-dce.eastus-1.ingest.monitor.azure.com/dataCollectionRules/dcr-abc/streams/Custom-CommonSecurityLog?api-version=2023-01-01',
    );
    expect(ingestionUrl({ endpoint: 'https://proxy.local/azmon/', dcrImmutableId: 'dcr-abc', stream: 'Custom-X' }).pathname).toBe(
      '/azmon/dataCollectionRules/dcr-abc/streams/Custom-X',
    );
  });

  it('US Government: the token audience is monitor.azure.us, and a public-cloud token is refused', async () => {
    const gov = await startMockAzure({ audience: 'https://monitor.azure.us' });
    const good = ingestionSink({ cloud: 'AzureUSGovernment' }, {}, gov);
    expect(await good.send(rows(2))).toEqual({ status: 'success', accepted: 2 });
    const wrong = ingestionSink({ cloud: 'AzureCloud' }, {}, gov);
    const r = await wrong.send(rows(2));
    expect(r).toMatchObject({ status: 'retryable', httpStatus: 401 });
    expect((r as { error: string }).error).toMatch(/InvalidAudience/);
    await gov.close();
  });
});
