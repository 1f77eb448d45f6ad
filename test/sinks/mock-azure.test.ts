import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';

// The mock must refuse what Azure refuses, or the sink tests prove nothing.
let mock: MockAzure;

function post(
  path: string,
  headers: Record<string, string>,
  body: Buffer | string,
  m: MockAzure = mock,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${m.url}${path}`, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function signed(body: string, opts: { date?: string; key?: string; length?: number; logType?: string } = {}) {
  const date = opts.date ?? new Date().toUTCString();
  const length = opts.length ?? Buffer.byteLength(body);
  const sig = createHmac('sha256', Buffer.from(opts.key ?? mock.sharedKey, 'base64'))
    .update(`POST\n${length}\napplication/json\nx-ms-date:${date}\n/api/logs`)
    .digest('base64');
  return {
    'Content-Type': 'application/json',
    'Log-Type': opts.logType ?? 'CommonSecurityLog',
    'x-ms-date': date,
    Authorization: `SharedKey ${mock.workspaceId}:${sig}`,
  };
}

async function token(m: MockAzure = mock, scope = 'https://monitor.azure.com//.default'): Promise<string> {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: m.clientId, client_secret: m.clientSecret, scope });
  const r = await post(`/${m.tenantId}/oauth2/v2.0/token`, { 'content-type': 'application/x-www-form-urlencoded' }, form.toString(), m);
  expect(r.status).toBe(200);
  return JSON.parse(r.body).access_token;
}

beforeAll(async () => {
  mock = await startMockAzure({ https: false, maxIngestionBytes: 1024 * 1024 });
});
afterAll(async () => mock.close());
beforeEach(() => {
  mock.clearFailures();
  mock.reset();
});

describe('mock Data Collector API checks', () => {
  const body = JSON.stringify([{ Message: 'ü' }]);
  it('accepts a correctly signed request', async () => {
    const r = await post('/api/logs?api-version=2016-04-01', signed(body), body);
    expect(r.status).toBe(200);
    expect(mock.rows).toHaveLength(1);
  });
  it('refuses a signature over the JS string length instead of UTF-8 bytes', async () => {
    const r = await post('/api/logs?api-version=2016-04-01', signed(body, { length: body.length }), body);
    expect(r.status).toBe(403);
  });
  it('refuses a wrong key, a stale date, a bad Log-Type, a missing api-version, a non-JSON body', async () => {
    expect((await post('/api/logs?api-version=2016-04-01', signed(body, { key: Buffer.alloc(64).toString('base64') }), body)).status).toBe(
      403,
    );
    const stale = new Date(Date.now() - 16 * 60_000).toUTCString();
    expect((await post('/api/logs?api-version=2016-04-01', signed(body, { date: stale }), body)).status).toBe(403);
    const bad = await post('/api/logs?api-version=2016-04-01', signed(body, { logType: 'bad-type!' }), body);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).Error).toBe('InvalidLogType');
    expect((await post('/api/logs', signed(body), body)).status).toBe(400);
    expect((await post('/api/logs?api-version=2016-04-01', signed('nope'), 'nope')).status).toBe(400);
    expect(mock.rows).toHaveLength(0);
  });
});

describe('mock Logs Ingestion API checks', () => {
  const path = () => `/dataCollectionRules/${mock.dcrImmutableId}/streams/Custom-CommonSecurityLog?api-version=2023-01-01`;
  const gz = (v: unknown) => gzipSync(Buffer.from(JSON.stringify(v)));

  it('accepts gzip JSON with a token it issued; records type mismatches', async () => {
    const t = await token();
    const r = await post(
      path(),
      { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      gz([{ Activity: 'a', SourcePort: '80', Bogus: 1 }]),
    );
    expect(r.status).toBe(204);
    expect(mock.stats().typeMismatches).toEqual([{ column: 'SourcePort', expected: 'int', value: '80' }]);
    expect(mock.stats().undeclaredColumns).toEqual(['Bogus']);
  });

  it('401 without a token, with a revoked token, or with a token for another audience', async () => {
    const h = { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' };
    expect((await post(path(), h, gz([{}]))).status).toBe(401);
    const other = await token(mock, 'https://management.azure.com//.default');
    expect((await post(path(), { ...h, Authorization: `Bearer ${other}` }, gz([{}]))).status).toBe(401);
    const t = await token();
    mock.revokeTokens();
    const r = await post(path(), { ...h, Authorization: `Bearer ${t}` }, gz([{}]));
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it('404 for an unknown DCR or stream, 400 for bad gzip or a non-array, 413 over 1 MB', async () => {
    const t = await token();
    const h = { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' };
    expect((await post(`/dataCollectionRules/dcr-x/streams/Custom-CommonSecurityLog?api-version=2023-01-01`, h, gz([]))).status).toBe(404);
    expect((await post(`/dataCollectionRules/${mock.dcrImmutableId}/streams/Custom-Other?api-version=2023-01-01`, h, gz([]))).status).toBe(
      404,
    );
    expect((await post(path(), h, Buffer.from('not gzip'))).status).toBe(400);
    expect((await post(path(), h, gz({ a: 1 }))).status).toBe(400);
    const big = Array.from({ length: 1200 }, (_, i) => ({ Message: `${i}-${'z'.repeat(1000)}` }));
    expect((await post(path(), h, gz(big))).status).toBe(413); // small compressed, too big uncompressed
  });

  it('failure injection: N requests, then normal; request times recorded', async () => {
    const t = await token();
    const h = { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' };
    mock.fail({ api: 'logs-ingestion', status: 429, retryAfter: '3', count: 2 });
    const a = await post(path(), h, gz([{ Activity: 'a' }]));
    expect(a.status).toBe(429);
    expect(a.headers['retry-after']).toBe('3');
    expect((await post(path(), h, gz([{ Activity: 'a' }]))).status).toBe(429);
    expect((await post(path(), h, gz([{ Activity: 'a' }]))).status).toBe(204);
    const times = mock.requests.filter((q) => q.api === 'logs-ingestion').map((q) => q.at);
    expect(times).toHaveLength(3);
    expect(times[2]!).toBeGreaterThanOrEqual(times[0]!);
  });

  it('failure injection for a duration', async () => {
    const t = await token();
    const h = { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' };
    mock.fail({ api: 'logs-ingestion', status: 503, durationMs: 150 });
    expect((await post(path(), h, gz([{}]))).status).toBe(503);
    await new Promise((r) => setTimeout(r, 200));
    expect((await post(path(), h, gz([{}]))).status).toBe(204);
  });
});

describe('scripts/mock-azure.ts (standalone, control API)', () => {
  it('starts, creates 0600 secret files, serves the control API and stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mock-script-'));
    const keyFile = join(dir, 'key');
    const proc = execa(
      process.execPath,
      ['--import', 'tsx', 'scripts/mock-azure.ts', '--http', '--port', '0', '--key-file', keyFile, '--info-file', join(dir, 'info.json')],
      {
        cwd: new URL('../..', import.meta.url).pathname,
        reject: false,
      },
    );
    const info = await new Promise<{ url: string; workspaceId: string }>((resolve, reject) => {
      proc.stdout!.on('data', (d: Buffer) => {
        try {
          resolve(
            JSON.parse(
              d
                .toString()
                .split('\n')
                .find((l) => l.startsWith('{'))!,
            ),
          );
        } catch {
          // partial line
        }
      });
      void proc.then(() => reject(new Error('mock exited early')));
    });
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8').trim()).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const ctl = (method: string, p: string, body?: unknown) =>
      fetch(`${info.url}/_mock/${p}`, { method, body: body === undefined ? undefined : JSON.stringify(body) }).then((r) => r.json());
    expect(await ctl('POST', 'fail', { api: 'log-analytics', status: 503, count: 1 })).toEqual({ ok: true, rules: 1 });
    const r = await fetch(`${info.url}/api/logs?api-version=2016-04-01`, { method: 'POST', body: '[]' });
    expect(r.status).toBe(503);
    const stats = (await ctl('GET', 'stats')) as { byApi: Record<string, { byStatus: Record<string, number> }> };
    expect(stats.byApi['log-analytics']!.byStatus['503']).toBe(1);
    expect(await ctl('GET', 'rows')).toEqual([]);
    expect(((await ctl('GET', 'info')) as { workspaceId: string }).workspaceId).toBe(info.workspaceId);
    proc.kill('SIGTERM');
    await proc;
  }, 30_000);
});
