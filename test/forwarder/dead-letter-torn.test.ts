/**
 * A dead-letter append that fails part way, and whose cut-back fails too, must not leave a torn line
 * that the next entry is appended to (both entries unreadable). Found by the forwarder-wide fault
 * test (test/reliability/fault-layer.test.ts) with truncate faults on the dead-letter file.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeadLetterFile } from '../../src/forwarder/dead-letter.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';
import { tempDir } from './helpers.js';

let faults: FaultController | null = null;
const dirs: string[] = [];
afterEach(() => {
  faults?.clear();
  faults = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const entry = (i: number) => ({ reason: 'parse failure: test', raw: `line ${i} ${'x'.repeat(6000)}` });

describe('DeadLetterFile: a failed append whose cut-back fails', () => {
  it.each([['EIO'], ['ENOSPC'], ['EACCES']])(
    'truncate %s: nothing is appended behind the partial entry; retried, every line is JSON and every entry there once',
    (code) => {
      const dir = tempDir('dl-torn-');
      dirs.push(dir);
      const path = join(dir, 'dead-letter.ndjson');
      const dl = new DeadLetterFile(path, { maxBytes: 64 * 1024 * 1024, files: 2 });
      dl.write([entry(0)]);
      faults = injectFaults([
        { ops: ['write'], codes: ['SHORT'], times: 1 },
        { ops: ['write'], codes: ['EIO'], times: 1 },
        { ops: ['truncate'], codes: [code], times: 1 },
      ]);
      expect(() => dl.write([entry(1)])).toThrow(/EIO/);
      faults.clear();
      faults = null;
      // The caller retries the failed entry, then goes on.
      dl.write([entry(1)]);
      dl.write([entry(2)]);
      dl.close();
      const text = readFileSync(path, 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      const raws = text
        .split('\n')
        .slice(0, -1)
        .map((l) => String((JSON.parse(l) as { raw: string }).raw).split(' ')[1]);
      expect(raws).toEqual(['0', '1', '2']);
    },
  );
});

describe('DeadLetterFile: a rotated file that cannot be read to count its entries', () => {
  it.each([['EIO'], ['EMFILE'], ['EACCES']])('open %s: it is not deleted as if it were empty', (code) => {
    const dir = tempDir('dl-count-');
    dirs.push(dir);
    const path = join(dir, 'dead-letter.ndjson');
    // Files an earlier run wrote: this process does not know their counts.
    writeFileSync(`${path}.1`, Array.from({ length: 7 }, (_, i) => JSON.stringify(entry(i)) + '\n').join(''));
    const dl = new DeadLetterFile(path, { maxBytes: 64 * 1024 * 1024, files: 2 });
    dl.write([entry(100)]);
    faults = injectFaults([{ ops: ['open'], path: /\.ndjson\.1$/, codes: [code] }]);
    const freed = dl.reclaim();
    faults.clear();
    faults = null;
    // Either it is kept, or it is gone with its 7 entries counted; never gone and counted as 0.
    if (existsSync(`${path}.1`)) expect(freed).toBe(false);
    expect(existsSync(`${path}.1`) ? 7 : dl.droppedEntries).toBe(7);
    expect(dl.reclaim()).toBe(true);
    expect(dl.droppedEntries).toBe(7);
    dl.close();
  });
});
