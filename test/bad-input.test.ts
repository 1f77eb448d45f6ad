import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../src/program.js';

// Every command's flags, against the built CLI: bad input is one line on stderr naming the flag, nothing on
// stdout, exit 2; a runtime failure is exit 1. Run `npm run build` first (`npm test` does). The last test
// checks the table against commander's option lists, so a new flag without a row (or a reason) fails.
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
  [
    'a C1 control (CSI) in an unknown option is escaped',
    ['--x\u009b31m'],
    "sentinel-cef: unknown option '--x\\u009b31m' — see `sentinel-cef --help`",
    2,
  ],
  [
    'install unknown option with C1 and C0',
    ['install', '--x\u0085\u001b'],
    "sentinel-cef: unknown option '--x\\u0085\\u001b' — see `sentinel-cef install --help`",
    2,
  ],
  ['unknown command', ['bogus'], "sentinel-cef: unknown command 'bogus' — see `sentinel-cef --help`", 2],
  ['subcommand unknown option', ['install', '--bogus'], "sentinel-cef: unknown option '--bogus' — see `sentinel-cef install --help`", 2],
  ['typo gets a suggestion', ['install', '--prot', 'x'], /^sentinel-cef: unknown option '--prot' \(did you mean --port\?\)/, 2],
  ['install --port abc', ['install', '--port', 'abc'], "sentinel-cef: --port must be an integer from 1 to 65535, got 'abc'", 2],
  ['install --port 514.5', ['install', '--port', '514.5'], "sentinel-cef: --port must be an integer from 1 to 65535, got '514.5'", 2],
  ['install --forwarder-port 0', ['install', '-p', '0'], "sentinel-cef: --forwarder-port must be an integer from 1 to 65535, got '0'", 2],
  ['install --protocol', ['install', '--protocol', 'sctp'], /^sentinel-cef: --protocol must be one of tcp, udp, both, got 'sctp'/, 2],
  ['install workspace id', ['install', 'nope'], "sentinel-cef: <workspaceId> must be a GUID (the workspace id), got 'nope'", 2],
  [
    'install key file 0644',
    ['install', WS, '--key-file', '@/key-0644', '--dry-run', '--root', '@'],
    /^sentinel-cef: refusing to use the workspace key file .*key-0644: mode 644 lets other users read it — run: chmod 600 /,
    2,
  ],
  [
    'install key file empty',
    ['install', WS, '--key-file', '@/key-empty', '--dry-run', '--root', '@'],
    /^sentinel-cef: the workspace key file .*key-empty is empty/,
    2,
  ],
  ['uninstall unknown option', ['uninstall', '--force'], /^sentinel-cef: unknown option '--force'/, 2],
  ['demo --timeout abc', ['demo', '--timeout', 'abc'], "sentinel-cef: --timeout must be seconds from 1 to 600, got 'abc'", 2],
  ['demo --timeout 0', ['demo', '--timeout', '0'], "sentinel-cef: --timeout must be seconds from 1 to 600, got '0'", 2],
  ['troubleshoot --yes without --fix', ['troubleshoot', '--yes'], /^sentinel-cef: --yes only applies with --fix/, 2],
  [
    'troubleshoot --config missing',
    ['troubleshoot', '--config', '/nonexistent.json'],
    /^sentinel-cef: --config '\/nonexistent.json': no such file/,
    2,
  ],
  ['troubleshoot --port', ['troubleshoot', '--port', '70000'], "sentinel-cef: --port must be an integer from 1 to 65535, got '70000'", 2],
  ['troubleshoot --timeout', ['troubleshoot', '--timeout', '0'], "sentinel-cef: --timeout must be seconds from 1 to 600, got '0'", 2],
  ['troubleshoot --probes', ['troubleshoot', '--probes', 'x'], "sentinel-cef: --probes must be an integer from 0 to 1000, got 'x'", 2],
  [
    'troubleshoot workspace id',
    ['troubleshoot', 'nope', '--probes', '0'],
    "sentinel-cef: <workspaceId> must be a GUID (the workspace id), got 'nope'",
    2,
  ],
  [
    'send-test --target nohost',
    ['send-test', '--target', 'nohost'],
    "sentinel-cef: --target must be HOST:PORT, e.g. 127.0.0.1:25226, got 'nohost'",
    2,
  ],
  ['send-test --count', ['send-test', '--count', '0'], "sentinel-cef: --count must be an integer from 1 to 100000, got '0'", 2],
  ['send-test --protocol', ['send-test', '--protocol', 'x'], /^sentinel-cef: --protocol must be one of tcp, udp, got 'x'/, 2],
  [
    'send-test nothing listening (runtime)',
    ['send-test', '--target', '127.0.0.1:1'],
    /^sentinel-cef: cannot send to tcp:\/\/127.0.0.1:1: ECONNREFUSED/,
    1,
  ],
  [
    'send-test over UDP, nothing listening on loopback (runtime)',
    ['send-test', '--target', '[::1]:9', '--protocol', 'udp'],
    /^sentinel-cef: cannot send to udp:\/\/\[::1\]:9: ECONNREFUSED \(nothing listens there\)/,
    1,
  ],
  [
    'dcr --location',
    ['dcr', '--location', 'East US'],
    "sentinel-cef: --location must be an Azure region name such as eastus or westeurope, got 'East US'",
    2,
  ],
  ['dcr --name', ['dcr', '--name', '-x'], "sentinel-cef: --name must be 1-64 letters, digits, -, _ or ., got '-x'", 2],
  [
    'parse --received-at',
    ['parse', '--received-at', 'x'],
    "sentinel-cef: --received-at must be an ISO 8601 date-time (2026-01-31T12:00:00Z), got 'x'",
    2,
  ],
  ['parse missing file', ['parse', '/nonexistent'], 'sentinel-cef: cannot read /nonexistent: no such file', 2],
  ['forward unknown sink', ['forward', '--sink', 'bogus'], /^sentinel-cef: unknown sink 'bogus'/, 2],
  [
    'dead-letters nested unknown option',
    ['dead-letters', 'list', '--bogus'],
    "sentinel-cef: unknown option '--bogus' — see `sentinel-cef dead-letters list --help`",
    2,
  ],
  [
    'dead-letters --limit',
    ['dead-letters', 'list', '--limit', 'abc'],
    "sentinel-cef: --limit must be an integer from 0 to 1000000, got 'abc'",
    2,
  ],
  // Every other flag, command by command (the coverage test below names any flag left out).
  [
    'completion shell',
    ['completion', 'fish'],
    "sentinel-cef: <shell> must be one of bash, zsh, got 'fish' — see `sentinel-cef completion --help`",
    2,
  ],
  ['send-test --rfc3164 --rfc5424', ['send-test', '--rfc3164', '--rfc5424'], 'sentinel-cef: --rfc3164 and --rfc5424 exclude each other', 2],
  [
    'send-test --octet-count over udp',
    ['send-test', '--octet-count', '--protocol', 'udp'],
    'sentinel-cef: --octet-count applies to --protocol tcp only (a UDP datagram is one message)',
    2,
  ],
  [
    'send-test --json takes no value',
    ['send-test', '--json=yes'],
    "sentinel-cef: --json is a switch and takes no value, got '--json=yes' (write --json alone) — see `sentinel-cef send-test --help`",
    2,
  ],
  [
    'troubleshoot --json takes no value',
    ['troubleshoot', '--json=no'],
    "sentinel-cef: --json is a switch and takes no value, got '--json=no' (write --json alone) — see `sentinel-cef troubleshoot --help`",
    2,
  ],
  [
    'a value for an unknown option stays unknown',
    ['install', '--bogus=1'],
    "sentinel-cef: unknown option '--bogus=1' — see `sentinel-cef install --help`",
    2,
  ],
  [
    'demo --keep takes no value',
    ['demo', '--keep=no'],
    "sentinel-cef: --keep is a switch and takes no value, got '--keep=no' (write --keep alone) — see `sentinel-cef demo --help`",
    2,
  ],
  [
    'dcr --workspace-resource-id',
    ['dcr', '--workspace-resource-id', 'x'],
    /^sentinel-cef: --workspace-resource-id must look like \/subscriptions\/.*, got 'x'$/,
    2,
  ],
  [
    'dcr --dce-resource-id',
    ['dcr', '--dce-resource-id', 'x'],
    /^sentinel-cef: --dce-resource-id must look like \/subscriptions\/.*, got 'x'$/,
    2,
  ],
  ['dcr --resource-group', ['dcr', '--resource-group', ''], "sentinel-cef: --resource-group must not be empty, got ''", 2],
  ['dcr --assignee', ['dcr', '--assignee', ''], "sentinel-cef: --assignee must not be empty, got ''", 2],
  ['dcr --output', ['dcr', '-o', ''], "sentinel-cef: --output must not be empty, got ''", 2],
  [
    'install --workspace',
    ['install', '--workspace', 'x'],
    "sentinel-cef: --workspace must be a workspace id (GUID) or a workspace resource id, got 'x'",
    2,
  ],
  [
    'install --principal-id',
    ['install', '--workspace', WS, '--principal-id', 'x'],
    "sentinel-cef: --principal-id must be a GUID (the object id of the identity the forwarder sends as), got 'x'",
    2,
  ],
  [
    'install --principal-id alone',
    ['install', '--principal-id', WS, '--sink', 'file:/x'],
    'sentinel-cef: --principal-id only applies with --workspace',
    2,
  ],
  [
    'install --forwarder-only with --daemon',
    ['install', '--forwarder-only', '--daemon', 'rsyslog', '--sink', 'file:/x'],
    /^sentinel-cef: --daemon and --forwarder-only exclude each other/,
    2,
  ],
  [
    'install --readiness',
    ['install', '--forwarder-only', '--readiness', 'nope', '--sink', 'file:/x'],
    "sentinel-cef: --readiness must be HOST:PORT (IPv6 in brackets, e.g. [::]:8080), got 'nope'",
    2,
  ],
  [
    'install --readiness on the forwarder port',
    ['install', '--readiness', '0.0.0.0:25226', '--sink', 'file:/x'],
    /^sentinel-cef: --readiness port 25226 is the forwarder port \(--forwarder-port\): both are TCP/,
    2,
  ],
  [
    'install --max-connection-age',
    ['install', '--forwarder-only', '--max-connection-age', '-5', '--sink', 'file:/x'],
    "sentinel-cef: --max-connection-age must be whole seconds from 0 (never) to 86400, got '-5'",
    2,
  ],
  [
    'install --node',
    ['install', '--node', 'bin/node', '--sink', 'file:/x'],
    "sentinel-cef: --node must be an absolute path of letters, digits and ._+@,=/-, got 'bin/node'",
    2,
  ],
  [
    'install --max-connection-age alone',
    ['install', '--max-connection-age', '600', '--sink', 'file:/x'],
    /^sentinel-cef: --max-connection-age goes with --forwarder-only/,
    2,
  ],
  [
    'install --durable with --forwarder-only',
    ['install', '--forwarder-only', '--durable', '--sink', 'file:/x'],
    /^sentinel-cef: --durable and --forwarder-only exclude each other: --durable puts the syslog daemon's queue on disk — drop one of them$/,
    2,
  ],
  ['install --proxy', ['install', '--proxy', 'v3'], /^sentinel-cef: --proxy must be one of v1, v2, got 'v3'/, 2],
  ['install --proxy alone', ['install', '--proxy', 'v2', '--sink', 'file:/x'], /^sentinel-cef: --proxy goes with --forwarder-only/, 2],
  [
    'troubleshoot --workspace',
    ['troubleshoot', '--workspace', 'nope'],
    "sentinel-cef: --workspace must be a GUID (the workspace id), got 'nope'",
    2,
  ],
  [
    'troubleshoot --readback-timeout',
    ['troubleshoot', '--readback-timeout', '-1'],
    "sentinel-cef: --readback-timeout must be seconds from 0 to 3600, got '-1'",
    2,
  ],
  [
    'demo --ingestion-delay without --azure-mock',
    ['demo', '--ingestion-delay', '3'],
    /^sentinel-cef: --ingestion-delay goes with --azure-mock/,
    2,
  ],
  [
    'demo --azure-mock --ingestion-delay',
    ['demo', '--azure-mock', '--ingestion-delay', 'soon'],
    "sentinel-cef: --ingestion-delay must be seconds from 0 to 600, got 'soon'",
    2,
  ],
  [
    'install --arm-endpoint alone',
    ['install', '--arm-endpoint', 'https://arm.example', '--sink', 'file:/x'],
    'sentinel-cef: --arm-endpoint only applies with --workspace or --dce/--dcr',
    2,
  ],
  ['install --dcr', ['install', '--dcr', 'x y'], "sentinel-cef: --dcr must be a DCR immutable id (dcr- and 32 hex digits), got 'x y'", 2],
  [
    'install --stream',
    ['install', '--stream', 'a b'],
    "sentinel-cef: --stream must be a stream name (Custom-NAME or Microsoft-NAME), got 'a b'",
    2,
  ],
  ['install --tenant', ['install', '--tenant', 'a b'], "sentinel-cef: --tenant must be a tenant GUID or domain name, got 'a b'", 2],
  ['install --client-id', ['install', '--client-id', 'x'], "sentinel-cef: --client-id must be a GUID (the application id), got 'x'", 2],
  [
    'install --client-secret-file',
    ['install', '--client-secret-file', 'a\nb'],
    "sentinel-cef: --client-secret-file must be free of control characters and newlines, got 'a\\nb'",
    2,
  ],
  [
    'install --authority-host with a managed identity',
    [
      'install',
      '--authority-host',
      'https://login.example',
      '--managed-identity',
      '--dce',
      'https://a.example',
      '--dcr',
      'dcr-00000000000000000000000000000000',
    ],
    'sentinel-cef: --authority-host does not apply with --managed-identity',
    2,
  ],
  [
    'install --managed-identity with a secret',
    ['install', '--managed-identity', '--client-secret-file', '/x'],
    'sentinel-cef: --managed-identity and --client-secret-file exclude each other',
    2,
  ],
  [
    'install --sink',
    ['install', '--sink', 'bogus'],
    "sentinel-cef: --sink must be file:/ABSOLUTE/PATH of letters, digits and ._+@,=/-, got 'bogus'",
    2,
  ],
  [
    'install --cloud',
    ['install', '--cloud', 'Mars'],
    "sentinel-cef: --cloud must be one of AzureCloud, AzureUSGovernment, AzureChinaCloud, got 'Mars'",
    2,
  ],
  [
    'install -F with --cloud',
    ['install', '-F', '--cloud', 'AzureCloud'],
    'sentinel-cef: --us-gov (-F) and --cloud AzureCloud exclude each other',
    2,
  ],
  [
    'install --daemon',
    ['install', '--daemon', 'x'],
    "sentinel-cef: --daemon must be one of rsyslog, syslog-ng, got 'x' — see `sentinel-cef install --help`",
    2,
  ],
  [
    'install --diff',
    ['install', '--diff', 'x'],
    "sentinel-cef: --diff must be one of edited, all, got 'x' — see `sentinel-cef install --help`",
    2,
  ],
  [
    'install --root',
    ['install', '--root', '/a\nb'],
    "sentinel-cef: --root must be free of control characters and newlines, got '/a\\nb'",
    2,
  ],
  [
    'install --no-verify takes no value',
    ['install', '--no-verify=1'],
    "sentinel-cef: --no-verify is a switch and takes no value, got '--no-verify=1' (write --no-verify alone) — see `sentinel-cef install --help`",
    2,
  ],
  [
    'uninstall --root',
    ['uninstall', '--root', '/a\nb'],
    "sentinel-cef: --root must be free of control characters and newlines, got '/a\\nb'",
    2,
  ],
  [
    'troubleshoot --protocol',
    ['troubleshoot', '--protocol', 'sctp'],
    "sentinel-cef: --protocol must be one of tcp, udp, both, got 'sctp'",
    2,
  ],
  [
    'troubleshoot --probe-size',
    ['troubleshoot', '--probe-size', '1'],
    "sentinel-cef: --probe-size must be an integer from 256 to 1048576, got '1'",
    2,
  ],
  [
    'troubleshoot --admin',
    ['troubleshoot', '--admin', 'localhost'],
    "sentinel-cef: --admin must be HOST:PORT, e.g. 127.0.0.1:25227, got 'localhost'",
    2,
  ],
  [
    'troubleshoot --fix in CI',
    ['troubleshoot', '--fix', '--probes', '0', '--root', '@'],
    'sentinel-cef: --fix needs a terminal to ask before each fix — add --yes to apply the safe fixes without asking',
    2,
  ],
  ['troubleshoot --collect', ['troubleshoot', '--collect', ''], "sentinel-cef: --collect must be a file path, got ''", 2],
  ['forward --config', ['forward', '--config', '/nonexistent.json'], /^sentinel-cef: --config '\/nonexistent.json': no such file/, 2],
  [
    'forward --listen',
    ['forward', '--listen', 'bogus', '--sink', 'file:@/rows.ndjson'],
    "sentinel-cef: --listen must be tcp://, udp://, tls:// or relp://HOST:PORT, e.g. tcp://0.0.0.0:514 or udp://[::]:514, got 'bogus'",
    2,
  ],
  [
    'forward --listen relp ?proxy= bad value',
    ['forward', '--listen', 'relp://127.0.0.1:2514?proxy=v3', '--sink', 'file:@/rows.ndjson'],
    /^sentinel-cef: invalid option in listen address 'relp:\/\/127\.0\.0\.1:2514\?proxy=v3'/,
    2,
  ],
  [
    'forward --listen udp ?proxy=',
    ['forward', '--listen', 'udp://127.0.0.1:514?proxy=v2', '--sink', 'file:@/rows.ndjson'],
    /^sentinel-cef: \?proxy= needs a tcp:\/\/, tls:\/\/ or relp:\/\/ listener, not 'udp:\/\/127\.0\.0\.1:514\?proxy=v2'/,
    2,
  ],
  [
    'forward --listen before a missing sink',
    ['forward', '--listen', 'bogus'],
    "sentinel-cef: --listen must be tcp://, udp://, tls:// or relp://HOST:PORT, e.g. tcp://0.0.0.0:514 or udp://[::]:514, got 'bogus'",
    2,
  ],
  [
    'forward --listen port',
    ['forward', '--listen', 'udp://[::]:70000', '--sink', 'file:@/rows.ndjson'],
    /^sentinel-cef: --listen must be tcp:\/\/, udp:\/\/, tls:\/\/ or relp:\/\/HOST:PORT with a port from 0 to 65535, .* got 'udp:\/\/\[::\]:70000'$/,
    2,
  ],
  [
    'forward --sink file: a character device',
    ['forward', '--sink', 'file:/dev/null', '--queue-dir', '@/q', '--admin', 'off', '--listen', 'udp://127.0.0.1:0'],
    'sentinel-cef: --sink: file sink /dev/null is a character device, not a regular file — choose a file path for --sink file:PATH (rows are appended to it as NDJSON)',
    2,
  ],

  [
    'forward --queue-dir',
    ['forward', '--queue-dir', '', '--sink', 'file:@/rows.ndjson'],
    "sentinel-cef: --queue-dir must not be empty, got ''",
    2,
  ],
  [
    'forward --queue-max-bytes',
    ['forward', '--queue-max-bytes', '12Q'],
    "sentinel-cef: --queue-max-bytes must be bytes or a size with a unit (64K, 512M, 2G), got '12Q'",
    2,
  ],
  [
    'forward --max-message-size',
    ['forward', '--max-message-size', 'x'],
    "sentinel-cef: --max-message-size must be bytes or a size with a unit (64K, 512M, 2G), got 'x'",
    2,
  ],
  [
    'forward --max-connections',
    ['forward', '--max-connections', '-1'],
    "sentinel-cef: --max-connections must be an integer, 0 or more, got '-1'",
    2,
  ],
  ['forward --idle-timeout', ['forward', '--idle-timeout', 'x'], "sentinel-cef: --idle-timeout must be a number, 0 or more, got 'x'", 2],
  ['forward --drain-timeout', ['forward', '--drain-timeout', 'x'], "sentinel-cef: --drain-timeout must be a number, 0 or more, got 'x'", 2],
  [
    'forward --parse-workers',
    ['forward', '--parse-workers', '9'],
    "sentinel-cef: --parse-workers must be an integer from 0 to 8, or auto, got '9'",
    2,
  ],
  [
    'forward --admin',
    ['forward', '--admin', 'x', '--sink', 'file:@/rows.ndjson'],
    "sentinel-cef: --admin must be HOST:PORT, e.g. 127.0.0.1:25227, got 'x'",
    2,
  ],
  [
    'forward --readiness',
    ['forward', '--readiness', 'x', '--sink', 'file:@/rows.ndjson'],
    "sentinel-cef: --readiness must be HOST:PORT, e.g. [::]:8080, got 'x'",
    2,
  ],
  ['forward --drain-grace', ['forward', '--drain-grace', 'x'], "sentinel-cef: --drain-grace must be a number, 0 or more, got 'x'", 2],
  [
    'forward --max-connection-age',
    ['forward', '--max-connection-age', 'x'],
    "sentinel-cef: --max-connection-age must be a number, 0 or more, got 'x'",
    2,
  ],
  [
    'forward --dead-letter-file',
    ['forward', '--dead-letter-file', '', '--sink', 'file:@/rows.ndjson'],
    "sentinel-cef: --dead-letter-file must not be empty, got ''",
    2,
  ],
  [
    'forward --log-level',
    ['forward', '--log-level', 'loud', '--sink', 'file:@/rows.ndjson'],
    "sentinel-cef: --log-level must be one of trace, debug, info, warn, error, fatal, got 'loud'",
    2,
  ],
  [
    'forward --tls-cert',
    [
      'forward',
      '--tls-cert',
      '/nonexistent',
      '--tls-key',
      '@/key-0644',
      '--listen',
      'tls://127.0.0.1:0',
      '--sink',
      'file:@/rows.ndjson',
      '--admin',
      'off',
      '--queue-dir',
      '@/q',
      '--dead-letter-file',
      '@/dl.ndjson',
    ],
    'sentinel-cef: --tls-cert: /nonexistent not found — fix the path',
    2,
  ],
  [
    'forward --tls-key alone',
    ['forward', '--tls-key', '/x', '--sink', 'file:@/rows.ndjson'],
    'sentinel-cef: missing --tls-cert (TLS needs --tls-cert and --tls-key)',
    2,
  ],
  [
    'forward --tls-ca alone',
    ['forward', '--tls-ca', '/x', '--sink', 'file:@/rows.ndjson'],
    'sentinel-cef: missing --tls-cert (TLS needs --tls-cert and --tls-key)',
    2,
  ],
  [
    'forward --tls-require-client-cert alone',
    ['forward', '--tls-require-client-cert', '--sink', 'file:@/rows.ndjson'],
    'sentinel-cef: missing --tls-cert (TLS needs --tls-cert and --tls-key)',
    2,
  ],
  [
    'forward --workspace-id',
    ['forward', '--sink', 'log-analytics', '--workspace-id', 'x'],
    "sentinel-cef: --workspace-id must be a GUID, got 'x'",
    2,
  ],
  [
    'forward --key-file',
    ['forward', '--sink', 'log-analytics', '--workspace-id', WS, '--key-file', ''],
    "sentinel-cef: --key-file must not be empty, got ''",
    2,
  ],
  [
    'forward --cloud',
    ['forward', '--sink', 'log-analytics', '--workspace-id', WS, '--cloud', 'Mars'],
    "sentinel-cef: --cloud must be one of AzureCloud, AzureUSGovernment, AzureChinaCloud, got 'Mars'",
    2,
  ],
  [
    'forward --endpoint',
    ['forward', '--sink', 'logs-ingestion', '--endpoint', ''],
    "sentinel-cef: --endpoint must not be empty, got ''",
    2,
  ],
  [
    'forward --dce',
    ['forward', '--sink', 'logs-ingestion', '--dcr', 'dcr-0123456789abcdef0123456789abcdef'],
    'sentinel-cef: missing --dce (or --endpoint) (--sink logs-ingestion needs it)',
    2,
  ],
  [
    'forward --log-type',
    ['forward', '--sink', 'log-analytics', '--workspace-id', WS, '--log-type', 'a b'],
    "sentinel-cef: --log-type must be 1-100 letters, digits or _, got 'a b'",
    2,
  ],
  [
    'forward --dcr',
    ['forward', '--sink', 'logs-ingestion', '--dce', 'https://x.example', '--managed-identity'],
    'sentinel-cef: missing --dcr (--sink logs-ingestion needs it)',
    2,
  ],
  ['forward --stream', ['forward', '--sink', 'logs-ingestion', '--stream', ''], "sentinel-cef: --stream must not be empty, got ''", 2],
  ['forward --tenant', ['forward', '--sink', 'logs-ingestion', '--tenant', ''], "sentinel-cef: --tenant must not be empty, got ''", 2],
  [
    'forward --client-id',
    ['forward', '--sink', 'logs-ingestion', '--client-id', ''],
    "sentinel-cef: --client-id must not be empty, got ''",
    2,
  ],
  [
    'forward --client-secret-file',
    ['forward', '--sink', 'logs-ingestion', '--client-secret-file', ''],
    "sentinel-cef: --client-secret-file must not be empty, got ''",
    2,
  ],
  [
    'forward --certificate-file',
    ['forward', '--sink', 'logs-ingestion', '--certificate-file', ''],
    "sentinel-cef: --certificate-file must not be empty, got ''",
    2,
  ],
  [
    'forward --authority-host',
    ['forward', '--sink', 'logs-ingestion', '--authority-host', ''],
    "sentinel-cef: --authority-host must not be empty, got ''",
    2,
  ],
  // Malformed URLs (ftp:, no scheme) get the same line from the same check: test/util/option-schemas.test.ts covers
  // them at every place in-process; these rows pin the wording end to end.
  [
    'install --dce http to a remote host (it would carry the bearer token and the events in clear text)',
    ['install', '--dce', 'http://x-abcd.eastus-1.ingest.monitor.azure.com', '--dcr', 'dcr-0123456789abcdef0123456789abcdef'],
    "sentinel-cef: --dce must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://x-abcd.eastus-1.ingest.monitor.azure.com'",
    2,
  ],
  [
    'install --endpoint http to a remote host',
    ['install', WS, '--endpoint', 'http://ws.ods.opinsights.azure.com'],
    "sentinel-cef: --endpoint must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://ws.ods.opinsights.azure.com'",
    2,
  ],
  [
    'install --authority-host http to a remote host',
    ['install', '--authority-host', 'http://login.microsoftonline.com'],
    "sentinel-cef: --authority-host must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://login.microsoftonline.com'",
    2,
  ],
  [
    'install --arm-endpoint http to a remote host',
    ['install', '--arm-endpoint', 'http://10.0.0.5:8080'],
    "sentinel-cef: --arm-endpoint must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://10.0.0.5:8080'",
    2,
  ],
  [
    'troubleshoot --arm-endpoint http to a remote host',
    ['troubleshoot', '--arm-endpoint', 'http://management.azure.com'],
    "sentinel-cef: --arm-endpoint must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://management.azure.com'",
    2,
  ],
  [
    'troubleshoot --logs-query-endpoint http to a remote host',
    ['troubleshoot', '--logs-query-endpoint', 'http://api.loganalytics.io'],
    "sentinel-cef: --logs-query-endpoint must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://api.loganalytics.io'",
    2,
  ],
  [
    'forward --dce http to a remote host',
    [
      'forward',
      '--sink',
      'logs-ingestion',
      '--dce',
      'http://x.example',
      '--dcr',
      'dcr-0123456789abcdef0123456789abcdef',
      '--managed-identity',
    ],
    "sentinel-cef: --dce (or --endpoint) must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://x.example'",
    2,
  ],
  [
    'forward --authority-host http to a remote host',
    [
      'forward',
      '--sink',
      'logs-ingestion',
      '--dce',
      'https://x.example',
      '--dcr',
      'dcr-0123456789abcdef0123456789abcdef',
      '--tenant',
      WS,
      '--client-id',
      WS,
      '--authority-host',
      'http://login.example',
    ],
    "sentinel-cef: --authority-host must be an https URL (http only to a loopback address, for a local mock or relay), got 'http://login.example'",
    2,
  ],
  [
    'forward two identities',
    [
      'forward',
      '--sink',
      'logs-ingestion',
      '--dce',
      'https://x.example',
      '--dcr',
      'dcr-0123456789abcdef0123456789abcdef',
      '--managed-identity',
      '--workload-identity',
      '--check',
    ],
    'sentinel-cef: --managed-identity and --workload-identity exclude each other',
    2,
  ],
  [
    'forward --check takes no value',
    ['forward', '--check=1'],
    "sentinel-cef: --check is a switch and takes no value, got '--check=1' (write --check alone) — see `sentinel-cef forward --help`",
    2,
  ],
  [
    'forward --key',
    ['forward', '--key', 'abc'],
    'sentinel-cef: --key is refused: secrets on the command line leak through ps and shell history — use --key-file FILE (0600) or env SENTINEL_CEF_KEY',
    2,
  ],
  ['forward --shared-key', ['forward', '--shared-key', 'abc'], /^sentinel-cef: --shared-key is refused: /, 2],
  ['forward --client-secret', ['forward', '--client-secret', 'abc'], /^sentinel-cef: --client-secret is refused: /, 2],
  ['forward --secret', ['forward', '--secret', 'abc'], /^sentinel-cef: --secret is refused: /, 2],
  ['forward --password', ['forward', '--password', 'abc'], /^sentinel-cef: --password is refused: /, 2],
  [
    'dead-letters list --config',
    ['dead-letters', 'list', '--config', '/nonexistent.json'],
    /^sentinel-cef: --config '\/nonexistent.json': no such file/,
    2,
  ],
  ['dead-letters list --file', ['dead-letters', 'list', '--file', '/nonexistent'], /^sentinel-cef: --file \/nonexistent does not exist/, 2],
  ['dead-letters list --reason', ['dead-letters', 'list', '--reason', ''], "sentinel-cef: --reason must not be empty, got ''", 2],
  [
    'dead-letters list --since',
    ['dead-letters', 'list', '--since', 'yesterday'],
    "sentinel-cef: --since must be an ISO time (2026-12-01T08:00:00Z) or an age (30m, 2h, 7d), got 'yesterday'",
    2,
  ],
  ['dead-letters replay --config', ['dead-letters', 'replay', '--config', ''], "sentinel-cef: --config must not be empty, got ''", 2],
  [
    'dead-letters replay --file',
    ['dead-letters', 'replay', '--file', '/nonexistent'],
    /^sentinel-cef: --file \/nonexistent does not exist/,
    2,
  ],
  ['dead-letters replay --reason', ['dead-letters', 'replay', '--reason', ''], "sentinel-cef: --reason must not be empty, got ''", 2],
  [
    'dead-letters replay --since',
    ['dead-letters', 'replay', '--since', '5y'],
    "sentinel-cef: --since must be an ISO time (2026-12-01T08:00:00Z) or an age (30m, 2h, 7d), got '5y'",
    2,
  ],
  [
    'dead-letters replay --chunk',
    ['dead-letters', 'replay', '--chunk', '0'],
    "sentinel-cef: --chunk must be an integer from 1 to 10000, got '0'",
    2,
  ],
];

