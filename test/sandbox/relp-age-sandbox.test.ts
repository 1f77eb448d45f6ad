import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debCache, repo, sandbox, sandboxSkipReason } from './sandbox-env.js';

const relpDebs = path.join(debCache, 'rsyslog-relp');
const reason =
  sandboxSkipReason() ??
  (existsSync(relpDebs) ? null : `no rsyslog-relp .debs in ${relpDebs}: run scripts/sandbox fetch --group rsyslog-relp`);
if (reason) console.warn(`RELP ageing sandbox test skipped: ${reason}`);
const read = (dir: string, f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '');

// Issue 18: rsyslog's omrelp → the forwarder's RELP input aged every second (limits.maxConnectionAgeSec 1), 3,600
// events at 600/s through rsyslog (imtcp in, omrelp out). About 35 s here, most of it the sandbox's dpkg -i.
describe.skipIf(reason !== null)('RELP session ageing with real rsyslog omrelp in the sandbox', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'scef-sbx-relp-age-'));
    chmodSync(dir, 0o755);
    const r = await execa(
      sandbox,
      ['run', '--daemon', 'rsyslog', '--extra', 'rsyslog-relp', '--', 'bash', path.join(repo, 'test/sandbox/relp-age-scenario.sh'), dir],
      { reject: false, timeout: 420_000 },
    );
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}\n${read(dir, 'error')}`);
  }, 450_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loses and duplicates nothing over several ages, and rsyslog logs at most one line per age', () => {
    const seq = JSON.parse(read(dir, 'chkseq.json')) as Record<string, number>;
    expect({ received: seq.received, lost: seq.lost, duplicates: seq.duplicates, unknown: seq.unknown }).toEqual({
      received: 3600,
      lost: 0,
      duplicates: 0,
      unknown: 0,
    });
    const metrics = read(dir, 'metrics.txt');
    const aged = Number(/sentinel_cef_connections_closed_total\{input="relp",reason="max_age"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    expect(aged, metrics).toBeGreaterThanOrEqual(3);
    // Lines up to the metrics scrape (later ones are rsyslog's shutdown): omrelp's one "suspending" line when it
    // reads the serverclose hint, then it reconnects and resends; nothing else.
    const until = Number(read(dir, 't3'));
    const lines = read(dir, 'rsyslogd.out')
      .split('\n')
      .filter(Boolean)
      .filter((l) => Number(l.split(' ')[0]) <= until);
    expect(lines.length, lines.join('\n')).toBeLessThanOrEqual(aged);
    for (const l of lines) expect(l).toMatch(/librelp error 10008 forwarding to server 127\.0\.0\.1:2514 - suspending/);
  });
});
