import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { MAX_LINE_BYTES, runParse } from '../../src/commands/parse.js';

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin/sentinel-cef');
const fixtures = join(root, 'test/fixtures/parser');
const env = { CI: 'true', NO_COLOR: '1' };
const AT = '2026-11-22T10:00:30Z';

beforeAll(async () => {
  // `npm test` builds first; build here only when run on its own against a fresh checkout.
  if (!existsSync(join(root, 'dist/cli.js'))) await execa('node', ['scripts/build.mjs'], { cwd: root });
}, 120_000);

const sources = readdirSync(fixtures)
  .filter((f) => f.endsWith('.log'))
  .map((f) => f.slice(0, -4));

describe('sentinel-cef parse (built CLI)', () => {
  it.each(sources)('%s.log → expected NDJSON, stderr and exit code', async (source) => {
    const r = await execa(bin, ['parse', '--received-at', AT, join(fixtures, `${source}.log`)], { env, reject: false });
    expect(r.stdout + (r.stdout ? '\n' : '')).toBe(readFileSync(join(fixtures, `${source}.expected.ndjson`), 'utf8'));
    const errFile = join(fixtures, `${source}.expected.stderr`);
    if (existsSync(errFile)) {
      const expected = readFileSync(errFile, 'utf8').trimEnd().split('\n');
      const lines = r.stderr.split('\n');
      expect(lines.slice(0, -1)).toEqual(expected);
      expect(lines.at(-1)).toMatch(/^sentinel-cef: \d+ of \d+ lines not parsed \(reasons above\)$/);
      expect(r.exitCode).toBe(1);
    } else {
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
    }
  });

  it('gives the same rows when Node forbids code generation from strings', async () => {
    const file = join(fixtures, 'paloalto.log');
    const r = await execa('node', ['--disallow-code-generation-from-strings', bin, 'parse', '--received-at', AT, file], {
      env,
      reject: false,
    });
    expect(r.exitCode).toBe(0);
    expect(`${r.stdout}\n`).toBe(readFileSync(join(fixtures, 'paloalto.expected.ndjson'), 'utf8'));
  });

  it('reads stdin when no file is given, handles CRLF and skips blank lines', async () => {
    const input = 'CEF:0|V|P|1|id|n|5|src=10.0.0.1\r\n\r\n   \n<164>Nov 22 10:00:00 h CEF:0|V|P|1|id|n|5|dpt=22\r\n';
    const r = await execa(bin, ['parse', '--received-at', AT], { env, input, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').map((l) => JSON.parse(l))).toEqual([
      {
        TimeGenerated: '2026-11-22T10:00:30.000Z',
        DeviceVendor: 'V',
        DeviceProduct: 'P',
        DeviceVersion: '1',
        DeviceEventClassID: 'id',
        Activity: 'n',
        LogSeverity: '5',
        SourceIP: '10.0.0.1',
      },
      {
        TimeGenerated: '2026-11-22T10:00:30.000Z',
        Computer: 'h',
        DeviceVendor: 'V',
        DeviceProduct: 'P',
        DeviceVersion: '1',
        DeviceEventClassID: 'id',
        Activity: 'n',
        LogSeverity: '5',
        DestinationPort: 22,
      },
    ]);
  });

  it('names the file in reasons when given several files, and keeps going', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parse-cli-'));
    const a = join(dir, 'a.log');
    const b = join(dir, 'b.log');
    writeFileSync(a, 'not cef\nCEF:0|V|P|1|id|n|5|\n');
    writeFileSync(b, 'CEF:0|V|P|1|id|n|5|\nCEF:0|V\n');
    const r = await execa(bin, ['parse', '--received-at', AT, a, b], { env, reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stdout.split('\n')).toHaveLength(2);
    expect(r.stderr).toBe(
      `${a}: line 1: not a CEF or Cisco ASA/FTD message\n` +
        `${b}: line 2: truncated CEF header: 2 of 7 fields (version|vendor|product|version|id|name|severity)\n` +
        'sentinel-cef: 2 of 4 lines not parsed (reasons above)',
    );
  });

  it('fails with one clear line for a missing file, before printing anything', async () => {
    const r = await execa(bin, ['parse', join(fixtures, 'darktrace.log'), '/nonexistent/x.log'], { env, reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('sentinel-cef: cannot read /nonexistent/x.log: no such file');
  });

  it('rejects a --received-at that is not ISO 8601', async () => {
    const r = await execa(bin, ['parse', '--received-at', 'yesterday'], { env, input: '', reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe("sentinel-cef: --received-at must be an ISO 8601 date-time (2026-01-31T12:00:00Z), got 'yesterday'");
  });

  it('shows an example in --help', async () => {
    const r = await execa(bin, ['parse', '--help'], { env, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('--received-at <iso>');
    expect(r.stdout).toContain("Examples:\n  $ echo 'CEF:0|Acme|IDS");
    // The example's output is what the command really prints.
    const lines = r.stdout.split('\n');
    const i = lines.findIndex((l) => l.startsWith("  $ echo 'CEF:"));
    const input = /echo '([^']*)'/.exec(lines[i])?.[1];
    const real = await execa(bin, ['parse'], { env, input });
    expect(real.stdout.replace(/"TimeGenerated":"[^"]*"/, '"TimeGenerated":"…"')).toBe(lines[i + 1].trim());
  });

  it('stops quietly when the reader goes away (| head -1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parse-cli-'));
    const big = join(dir, 'big.log');
    writeFileSync(big, 'CEF:0|V|P|1|id|n|5|src=10.0.0.1 msg=some text here\n'.repeat(200_000));
    const r = await execa(`${bin} parse ${big} | head -1`, { shell: true, env, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split('\n')).toHaveLength(1);
    expect(r.stderr).toBe('');
  });
});

describe('runParse', () => {
  async function run(input: string | Buffer | Buffer[]) {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => (out += d));
    stderr.on('data', (d) => (err += d));
    if (Array.isArray(input)) {
      for (const chunk of input) stdin.write(chunk);
      stdin.end();
    } else stdin.end(input);
    const summary = await runParse({ files: [], receivedAt: AT }, { stdin, stdout, stderr });
    return { summary, out, err };
  }

  it('streams lines split across chunks and keeps the last line without a newline', async () => {
    const { summary, out } = await run('CEF:0|V|P|1|id|n|5|src=1.1.1.1\nCEF:0|V|P|1|id|n|5|src=2.2.2.2');
    expect(summary).toEqual({ lines: 2, parsed: 2, failed: 0, blank: 0 });
    expect(out.trimEnd().split('\n')).toHaveLength(2);
  });

  it('counts failures and blank lines', async () => {
    const { summary, err } = await run('x\n\nCEF:0|V|P|1|id|n|5|\n');
    expect(summary).toEqual({ lines: 3, parsed: 1, failed: 1, blank: 1 });
    expect(err).toBe('line 1: not a CEF or Cisco ASA/FTD message\n');
  });

  it('reports and skips a line longer than the limit, then goes on', async () => {
    const huge = Buffer.alloc(MAX_LINE_BYTES + 10, 0x61);
    const { summary, out, err } = await run(Buffer.concat([huge, Buffer.from('\nCEF:0|V|P|1|id|n|5|\n')]));
    expect(summary).toEqual({ lines: 2, parsed: 1, failed: 1, blank: 0 });
    expect(err).toMatch(/^line 1: longer than 16777216 bytes \(\d+\+\), skipped\n$/);
    expect(out.trimEnd().split('\n')).toHaveLength(1);
  });

  it('drops an over-long line arriving in many chunks without holding it in memory', async () => {
    const mib = Buffer.alloc(1024 * 1024, 0x61);
    const chunks = [
      Buffer.from('CEF:0|V|P|1|id|n|5|\n'),
      ...Array.from({ length: 17 }, () => mib),
      Buffer.from('tail\nCEF:0|V|P|1|id|n|5|'),
    ];
    const { summary, err } = await run(chunks);
    expect(summary).toEqual({ lines: 3, parsed: 2, failed: 1, blank: 0 });
    expect(err).toMatch(/^line 2: longer than 16777216 bytes/);
  });

  it('keeps Latin-1 bytes instead of replacing them', async () => {
    const { out } = await run(Buffer.from([...Buffer.from('CEF:0|V|P|1|id|n|5|suser=J'), 0xfc, 0x0a]));
    expect(JSON.parse(out).SourceUserName).toBe('J\u00fc');
  });
});
