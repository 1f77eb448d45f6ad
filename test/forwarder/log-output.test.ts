import { spawn } from 'node:child_process';
import { openSync as rawOpen, closeSync as rawClose, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { startForwarder } from '../../src/forwarder/forwarder.js';
import { LogDestination } from '../../src/forwarder/log-destination.js';
import { createLogger } from '../../src/forwarder/logger.js';
import * as fsio from '../../src/util/fsio.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';
import { onFreePorts } from '../helpers/ports.js';
import { cef, makeConfig, readRows, tcpConnect, tempDir, waitFor, writeAndEnd } from './helpers.js';

let faults: FaultController | null = null;
const cleanup: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  faults?.clear();
  faults = null;
  for (const f of cleanup.splice(0).reverse()) await f();
});

function logFile(): { dir: string; path: string; fd: number } {
  const dir = tempDir('log-out-');
  const path = join(dir, 'forwarder.log');
  const fd = fsio.openSync(path, 'a', 0o600);
  cleanup.push(() => {
    fsio.closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, path, fd };
}

const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);

async function healthz(admin: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${admin}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
  return (await res.json()) as Record<string, unknown>;
}

describe('LogDestination: a failing log output never blocks nor throws', () => {
  it.each([['ENOSPC'], ['EIO'], ['EAGAIN'], ['EPIPE']])(
    '%s on every write: lines dropped and counted, then logging resumes with a count',
    async (code) => {
      const { path, fd } = logFile();
      const dest = new LogDestination({ fd, maxBufferBytes: 4096, retryMs: 5, maxRetryMs: 20, reportIntervalMs: 0 });
      cleanup.push(() => dest.drain(2000));
      const logger = createLogger('info', dest);
      faults = injectFaults([{ ops: ['write'], path: /forwarder\.log$/, codes: [code] }]);
      const t0 = Date.now();
      for (let i = 0; i < 2000; i++) logger.info({ i }, 'while the output fails');
      // 2,000 calls return at once: nothing waits on the output.
      expect(Date.now() - t0).toBeLessThan(2000);
      await new Promise((r) => setTimeout(r, 50));
      expect(dest.dropped).toBeGreaterThan(0);
      expect(dest.errors).toBeGreaterThan(0);
      expect(dest.bufferedBytes).toBeLessThanOrEqual(4096);
      faults.clear();
      await dest.drain(5000);
      logger.info('after recovery');
      await waitFor(() => lines(path).some((l) => l.includes('after recovery')), 5000, 'logging to resume');
      const all = lines(path).map((l) => JSON.parse(l) as Record<string, unknown>);
      const report = all.find((o) => typeof o.droppedLogLines === 'number');
      expect(report?.msg).toMatch(/^\d+ log lines dropped/);
      // Every line valid JSON (parsed above), and every line accounted for: written or counted as dropped.
      const written = all.filter((o) => o.msg === 'while the output fails').length;
      expect(written + dest.dropped).toBe(2000);
      expect(report!.droppedLogLines).toBe(dest.dropped);
    },
  );

  it('short writes: every line arrives whole, once, in order', async () => {
    const { path, fd } = logFile();
    const dest = new LogDestination({ fd, maxBufferBytes: 1 << 20, retryMs: 1 });
    cleanup.push(() => dest.drain(2000));
    const logger = createLogger('info', dest);
    faults = injectFaults([{ ops: ['write'], path: /forwarder\.log$/, codes: ['SHORT', 'EIO'], probability: 0.7 }], 7);
    for (let i = 0; i < 500; i++) logger.info({ i }, 'line');
    await dest.drain(10_000);
    faults.clear();
    const got = lines(path).map((l) => (JSON.parse(l) as { i: number }).i);
    expect(got).toEqual([...Array(500).keys()]);
    expect(dest.dropped).toBe(0);
  });
});

