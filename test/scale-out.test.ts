import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '..');
const script = path.join(repo, 'scripts/scale-out');

/** Why the rig cannot run here, or null. In CI a missing HAProxy is a failure (.ci/run fetches it), not a skip. */
function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  const r = spawnSync(script, ['status'], { encoding: 'utf8' });
  if (r.status === 0) return null;
  const why = (r.stdout || r.stderr).trim();
  if (process.env.CI === 'true' && /haproxy|dist\/forwarder/.test(why)) return null;
  return why;
}

const reason = skipReason();

// Issue 18: 2 forwarder nodes behind Debian's HAProxy, each in its own network namespace; one node's
// sink starts failing under load. Its readiness endpoint goes not ready, HAProxy's check marks it down
// and connection ageing moves its senders to the other node; once fixed and restarted it delivers its
// queue. The long version with more faults: scripts/scale-out run (docs/RELIABILITY.md).
describe.skipIf(reason !== null)(`scale-out behind HAProxy${reason ? ` (skipped: ${reason})` : ''}`, () => {
  it('drains a node whose sink fails within 10 s, and every event reaches a sink exactly once', () => {
    // The target is 10 s. On a machine with more than two runnable processes per core, HAProxy's checks
    // and the node's timers run late (measured: 9.5 s to mark down at a load average of 27 on 2 cores),
    // so there the bound is doubled rather than the test made flaky; the figures are printed either way.
    const overloaded = loadavg()[0] / availableParallelism() > 2;
    const limitMs = overloaded ? 20_000 : 10_000;
    const out = execFileSync(script, ['run', '--short', '--json'], {
      encoding: 'utf8',
      timeout: 170_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { faults } = JSON.parse(out.trim().split('\n').pop()!) as {
      faults: Array<{
        fault: string;
        sent: number;
        received: number;
        lost: number;
        duplicated: number;
        unknown: number;
        markedDownMs: number | null;
        trafficStoppedMs: number | null;
      }>;
    };
    const f = faults[0];
    console.log(
      `scale-out (load average ${loadavg()[0].toFixed(1)}): marked down after ${f.markedDownMs} ms, traffic stopped after ${f.trafficStoppedMs} ms (bound ${limitMs} ms)`,
    );
    expect(f.fault).toBe('sink');
    expect(f.sent).toBeGreaterThan(5000);
    expect({ received: f.received, lost: f.lost, duplicated: f.duplicated, unknown: f.unknown }).toEqual({
      received: f.sent,
      lost: 0,
      duplicated: 0,
      unknown: 0,
    });
    expect(f.markedDownMs).not.toBeNull();
    expect(f.trafficStoppedMs).not.toBeNull();
    expect(f.markedDownMs!).toBeLessThanOrEqual(limitMs);
    expect(f.trafficStoppedMs!).toBeLessThanOrEqual(limitMs);
  }, 180_000);
});
