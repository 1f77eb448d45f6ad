/**
 * A full disk must not pause intake forever: once everything queued is delivered, the drained
 * active segment's space has to be given back (regression: scenario 6 found intake paused for good
 * when the queue filesystem was smaller than one segment). The "disk" here is a byte budget over the
 * queue directory's segment files, enforced through the queue's write seam.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskQueue } from '../../src/forwarder/disk-queue.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function smallDisk(dir: string, capacity: number) {
  const used = () =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.seg'))
      .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  return (fd: number, buf: Buffer, off: number, len: number): number => {
    if (used() + len > capacity) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return writeSync(fd, buf, off, len);
  };
}

const msg = (i: number) => ({ data: Buffer.from(`CEF:0|V|P|1|${i}|n|3|msg=${'x'.repeat(200)}`), truncated: false });

describe('disk queue on a full disk', () => {
  it('gives back a drained segment larger than the free space, so writes succeed again', () => {
    const dir = mkdtempSync(join(tmpdir(), 'q-enospc-'));
    dirs.push(dir);
    // Segments of 64 KiB on a 16 KiB "disk": the active segment can never rotate by size.
    const q = new DiskQueue({ dir, maxBytes: 1 << 30, segmentBytes: 64 * 1024, fsyncIntervalMs: 0, writeFn: smallDisk(dir, 16 * 1024) });
    q.open();
    let written = 0;
    expect(() => {
      for (;;) {
        q.append([msg(written)], Date.now());
        written++;
      }
    }).toThrow(/ENOSPC/);
    expect(written).toBeGreaterThan(10);
    // Deliver everything that was queued.
    const b = q.readBatch(1_000_000, 1 << 30);
    expect(b.records).toHaveLength(written);
    q.ackTo(b.end, b.records.length, b.diskBytes);
    expect(q.records).toBe(0);
    // The disk is still "full" of the drained segment; the next write must reclaim it and succeed.
    q.append([msg(written)], Date.now());
    const next = q.readBatch(10, 1 << 30);
    expect(next.records.map((r) => r.raw.toString())).toEqual([msg(written).data.toString()]);
    q.ackTo(next.end, next.records.length, next.diskBytes);
    q.close();
    // Reopening finds nothing left to deliver.
    const again = new DiskQueue({ dir, maxBytes: 1 << 30, segmentBytes: 64 * 1024, fsyncIntervalMs: 0 });
    again.open();
    expect(again.records).toBe(0);
    again.close();
  });

  it('still refuses (and keeps everything) while undelivered records fill the disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'q-enospc-'));
    dirs.push(dir);
    const q = new DiskQueue({ dir, maxBytes: 1 << 30, segmentBytes: 64 * 1024, fsyncIntervalMs: 0, writeFn: smallDisk(dir, 16 * 1024) });
    q.open();
    let written = 0;
    try {
      for (;;) {
        q.append([msg(written)], Date.now());
        written++;
      }
    } catch {
      // full
    }
    expect(() => q.append([msg(written)], Date.now())).toThrow(/ENOSPC/);
    expect(q.records).toBe(written);
    const b = q.readBatch(1_000_000, 1 << 30);
    expect(b.records.map((r) => r.raw.toString())).toEqual(Array.from({ length: written }, (_, i) => msg(i).data.toString()));
    q.close();
  });
});
