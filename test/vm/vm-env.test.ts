import { afterAll, describe, expect, it } from 'vitest';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { countTagged, duplicateRuns, seqsIn, type Vm } from './vm-env.js';

// The VM suites' row readers, run here against a local file: what the forwarder's file sink leaves while it appends,
// or after a kill cut an append (a line without its newline until the next append removes it).
const local: Vm = {
  name: 'local',
  sh: async (script, opts = {}) => {
    const r = await execa('bash', ['-c', script], { reject: false, input: opts.input });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  },
  ok: async (script, opts) => {
    const r = await local.sh(script, opts);
    if (r.exitCode !== 0) throw new Error(`${script}: exit ${r.exitCode}: ${r.stderr}`);
    return r.stdout;
  },
  reboot: () => Promise.reject(new Error('not a VM')),
  powerCut: () => Promise.reject(new Error('not a VM')),
  start: () => Promise.reject(new Error('not a VM')),
  down: () => Promise.resolve(),
};

const dir = mkdtempSync(path.join(tmpdir(), 'scef-vm-env-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const row = (seq: string) =>
  JSON.stringify({ DeviceVendor: 'Acme', DeviceCustomString1Label: 'Seq', DeviceCustomString1: seq, Activity: 'vm event' });

describe('VM row readers', () => {
  it('count only complete rows: a cut last line is not a row yet, even with its id in it', async () => {
    const f = path.join(dir, 'cut.ndjson');
    writeFileSync(f, `${row('burst-0')}\n${row('burst-1')}\n${row('other-0')}\n${row('burst-1')}\n`);
    appendFileSync(f, row('burst-2').slice(0, -10));
    expect(await countTagged(local, f, 'burst', 2, 300)).toEqual({ unique: 2, dups: 1 });
    expect((await seqsIn(local, f)).sort()).toEqual(['burst-0', 'burst-1', 'burst-1', 'other-0']);
    expect(await seqsIn(local, f, 'other-')).toEqual(['other-0']);
  });

  it('count the last row of a file that ends a line (a reader that lost the final newline dropped it every time)', async () => {
    const f = path.join(dir, 'whole.ndjson');
    writeFileSync(f, `${row('fresh-0')}\n${row('fresh-1')}\n`);
    expect(await seqsIn(local, f)).toEqual(['fresh-0', 'fresh-1']);
    expect(await seqsIn(local, f, 'fresh-')).toEqual(['fresh-0', 'fresh-1']);
  });

  it('fail on a complete line that is not a row (a cut append never removed), naming it', async () => {
    const f = path.join(dir, 'torn.ndjson');
    writeFileSync(f, `${row('load-0')}\n${row('load-1').slice(0, 30)}${row('load-2')}\n`);
    await expect(seqsIn(local, f)).rejects.toThrow(/not a JSON row: .*load-2/);
    await expect(countTagged(local, f, 'load', 3, 300)).rejects.toThrow(/not a JSON row/);
  });

  it('read a missing file as no rows', async () => {
    expect(await seqsIn(local, path.join(dir, 'none.ndjson'))).toEqual([]);
  });
});

describe('duplicateRuns', () => {
  it('finds each run of consecutive lines that came more than once, and the most copies of one', () => {
    const got = ['t-0', 't-1', 't-2', 't-1', 't-2', 't-3', 't-5', 't-5', 't-5', 'x-5', 't-4', 't-9'];
    expect(duplicateRuns(got, 't', 10)).toEqual({ runs: [2, 1], maxCopies: 3 });
    expect(duplicateRuns(['t-0', 't-1'], 't', 2)).toEqual({ runs: [], maxCopies: 1 });
  });
});
