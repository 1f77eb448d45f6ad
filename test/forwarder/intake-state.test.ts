import { readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { writeIntakeState } from '../../src/forwarder/intake-state.js';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { cef, makeConfig, readRows, RELP_OFFERS, relpAnswers, relpFrame, silent, tcpConnect, tempDir, waitFor } from './helpers.js';

// rsyslog reads the state file before each batch (action.externalstate.file); issue 15, docs/RELIABILITY.md item 13.
/** Transaction numbers the forwarder answered 200 OK on this session, so far. */
function okAnswers(s: Socket): () => number[] {
  const { answers } = relpAnswers(s);
  return () => answers.filter((a) => a.text.startsWith('200')).map((a) => a.txnr);
}

const stateOf = (file: string): string | null => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
};

describe('intake state file', () => {
  let fwd: RunningForwarder | null = null;
  afterEach(async () => {
    await fwd?.shutdown();
    fwd = null;
  });

  it('says READY once the inputs listen, and SUSPENDED on stop while a begun RELP batch is still answered', async () => {
    const dir = tempDir('intake-state-');
    const file = join(dir, 'intake.state');
    const config = makeConfig(dir, { listen: ['relp://127.0.0.1:0'], intakeStateFile: file });
    fwd = await startForwarder(config, { logger: silent, intakeStateGraceMs: 3000 });
    expect(stateOf(file)).toBe('READY\n');
    // rsyslog may run as its own user (Ubuntu): readable by all, whatever the service's umask.
    expect(statSync(file).mode & 0o777).toBe(0o644);

    const s = await tcpConnect(fwd.addresses.find((a) => a.protocol === 'relp')!.port);
    const ok = okAnswers(s);
    s.write(relpFrame(1, 'open', RELP_OFFERS) + relpFrame(2, 'syslog', cef(0)));
    await waitFor(() => ok().includes(2), 5000, 'the first message answered');

    const stopping = fwd.shutdown();
    await waitFor(() => stateOf(file) === 'SUSPENDED\n', 2000, 'SUSPENDED');
    // The batch rsyslog began before it could read SUSPENDED: still appended and answered.
    s.write(relpFrame(3, 'syslog', cef(1)));
    await waitFor(() => ok().includes(3), 2500, 'an answer during the grace');
    await stopping;
    fwd = null;
    expect(stateOf(file)).toBe('SUSPENDED\n');
    expect(
      readRows((config.sink as { path: string }).path)
        .map((r) => r.DeviceEventClassID)
        .sort(),
    ).toEqual(['0', '1']);
    s.destroy();
  });

  // A loaded rsyslog can take longer than the grace to finish the batch it began; cut off, that batch was lost
  // when rsyslog stopped next (the reboot loss of issue 15). Intake stays open until the session is quiet.
  it('stays open after SUSPENDED while a RELP session keeps sending, until it has been quiet for the grace', async () => {
    const dir = tempDir('intake-state-');
    const file = join(dir, 'intake.state');
    const config = makeConfig(dir, { listen: ['relp://127.0.0.1:0'], intakeStateFile: file });
    fwd = await startForwarder(config, { logger: silent, intakeStateGraceMs: 1000, intakeStateMaxGraceMs: 20_000 });
    const s = await tcpConnect(fwd.addresses.find((a) => a.protocol === 'relp')!.port);
    const ok = okAnswers(s);
    s.write(relpFrame(1, 'open', RELP_OFFERS));
    await waitFor(() => ok().includes(1), 5000, 'the open answered');

    const stopping = fwd.shutdown();
    await waitFor(() => stateOf(file) === 'SUSPENDED\n', 2000, 'SUSPENDED');
    // One frame every 200 ms for 3 s: five times the gap, three times the grace.
    const n = 15;
    for (let i = 0; i < n; i++) {
      s.write(relpFrame(i + 2, 'syslog', cef(i)));
      await new Promise((r) => setTimeout(r, 200));
    }
    await waitFor(() => ok().includes(n + 1), 5000, 'the last frame answered');
    await stopping;
    fwd = null;
    expect(ok()).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
    expect(readRows((config.sink as { path: string }).path)).toHaveLength(n);
    s.destroy();
  });

  it('a session that never goes quiet holds the stop only up to the longest grace', async () => {
    const dir = tempDir('intake-state-');
    const config = makeConfig(dir, { listen: ['relp://127.0.0.1:0'], intakeStateFile: join(dir, 'intake.state') });
    fwd = await startForwarder(config, { logger: silent, intakeStateGraceMs: 500, intakeStateMaxGraceMs: 1500 });
    const s = await tcpConnect(fwd.addresses.find((a) => a.protocol === 'relp')!.port);
    s.on('error', () => {});
    s.write(relpFrame(1, 'open', RELP_OFFERS));
    let txnr = 2;
    const drip = setInterval(() => s.writable && s.write(relpFrame(txnr++, 'syslog', cef(txnr))), 100);
    const t0 = Date.now();
    await fwd.shutdown();
    fwd = null;
    clearInterval(drip);
    expect(Date.now() - t0).toBeLessThan(15_000);
    s.destroy();
  });

  it('a file it cannot write is counted and logged; the forwarder runs and stops without waiting', async () => {
    const dir = tempDir('intake-state-');
    const config = makeConfig(dir, { intakeStateFile: join(dir, 'no-such-dir', 'intake.state') });
    fwd = await startForwarder(config, { logger: silent, intakeStateGraceMs: 60_000 });
    const text = await fwd.metrics.registry.metrics();
    expect(text).toMatch(/background_errors_total\{where="intake_state"\} 1/);
    const t0 = Date.now();
    await fwd.shutdown();
    fwd = null;
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('does not follow a link planted where it writes its temporary file', () => {
    const dir = tempDir();
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep\n');
    const state = join(dir, 'intake.state');
    symlinkSync(victim, `${state}.${process.pid}.tmp`);
    expect(() => writeIntakeState(state, 'READY')).toThrow(/ELOOP/);
    expect(readFileSync(victim, 'utf8')).toBe('keep\n');
  });
});
