import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sinkSchema } from '../../src/config/schema.js';
import { createSink } from '../../src/sinks/index.js';
import type { Sink } from '../../src/sinks/types.js';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';

let mock: MockAzure;
let dir: string;

function row(i: number, extra: Record<string, string | number> = {}) {
  return { TimeGenerated: new Date(1_700_000_000_000 + i).toISOString(), DeviceVendor: 'Acme', DeviceProduct: 'FW', Activity: `event ${i}`, SourcePort: 1000 + i, ...extra };
}

function ingestionSink(over: Record<string, unknown> = {}, opts: Parameters<typeof createSink>[1] = {}): Sink {
  const cfg = sinkSchema.parse({
    type: 'logs-ingestion',
    endpoint: mock.url,
    dcrImmutableId: mock.dcrImmutableId,
    authorityHost: mock.url,
    auth: { kind: 'client-secret', tenantId: mock.tenantId, clientId: mock.clientId, clientSecretFile: writeSecretFile(dir, `secret-${Math.random()}`, mock.clientSecret) },
    ...over,
  });
  return createSink(cfg, { ca: mock.caPem, timeoutMs: 5000, ...opts });
}

beforeAll(async () => {
  mock = await startMockAzure();
  dir = mkdtempSync(join(tmpdir(), 'li-test-'));
});
afterAll(async () => mock.close());
beforeEach(() => {
  mock.clearFailures();
  mock.reset();
});

describe('logs-ingestion sink against the mock service', () => {
  it('gets a token through @azure/identity from the mock authority over HTTPS and delivers gzip JSON', async () => {
    const sink = ingestionSink();
    await sink.start?.();
    const r = await sink.send([row(1), row(2)]);
    expect(r).toEqual({ status: 'success', accepted: 2 });
    expect(mock.rows.map((x) => x.row.Activity)).toEqual(['event 1', 'event 2']);
    expect(mock.stats().tokensIssued).toBe(1);
    const call = mock.requests.find((q) => q.api === 'logs-ingestion')!;
    expect(call.status).toBe(204);
    expect(call.rawBytes).toBeGreaterThan(call.bytes); // it was gzip
    await sink.close?.();
  });
});
