import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { MAX_PROBE_ID_CHARS, ProbeTracker, probeIdOfRaw } from '../../src/forwarder/probes.js';
import { buildProbeMessage, newProbeId } from '../../src/forwarder/send-test.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap bytes still reachable after `build` returns what it keeps (measured after full GCs). */
function retained(build: () => unknown): number {
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = build();
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(kept).toBeTruthy();
  return after - before;
}

const MB = 1024 * 1024;

describe('probe tracking stays bounded', () => {
  it('reads the id of a probe message, and nothing from other messages', () => {
    const id = newProbeId();
    expect(probeIdOfRaw(Buffer.from(buildProbeMessage(id)))).toBe(id);
    expect(probeIdOfRaw(Buffer.from(buildProbeMessage('é-ü-probe')))).toBe('é-ü-probe');
    expect(probeIdOfRaw(Buffer.from('<134>CEF:0|Acme|Firewall|1|2|n|3|cs2Label=ProbeId cs2=x'))).toBeNull();
  });

  it('does not track ids longer than the admin API accepts, and says so', () => {
    const t = new ProbeTracker();
    expect(t.received('x'.repeat(MAX_PROBE_ID_CHARS), 1)).toBe(true);
    expect(t.received('x'.repeat(MAX_PROBE_ID_CHARS + 1), 1)).toBe(false);
    t.accepted('y'.repeat(60_000), 1, 2);
    t.failed('z'.repeat(60_000), 1, 'down');
    expect(t.count).toBe(1);
    expect(t.get('y'.repeat(60_000)).received).toBe(false);
  });

  it('holds no memory for 2,000 probe lines with 60 KB ids (every one refused)', () => {
    const t = new ProbeTracker();
    let refused = 0;
    const grew = retained(() => {
      for (let i = 0; i < 2000; i++) {
        const raw = Buffer.from(buildProbeMessage(`${i}-${'i'.repeat(60 * 1024)}`));
        const id = probeIdOfRaw(raw);
        if (id && !t.received(id, Date.now())) refused++;
      }
      return t;
    });
    expect(grew).toBeLessThan(8 * MB); // 120 MB when every id is kept
    expect(refused).toBe(2000);
    expect(t.count).toBe(0);
  });

  it('keeps a short id without the 60 KB message it was read from', () => {
    const t = new ProbeTracker();
    const grew = retained(() => {
      for (let i = 0; i < 2000; i++) {
        const raw = Buffer.from(buildProbeMessage(`${newProbeId()} msg=${'m'.repeat(60 * 1024)}`));
        t.received(probeIdOfRaw(raw)!, Date.now());
      }
      return t;
    });
    expect(grew).toBeLessThan(8 * MB); // 120 MB when each id is a slice of its message
    expect(t.count).toBe(2000);
  });

  it('bounds its bytes, errors included, forgetting the oldest first', () => {
    const t = new ProbeTracker(10_000, 1 * MB);
    const ids: string[] = [];
    const grew = retained(() => {
      for (let i = 0; i < 5000; i++) {
        const id = `p-${i}-${'q'.repeat(150)}`;
        ids.push(id);
        t.received(id, 1);
        t.failed(id, 1, `HTTP 500: ${'e'.repeat(20_000)}`);
        expect(t.bytes).toBeLessThanOrEqual(1 * MB);
      }
      return t;
    });
    expect(t.count).toBeLessThan(5000);
    expect(t.get(ids.at(-1)!).error).toMatch(/^HTTP 500: e+$/);
    expect(t.get(ids[0]!).received).toBe(false);
    expect(grew).toBeLessThan(8 * MB);
  });
});
