import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { probeTail, ProbeTracker } from '../../src/forwarder/probes.js';
import { buildSizedProbe } from '../../src/forwarder/send-test.js';
import { parseLine } from '../../src/parser/index.js';
import { LA_MAX_FIELD_BYTES, prepareCollectorRows } from '../../src/sinks/log-analytics.js';
import { runTroubleshoot } from '../../src/troubleshoot/run.js';
import { STOPPED_AT_DOCS } from '../../src/troubleshoot/catalogue.js';
import type { CheckResult } from '../../src/troubleshoot/types.js';
import { cleanup, healthyTree, makeRoot, probeIdOf, put, startFakeAdmin, startFakeDaemon, testDeps, type FakeAdmin } from './helpers.js';

const get = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id)!;

describe('sized probes', () => {
  it.each([300, 6144, 65_000])('a %i-byte probe is that long and keeps its id ahead of the padding', (size) => {
    const p = buildSizedProbe('ts-1-tcp-0001', size);
    expect(Buffer.byteLength(p.message)).toBe(Math.max(size, Buffer.byteLength(buildSizedProbe('ts-1-tcp-0001', 0).message)));
    expect(p.message.endsWith(p.tail)).toBe(true);
    expect(probeIdOf(p.message.slice(0, 400))).toBe('ts-1-tcp-0001');
  });

  // A probe cut by the sink's per-field limit lands in the dead-letter file: troubleshoot would then warn about itself.
  it.each([6144, 32_000, 64_512, 200_000])('a %i-byte probe keeps every column under the per-field limit', (size) => {
    const p = buildSizedProbe('ts-3-tcp-0001', size);
    const parsed = parseLine(p.message);
    if (!parsed.ok) throw new Error(parsed.reason);
    const [row] = prepareCollectorRows([parsed.row as never], LA_MAX_FIELD_BYTES);
    expect(row!.truncated).toBeUndefined();
  });

  it('the forwarder records size and tail hash of what arrived, once', () => {
    const p = buildSizedProbe('ts-2-udp-0001', 6144);
    const t = new ProbeTracker();
    t.received('ts-2-udp-0001', 1, Buffer.from(`<13>1 - host CEF - - - ${p.message}\n`));
    t.received('ts-2-udp-0001', 2, Buffer.from('a second copy'));
    const tail = probeTail(Buffer.from(`${p.message}\r\n`), 'ts-2-udp-0001');
    expect(tail.tailBytes).toBe(Buffer.byteLength(p.tail));
    expect(t.get('ts-2-udp-0001')).toMatchObject({ tailBytes: tail.tailBytes, tailSha256: tail.tailSha256 });
  });
});

