import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE_RANGE, satisfiesNodeRange } from '../src/system/node-support.js';
import { forwarderStarted, portOf } from './helpers/ports.js';

// The CLI, the demo and the forwarder bundle on each official Node build that `scripts/node-matrix fetch` cached:
// the lowest supported 20.x, 22, 24, 26 — and 18, which must be refused in one line.
const repo = path.resolve(import.meta.dirname, '..');
const bin = path.join(repo, 'bin/sentinel-cef');
const bundle = path.join(repo, 'dist/forwarder.mjs');
const cached = execFileSync(path.join(repo, 'scripts/node-matrix'), ['list'], { encoding: 'utf8' })
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    const [version, node] = l.split(' ') as [string, string];
    return { version, node, actual: execFileSync(node, ['--version'], { encoding: 'utf8' }).trim() };
  });
const supported = cached.filter((c) => satisfiesNodeRange(c.actual));
const unsupported = cached.filter((c) => !satisfiesNodeRange(c.actual));
if (cached.length === 0) console.warn('Node matrix skipped: no cached Node builds (run scripts/node-matrix fetch)');

const CEF = '<134>Dec  6 10:00:00 fw1 CEF:0|Acme|FW|1.0|100|matrix event|3|src=10.0.0.1 dst=10.0.0.2 msg=caf\u00e9';

describe.skipIf(supported.length === 0).each(supported)('Node $actual (supported)', ({ node }) => {
  it('runs the CLI: --version and parse', async () => {
    const v = await execa(node, [bin, '--version'], { reject: false });
    expect(v.exitCode, v.stderr).toBe(0);
    const p = await execa(node, [bin, 'parse'], { input: `${CEF}\n`, reject: false });
    expect(p.exitCode, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout.trim())).toMatchObject({
      DeviceVendor: 'Acme',
      Activity: 'matrix event',
      SourceIP: '10.0.0.1',
      Message: 'caf\u00e9',
    });
  }, 60_000);

  it('runs the demo end to end', async () => {
    const d = await execa(node, [bin, 'demo', '--timeout', '60'], { env: { CI: 'true', NO_COLOR: '1' }, reject: false, timeout: 120_000 });
    expect(d.exitCode, d.stdout + d.stderr).toBe(0);
  }, 150_000);

  it('runs the deployed forwarder bundle with a parse worker: a row arrives, SIGTERM exits 0', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'scef-matrix-'));
    try {
      const rows = path.join(dir, 'rows.ndjson');
      const fwd = execa(
        node,
        [
          bundle,
          '--listen',
          'tcp://127.0.0.1:0',
          '--queue-dir',
          path.join(dir, 'q'),
          '--sink',
          `file:${rows}`,
          '--admin',
          'off',
          '--parse-workers',
          '1',
          '--dead-letter-file',
          path.join(dir, 'dl.ndjson'),
        ],
        { reject: false },
      );
      // Port 0: a port picked beforehand can be taken by a test file running alongside.
      const port = portOf((await forwarderStarted(fwd)).inputs[0]);
      await new Promise<void>((resolve, reject) => {
        const s = connect({ port, host: '127.0.0.1' }, () => s.end(`${CEF}\n`, () => resolve()));
        s.on('error', reject);
      });
      for (let i = 0; i < 200 && !(existsSync(rows) && readFileSync(rows, 'utf8').includes('matrix event')); i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(readFileSync(rows, 'utf8')).toContain('matrix event');
      fwd.kill('SIGTERM');
      const r = await fwd;
      expect(r.exitCode, r.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe.skipIf(unsupported.length === 0).each(unsupported)('Node $actual (outside the range)', ({ node, actual }) => {
  it('the CLI says so in one line and exits 2', async () => {
    const r = await execa(node, [bin, 'install', '--dry-run', '--sink', 'file:/var/tmp/x.ndjson'], { env: { CI: 'true' }, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(actual);
    expect(r.stderr).toContain(NODE_RANGE);
  });

  it('the forwarder bundle says so in one line and exits 2 (no crash loop of stack traces)', async () => {
    const r = await execa(node, [bundle, '--help'], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(actual);
  });
});
