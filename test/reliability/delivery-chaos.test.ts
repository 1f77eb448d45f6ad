/**
 * Short versions of the chaos scenarios (scripts/load/chaos.ts): the real forwarder bundle against
 * the mock workspace. They assert loss, duplicates and correctness, never speed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from '../../scripts/load/chaos.js';
import type { ScenarioResult } from '../../scripts/load/scenarios.js';
import { ensureBundle } from './helpers.js';

beforeAll(() => ensureBundle(), 120_000);

const explain = (r: ScenarioResult) => `${r.line}`;

describe('chaos (short): delivery', () => {
  it('carries a TCP stream with nothing lost or duplicated', async () => {
    const [r] = await runScenario('throughput', false);
    expect(r.seq!.lost, explain(r)).toBe(0);
    expect(r.seq!.duplicates, explain(r)).toBe(0);
    expect(r.seq!.unknown, explain(r)).toBe(0);
  }, 120_000);

  it('carries a TLS stream of mixed sizes (200 B to 8 KiB) with nothing lost or duplicated', async () => {
    const [r] = await runScenario('mixed-tls', false);
    expect(r.failures, explain(r)).toEqual([]);
    expect(r.seq!.unknown, explain(r)).toBe(0);
  }, 120_000);

  it('2: sink refusing connections, then answering 503: nothing lost, the backlog drains', async () => {
    const rs = await runScenario('2', false);
    for (const r of rs) {
      expect(r.failures, explain(r)).toEqual([]);
      expect(r.seq!.lost, explain(r)).toBe(0);
      expect(Number(r.figures.peakQueueMB), explain(r)).toBeGreaterThan(0);
    }
  }, 180_000);

  it('3: kill -9 under load: nothing the forwarder read is lost, at most the batches in flight duplicated per kill', async () => {
    const [r] = await runScenario('3', false);
    expect(r.failures, explain(r)).toEqual([]);
    expect(r.seq!.holes, explain(r)).toBe(0);
    expect(r.seq!.duplicates, explain(r)).toBeLessThanOrEqual(3 * Number(r.figures.dupBoundPerKill));
    expect(r.figures.restarts, explain(r)).toBe(3);
  }, 180_000);

  it('4: 429 storm: every retry waits its Retry-After, nothing lost or duplicated', async () => {
    const [r] = await runScenario('4', false);
    expect(r.failures, explain(r)).toEqual([]);
    expect(r.figures.throttled).toBe(3);
    expect(r.figures.retriesBeforeRetryAfter).toBe(0);
  }, 120_000);

  it('5: a poison record is dead-lettered with the 400, everything else delivered', async () => {
    const [r] = await runScenario('5', false);
    expect(r.failures, explain(r)).toEqual([]);
    expect(r.seq!.lost, explain(r)).toBe(1);
    expect(r.figures.deadLettered).toBe(1);
  }, 120_000);
});
