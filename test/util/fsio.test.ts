import { afterEach, describe, expect, it } from 'vitest';
import { fstatSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fsio from '../../src/util/fsio.js';
import { injectFaults, type FaultController } from '../helpers/faults.js';

let faults: FaultController | null = null;
afterEach(() => faults?.clear());

describe('fsio fault seam', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fsio-'));

  it('passes calls through when no plan is set', async () => {
    const p = join(dir, 'plain');
    const fd = await fsio.open(p, 'a', 0o600);
    await fsio.writeAll(fd, Buffer.from('hello\n'));
    await fsio.close(fd);
    expect(readFileSync(p, 'utf8')).toBe('hello\n');
  });

  it('fails only the calls and paths a rule names, with a real errno shape', () => {
    faults = injectFaults([{ ops: ['open'], path: /target$/, codes: ['EMFILE'] }]);
    expect(() => fsio.openSync(join(dir, 'target'), 'a')).toThrow(expect.objectContaining({ code: 'EMFILE', syscall: 'open' }));
    const fd = fsio.openSync(join(dir, 'other'), 'a');
    fsio.closeSync(fd);
    expect(faults.hits.get('open:EMFILE')).toBe(1);
  });

  it('short writes are looped by writeAll / writeAllSync and the bytes stay whole', async () => {
    faults = injectFaults([{ ops: ['write'], codes: ['SHORT'] }], 7);
    const data = Buffer.alloc(100_000, 'x');
    const p = join(dir, 'short');
    const fd = fsio.openSync(p, 'w');
    fsio.writeAllSync(fd, data);
    fsio.closeSync(fd);
    const fd2 = await fsio.open(p, 'a');
    await fsio.writeAll(fd2, data);
    await fsio.close(fd2);
    expect(readFileSync(p).length).toBe(200_000);
    expect(faults.total).toBeGreaterThan(10);
  });

  it('reports how much was written before a failure', async () => {
    faults = injectFaults([
      { ops: ['write'], codes: ['ENOSPC'], after: 1 },
      { ops: ['write'], codes: ['SHORT'] },
    ]);
    const fd = await fsio.open(join(dir, 'partial'), 'w');
    const err = await fsio.writeAll(fd, Buffer.alloc(50_000)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENOSPC' });
    expect((err as { written: number }).written).toBeGreaterThan(0);
    await fsio.close(fd);
  });

  it('fails the fsync callback form asynchronously', async () => {
    faults = injectFaults([{ ops: ['fsync'], codes: ['EIO'] }]);
    const fd = fsio.openSync(join(dir, 'sync'), 'w');
    const err = await new Promise((r) => fsio.fsync(fd, r));
    expect(err).toMatchObject({ code: 'EIO' });
    faults.clear();
    fsio.closeSync(fd);
  });

  it('releases the fd on a failed close, as Linux does, so a retry cannot close a reused number', async () => {
    faults = injectFaults([{ ops: ['close'], codes: ['EIO'] }]);
    const fd = fsio.openSync(join(dir, 'close-sync'), 'w');
    expect(() => fsio.closeSync(fd)).toThrow(/EIO/);
    const fd2 = await fsio.open(join(dir, 'close-async'), 'w');
    await expect(fsio.close(fd2)).rejects.toMatchObject({ code: 'EIO' });
    faults.clear();
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
    expect(() => fstatSync(fd2)).toThrow(/EBADF/);
  });
});
