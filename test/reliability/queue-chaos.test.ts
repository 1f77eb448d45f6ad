/**
 * Short versions of the queue and input chaos scenarios (scripts/load/chaos.ts) against the real
 * forwarder bundle: full queue, full disk (tmpfs in a private mount namespace), damaged queue
 * files, UDP receive-buffer loss accounting (private network namespace), hostile input.
 */
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from '../../scripts/load/chaos.js';
import type { ScenarioResult } from '../../scripts/load/scenarios.js';
import { REPO } from '../../scripts/load/harness.js';
import { ensureBundle, hasUnshare, isRoot } from './helpers.js';

beforeAll(() => ensureBundle(), 120_000);

const explain = (r: ScenarioResult) => r.line;
const namespaces = isRoot && hasUnshare;

describe('chaos (short): queue and input', () => {
  it.skipIf(!namespaces)(
    '6: queue cap and a real full disk: TCP held back, UDP drops counted, no corruption, recovery',
    async () => {
      const rs = await runScenario('6', false);
      expect(rs).toHaveLength(2);
      for (const r of rs) {
        expect(r.failures, explain(r)).toEqual([]);
        expect(r.figures.tcpLost, explain(r)).toBe(0);
        expect(r.figures.senderBlocked, explain(r)).toBe('true');
        expect(Number(r.figures.udpDroppedCounted), explain(r)).toBeGreaterThan(0);
        expect(r.figures.corruptBytes, explain(r)).toBe(0);
      }
    },
    240_000,
  );

  it('7: a torn tail and a corrupt record: starts, delivers the rest, reports the damage', async () => {
    const [r] = await runScenario('7', false);
    expect(r.failures, explain(r)).toEqual([]);
    expect(r.seq!.lost, explain(r)).toBeGreaterThanOrEqual(1);
    expect(r.seq!.lost, explain(r)).toBeLessThanOrEqual(3);
    expect(Number(r.figures.corruptBytesReported)).toBeGreaterThan(0);
  }, 120_000);

  it.skipIf(!namespaces)(
    '8: UDP loss is fully explained by the kernel receive-buffer counter and the forwarder counter',
    () => {
      // Own network namespace, so /proc/net/snmp counts only this run's datagrams.
      const out = execFileSync(
        'unshare',
        [
          '--net',
          'bash',
          '-c',
          'ip link set lo up && exec "$@"',
          'chaos',
          process.execPath,
          '--import',
          'tsx',
          'scripts/load/chaos.ts',
          '--scenario',
          '8',
          '--in-netns',
          '--json',
        ],
        { cwd: REPO, env: { ...process.env, CHAOS_IN_NETNS: '1' }, encoding: 'utf8', timeout: 150_000 },
      );
      const rs = out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as ScenarioResult);
      expect(rs).toHaveLength(2);
      for (const r of rs) {
        expect(r.failures, explain(r)).toEqual([]);
        expect(r.figures.unexplained, explain(r)).toBe(0);
        expect(r.seq!.duplicates).toBe(0);
      }
    },
    180_000,
  );

  it('9: hostile input: the process stays up, memory stays bounded, normal traffic still flows', async () => {
    const [r] = await runScenario('9', false);
    expect(r.failures, explain(r)).toEqual([]);
    expect(r.seq!.lost, explain(r)).toBe(0);
    expect(Number(r.figures.peakRssMb), explain(r)).toBeLessThan(400);
  }, 120_000);
});
