import { existsSync } from 'node:fs';
import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { renderRowsTable, runDemo } from '../../src/commands/demo.js';
import { runSendTest } from '../../src/commands/send-test.js';
import { startForwarder } from '../../src/forwarder/forwarder.js';
import { buildProbeMessage, probeCef } from '../../src/forwarder/send-test.js';
import { parseLine } from '../../src/parser/index.js';
import { PROBE_VENDOR } from '../../src/forwarder/admin-types.js';
import { makeConfig, readRows, silent, tempDir, waitFor } from './helpers.js';

describe('send-test', () => {
  it('builds the Microsoft mock message with a probe id that the parser maps to cs2', () => {
    expect(probeCef('abc')).toContain('0|TestCommonEventFormat|MOCK|common=event-format-test|end|TRAFFIC|1|');
    for (const format of ['rfc3164', 'rfc5424'] as const) {
      const msg = buildProbeMessage('probe-1', format, 'h1');
      expect(msg.startsWith('<164>')).toBe(true);
      const r = parseLine(msg, new Date());
      expect(r.ok && r.row).toMatchObject({
        DeviceVendor: PROBE_VENDOR,
        DeviceCustomString2Label: 'ProbeId',
        DeviceCustomString2: 'probe-1',
      });
    }
  });

  it('sends unique probes over TCP and UDP and they arrive', async () => {
    const dir = tempDir();
    const config = makeConfig(dir, { admin: false });
    const f = await startForwarder(config, { logger: silent });
    try {
      const tcp = f.addresses.find((a) => a.protocol === 'tcp')!;
      const udp = f.addresses.find((a) => a.protocol === 'udp')!;
      const a = await runSendTest({ target: `127.0.0.1:${tcp.port}`, count: '3', rfc5424: true, octetCount: true });
      const b = await runSendTest({ target: `127.0.0.1:${udp.port}`, protocol: 'udp', count: '2' });
      expect(new Set([...a.ids, ...b.ids]).size).toBe(5);
      await waitFor(() => [...a.ids, ...b.ids].every((id) => f.probe(id).accepted), 5000);
      const path = (config.sink as { path: string }).path;
      expect(
        readRows(path)
          .map((r) => r.DeviceCustomString2)
          .sort(),
      ).toEqual([...a.ids, ...b.ids].sort());
    } finally {
      await f.shutdown();
    }
    await expect(runSendTest({ target: '127.0.0.1:1' })).rejects.toThrow(/ECONNREFUSED.*|cannot send/);
    await expect(runSendTest({ count: '0' })).rejects.toThrow(/--count/);
  });
});

describe('demo', () => {
  it('runs the forwarder locally and finds every expected event', async () => {
    const log: string[] = [];
    const r = await runDemo({ timeout: '15' }, (l) => log.push(l));
    expect(r.problems).toEqual([]);
    // It says what became of its folder.
    expect(existsSync(r.dir)).toBe(false);
    expect(r.kept).toBe(false);
    expect(log.at(-1)).toBe(`deleted ${r.dir} (pass --keep to keep it)`);
    expect(r.ok).toBe(true);
    expect(r.counters).toMatchObject({ received: 8, delivered: 7, parseFailures: 1, deadLettered: 1 });
    expect(r.probes.every((p) => p.accepted)).toBe(true);
    const table = renderRowsTable(r.rows, new Chalk({ level: 0 }));
    expect(table).toContain('Palo Alto Networks');
    expect(table).toContain('Cisco');
    // No ANSI escapes may be printed.
    expect(table).not.toContain('\u001b[');
  });
});
