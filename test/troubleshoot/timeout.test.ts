import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { cleanup, healthyTree, makeRoot, startFakeAdmin, startFakeDaemon, testDeps, type FakeAdmin } from './helpers.js';
import { fakeExec } from '../helpers/fake-exec.js';

// Issue 16 item 9: `--timeout 10` ran 20 s. The timeout bounds the whole run, whatever hangs.
describe('--timeout is a total bound', () => {
  let root: string;
  let admin: FakeAdmin;
  let daemon: { port: number; close(): Promise<void> };
  beforeEach(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    daemon = await startFakeDaemon(() => {}); // takes the probes, never forwards them
    await healthyTree(root, { adminPort: admin.port, daemonPort: daemon.port });
  });
  afterEach(async () => {
    await daemon.close();
    await admin.close();
    await cleanup(root);
  });

  it('ends within the timeout with undelivered probes and a program that never answers', async () => {
    const seen: Array<number | undefined> = [];
    const wrapped = fakeExec({
      // A wedged iptables that never returns (the real seam ends it at its timeout, which must be capped too).
      'iptables-save': (_args, o) => {
        seen.push(o.timeoutMs);
        return new Promise<never>(() => {});
      },
    });
    const t0 = Date.now();
    const r = await runTroubleshoot(
      // 6 s, not 2: the probe check keeps a quarter of the run to conclude, and 0.5 s was not enough under load.
      { configPath: '/etc/sentinel-cef/forwarder.json', port: daemon.port, probes: 2, timeoutSec: 6 },
      testDeps(root, { exec: wrapped, sleep: (ms) => new Promise((res) => setTimeout(res, Math.min(ms, 50))) }),
    );
    const took = Date.now() - t0;
    expect(took).toBeLessThan(6000 + 3000); // generous: the machine is shared
    expect(r.checks.find((c) => c.id === 'system.firewall')).toMatchObject({
      status: 'warn',
      message: expect.stringContaining('did not finish within --timeout 6s'),
    });
    const probes = r.checks.find((c) => c.id === 'e2e.probes')!;
    expect(probes.status).toBe('fail');
    expect(probes.message).not.toContain('did not finish');
    expect(seen.every((ms) => ms !== undefined && ms <= 6000)).toBe(true);
    expect(r.ok).toBe(false);
    expect(r.unfinished).toEqual(['system.firewall']);
  }, 20_000);
});