describe('forwarder with a failing log output', () => {
  it('ENOSPC/EIO on the log file while 5,000 events flow: all delivered, /healthz answers, drops counted; logging resumes', async () => {
    const { dir, path, fd } = logFile();
    const dest = new LogDestination({ fd, maxBufferBytes: 8192, retryMs: 5, maxRetryMs: 50, reportIntervalMs: 0 });
    cleanup.push(() => dest.drain(2000));
    const logger = createLogger('info', dest);
    const config = makeConfig(dir);
    faults = injectFaults([{ ops: ['write'], path: /forwarder\.log$/, codes: ['ENOSPC', 'EIO'] }]);
    const f = await startForwarder(config, { logger });
    cleanup.push(() => f.shutdown());
    const tcp = f.addresses.find((a) => a.protocol === 'tcp')!;
    const sock = await tcpConnect(tcp.port);
    let text = '';
    for (let i = 0; i < 5000; i++) text += cef(i) + '\n';
    // Heavy logging beside the traffic (as a noisy sink or a flapping connection would cause).
    const noise = setInterval(() => {
      for (let i = 0; i < 200; i++) logger.warn({ i }, 'noise');
    }, 5);
    cleanup.push(() => clearInterval(noise));
    await writeAndEnd(sock, text);
    // A frozen main thread never answers; 3 s was too short for a loaded machine (aborted beside two CPU burners).
    const h = await healthz(f.adminAddress!, 15_000);
    expect(h.status).toBeDefined();
    await waitFor(() => readRows(config.sink.type === 'file' ? config.sink.path : '').length >= 5000, 30_000, '5,000 rows delivered');
    clearInterval(noise);
    const rows = readRows(config.sink.type === 'file' ? config.sink.path : '');
    expect(new Set(rows.map((r) => r.DeviceEventClassID)).size).toBe(5000);
    expect(dest.dropped).toBeGreaterThan(0);
    const h2 = await healthz(f.adminAddress!, 15_000);
    expect((h2.counters as Record<string, number>).logLinesDropped).toBe(dest.dropped);
    const metrics = await (await fetch(`http://${f.adminAddress}/metrics`)).text();
    expect(Number(/sentinel_cef_log_lines_dropped_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
    faults.clear();
    await dest.drain(5000);
    logger.info('after recovery');
    await waitFor(() => lines(path).some((l) => l.includes('after recovery')), 5000, 'logging to resume');
    expect(lines(path).some((l) => /"droppedLogLines":\d+/.test(l))).toBe(true);
  }, 60_000);

  // The field failure end to end: the CLI with stdout on a device that answers every write with ENOSPC.
  // Before the fix the main thread froze in pino's synchronous retry (no /healthz, nothing delivered).
  it('the forward command with stdout on /dev/full keeps delivering and answering /healthz', async () => {
    const dir = tempDir('log-full-');
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = makeConfig(dir);
    const out = rawOpen('/dev/full', 'w');
    cleanup.push(() => rawClose(out));
    const root = join(import.meta.dirname, '../..');
    if (!existsSync(join(root, 'dist/cli.js'))) await execa('node', ['scripts/build.mjs'], { cwd: root });
    // Its log goes to /dev/full, so it cannot report the ports it bound: choose them, and choose again when one
    // was taken meanwhile. Started only when /healthz on our admin port answers with this child's pid.
    const { child, admin, listen, stderr, exited } = await onFreePorts(2, async ([admin, listen]) => {
      const child = spawn(
        process.execPath,
        [
          join(root, 'dist/cli.js'),
          'forward',
          '--listen',
          `tcp://127.0.0.1:${listen}`,
          '--admin',
          `127.0.0.1:${admin}`,
          '--queue-dir',
          config.queue.dir,
          '--dead-letter-file',
          join(dir, 'dl.ndjson'),
          '--sink',
          `file:${join(dir, 'rows.ndjson')}`,
          '--log-level',
          'debug',
        ],
        { cwd: root, stdio: ['ignore', out, 'pipe'], env: { ...process.env, CI: 'true', NO_COLOR: '1' } },
      );
      const stderr = { text: '' };
      child.stderr!.on('data', (d: Buffer) => (stderr.text += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      cleanup.push(async () => {
        if (child.exitCode === null) child.kill('SIGKILL');
        await exited;
      });
      // Start-up takes tens of seconds on a loaded machine (49 s measured under tsx at load 38).
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`the forwarder exited (${child.exitCode}): ${stderr.text}`);
          return (await healthz(`127.0.0.1:${admin}`, 5000).catch(() => null))?.pid === child.pid;
        },
        100_000,
        'the forwarder to answer /healthz',
      );
      return { child, admin, listen, stderr, exited };
    });
    const sock = await tcpConnect(listen);
    let text = '';
    for (let i = 0; i < 5000; i++) text += cef(i) + '\n';
    await writeAndEnd(sock, text);
    await waitFor(() => readRows(join(dir, 'rows.ndjson')).length >= 5000, 20_000, `5,000 rows delivered (stderr: ${stderr.text})`);
    const h = await healthz(`127.0.0.1:${admin}`, 15_000);
    expect((h.counters as Record<string, number>).delivered).toBe(5000);
    child.kill('SIGTERM');
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('hung'), 15_000))])).toBe(0);
    expect(stderr.text).not.toMatch(/ENOSPC|Unhandled/);
  }, 180_000);
});
