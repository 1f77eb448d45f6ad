import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Every command's flags, against the built CLI: bad input is one line on stderr naming the flag, nothing on
// stdout, exit 2; a runtime failure is exit 1. Run `npm run build` first (`npm test` does).
const bin = new URL('../bin/sentinel-cef', import.meta.url).pathname;
const env = { CI: 'true', NO_COLOR: '1' };
const WS = '11111111-2222-3333-4444-555555555555';
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sentinel-cef-bad-input-'));
  writeFileSync(join(dir, 'key-0644'), 'c2VjcmV0c2VjcmV0c2VjcmV0\n');
  chmodSync(join(dir, 'key-0644'), 0o644);
  writeFileSync(join(dir, 'key-empty'), '', { mode: 0o600 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cases: Array<[string, string[], RegExp | string, number]> = [
  ['top-level unknown option', ['--bogus'], "sentinel-cef: unknown option '--bogus' — see `sentinel-cef --help`", 2],
  ['unknown command', ['bogus'], "sentinel-cef: unknown command 'bogus' — see `sentinel-cef --help`", 2],
  ['subcommand unknown option', ['install', '--bogus'], "sentinel-cef: unknown option '--bogus' — see `sentinel-cef install --help`", 2],
  ['typo gets a suggestion', ['install', '--prot', 'x'], /^sentinel-cef: unknown option '--prot' \(did you mean --port\?\)/, 2],
  ['install --port abc', ['install', '--port', 'abc'], "sentinel-cef: --port must be an integer from 1 to 65535, got 'abc'", 2],
  ['install --port 514.5', ['install', '--port', '514.5'], "sentinel-cef: --port must be an integer from 1 to 65535, got '514.5'", 2],
  ['install --forwarder-port 0', ['install', '-p', '0'], "sentinel-cef: --forwarder-port must be an integer from 1 to 65535, got '0'", 2],
  ['install --protocol', ['install', '--protocol', 'sctp'], /^sentinel-cef: --protocol must be one of tcp, udp, both, got 'sctp'/, 2],
  ['install --dce', ['install', '--dce', 'ftp://x'], "sentinel-cef: --dce must be an http(s) URL, got 'ftp://x'", 2],
  ['install workspace id', ['install', 'nope'], "sentinel-cef: <workspaceId> must be a GUID (the workspace id), got 'nope'", 2],
  ['install key file 0644', ['install', WS, '--key-file', '@/key-0644', '--dry-run', '--root', '@'], /^sentinel-cef: refusing to use the workspace key file .*key-0644: mode 644 lets other users read it — run: chmod 600 /, 2],
  ['install key file empty', ['install', WS, '--key-file', '@/key-empty', '--dry-run', '--root', '@'], /^sentinel-cef: the workspace key file .*key-empty is empty/, 2],
  ['uninstall unknown option', ['uninstall', '--force'], /^sentinel-cef: unknown option '--force'/, 2],
  ['demo --timeout abc', ['demo', '--timeout', 'abc'], "sentinel-cef: --timeout must be seconds from 1 to 600, got 'abc'", 2],
  ['demo --timeout 0', ['demo', '--timeout', '0'], "sentinel-cef: --timeout must be seconds from 1 to 600, got '0'", 2],
  ['troubleshoot --yes without --fix', ['troubleshoot', '--yes'], /^sentinel-cef: --yes only applies with --fix/, 2],
  ['troubleshoot --config missing', ['troubleshoot', '--config', '/nonexistent.json'], /^sentinel-cef: --config '\/nonexistent.json': no such file/, 2],
  ['troubleshoot --port', ['troubleshoot', '--port', '70000'], "sentinel-cef: --port must be an integer from 1 to 65535, got '70000'", 2],
  ['troubleshoot --timeout', ['troubleshoot', '--timeout', '0'], "sentinel-cef: --timeout must be seconds, more than 0 and at most 600, got '0'", 2],
  ['troubleshoot --probes', ['troubleshoot', '--probes', 'x'], "sentinel-cef: --probes must be an integer from 0 to 1000, got 'x'", 2],
  ['troubleshoot workspace id', ['troubleshoot', 'nope', '--probes', '0'], "sentinel-cef: <workspaceId> must be a GUID (the workspace id), got 'nope'", 2],
  ['send-test --target nohost', ['send-test', '--target', 'nohost'], "sentinel-cef: invalid --target 'nohost' — use HOST:PORT, e.g. 127.0.0.1:25226", 2],
  ['send-test --count', ['send-test', '--count', '0'], "sentinel-cef: --count must be a whole number from 1 to 100000, got '0'", 2],
  ['send-test --protocol', ['send-test', '--protocol', 'x'], /^sentinel-cef: --protocol must be one of tcp, udp, got 'x'/, 2],
  ['send-test nothing listening (runtime)', ['send-test', '--target', '127.0.0.1:1'], /^sentinel-cef: cannot send to tcp:\/\/127.0.0.1:1: ECONNREFUSED/, 1],
  ['dcr --location', ['dcr', '--location', 'East US'], "sentinel-cef: --location must be an Azure region name such as eastus or westeurope, got 'East US'", 2],
  ['dcr --name', ['dcr', '--name', '-x'], "sentinel-cef: --name must be 1-64 letters, digits, -, _ or ., got '-x'", 2],
  ['parse --received-at', ['parse', '--received-at', 'x'], "sentinel-cef: --received-at must be an ISO 8601 date-time (2026-01-31T12:00:00Z), got 'x'", 2],
  ['parse missing file', ['parse', '/nonexistent'], 'sentinel-cef: cannot read /nonexistent: no such file', 2],
  ['forward unknown sink', ['forward', '--sink', 'bogus'], /^sentinel-cef: unknown sink 'bogus'/, 2],
  ['dead-letters nested unknown option', ['dead-letters', 'list', '--bogus'], "sentinel-cef: unknown option '--bogus' — see `sentinel-cef dead-letters list --help`", 2],
  ['dead-letters --limit', ['dead-letters', 'list', '--limit', 'abc'], "sentinel-cef: --limit must be a whole number from 0 to 1000000, got 'abc'", 2],
];

describe('bad input: one line, the flag named, the right exit code', () => {
  it.concurrent.each(cases)('%s', { timeout: 60_000 }, async (_name, args, message, exitCode) => {
    const r = await execa(bin, args.map((a) => a.replace(/^@/, dir)), { env, reject: false, input: '', timeout: 55_000 });
    expect(r.exitCode).toBe(exitCode);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toHaveLength(1);
    if (typeof message === 'string') expect(r.stderr).toBe(message);
    else expect(r.stderr).toMatch(message);
  });
});
