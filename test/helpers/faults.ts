import { setFaultPlan, type FaultDecision, type FsOp } from '../../src/util/fsio.js';
// The load generator's seeded PRNG: a failing seed replays the same faults.
import { prng } from '../../scripts/load/gen.js';

export interface FaultRule {
  /** Calls the rule applies to. */
  ops: FsOp[];
  /** Only paths matching this (default: every path). */
  path?: RegExp;
  /** Errors to pick from; 'SHORT' means a short write (a random part of the bytes asked). */
  codes: string[];
  /** Chance per matching call (default 1). */
  probability?: number;
  /** Skip the first `after` matching calls (default 0). */
  after?: number;
  /** Stop after this many faults (default unlimited). */
  times?: number;
}

export interface FaultController {
  /** Faults injected so far, by `op:code`. */
  readonly hits: Map<string, number>;
  readonly total: number;
  /** Faults injected so far by each rule (same order as the rules). */
  readonly byRule: readonly number[];
  /** Stops injecting (the plan stays installed until clear()). */
  pause(): void;
  resume(): void;
  /** Removes the plan. */
  clear(): void;
}

export { prng };

/**
 * Installs a fault plan on the fsio seam: each rule fails matching calls with one of its codes. Returns
 * a controller; always call clear() (e.g. in afterEach).
 */
export function injectFaults(rules: FaultRule[], seed = 1): FaultController {
  const rand = prng(seed);
  const hits = new Map<string, number>();
  const seen = rules.map(() => 0);
  const fired = rules.map(() => 0);
  let paused = false;
  let total = 0;
  setFaultPlan((op, path): FaultDecision | undefined => {
    if (paused) return undefined;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (!r.ops.includes(op) || (r.path && !r.path.test(path))) continue;
      if (seen[i]!++ < (r.after ?? 0)) continue;
      if (r.times !== undefined && fired[i]! >= r.times) continue;
      if (rand() >= (r.probability ?? 1)) continue;
      const code = r.codes[Math.floor(rand() * r.codes.length)]!;
      fired[i]!++;
      total++;
      const key = `${op}:${code}`;
      hits.set(key, (hits.get(key) ?? 0) + 1);
      if (code === 'SHORT') return op === 'write' ? { short: 1 + Math.floor(rand() * 4096) } : undefined;
      return { code };
    }
    return undefined;
  });
  return {
    hits,
    get total() {
      return total;
    },
    byRule: fired,
    pause: () => void (paused = true),
    resume: () => void (paused = false),
    clear: () => setFaultPlan(null),
  };
}
