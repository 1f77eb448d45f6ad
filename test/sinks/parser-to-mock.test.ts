import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sinkSchema } from '../../src/config/schema.js';
import { parseLine } from '../../src/parser/index.js';
import type { CslRow } from '../../src/parser/types.js';
import { createSink } from '../../src/sinks/index.js';
import { startMockAzure, writeSecretFile, type MockAzure } from '../helpers/mock-azure.js';

// Every vendor fixture, parsed by the real parser, must arrive with each value in the type the DCR
// declares and no column the DCR lacks: otherwise Azure would null or drop it silently.
const fixtures = new URL('../fixtures/parser/', import.meta.url).pathname;
let mock: MockAzure;
let rows: CslRow[];

beforeAll(async () => {
  mock = await startMockAzure();
  rows = [];
  for (const f of readdirSync(fixtures).filter((n) => n.endsWith('.log'))) {
    for (const line of readFileSync(join(fixtures, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const r = parseLine(line, new Date('2026-11-22T10:00:30Z'));
      if (r.ok) rows.push(r.row);
    }
  }
});
afterAll(async () => mock.close());

describe('parser rows through the sinks into the mock', () => {
  it('logs-ingestion: every row accepted, no type mismatch, no undeclared column', async () => {
    expect(rows.length).toBeGreaterThan(20);
    const dir = mkdtempSync(join(tmpdir(), 'p2m-'));
    const sink = createSink(
      sinkSchema.parse({
        type: 'logs-ingestion',
        endpoint: mock.url,
        dcrImmutableId: mock.dcrImmutableId,
        authorityHost: mock.url,
        auth: {
          kind: 'client-secret',
          tenantId: mock.tenantId,
          clientId: mock.clientId,
          clientSecretFile: writeSecretFile(dir, 's', mock.clientSecret),
        },
      }),
      { ca: mock.caPem },
    );
    expect(await sink.send(rows)).toEqual({ status: 'success', accepted: rows.length });
    const stats = mock.stats();
    expect(stats.typeMismatches).toEqual([]);
    expect(stats.undeclaredColumns).toEqual([]);
    await sink.close?.();
  });

  it('log-analytics: every row accepted (signature over the exact UTF-8 body)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'p2m-'));
    const sink = createSink(
      sinkSchema.parse({
        type: 'log-analytics',
        workspaceId: mock.workspaceId,
        endpoint: mock.url,
        sharedKeyFile: writeSecretFile(dir, 'k', mock.sharedKey),
      }),
      { ca: mock.caPem },
    );
    expect(await sink.send(rows)).toEqual({ status: 'success', accepted: rows.length });
    await sink.close?.();
  });
});
