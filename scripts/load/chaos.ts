/**
 * Chaos and load scenarios against the real forwarder bundle (npm run build first).
 *
 *   npm run chaos -- --scenario N [--long] [--json]      N = 2..9, or throughput, or all
 *   npm run chaos -- --list
 *
 * Short versions take seconds (CI runs them from test/reliability/); --long runs the figures of
 * docs/RELIABILITY.md. Scenario 1 and the side-by-side comparison run inside the sandbox with real
 * daemons: npm run bench:chain (scripts/load/chain.ts). Each scenario ends with one line of figures.
 * UDP (8) re-runs itself in a private network namespace so the kernel's UDP counters are its own.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import * as S from './scenarios.js';

type Runner = (long: boolean) => Promise<S.ScenarioResult | S.ScenarioResult[]>;

export const SCENARIOS: Record<string, { title: string; run: Runner }> = {
  throughput: {
    title: 'throughput: TCP generator → forwarder (disk queue, Logs Ingestion) → mock',
    run: (long) => S.throughput({ events: long ? 1_000_000 : 20_000, connections: 4, size: 500 }),
  },
  'mixed-tls': {
    title: 'TLS listener, message sizes mixed uniformly from 200 B to 8 KiB',
    run: (long) => S.throughput({ events: long ? 200_000 : 5000, connections: 2, size: [200, 8192], proto: 'tls' }),
  },
  '2': {
    title: 'sink down under a steady rate (60 s and 10 min long; 4 s short)',
    run: async (long) =>
      long
        ? process.env.CHAOS_OUTAGE_SEC
          ? S.outage({ rate: 10_000, preSec: 10, outageSec: Number(process.env.CHAOS_OUTAGE_SEC), postSec: 30 })
          : [
              await S.outage({ rate: 10_000, preSec: 10, outageSec: 60, postSec: 30 }),
              await S.outage({ rate: 10_000, preSec: 10, outageSec: 600, postSec: 60 }),
            ]
        : // Short: both outages at once (independent forwarders and mocks).
          Promise.all([
            S.outage({ rate: 2000, preSec: 1, outageSec: 2, postSec: 1, config: { retry: { initialMs: 200, maxMs: 1000 } } }),
            S.outage({ rate: 2000, preSec: 1, outageSec: 2, postSec: 1, mode: '503', config: { retry: { initialMs: 200, maxMs: 1000 } } }),
          ]),
  },
  'rss-batch': {
    title: 'peak RSS during an outage, the earlier batch settings (2 × 2,500 rows in flight) vs the defaults (4 × 1,000)',
    run: async (long) => {
      const p = long ? { rate: 10_000, preSec: 10, outageSec: 30, postSec: 10 } : { rate: 2000, preSec: 1, outageSec: 2, postSec: 1 };
      return [await S.outage({ ...p, config: { batch: { maxRecords: 2500, inFlight: 2, parallelSends: 2 } } }), await S.outage(p)];
    },
  },
  '3': {
    title: 'kill -9 of the forwarder at random moments under load',
    run: (long) =>
      S.killNine(
        long
          ? { kills: 10, rate: 10_000, minGapMs: 2000, maxGapMs: 8000, seed: 7 }
          : { kills: 3, rate: 2000, minGapMs: 700, maxGapMs: 1500, seed: 7 },
      ),
  },
  '4': {
    title: '429 storm: no request before its Retry-After, nothing lost',
    run: (long) =>
      S.storm(
        long
          ? { events: 200_000, rate: 10_000, throttled: 20, retryAfterSec: 3 }
          : { events: 3000, rate: 2000, throttled: 3, retryAfterSec: 1 },
      ),
  },
  '5': {
    title: 'a poison record: dead-lettered with its reason, the rest delivered',
    run: (long) => S.poison({ events: long ? 100_000 : 5000 }),
  },
  '6': {
    title: 'queue cap reached, and a real full disk (tmpfs in a private mount namespace)',
    run: (long) =>
      S.queueFull(
        long
          ? {
              capBytes: 256 * 1024 ** 2,
              tmpfsBytes: 256 * 1024 ** 2,
              tcpEvents: 1_500_000,
              udpEvents: 50_000,
              holdSec: 30,
              diskSegmentBytes: 64 * 1024 ** 2,
            }
          : // The disk half keeps the default 64 MiB segment, larger than the whole tmpfs.
            {
              capBytes: 2 * 1024 ** 2,
              tmpfsBytes: 4 * 1024 ** 2,
              tcpEvents: 30_000,
              udpEvents: 2000,
              holdSec: 1,
              diskSegmentBytes: 64 * 1024 ** 2,
              retry: { initialMs: 200, maxMs: 1000 },
            },
        !long,
      ),
  },
  '7': {
    title: 'torn or corrupted queue file: starts, recovers, reports what it lost',
    run: (long) => S.tornQueue(long ? { events: 200_000 } : { events: 5000, retry: { initialMs: 200, maxMs: 1000 } }),
  },
  '8': {
    title: 'UDP at 10k and 50k events/s: loss, kernel RcvbufErrors, default vs tuned receive buffer',
    run: async (long) => {
      const out: S.ScenarioResult[] = [];
      const seconds = long ? 20 : 2;
      for (const rate of long ? [10_000, 50_000] : [10_000]) {
        for (const buf of [0, 8 * 1024 * 1024]) out.push(await S.udp({ rate, seconds, recvBufferBytes: buf }));
      }
      return out;
    },
  },
  '9': {
    title: 'hostile input: 1 MiB lines, invalid UTF-8, no newline, idle connections, random bytes',
    run: (long) =>
      S.hostile(long ? { hugeLines: 200, idleConnections: 10_000, randomMB: 100 } : { hugeLines: 10, idleConnections: 500, randomMB: 4 }),
  },
};

export async function runScenario(name: string, long: boolean): Promise<S.ScenarioResult[]> {
  const s = SCENARIOS[name];
  if (!s) throw new Error(`unknown scenario ${name} (known: ${Object.keys(SCENARIOS).join(', ')})`);
  const r = await s.run(long);
  return Array.isArray(r) ? r : [r];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'all' },
      long: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      'in-netns': { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const [k, v] of Object.entries(SCENARIOS)) console.log(`${k.padEnd(10)} ${v.title}`);
    return;
  }
  const names = values.scenario === 'all' ? Object.keys(SCENARIOS) : values.scenario!.split(',');
  let failed = 0;
  for (const n of names) {
    if (n === '8' && !values['in-netns'] && process.getuid?.() === 0 && !process.env.CHAOS_NO_NETNS) {
      // Own network namespace: /proc/net/snmp then counts only this scenario's datagrams.
      const args = [
        ...process.execArgv,
        ...process.argv.slice(1).filter((a) => a !== '--scenario' && !names.includes(a)),
        '--scenario',
        '8',
        '--in-netns',
      ];
      const r = spawnSync('unshare', ['--net', 'bash', '-c', 'ip link set lo up && exec "$@"', 'chaos', process.execPath, ...args], {
        stdio: 'inherit',
        env: { ...process.env, CHAOS_IN_NETNS: '1' },
      });
      if (r.status !== 0) failed++;
      continue;
    }
    for (const r of await runScenario(n, values.long!)) {
      console.log(values.json ? JSON.stringify(r) : r.line);
      if (!r.ok) failed++;
    }
  }
  process.exit(failed ? 1 : 0);
}

/** Run as a script (not when imported, nor when bundled into another script). */
function isMain(): boolean {
  return /[\\/]scripts[\\/]load[\\/]chaos\.[cm]?[jt]s$/.test(process.argv[1] ?? '');
}

if (isMain()) await main();
