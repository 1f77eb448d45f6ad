import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { runAzureDemo } from '../../src/demo/azure-mock.js';

const bin = new URL('../../bin/sentinel-cef', import.meta.url).pathname;
const demoDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith('sentinel-cef-azure-demo-'));

describe('demo --azure-mock', () => {
  it('runs setup → ingest → readback against the mocks: every probe in the table, each hop timed, nothing left behind', async () => {
    const before = new Set(demoDirs());
    const log: string[] = [];
    const r = await runAzureDemo({ ingestionDelaySec: 1, timeoutSec: 60 }, (l) => log.push(l));
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(log.filter((l) => /^[123]\/3 /.test(l)).map((l) => l.slice(0, 3))).toEqual(['1/3', '2/3', '3/3']);
    expect(log).toContain('    ingestion accepts the identity');
    expect(r.hops).toHaveLength(2);
    for (const h of r.hops) {
      // The demo sends straight to the forwarder: no daemon hop to claim.
      expect(h).toMatchObject({ daemon: null, daemonMs: null });
      expect(h.forwarderMs).toBeTypeOf('number');
      expect(h.tableMs).toBeGreaterThanOrEqual(900);
    }
    // 2 probes and the 4 vendor samples, each once.
    expect(r.rowsInTable).toBe(6);
    expect(demoDirs().filter((d) => !before.has(d))).toEqual([]);
  }, 90_000);

  it('the built CLI: --json on stdout, steps on stderr, exit 0; a bad --ingestion-delay is exit 2', async () => {
    if (!existsSync(new URL('../../dist/cli.js', import.meta.url))) return; // npm test builds first
    const r = await execa(bin, ['demo', '--azure-mock', '--ingestion-delay', '0', '--json'], {
      env: { CI: 'true', NO_COLOR: '1' },
      reject: false,
      timeout: 80_000,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ok: boolean; hops: unknown[] };
    expect(out.ok).toBe(true);
    expect(out.hops).toHaveLength(2);
    expect(r.stderr).toContain('3/3 readback');
    const bad = await execa(bin, ['demo', '--azure-mock', '--ingestion-delay', 'soon'], {
      env: { CI: 'true', NO_COLOR: '1' },
      reject: false,
    });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim().split('\n')[0]).toMatch(
      /--ingestion-delay must be seconds, got 'soon'|--ingestion-delay must be seconds, got "soon"|--ingestion-delay must be seconds/,
    );
  }, 90_000);
});
