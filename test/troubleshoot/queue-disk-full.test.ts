import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as fwd from '../../src/troubleshoot/checks/forwarder.js';
import * as system from '../../src/troubleshoot/checks/system.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { cleanup, health, makeRoot, put, startFakeAdmin, testDeps, type FakeAdmin } from './helpers.js';

// Issue 16 (fault matrix row queue-disk-full): with the queue's filesystem full the forwarder pauses its intake.
// troubleshoot must name that filesystem and its command, not "fix delivery first" or /var/log's logrotate.
const CONFIG = '/etc/sentinel-cef/forwarder.json';
const QUEUE = '/var/lib/sentinel-cef/data/queue';
const MiB = 1024 ** 2;

let root: string;
let admin: FakeAdmin;
beforeEach(async () => {
  root = await makeRoot();
  admin = await startFakeAdmin();
  await put(
    root,
    CONFIG,
    JSON.stringify({ admin: `127.0.0.1:${admin.port}`, sink: { type: 'file', path: '/srv/cef/rows.ndjson' }, queue: { dir: QUEUE } }),
  );
});
afterEach(async () => {
  await admin.close();
  await cleanup(root);
});

/** The queue on a full 1 MiB tmpfs; every other path on a roomy disk. */
const statfs: TroubleshootDeps['statfs'] = async (p) =>
  p === QUEUE ? { free: 0, total: MiB } : { free: 60 * 1024 * MiB, total: 200 * 1024 * MiB };
const ctxFor = (deps: Partial<TroubleshootDeps> = {}) =>
  new Context(troubleshootOptionsSchema.parse({ configPath: CONFIG, probes: 0 }), testDeps(root, { statfs, ...deps }));

describe('a full filesystem under the queue', () => {
  it("forwarder.queue says intake paused because the queue's filesystem is full, with df and queue.dir", async () => {
    admin.health = health({
      status: 'degraded',
      queue: { bytes: 0, records: 0, maxBytes: 1024 ** 3, oldestAgeSec: null, intakePaused: true },
    });
    const r = await fwd.checkQueue(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain(`intake paused: the queue's filesystem is full (${QUEUE}: 0 B free of 1.0 MiB)`);
    expect(r.fix).toBe(
      `free space on the queue's filesystem (\`df -h ${QUEUE}\`) or move "queue.dir" in ${CONFIG} to a larger one; the forwarder resumes intake by itself once it can write`,
    );
    expect(r.fix).not.toContain('forwarder.delivery');
  });

  it('forwarder.queue keeps "fix delivery first" when the queue itself is full and the disk is not', async () => {
    admin.health = health({ queue: { bytes: 990, records: 50, maxBytes: 1000, oldestAgeSec: 900, intakePaused: true } });
    const r = await fwd.checkQueue(ctxFor({ statfs: async () => ({ free: 60 * 1024 * MiB, total: 200 * 1024 * MiB }) }));
    expect(r.fix).toContain('fix delivery first');
  });

  it("system.disk names the queue's filesystem and its command, not /var/log's remedies", async () => {
    const r = await system.checkDisk(ctxFor());
    expect(r.status).toBe('fail');
    expect(r.message).toContain(`${QUEUE} 0 B free (0%)`);
    expect(r.fix).toBe(
      `the queue's filesystem is full: free space there (\`df -h ${QUEUE}\`) or move "queue.dir" in ${CONFIG} to a larger one`,
    );
  });
});
