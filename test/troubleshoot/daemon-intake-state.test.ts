import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as daemon from '../../src/troubleshoot/checks/daemon.js';
import { CHECKS } from '../../src/troubleshoot/run.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';
import { cleanup, healthyTree, makeRoot, put, startFakeAdmin, testDeps, type FakeAdmin } from './helpers.js';

// rsyslog keeps its batches queued while the file says SUSPENDED (action.externalstate.file; issue 15).
const STATE = '/run/sentinel-cef/intake.state';
let root: string;
let admin: FakeAdmin | undefined;
const ctx = () =>
  new Context(troubleshootOptionsSchema.parse({ configPath: '/etc/sentinel-cef/forwarder.json', probes: 0 }), testDeps(root));

async function tree(o: { forwarderUp: boolean; state: string | null; stateFile?: boolean }) {
  if (o.forwarderUp) admin = await startFakeAdmin();
  const adminPort = admin?.port ?? 1;
  await healthyTree(root, { adminPort, daemonPort: 514 });
  const config = {
    sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' },
    admin: `127.0.0.1:${adminPort}`,
    ...(o.stateFile === false ? {} : { intakeStateFile: STATE }),
  };
  await put(root, '/etc/sentinel-cef/forwarder.json', JSON.stringify(config));
  if (o.state !== null) await put(root, STATE, o.state);
}

beforeEach(async () => {
  root = await makeRoot();
});
afterEach(async () => {
  await admin?.close();
  admin = undefined;
  await cleanup(root);
});

describe('daemon.intake-state', () => {
  it('is registered after daemon.spool', () => {
    const ids = CHECKS.map((c) => c.id);
    expect(ids.indexOf('daemon.intake-state')).toBe(ids.indexOf('daemon.spool') + 1);
  });

  it('fails when the file says SUSPENDED while the forwarder runs, and offers to restart it', async () => {
    await tree({ forwarderUp: true, state: 'SUSPENDED\n' });
    const r = await daemon.checkIntakeState(ctx());
    expect(r.status).toBe('fail');
    expect(r.message).toContain('SUSPENDED while the forwarder runs');
    expect(r.safeFix?.description).toMatch(/restart the forwarder/);
  });

  it.each([
    ['READY with the forwarder up', true, 'READY\n'],
    ['absent with the forwarder up', true, null],
    ['SUSPENDED with the forwarder down', false, 'SUSPENDED\n'],
  ])('passes: %s', async (_what, forwarderUp, state) => {
    await tree({ forwarderUp, state });
    const r = await daemon.checkIntakeState(ctx());
    expect(r.status, r.message).toBe('pass');
  });

  it('skips when the config has no state file (rsyslog before 8.1904)', async () => {
    await tree({ forwarderUp: true, state: 'SUSPENDED\n', stateFile: false });
    expect((await daemon.checkIntakeState(ctx())).status).toBe('skip');
  });
});
