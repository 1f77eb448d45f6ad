import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as azure from '../../src/troubleshoot/checks/azure.js';
import { probeEndpoint, proxyFor } from '../../src/troubleshoot/endpoint.js';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { cleanup, health, makeRoot, put, startFakeAdmin, testDeps, type FakeAdmin } from './helpers.js';

const WS = '11111111-2222-3333-4444-555555555555';

async function listen(server: Server | TcpServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

describe('proxyFor', () => {
  const u = new URL('https://ws.ods.opinsights.azure.com/api/logs');
  it.each([
    [{}, null],
    [{ HTTPS_PROXY: 'http://proxy:3128' }, 'proxy:3128'],
    [{ https_proxy: 'proxy:8080' }, 'proxy:8080'],
    [{ HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: '.azure.com' }, null],
    [{ HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'opinsights.azure.com:443' }, null],
    [{ HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'example.com,*' }, null],
    [{ HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'zure.com' }, 'proxy:3128'],
  ])('%j → %s', (env, want) => {
    const p = proxyFor(u, env);
    expect(p ? p.host : null).toBe(want);
  });
});

describe('probeEndpoint against real local servers', () => {
  let certDir: string;
  let cert: string;
  let key: string;
  beforeAll(() => {
    certDir = mkdtempSync(join(tmpdir(), 'ts-cert-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(certDir, 'key.pem'),
        '-out',
        join(certDir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(certDir, 'cert.pem'), 'utf8');
    key = readFileSync(join(certDir, 'key.pem'), 'utf8');
  });
  afterAll(() => rmSync(certDir, { recursive: true, force: true }));

  it('reads status and Date over TLS when the CA is trusted', async () => {
    const skewed = new Date(Date.now() - 10 * 60_000).toUTCString();
    const srv = createHttpsServer({ cert, key }, (_q, res) => res.writeHead(404, { date: skewed }).end());
    const port = await listen(srv);
    try {
      const p = await probeEndpoint(`https://localhost:${port}`, { timeoutMs: 3000, env: {}, ca: cert });
      expect(p).toMatchObject({ ok: true, httpStatus: 404, host: 'localhost', port });
      expect(p.resolved).toContain('127.0.0.1');
      expect(Math.round((p.localDate! - p.serverDate!) / 60_000)).toBe(10);
    } finally {
      srv.close();
    }
  });

  it('names the TLS layer when the certificate is not trusted', async () => {
    const srv = createHttpsServer({ cert, key }, (_q, res) => res.end());
    const port = await listen(srv);
    try {
      const p = await probeEndpoint(`https://localhost:${port}`, { timeoutMs: 3000, env: {} });
      expect(p.ok).toBe(false);
      expect(p.tlsError).toMatch(/self.signed|SELF_SIGNED/i);
    } finally {
      srv.close();
    }
  });

  it('names the TCP and DNS layers', async () => {
    const tmp = createTcpServer();
    const port = await listen(tmp);
    await new Promise<void>((r) => tmp.close(() => r()));
    const refused = await probeEndpoint(`https://127.0.0.1:${port}`, { timeoutMs: 2000, env: {} });
    expect(refused.tcpError).toContain('ECONNREFUSED');
    const dns = await probeEndpoint('https://no-such-host.invalid', { timeoutMs: 2000, env: {} });
    expect(dns.dnsError).toMatch(/ENOTFOUND|EAI_AGAIN/);
  });

  describe('through an HTTPS_PROXY CONNECT tunnel', () => {
    let proxy: TcpServer;
    let proxyPort: number;
    let target: ReturnType<typeof createHttpsServer>;
    let targetPort: number;
    const connects: string[] = [];
    beforeAll(async () => {
      target = createHttpsServer({ cert, key }, (_q, res) => res.writeHead(200).end());
      targetPort = await listen(target);
      proxy = createTcpServer((client) => {
        client.once('data', (d) => {
          const line = d.toString().split('\r\n')[0];
          connects.push(line);
          const [host, port] = line.split(' ')[1].split(':');
          if (host !== 'localhost') return client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
          const up = connect(Number(port), '127.0.0.1', () => {
            client.write('HTTP/1.1 200 Connection established\r\n\r\n');
            client.pipe(up).pipe(client);
          });
          up.on('error', () => client.destroy());
        });
      });
      proxyPort = await listen(proxy);
    });
    afterAll(() => {
      proxy.close();
      target.close();
    });

    it('tunnels and reports the proxy', async () => {
      const p = await probeEndpoint(`https://localhost:${targetPort}`, {
        timeoutMs: 3000,
        env: { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}` },
        ca: cert,
      });
      expect(p).toMatchObject({ ok: true, httpStatus: 200, via: `127.0.0.1:${proxyPort}` });
      expect(connects.at(-1)).toBe(`CONNECT localhost:${targetPort} HTTP/1.1`);
    });

    it('reports a proxy that refuses CONNECT as a TCP-layer failure', async () => {
      const p = await probeEndpoint(`https://127.0.0.1:${targetPort}`, {
        timeoutMs: 3000,
        env: { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}` },
      });
      expect(p.tcpError).toContain('HTTP 403');
    });

    it('goes direct for NO_PROXY hosts', async () => {
      const n = connects.length;
      const p = await probeEndpoint(`https://localhost:${targetPort}`, {
        timeoutMs: 3000,
        env: { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`, NO_PROXY: 'localhost' },
        ca: cert,
      });
      expect(p.ok).toBe(true);
      expect(p.via).toBeUndefined();
      expect(connects.length).toBe(n);
    });
  });
});

describe('azure.* checks', () => {
  let root: string;
  let admin: FakeAdmin;
  let azureSrv: Server;
  let azurePort: number;
  let serverDate = () => new Date().toUTCString();
  const ctxFor = (deps: Partial<TroubleshootDeps> = {}, probes = 0) =>
    new Context(
      troubleshootOptionsSchema.parse({ configPath: '/etc/sentinel-cef/forwarder.json', probes }),
      testDeps(root, { probeEndpoint, ...deps }),
    );

  beforeEach(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    azureSrv = createHttpServer((_q, res) => res.writeHead(403, { date: serverDate() }).end());
    azurePort = await listen(azureSrv);
    await put(
      root,
      '/etc/sentinel-cef/forwarder.json',
      JSON.stringify({
        admin: `127.0.0.1:${admin.port}`,
        sink: { type: 'log-analytics', workspaceId: WS, endpoint: `http://127.0.0.1:${azurePort}` },
      }),
    );
  });
  afterEach(async () => {
    serverDate = () => new Date().toUTCString();
    azureSrv.close();
    await admin.close();
    await cleanup(root);
  });

  it('azure.endpoint passes for a reachable endpoint and fails for a closed one', async () => {
    const ok = await azure.checkEndpoint(ctxFor());
    expect(ok.status).toBe('pass');
    expect(ok.message).toContain('plain HTTP');
    azureSrv.close();
    await new Promise((r) => setTimeout(r, 50));
    const down = await azure.checkEndpoint(ctxFor());
    expect(down.status).toBe('fail');
    expect(down.message).toContain('ECONNREFUSED');
    expect(down.fix).toContain('outbound TCP');
  });

  it('azure.clock fails beyond 5 minutes of skew and passes when close', async () => {
    expect((await azure.checkClock(ctxFor())).status).toBe('pass');
    serverDate = () => new Date(Date.now() + 7 * 60_000).toUTCString();
    const r = await azure.checkClock(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toMatch(/local clock is 4[12]\ds behind/);
    expect(r.fix).toContain('NTP');
  });

  it('the file sink skips every Azure check', async () => {
    await put(root, '/etc/sentinel-cef/forwarder.json', JSON.stringify({ sink: { type: 'file', path: '/tmp/x' } }));
    for (const f of [azure.checkEndpoint, azure.checkClock, azure.checkCredentials]) expect((await f(ctxFor())).status).toBe('skip');
  });

  it('azure.credentials: a 403 from the Data Collector API fails with the key fix', async () => {
    admin.health = health({ lastDelivery: { ok: false, at: 'now', httpStatus: 403, error: 'Forbidden: signature mismatch' } });
    const r = await azure.checkCredentials(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.fix).toContain('workspace key');
    admin.health = health();
    expect((await azure.checkCredentials(ctxFor())).status).toBe('pass');
    admin.health = health({ lastDelivery: null });
    expect((await azure.checkCredentials(ctxFor())).status).toBe('warn');
  });

  it('azure.credentials: a token error for logs-ingestion names the cause', async () => {
    await put(
      root,
      '/etc/sentinel-cef/forwarder.json',
      JSON.stringify({
        admin: `127.0.0.1:${admin.port}`,
        sink: {
          type: 'logs-ingestion',
          endpoint: `http://127.0.0.1:${azurePort}`,
          dcrImmutableId: 'dcr-1',
          auth: { kind: 'client-secret', tenantId: 't', clientId: 'c', clientSecretFile: '/etc/sentinel-cef/secret' },
        },
      }),
    );
    admin.health = health({ lastDelivery: null });
    const bad = await azure.checkCredentials(
      ctxFor({
        getToken: async () => {
          throw new Error('AADSTS7000215: Invalid client secret provided.\nTrace ID: x');
        },
      }),
    );
    expect(bad.status).toBe('fail');
    expect(bad.message).toContain('AADSTS7000215');
    expect(bad.message).not.toContain('Trace ID');
    expect(bad.fix).toContain('client secret is wrong or expired');
    const good = await azure.checkCredentials(ctxFor());
    expect(good.status).toBe('pass');
    expect(good.message).toContain('token valid until');
    admin.health = health({ lastDelivery: { ok: false, at: 'now', httpStatus: 403, error: 'Forbidden' } });
    const role = await azure.checkCredentials(ctxFor());
    expect(role.status).toBe('fail');
    expect(role.fix).toContain('Monitoring Metrics Publisher');
  });

  // Issue 16 item 8: one cause, one message. A skewed clock makes every Data Collector post a 403; no check may
  // then blame the key, and every check that sees the 403 points at the clock.
  it.each([
    ['by the endpoint Date header', 7 * 60_000, 'Forbidden: InvalidAuthorization'],
    [
      'by the forwarder delivery hint alone',
      0,
      "HTTP 403 InvalidAuthorization; this machine's clock is 1200 s off (behind the service's Date header)",
    ],
  ])('a skewed clock (%s) is the one cause of the 403s', async (_name, ahead, error) => {
    serverDate = () => new Date(Date.now() + ahead).toUTCString();
    admin.health = health({ sink: 'log-analytics', lastDelivery: { ok: false, at: 'now', httpStatus: 403, error } });
    // Every probe reaches the forwarder and is refused like the rows.
    admin.probes = {
      get: (id: string) => ({ id, received: true, accepted: false, error: 'HTTP 403 Forbidden' }),
    } as unknown as FakeAdmin['probes'];
    const report = await runTroubleshoot(
      // The probe check keeps a quarter of the run to conclude: at 1 s that was 0.25 s, too little under load.
      { configPath: '/etc/sentinel-cef/forwarder.json', probes: 1, timeoutSec: 6 },
      testDeps(root, { probeEndpoint, sendSyslog: async () => {} }),
    );
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    for (const c of report.checks) expect(`${c.id}: ${c.message} ${c.fix ?? ''}`).not.toMatch(/shared key|workspace key|primary key/i);
    for (const id of ['forwarder.delivery', 'azure.credentials', 'e2e.probes']) {
      expect(byId[id].status, id).toBe('fail');
      expect(byId[id].fix, id).toContain('timedatectl set-ntp true');
      expect(`${byId[id].message} ${byId[id].fix}`, id).toContain('azure.clock');
    }
    if (ahead) expect(byId['azure.clock'].message).toContain('follow from it');
  });
});
