import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as fwd from '../../src/troubleshoot/checks/forwarder.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';

const repo = resolve(__dirname, '../..');

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// Issue 16 item 4: a real forwarder process, SIGSTOPped, is alive but hung; troubleshoot must say so and the fix
// must restart it (kill, since a stopped process ignores SIGTERM).
describe('a hung (SIGSTOPped) forwarder', () => {
  let dir: string;
  let child: ChildProcess;
  let adminPort: number;
  let configPath: string;

  beforeAll(async () => {
    if (!existsSync(join(repo, 'dist/cli.js'))) await execa('node', ['scripts/build.mjs'], { cwd: repo });
    dir = await mkdtemp(join(tmpdir(), 'ts-hung-'));
    adminPort = await freePort();
    const intake = await freePort();
    configPath = join(dir, 'forwarder.json');
    await writeFile(
      configPath,
      JSON.stringify({
        listen: [`tcp://127.0.0.1:${intake}`],
        admin: `127.0.0.1:${adminPort}`,
        queue: { dir: join(dir, 'queue') },
        sink: { type: 'file', path: join(dir, 'rows.ndjson') },
      }),
    );
    child = spawn(process.execPath, [join(repo, 'dist/cli.js'), 'forward', '--config', configPath], { stdio: 'ignore' });
    // Wait (generously: the machine is shared) until it answers.
    const until = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${adminPort}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > until) throw new Error('the forwarder did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 60_000);

  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('is reported as hung, not running or down, and the fix kills and restarts it', async () => {
    const started: string[] = [];
    const real = createDefaultDeps({ root: '/', env: {} });
    const ran: string[] = [];
    const deps: TroubleshootDeps = {
      ...real,
      // Only `kill` is real; nothing else may touch the host's services.
      exec: async (file, args, opts) => {
        ran.push([file, ...args].join(' '));
        if (file === 'kill') return real.exec(file, args, opts);
        return { exitCode: 1, stdout: '', stderr: 'not in this test' };
      },
      services: {
        startForwarder: async (c) => (started.push(c), 'started'),
        restartDaemon: async () => {
          throw new Error('unexpected daemon restart');
        },
      },
    };
    const ctx = () => new Context(troubleshootOptionsSchema.parse({ configPath, probes: 0 }), deps);

    const before = await fwd.checkRunning(ctx());
    expect(before.status).toBe('pass');

    child.kill('SIGSTOP');
    const c = ctx();
    const running = await fwd.checkRunning(c);
    expect(running.status).toBe('fail');
    expect(running.message).toBe(`the forwarder (pid ${child.pid}) is alive but hung: stopped by a signal (SIGSTOP/SIGTSTP) (state T)`);
    expect(running.fix).toContain('--fix');
    const admin = await fwd.checkAdmin(c);
    expect(admin.status).toBe('fail');
    expect(admin.message).toContain('is hung, not down');
    expect(admin.fix).not.toMatch(/^start the forwarder/);

    const exited = new Promise((r) => child.once('exit', (_code, sig) => r(sig)));
    await running.safeFix!.apply();
    expect(await exited).toBe('SIGKILL');
    expect(ran).toContain(`kill -KILL ${child.pid}`);
    expect(started).toEqual([configPath]);
  }, 60_000);
});