/** Flags with no bad value and no flag they conflict with: the reason stands in for a row. */
const noBadInput: Record<string, string> = {
  'sentinel-cef --version': "commander's own",
  'sentinel-cef demo --json': 'a switch; --json=x is the same unknown-option row as send-test --json',
  'sentinel-cef dcr --json': 'a switch',
  'sentinel-cef install --dry-run': 'a switch',
  'sentinel-cef install --yes': 'a switch',
  'sentinel-cef install --no-install-relp': 'a switch',
  'sentinel-cef uninstall --remove-user': 'a switch',
  'sentinel-cef uninstall --purge': 'a switch',
  'sentinel-cef uninstall --dry-run': 'a switch',
  'sentinel-cef uninstall --yes': 'a switch',
  'sentinel-cef troubleshoot --json': 'a switch',
  'sentinel-cef troubleshoot --capture': 'a switch (tcpdump missing is a finding, not bad input)',
  'sentinel-cef troubleshoot --verbose': 'a switch',
  'sentinel-cef troubleshoot --root': 'hidden, for tests: it only reads under that root',
  'sentinel-cef dead-letters list --json': 'a switch',
  'sentinel-cef dead-letters replay --json': 'a switch',
  'sentinel-cef dead-letters replay --dry-run': 'a switch',
};

