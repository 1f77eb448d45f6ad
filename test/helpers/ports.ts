/**
 * Ports in tests. Never ask for a "free" port and bind it later: test files run side by side, and in between
 * another process can take the port (EADDRINUSE) or, worse, be the one the test then talks to. Instead:
 * - in this process, listen on port 0 and read `server.address()` / `forwarder.addresses`;
 * - for a child forwarder, give it port 0 and read what it bound from its 'forwarder started' line
 *   (`forwarderStarted`);
 * - only where a number must be chosen up front (one port for both TCP and UDP, or a child whose log
 *   cannot be read), use `onFreePorts`, which picks again when the start fails with EADDRINUSE.
 * test/test-hygiene.test.ts forbids the pick-then-bind pattern everywhere else.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';

export interface StartedLine {
  /** The listeners' URLs with the ports they bound, e.g. tcp://127.0.0.1:41234. */
  inputs: string[];
  /** HOST:PORT of the admin endpoint, or 'off'. */
  admin: string;
  parseWorkers: number;
}

/** The port of a listen URL as the forwarder reports it (`tcp://[::1]:5514?proxy=v2` gives 5514). */
export function portOf(url: string): number {
  return Number(/:(\d+)(?:\?.*)?$/.exec(url)?.[1]);
}

/**
 * Resolves with the child forwarder's 'forwarder started' line (JSON logs on its stdout, which must be a pipe);
 * rejects with its stderr if it exits first. The caller bounds the wait with the test's timeout.
 */
export function forwarderStarted(child: ChildProcess): Promise<StartedLine> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let j: Partial<StartedLine> & { msg?: string };
      try {
        j = JSON.parse(line) as typeof j;
      } catch {
        return;
      }
      if (j.msg === 'forwarder started') resolve({ inputs: j.inputs ?? [], admin: j.admin ?? 'off', parseWorkers: j.parseWorkers ?? 0 });
    });
    child.once('exit', (code, signal) => reject(new Error(`the forwarder exited before it started (${code ?? signal}): ${stderr}`)));
  });
}

/**
 * Runs `start` with `count` distinct ports that were free a moment ago, and again with new ones when it fails
 * with EADDRINUSE (another test took one in between). `start` must fail, not hang, when a port is taken, and
 * must make sure that what answers on the port is what it started.
 */
export async function onFreePorts<T>(count: number, start: (ports: number[]) => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    // Held together, so the ports are distinct.
    const servers: Server[] = [];
    for (let i = 0; i < count; i++) {
      const s = createServer();
      await new Promise<void>((r, j) => s.once('error', j).listen(0, '127.0.0.1', r));
      servers.push(s);
    }
    const ports = servers.map((s) => (s.address() as { port: number }).port);
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    try {
      return await start(ports);
    } catch (err) {
      if (attempt >= attempts || !/EADDRINUSE/.test(String((err as Error).message ?? err))) throw err;
    }
  }
}
