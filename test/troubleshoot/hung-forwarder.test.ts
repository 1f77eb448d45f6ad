import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Context } from '../../src/troubleshoot/context.js';
import * as fwd from '../../src/troubleshoot/checks/forwarder.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';
import { troubleshootOptionsSchema, type TroubleshootDeps } from '../../src/troubleshoot/types.js';
import { forwarderStarted } from '../helpers/ports.js';
import { commandLines, fakeExec } from '../helpers/fake-exec.js';

const repo = resolve(__dirname, '../..');

// Issue 16 item 4: a real forwarder process, SIGSTOPped, is alive but hung; troubleshoot must say so and the fix
// must restart it (kill, since a stopped process ignores SIGTERM).
describe('a hung (SIGSTOPped) forwarder', () => {
  let dir: string;
  let child: ChildProcess;
  let configPath: string;

  beforeAll(async () => {
    if (!existsSync(join(repo, 'dist/cli.js'))) await execa('node', ['scripts/build.mjs'], { cwd: repo });
    dir = await mkdtemp(join(tmpdir(), 'ts-hung-'));
    configPath = join(dir, 'forwarder.json');
    const raw = {
      listen: ['tcp://127.0.0.1:0'],
      admin: '127.0.0.1:0',
      queue: { dir: join(dir, 'queue') },
      sink: { type: 'file', path: join(dir, 'rows.ndjson') },
    };
    await writeFile(configPath, JSON.stringify(raw));
    child = spawn(process.execPath, [join(repo, 'dist/cli.js'), 'forward', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Port 0 everywhere; troubleshoot then reads the ports it bound from the config, as after an install.
    const started = await forwarderStarted(child);
    await writeFile(configPath, JSON.stringify({ ...raw, listen: started.inputs, admin: started.admin }));
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
    const ran: string[][] = [];
    const asked: string[] = [];
    const deps: TroubleshootDeps = {
      ...real,
      fetch: (url, init) => (asked.push(String(url)), real.fetch(url, init)),
      // Only `kill` is real; nothing else may touch the host's services.
      exec: fakeExec(
        { kill: (args, opts) => real.exec.run('kill', args, opts) },
        { calls: ran, otherwise: () => ({ exitCode: 1, stderr: 'not in this test' }) },
      ),
      services: {
        startForwarder: async (c) => (started.push(c), 'started'),
        restartDaemon: async () => {
          throw new Error('unexpected daemon restart');
        },
      },
    };
    const ctx = () => new Context(troubleshootOptionsSchema.parse({ configPath, probes: 0 }), deps);

    // Running and answering: a /healthz slower than 2 s counts as hung, which a loaded machine can cause for a moment.
    let before = await fwd.checkRunning(ctx());
    for (const end = Date.now() + 30_000; before.status !== 'pass' && Date.now() < end; before = await fwd.checkRunning(ctx()))
      await new Promise((r) => setTimeout(r, 500));
    expect(before.status, before.message).toBe('pass');

    child.kill('SIGSTOP');
    asked.length = 0;
    const c = ctx();
    const running = await fwd.checkRunning(c);
    expect(running.status).toBe('fail');
    expect(running.message).toBe(`the forwarder (pid ${child.pid}) is alive but hung: stopped by a signal (SIGSTOP/SIGTSTP) (state T)`);
    expect(running.fix).toContain('--fix');
    const admin = await fwd.checkAdmin(c);
    expect(admin.status).toBe('fail');
    expect(admin.message).toContain('is hung, not down');
    expect(admin.fix).not.toMatch(/^start the forwarder/);
    // A stopped process is not asked: each request would only wait out its timeout (the run then overran --timeout).
    expect(asked).toEqual([]);
    expect(admin.message).toContain(`not asked: the forwarder process is stopped (pid ${child.pid}, state T)`);

    const exited = new Promise((r) => child.once('exit', (_code, sig) => r(sig)));
    await running.safeFix!.apply();
    expect(await exited).toBe('SIGKILL');
    expect(commandLines(ran)).toContain(`kill -KILL ${child.pid}`);
    expect(started).toEqual([configPath]);
  }, 60_000);
});
