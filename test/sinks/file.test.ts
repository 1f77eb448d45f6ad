import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSink } from '../../src/sinks/index.js';

describe('file sink', () => {
  it('creates the directory and appends one NDJSON line per row', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    const path = join(dir, 'nested', 'deeper', 'out.ndjson');
    const sink = createSink({ type: 'file', path }, { fsync: true });
    expect(await sink.send([{ Activity: 'a', EventCount: 1 }, { Activity: 'b\nc' }])).toEqual({ status: 'success', accepted: 2 });
    expect(await sink.send([{ Activity: 'd' }])).toEqual({ status: 'success', accepted: 1 });
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.slice(0, 3).map((l) => JSON.parse(l).Activity)).toEqual(['a', 'b\nc', 'd']);
    expect(statSync(path).mode & 0o777).toBe(0o640);
  });

  it('ENOSPC → retryable (rows stay queued)', async () => {
    if (!existsSync('/dev/full')) return;
    const sink = createSink({ type: 'file', path: '/dev/full' });
    const r = await sink.send([{ Activity: 'x' }]);
    expect(r.status).toBe('retryable');
    expect((r as { error: string }).error).toMatch(/ENOSPC/);
  });

  it('a path that cannot be a file → retryable with a slow retry and the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sink-'));
    const sink = createSink({ type: 'file', path: dir });
    const r = await sink.send([{ Activity: 'x' }]);
    expect(r).toMatchObject({ status: 'retryable', retryAfterMs: 30_000 });
    expect((r as { error: string }).error).toMatch(/EISDIR/);
  });
});
