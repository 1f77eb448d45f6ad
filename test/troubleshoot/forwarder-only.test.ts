import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { forwarderConfigSchema } from '../../src/config/schema.js';
import { startForwarder, type RunningForwarder } from '../../src/forwarder/forwarder.js';
import { createLogger } from '../../src/forwarder/logger.js';
import { Context } from '../../src/troubleshoot/context.js';
import * as e2e from '../../src/troubleshoot/checks/e2e.js';
import { createDefaultDeps } from '../../src/troubleshoot/deps.js';
import { troubleshootOptionsSchema } from '../../src/troubleshoot/types.js';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { createFsRoot } from '../../src/system/fs-root.js';
import { detectIpv6 } from '../../src/system/ipv6.js';
import { writeState, type InstallState } from '../../src/install/transaction.js';
import { testDeps } from './helpers.js';
import { onFreePorts } from '../helpers/ports.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const roots: string[] = [];
afterEach(() => {
  for (const d of roots.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A machine with rsyslog installed (not running, no drop-in) and the install state install writes. */
async function installedRoot(mode: 'forwarder-only' | undefined): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'scef-ts-fwdonly-'));
  roots.push(root);
  cpSync(path.join(fixtures, 'debian12-rsyslog'), root, { recursive: true });
  const state: InstallState = {
    version: 1,
    status: 'installed',
    installedAt: '2026-12-06T00:00:00Z',
    updatedAt: '2026-12-06T00:00:00Z',
    daemon: mode ? null : 'rsyslog',
    init: 'systemd',
    user: null,
    files: [],
    dirs: [],
    applied: [],
    options: {
      port: 514,
      protocol: 'both',
      forwarderPort: 25226,
      daemon: mode ? 'none' : 'rsyslog',
      configPath: '/etc/sentinel-cef/forwarder.json',
      dropin: mode ? '' : '/etc/rsyslog.d/10-sentinel-cef.conf',
      sink: { type: 'file', describe: 'file /var/tmp/rows.ndjson' },
      ...(mode ? { mode, readiness: '0.0.0.0:8080' } : {}),
    },
  };
  await writeState(createFsRoot(root), state);
  return root;
}

describe('troubleshoot on a forwarder-only install', () => {
  it('skips every daemon check, saying why, instead of failing them', async () => {
    const r = await runTroubleshoot({ probes: 0 }, testDeps(await installedRoot('forwarder-only')));
    const daemon = r.checks.filter((c) => c.id.startsWith('daemon.'));
    expect(daemon.length).toBeGreaterThan(5);
    for (const c of daemon)
      expect([c.id, c.status, c.message]).toEqual([
        c.id,
        'skip',
        'forwarder-only install: the forwarder listens on port 514 itself, no syslog daemon is in the path',
      ]);
    // The same machine installed with rsyslog in front: the missing drop-in and the stopped daemon are failures.
    const normal = await runTroubleshoot({ probes: 0 }, testDeps(await installedRoot(undefined)));
    expect(normal.checks.filter((c) => c.id.startsWith('daemon.') && c.status === 'fail').map((c) => c.id)).toEqual(
      expect.arrayContaining(['daemon.running', 'daemon.dropin']),
    );
  });
});

describe('troubleshoot probes straight to a forwarder-only listener', () => {
  let dir: string;
  let forwarder: RunningForwarder;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ts-fwdonly-'));
    const any = (await detectIpv6(createFsRoot('/'))) === 'none' ? '0.0.0.0' : '[::]';
    // One port for UDP and TCP, as install writes it: picked again if a test alongside took it.
    const raw = await onFreePorts(1, async ([p]) => {
      port = p;
      const raw = {
        // As install --forwarder-only --proxy v2 writes it: TCP from the balancer with a PROXY header, UDP bare.
        listen: [`udp://${any}:${port}`, `tcp://${any}:${port}?proxy=v2`],
        admin: '127.0.0.1:0',
        queue: { dir: join(dir, 'queue') },
        batch: { flushMs: 20 },
        sink: { type: 'file', path: join(dir, 'rows.ndjson') },
      };
      forwarder = await startForwarder(forwarderConfigSchema.parse(raw), { logger: createLogger('fatal') });
      return raw;
    });
    await writeFile(join(dir, 'forwarder.json'), JSON.stringify({ ...raw, admin: forwarder.adminAddress }));
  });
  afterAll(async () => {
    await forwarder?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers the UDP probes and sends no bare TCP probe to a listener that wants a PROXY header', async () => {
    // The run ends once both probes are delivered; 8 s was too short for that beside two CPU burners.
    const ctx = new Context(
      troubleshootOptionsSchema.parse({ configPath: join(dir, 'forwarder.json'), port, probes: 2, timeoutSec: 20, forwarderOnly: true }),
      createDefaultDeps({ root: '/', env: {} }),
    );
    const p = await e2e.checkProbes(ctx);
    expect(p.status, p.message).toBe('pass');
    expect(p.message).toContain('2/2 probes delivered (tcp 0/0, udp 2/2)');
    expect((p.details!.probes as Array<{ transport: string }>).map((x) => x.transport)).toEqual(['udp', 'udp']);
  }, 60_000);
});