describe('bad input: one line, the flag named, the right exit code', () => {
  it.concurrent.each(cases)('%s', { timeout: 60_000 }, async (_name, args, message, exitCode) => {
    // A forward row that wrongly passed would start a forwarder on the host's default paths: --check stops it first.
    const safe = args[0] === 'forward' && !args.includes('--check') && !args.includes('--queue-dir') ? [...args, '--check'] : args;
    const r = await execa(
      bin,
      safe.map((a) => a.replace(/@(?=\/|$)/g, dir)),
      { env, reject: false, input: '', timeout: 55_000 },
    );
    expect(r.exitCode).toBe(exitCode);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toHaveLength(1);
    if (typeof message === 'string') expect(r.stderr).toBe(message);
    else expect(r.stderr).toMatch(message);
  });
});

describe('the table covers every flag of every command', () => {
  it('each flag commander knows has a row above, or a reason in noBadInput', () => {
    const missing: string[] = [];
    const visit = (cmd: Command, path: string[]) => {
      for (const o of cmd.options) {
        const where = ['sentinel-cef', ...path, o.long ?? o.short].join(' ');
        const names = [o.long, o.short].filter((n): n is string => Boolean(n));
        const covered = cases.some(
          ([, args]) =>
            path.every((p, i) => args[i] === p) && args.slice(path.length).some((a) => names.some((n) => a === n || a.startsWith(`${n}=`))),
        );
        if (!covered && !(where in noBadInput)) missing.push(where);
      }
      for (const sub of cmd.commands) visit(sub, [...path, sub.name()]);
    };
    visit(buildProgram(), []);
    expect(missing).toEqual([]);
  });
});
