import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningForwarder } from '../../src/forwarder/forwarder.js';
import { Context } from '../../src/troubleshoot/context.js';
import * as azure from '../../src/troubleshoot/checks/azure.js';
import * as e2e from '../../src/troubleshoot/checks/e2e.js';
import * as fwd from '../../src/troubleshoot/checks/forwarder.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';
import { startMockAzure, type MockAzure } from '../helpers/mock-azure.js';
import { startProbedForwarder } from './helpers.js';

// The real forwarder (in process) and the sinks' mock Azure: the probes go straight to the forwarder's
// intake port, so this pins the admin API contract, the probe tracking and the sink errors troubleshoot reads.
describe('troubleshoot against the real forwarder and the mock Azure', () => {
  let dir: string;
  let mock: MockAzure;
  let forwarder: RunningForwarder;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ts-real-'));
    mock = await startMockAzure({ https: false, quiet: true });
    await writeFile(join(dir, 'workspace.key'), `${mock.sharedKey}\n`, { mode: 0o600 });
    ({ forwarder, port } = await startProbedForwarder(dir, {
      type: 'log-analytics',
      workspaceId: mock.workspaceId,
      sharedKeyFile: join(dir, 'workspace.key'),
      endpoint: mock.url,
    }));
  });

  afterAll(async () => {
    await forwarder?.shutdown();
    await mock?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const ctx = (timeoutSec = 5) =>
    new Context(
      troubleshootOptionsSchema.parse({ configPath: join(dir, 'forwarder.json'), port, probes: 2, timeoutSec }),
      createDefaultDeps({ root: '/', env: {} }),
    );

  it('follows TCP and UDP probes to an accepted delivery, and proves the key and the clock', async () => {
    const c = ctx();
    const p = await e2e.checkProbes(c);
    expect(p.status, p.message).toBe('pass');
    expect(p.message).toContain('4/4 probes delivered (tcp 2/2, udp 2/2)');
    const ids = (p.details!.probes as Array<{ id: string; latencyMs: number }>).map((x) => x.id);
    expect(mock.rows.map((r) => JSON.stringify(r)).join('\n')).toContain(ids[0]);
    expect((await fwd.checkDelivery(ctx())).status).toBe('pass');
    expect((await azure.checkCredentials(c)).status).toBe('pass');
    expect((await azure.checkEndpoint(c)).status).toBe('pass');
    expect((await azure.checkClock(c)).status).toBe('pass');
  });

  it('locates probes refused by the workspace (403) with the sink error and the key fix', async () => {
    mock.fail({ api: 'data', status: 403 });
    try {
      // The probes are held (not dead-lettered), so the check waits its whole timeout: short, but not so short that a
      // loaded CI machine misses the probes reaching the forwarder (1.5 s did).
      const c = ctx(6);
      const p = await e2e.checkProbes(c);
      expect(p.status).toBe('fail');
      expect(p.details!.stoppedAt).toBe('forwarder-not-delivering');
      expect(p.fix).toMatch(/shared key/);
      const cred = await azure.checkCredentials(ctx());
      expect(cred.status).toBe('fail');
      expect(cred.message).toContain('HTTP 403');
      // A 403 may heal (clock, rotated key): the probes stay queued for retry.authFailureMaxSec, not dead-lettered.
      const dl = await fwd.checkDeadLetters(ctx());
      expect(dl.status, JSON.stringify(dl)).toBe('pass');
    } finally {
      mock.clearFailures();
    }
  }, 40_000);

  it('locates probes held in the queue while the sink is down (503)', async () => {
    mock.fail({ api: 'data', status: 503 });
    try {
      const p = await e2e.checkProbes(ctx(6));
      expect(p.status).toBe('fail');
      expect(p.details!.stoppedAt).toBe('forwarder-not-delivering');
      const probes = p.details!.probes as Array<{ received: boolean; accepted: boolean }>;
      expect(probes.every((x) => x.received && !x.accepted)).toBe(true);
      const d = await fwd.checkDelivery(ctx());
      expect(d.status).toBe('fail');
      expect(d.message).toContain('HTTP 503');
      const q = await fwd.checkQueue(ctx());
      expect((q.details as { records: number }).records).toBeGreaterThan(0);
    } finally {
      mock.clearFailures();
    }
  }, 40_000);
});
