import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sinkSchema } from '../../src/config/schema.js';
import { createSink } from '../../src/sinks/index.js';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';

// A real CONNECT proxy on loopback: the sink must tunnel HTTPS through HTTPS_PROXY.
let mock: MockAzure;
let proxy: http.Server;
let proxyUrl: string;
const tunnels: string[] = [];

beforeAll(async () => {
  mock = await startMockAzure();
  proxy = http.createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req, client, head) => {
    tunnels.push(req.url!);
    const [host, port] = req.url!.split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await mock.close();
  proxy.closeAllConnections?.();
  await new Promise((r) => proxy.close(r));
});

describe('egress proxy', () => {
  it('tunnels through HTTPS_PROXY, trusting the extra CA through the tunnel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'proxy-'));
    const cfg = sinkSchema.parse({
      type: 'log-analytics',
      workspaceId: mock.workspaceId,
      endpoint: mock.url,
      sharedKeyFile: writeSecretFile(dir, 'k', mock.sharedKey),
    });
    const sink = createSink(cfg, { ca: mock.caPem, env: { HTTPS_PROXY: proxyUrl } });
    expect(await sink.send([{ Activity: 'via proxy', TimeGenerated: new Date().toISOString() }])).toEqual({
      status: 'success',
      accepted: 1,
    });
    expect(tunnels).toEqual([`127.0.0.1:${mock.port}`]);
    await sink.close?.();
  });

  it('NO_PROXY bypasses it', async () => {
    tunnels.length = 0;
    const dir = mkdtempSync(join(tmpdir(), 'proxy-'));
    const cfg = sinkSchema.parse({
      type: 'log-analytics',
      workspaceId: mock.workspaceId,
      endpoint: mock.url,
      sharedKeyFile: writeSecretFile(dir, 'k', mock.sharedKey),
    });
    const sink = createSink(cfg, { ca: mock.caPem, env: { HTTPS_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' } });
    expect((await sink.send([{ Activity: 'direct' }])).status).toBe('success');
    expect(tunnels).toEqual([]);
    await sink.close?.();
  });
});
