/**
 * Scenario 1, short: sequence-numbered load through the real daemons in the sandbox, set up by the
 * real `install` (which test/sandbox already checks in detail): nothing lost or duplicated on
 * port 514 → daemon → forwarder → mock workspace. Both daemons run at once, each in its own sandbox.
 */
import { execa } from 'execa';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../scripts/load/harness.js';
import { ensureBundle, hasUnshare, isRoot } from './helpers.js';

const cache = process.env.SENTINEL_CEF_DEB_CACHE ?? join(REPO, '.cache/debs');
const cached = (d: string) => existsSync(join(cache, d)) && readdirSync(join(cache, d)).some((f) => f.endsWith('.deb'));
const ready = isRoot && hasUnshare && (process.env.CI === 'true' || (cached('rsyslog') && cached('syslog-ng-core')));

beforeAll(() => ensureBundle(), 120_000);

describe.skipIf(!ready)('chain (short): real daemons in the sandbox', () => {
  it('rsyslog and syslog-ng each carry 20,000 events to the workspace with none lost or duplicated', async () => {
    const run = (daemon: string) =>
      execa(
        process.execPath,
        ['--import', 'tsx', 'scripts/load/chain.ts', '--mode', 'chain', '--daemon', daemon, '--events', '20000', '--connections', '2'],
        {
          cwd: REPO,
          reject: false,
          timeout: 170_000,
        },
      );
    const [rs, ng] = await Promise.all([run('rsyslog'), run('syslog-ng')]);
    for (const [name, r] of [
      ['rsyslog', rs],
      ['syslog-ng', ng],
    ] as const) {
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      expect(line, `${name}: ${r.stdout}\n${r.stderr}`).toBeDefined();
      const m = JSON.parse(line!.slice(7)) as { received: number; lost: number; duplicates: number };
      expect(m.received, name).toBe(20000);
      expect(m.lost, name).toBe(0);
      expect(m.duplicates, name).toBe(0);
    }
  }, 180_000);
});
