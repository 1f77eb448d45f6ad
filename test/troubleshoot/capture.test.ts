import { describe, expect, it } from 'vitest';
import { startCapture } from '../../src/troubleshoot/deps.js';
import { fakeExec } from '../helpers/fake-exec.js';

// --capture's tcpdump runs through the one runner: these drive it with the shared fake instead of a real capture.
describe('startCapture', () => {
  it('captures the distinct ports once tcpdump listens, and stop() returns what it printed', async () => {
    const exec = fakeExec({
      tcpdump: { stderr: 'listening on any, link-type LINUX_SLL2\n', stdout: 'IP 127.0.0.1.40000 > 127.0.0.1.514: CEF\n' },
    });
    const c = await startCapture(exec, [514, 25226, 514]);
    expect(exec.calls).toEqual([['/usr/sbin/tcpdump', '-i', 'any', '-nn', '-l', '-A', '-s', '0', 'port 514 or port 25226']]);
    if (!('stop' in c)) throw new Error(c.unavailable);
    expect(await c.stop()).toBe('IP 127.0.0.1.40000 > 127.0.0.1.514: CEF\n');
  });

  it('is unavailable, with the reason, when tcpdump is missing or exits at once', async () => {
    expect(await startCapture(fakeExec({}), [514])).toEqual({ unavailable: 'tcpdump is not installed (apt-get install tcpdump)' });
    const denied = fakeExec({ tcpdump: { exitCode: 1, stderr: "tcpdump: any: You don't have permission to capture on that device\n" } });
    expect(await startCapture(denied, [514])).toEqual({
      unavailable: "tcpdump failed: tcpdump: any: You don't have permission to capture on that device",
    });
  });
});
