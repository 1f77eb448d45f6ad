import { describe, expect, it } from 'vitest';
import { adjustRuns, createExec, SecretInArgvError } from '../../src/system/exec.js';

// The runner's long-lived children (troubleshoot's packet capture): same guards as run(), a stop handle, never a rejection.
describe('exec.start', () => {
  it('streams stderr while the child runs, and stop() returns everything it printed', async () => {
    const child = createExec().start('sh', ['-c', 'echo "listening on any" >&2; echo packet; exec sleep 30']);
    const heard = await new Promise<string>((resolve) => child.onStderr(resolve));
    expect(heard).toContain('listening on any');
    const t0 = Date.now();
    const r = await child.stop('SIGINT');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.stdout).toBe('packet');
    expect(r.failed).toBe(true);
  });

  // Review finding 8: troubleshoot's deadline (adjustRuns) bounds a started child too, not only run().
  it('a deadline given through adjustRuns stops a started child', async () => {
    const bounded = adjustRuns(createExec(), (o) => ({ ...o, timeoutMs: 300 }));
    const child = bounded.start('sleep', ['60']);
    try {
      const t0 = Date.now();
      const r = await Promise.race([child.exited, new Promise<null>((res) => setTimeout(() => res(null), 10_000).unref())]);
      expect(r, 'still running after 10 s').not.toBeNull();
      expect(r).toMatchObject({ timedOut: true, failed: true });
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      await child.stop('SIGKILL');
    }
  });

  it('a missing program settles `exited` as not found instead of throwing', async () => {
    const r = await createExec().start('/nonexistent/tcpdump', []).exited;
    expect(r).toMatchObject({ exitCode: 127, notFound: true });
  });

  it('refuses a registered secret in argv and keeps secret-bearing variables out of the child', async () => {
    const exec = createExec();
    exec.registerSecret('c2VjcmV0LWtleS12YWx1ZQ==');
    expect(() => exec.start('echo', ['c2VjcmV0LWtleS12YWx1ZQ=='])).toThrow(SecretInArgvError);
    process.env.SENTINEL_CEF_KEY = 'do-not-inherit';
    try {
      const r = await exec.start('sh', ['-c', 'echo "[${SENTINEL_CEF_KEY:-unset}]"']).exited;
      expect(r).toMatchObject({ exitCode: 0, stdout: '[unset]' });
    } finally {
      delete process.env.SENTINEL_CEF_KEY;
    }
  });
});

describe('createExec({ defaultTimeoutMs })', () => {
  it('bounds a run that gives no timeout of its own, and leaves one that does', async () => {
    const exec = createExec({ defaultTimeoutMs: 100 });
    expect(await exec.run('sleep', ['20'])).toMatchObject({ timedOut: true, failed: true });
    expect(await exec.run('sleep', ['0.2'], { timeoutMs: 20_000 })).toMatchObject({ exitCode: 0, timedOut: false });
  });
});