describe('truncation along the chain', () => {
  let root: string;
  let admin: FakeAdmin;
  let daemon: { port: number; close(): Promise<void> };
  /** Where the fake chain cuts a message (bytes), as rsyslog's maxMessageSize does. */
  let cutAt: number;

  beforeEach(async () => {
    root = await makeRoot();
    admin = await startFakeAdmin();
    cutAt = Infinity;
    daemon = await startFakeDaemon((msg) => {
      const id = probeIdOf(msg);
      if (!id) return;
      const arrived = Buffer.from(msg).subarray(0, cutAt);
      const now = new Date().toISOString();
      // What the real forwarder answers: probes.ts computes size and tail hash of the bytes it got.
      admin.probes.set(id, {
        id,
        received: true,
        receivedAt: now,
        accepted: true,
        acceptedAt: now,
        latencyMs: 5,
        ...probeTail(arrived, id),
      });
    });
    await healthyTree(root, { adminPort: admin.port, daemonPort: daemon.port });
  });
  afterEach(async () => {
    await daemon.close();
    await admin.close();
    await cleanup(root);
  });
  // Room for a loaded machine: the probe check keeps a quarter of the run to conclude (0.5 s at 2 s was cut off).
  const opts = (o: Record<string, unknown> = {}) => ({ port: daemon.port, probes: 1, timeoutSec: 6, ...o });

  it('rsyslog cutting at 4k: a 6 KiB probe shows it, naming the hop and the exact setting; exit status fails', async () => {
    await put(root, '/etc/rsyslog.conf', 'global(maxMessageSize="4k")\n$IncludeConfig /etc/rsyslog.d/*.conf\n');
    cutAt = 4096;
    const r = await runTroubleshoot(opts({ probeSize: 6144 }), testDeps(root));
    const m = get(r.checks, 'daemon.max-message-size');
    expect(m.status).toBe('fail');
    expect(m.message).toContain('rsyslog cuts 6 KiB messages: a 6144-byte tcp probe arrived as 4096 bytes');
    expect(m.fix).toBe(
      'change maxMessageSize="4k" in /etc/rsyslog.conf to maxMessageSize="64k" (it must stay before any input), then restart rsyslog',
    );
    const p = get(r.checks, 'e2e.probes');
    expect(p.status).toBe('fail');
    expect(p.message).toContain('arrived cut');
    // A documented stage, not one the reader has to invent.
    expect(p.details?.stoppedAt).toBe('delivered-cut');
    expect(Object.keys(STOPPED_AT_DOCS)).toContain('delivered-cut');
    expect(r.ok).toBe(false);
  });

  it('the same 4k limit warns even without --probe-size (lowered below the default)', async () => {
    await put(root, '/etc/rsyslog.conf', 'global(maxMessageSize="4k")\n$IncludeConfig /etc/rsyslog.d/*.conf\n');
    cutAt = 4096;
    const r = await runTroubleshoot(opts(), testDeps(root));
    expect(get(r.checks, 'daemon.max-message-size').status).toBe('warn');
    expect(get(r.checks, 'e2e.probes').status).toBe('pass');
  });

  it('the forwarder as the hop that cuts', async () => {
    await put(root, '/etc/rsyslog.conf', 'global(maxMessageSize="64k")\n$IncludeConfig /etc/rsyslog.d/*.conf\n');
    await put(
      root,
      '/etc/sentinel-cef/forwarder.json',
      JSON.stringify({
        sink: { type: 'file', path: '/var/lib/sentinel-cef/out.ndjson' },
        admin: `127.0.0.1:${admin.port}`,
        limits: { maxMessageBytes: 4096 },
      }),
    );
    cutAt = 4096;
    const r = await runTroubleshoot(opts({ probeSize: 6144 }), testDeps(root));
    const m = get(r.checks, 'daemon.max-message-size');
    expect(m.status).toBe('fail');
    expect(m.message).toContain('the forwarder cuts 6 KiB messages');
    expect(m.fix).toContain('"limits": {"maxMessageBytes": 65536} in /etc/sentinel-cef/forwarder.json');
  });

  it('a default rsyslog install (8k, nothing cut) is not flagged; probes just under the limit arrive whole', async () => {
    const r = await runTroubleshoot(opts(), testDeps(root));
    const m = get(r.checks, 'daemon.max-message-size');
    expect(m.status, m.message).toBe('pass');
    expect(m.message).toContain('probes arrived whole');
    const probes = get(r.checks, 'e2e.probes').details!.probes as Array<{ sentBytes: number; intact: boolean }>;
    for (const p of probes) {
      expect(p.sentBytes).toBe(8 * 1024 - 1024);
      expect(p.intact).toBe(true);
    }
  });

  it('a 6 KiB probe through a chain with room passes', async () => {
    await put(root, '/etc/rsyslog.conf', 'global(maxMessageSize="64k")\n$IncludeConfig /etc/rsyslog.d/*.conf\n');
    const r = await runTroubleshoot(opts({ probeSize: 6144 }), testDeps(root));
    expect(get(r.checks, 'daemon.max-message-size').status).toBe('pass');
    expect(get(r.checks, 'e2e.probes').status).toBe('pass');
  });
});
