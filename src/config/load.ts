import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { z } from 'zod';
import { UsageError, flagName, formatConfigIssue, formatOptionError, showValue } from '../errors.js';
import { CLOUDS, DEFAULT_CONFIG_PATH, forwarderConfigSchema, type ForwarderConfig } from './schema.js';
import { isLoopback, parseHostPort, parseListenUrl } from './listen.js';
import { unknownKeyMessages } from './unknown-keys.js';

/** Flags of `sentinel-cef forward` and `node forwarder.mjs` (commander camel-cased). */
export interface ForwarderFlags {
  config?: string;
  listen?: string[];
  queueDir?: string;
  queueMaxBytes?: string;
  maxMessageSize?: string;
  maxConnections?: string;
  idleTimeout?: string;
  drainTimeout?: string;
  parseWorkers?: string;
  admin?: string;
  readiness?: string;
  drainGrace?: string;
  maxConnectionAge?: string;
  deadLetterFile?: string;
  logLevel?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsRequireClientCert?: boolean;
  sink?: string;
  workspaceId?: string;
  keyFile?: string;
  cloud?: string;
  endpoint?: string;
  dce?: string;
  logType?: string;
  dcr?: string;
  stream?: string;
  tenant?: string;
  clientId?: string;
  clientSecretFile?: string;
  certificateFile?: string;
  managedIdentity?: boolean;
  workloadIdentity?: boolean;
  authorityHost?: string;
  check?: boolean;
  // Refused: secrets never come from argv.
  key?: string;
  sharedKey?: string;
  clientSecret?: string;
  secret?: string;
  password?: string;
}

const SECRET_FLAGS: Array<[keyof ForwarderFlags, string, string]> = [
  ['key', '--key', '--key-file FILE (0600) or env SENTINEL_CEF_KEY'],
  ['sharedKey', '--shared-key', '--key-file FILE (0600) or env SENTINEL_CEF_KEY'],
  ['clientSecret', '--client-secret', '--client-secret-file FILE (0600) or env AZURE_CLIENT_SECRET'],
  ['secret', '--secret', '--client-secret-file FILE (0600) or env AZURE_CLIENT_SECRET'],
  ['password', '--password', 'a 0600 file or the environment'],
];

/** Adds the forwarder flags to a command; shared by `sentinel-cef forward` and the bundle's entry. */
export function addForwarderOptions(cmd: Command): Command {
  const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];
  cmd
    .option('--config <file>', `config file (JSON; default ${DEFAULT_CONFIG_PATH} when it exists)`)
    .option('--listen <url>', 'tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT or relp://HOST:PORT (repeatable)', collect)
    .option('--queue-dir <dir>', 'disk queue directory')
    .option('--queue-max-bytes <size>', 'queue size cap (bytes, or 512M, 2G)')
    .option('--max-message-size <size>', 'longer messages are truncated and flagged (default 64K)')
    .option('--max-connections <n>', 'maximum concurrent TCP/TLS connections')
    .option('--idle-timeout <sec>', 'close a connection holding a partial message this long (slow drip); a silent one after 12x')
    .option('--drain-timeout <sec>', 'on SIGTERM, keep delivering for this long before exiting')
    .option('--parse-workers <n|auto>', 'worker threads that parse and serialize (0 = main thread; auto = cores - 1, at most 4)')
    .option('--admin <host:port|off>', 'admin HTTP endpoint on loopback, or off')
    .option('--readiness <host:port|off>', 'load-balancer readiness endpoint (200 ready / 503 not ready), any address; default off')
    .option('--drain-grace <sec>', 'on SIGTERM, stay not ready but receiving this long first (default 15 with --readiness, else 0)')
    .option('--max-connection-age <sec>', 'close TCP/TLS connections older than this between frames, so a balancer rebalances (0 = never)')
    .option('--dead-letter-file <file>', 'NDJSON file for rejected and unparseable events')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal')
    .option('--tls-cert <file>', 'certificate (PEM) for tls:// listeners')
    .option('--tls-key <file>', 'private key (PEM, 0600) for tls:// listeners')
    .option('--tls-ca <file>', 'CA bundle (PEM) to verify client certificates')
    .option('--tls-require-client-cert', 'require a client certificate signed by --tls-ca')
    .option('--sink <sink>', 'file:PATH, log-analytics or logs-ingestion')
    .option('--workspace-id <guid>', 'log-analytics: workspace id')
    .option('--key-file <file>', 'log-analytics: 0600 file holding the shared key (or env SENTINEL_CEF_KEY)')
    .option('--cloud <cloud>', `${CLOUDS.join(', ')}`)
    .option('--endpoint <url>', 'log-analytics: endpoint override; logs-ingestion: DCE/DCR endpoint')
    .option('--dce <url>', 'logs-ingestion: data collection endpoint (same as --endpoint)')
    .option('--log-type <name>', 'log-analytics: Log-Type header (default CommonSecurityLog)')
    .option('--dcr <immutableId>', 'logs-ingestion: DCR immutable id (dcr-...)')
    .option('--stream <name>', 'logs-ingestion: stream (default Custom-CommonSecurityLog)')
    .option('--tenant <id>', 'logs-ingestion: Entra tenant id')
    .option('--client-id <id>', 'logs-ingestion: app (client) id, or user-assigned managed identity id')
    .option('--client-secret-file <file>', 'logs-ingestion: 0600 file holding the client secret (or env AZURE_CLIENT_SECRET)')
    .option('--certificate-file <file>', 'logs-ingestion: PEM certificate + key for the app (0600)')
    .option('--managed-identity', 'logs-ingestion: authenticate with the managed identity')
    .option('--workload-identity', 'logs-ingestion: authenticate with workload identity federation')
    .option('--authority-host <url>', 'logs-ingestion: Entra authority host override')
    .option('--check', 'validate the configuration and exit 0 (valid) or 2 (invalid) without starting');
  for (const [, flag] of SECRET_FLAGS) cmd.addOption(new Option(`${flag} <value>`).hideHelp());
  return cmd;
}

/** Parses 1024, 64K, 512M, 2G (binary units). */
export function parseSize(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(value.trim());
  if (!m) throw new UsageError(`${flag} must be bytes or a size with a unit (64K, 512M, 2G), got ${showValue(value)}`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : unit === 't' ? 1024 ** 4 : 1;
  const n = Math.floor(Number(m[1]) * mult);
  if (n <= 0) throw new UsageError(`${flag} must be greater than 0`);
  return n;
}

function parseNumber(value: string, flag: string, integer: boolean): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} must be ${integer ? 'an integer' : 'a number'}, 0 or more, got ${showValue(value)}`);
  }
  return n;
}

/** The flag that sets each config field (for errors when the config came from flags alone). */
const FLAG_OF: Record<string, string> = {
  listen: '--listen',
  logLevel: '--log-level',
  'tls.certFile': '--tls-cert',
  'tls.keyFile': '--tls-key',
  'tls.caFile': '--tls-ca',
  'sink.workspaceId': '--workspace-id',
  'sink.sharedKeyFile': '--key-file',
  'sink.cloud': '--cloud',
  'sink.endpoint': '--dce (or --endpoint)',
  'sink.logType': '--log-type',
  'sink.dcrImmutableId': '--dcr',
  'sink.stream': '--stream',
  'sink.authorityHost': '--authority-host',
  'sink.auth': '--managed-identity, --workload-identity or --tenant/--client-id with --client-secret-file or --certificate-file',
  'sink.auth.tenantId': '--tenant',
  'sink.auth.clientId': '--client-id',
};

/**
 * A config built from flags alone: the first issue, as one line naming the flag like every option error
 * (`--log-level must be one of trace, …, got 'loud'`, `missing --dcr`). Null when no flag sets that field.
 */
function formatFlagIssue(issue: z.core.$ZodIssue, merged: Raw): string | null {
  const key = issue.path.map(String).join('.');
  const flag = FLAG_OF[key];
  if (!flag) return null;
  const value = issue.path.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Raw)[String(k)] : undefined), merged);
  if (value === undefined) {
    const why = key.startsWith('sink.')
      ? ` (--sink ${String((merged.sink as Raw).type)} needs it)`
      : key.startsWith('tls.')
        ? ' (TLS needs --tls-cert and --tls-key)'
        : '';
    return `missing ${flag}${why}`;
  }
  // The schema's message names the field (`workspaceId must be a GUID`): the flag replaces it.
  const field = String(issue.path[issue.path.length - 1]);
  const message =
    issue.code === 'invalid_value'
      ? `must be one of ${issue.values.map(String).join(', ')}`
      : issue.message.replace(/^Invalid string: /, '').replace(new RegExp(`^${field} (?=must )`), '');
  return formatOptionError({ issues: [{ path: [key], message, input: value }] }, { [key]: flag });
}

/** One line per zod issue: path, message, what to do. */
export function formatConfigIssues(error: z.ZodError, source: string, merged?: Raw): string {
  if (source === 'flags' && merged) {
    const line = formatFlagIssue(error.issues[0]!, merged);
    if (line) return line;
  }
  return error.issues.map((i) => `${source}: ${formatConfigIssue(i)} — fix this field (see \`sentinel-cef forward --help\`)`).join('\n');
}

type Raw = Record<string, unknown>;

function sinkFromFlags(flags: ForwarderFlags, base: Raw | undefined): Raw | undefined {
  let sink: Raw | undefined = base ? structuredClone(base) : undefined;
  if (flags.sink) {
    const [type, ...rest] = flags.sink.split(':');
    if (type === 'file') {
      const path = rest.join(':');
      if (!path) throw new UsageError('--sink file needs a path', { suggestion: 'use --sink file:/var/log/sentinel-cef/rows.ndjson' });
      return { type: 'file', path: resolve(path) };
    }
    if (type !== 'log-analytics' && type !== 'logs-ingestion') {
      throw new UsageError(`unknown sink '${flags.sink}'`, { suggestion: 'use --sink file:PATH, log-analytics or logs-ingestion' });
    }
    if (!sink || sink.type !== type) sink = { type };
  }
  const setIf = (target: Raw, key: string, v: unknown) => {
    if (v !== undefined) target[key] = v;
  };
  const anyIngestFlag =
    flags.dce ??
    flags.dcr ??
    flags.stream ??
    flags.tenant ??
    flags.clientId ??
    flags.clientSecretFile ??
    flags.certificateFile ??
    flags.managedIdentity ??
    flags.workloadIdentity ??
    flags.authorityHost;
  const anyLaFlag = flags.workspaceId ?? flags.keyFile ?? flags.logType;
  if (!sink) {
    if (anyIngestFlag !== undefined) sink = { type: 'logs-ingestion' };
    else if (anyLaFlag !== undefined) sink = { type: 'log-analytics' };
    else return undefined;
  }
  setIf(sink, 'cloud', flags.cloud);
  if (sink.type === 'log-analytics') {
    setIf(sink, 'workspaceId', flags.workspaceId);
    setIf(sink, 'sharedKeyFile', flags.keyFile && resolve(flags.keyFile));
    setIf(sink, 'endpoint', flags.endpoint);
    setIf(sink, 'logType', flags.logType);
  } else if (sink.type === 'logs-ingestion') {
    setIf(sink, 'endpoint', flags.dce ?? flags.endpoint);
    setIf(sink, 'dcrImmutableId', flags.dcr);
    setIf(sink, 'stream', flags.stream);
    setIf(sink, 'authorityHost', flags.authorityHost);
    const auth: Raw = { ...((sink.auth as Raw | undefined) ?? {}) };
    if (flags.managedIdentity) {
      sink.auth = { kind: 'managed-identity', ...(flags.clientId ? { clientId: flags.clientId } : {}) };
    } else if (flags.workloadIdentity) {
      sink.auth = { kind: 'workload-identity' };
    } else if (flags.certificateFile || flags.clientSecretFile || flags.tenant || flags.clientId) {
      const kind = flags.certificateFile ? 'certificate' : flags.clientSecretFile ? 'client-secret' : (auth.kind ?? 'client-secret');
      const next: Raw = { kind };
      if (kind === 'certificate' || kind === 'client-secret') {
        next.tenantId = flags.tenant ?? auth.tenantId;
        next.clientId = flags.clientId ?? auth.clientId;
      }
      if (kind === 'certificate') next.certificateFile = resolve(flags.certificateFile ?? String(auth.certificateFile ?? ''));
      if (kind === 'client-secret') {
        const f = flags.clientSecretFile ?? (auth.clientSecretFile as string | undefined);
        if (f) next.clientSecretFile = resolve(f);
      }
      if (kind === 'managed-identity' && (flags.clientId ?? auth.clientId)) next.clientId = flags.clientId ?? auth.clientId;
      sink.auth = next;
    }
  } else if (flags.endpoint ?? anyIngestFlag ?? anyLaFlag) {
    throw new UsageError('Azure sink flags given but the sink is a file', {
      suggestion: 'add --sink log-analytics or --sink logs-ingestion',
    });
  }
  return sink;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Where to look when --config is absent (tests point this elsewhere). */
  defaultConfigPath?: string;
  /**
   * Given, unknown config file keys are handed here (one line each) and ignored instead of refused: the
   * service then keeps running after a downgrade leaves a newer key (its unit does not restart on exit 2).
   */
  onUnknownKeys?: (lines: string[]) => void;
}

/** Loads the config file (if any), merges flags (flags win), validates. Throws UsageError (exit 2). */
export function loadForwarderConfig(flags: ForwarderFlags, opts: LoadOptions = {}): ForwarderConfig {
  for (const [key, flag, instead] of SECRET_FLAGS) {
    if (flags[key] !== undefined) {
      throw new UsageError(`${flag} is refused: secrets on the command line leak through ps and shell history`, {
        suggestion: `use ${instead}`,
      });
    }
  }
  const defaultPath = opts.defaultConfigPath ?? DEFAULT_CONFIG_PATH;
  let raw: Raw = {};
  let source = 'flags';
  const path = flags.config ?? (existsSync(defaultPath) ? defaultPath : undefined);
  if (path) {
    source = path;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      // A typed path that is not there reads as troubleshoot says it: the flag, the value, "no such file".
      if (flags.config !== undefined && (err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new UsageError(`--config ${showValue(path)}: no such file`, { suggestion: `omit --config to use ${defaultPath}` });
      throw new UsageError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
        suggestion: 'check the path and permissions, or run `sentinel-cef install`',
      });
    }
    try {
      raw = JSON.parse(text) as Raw;
    } catch (err) {
      throw new UsageError(`config file ${path} is not valid JSON: ${(err as Error).message}`, {
        suggestion: 'fix the JSON syntax',
      });
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new UsageError(`config file ${path} must hold a JSON object`);
    }
    const unknown = unknownKeyMessages(raw, forwarderConfigSchema).map(
      (m) => `${path}: ${m} — fix this field (see \`sentinel-cef forward --help\`)`,
    );
    if (unknown.length && opts.onUnknownKeys) opts.onUnknownKeys(unknown);
    else if (unknown.length) throw new UsageError(unknown.join('\n'));
  }
  const merged: Raw = structuredClone(raw);
  const section = (name: string): Raw => {
    const v = merged[name];
    const obj = typeof v === 'object' && v !== null ? (v as Raw) : {};
    merged[name] = obj;
    return obj;
  };
  // An empty value is a mistake (an unset shell variable), not "use the default".
  for (const [k, v] of Object.entries(flags)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (typeof one === 'string' && one.trim() === '') throw new UsageError(`${flagName(k)} must not be empty, got ''`);
    }
  }
  if (flags.managedIdentity && flags.workloadIdentity)
    throw new UsageError('--managed-identity and --workload-identity exclude each other');
  if (flags.listen?.length) {
    // Checked here, before the sink, so a bad --listen is the error a user sees first and names the flag.
    for (const u of flags.listen) parseListenUrl(u, '--listen');
    merged.listen = flags.listen;
  }
  if (flags.queueDir) section('queue').dir = resolve(flags.queueDir);
  if (flags.queueMaxBytes) section('queue').maxBytes = parseSize(flags.queueMaxBytes, '--queue-max-bytes');
  if (flags.maxMessageSize) section('limits').maxMessageBytes = parseSize(flags.maxMessageSize, '--max-message-size');
  if (flags.maxConnections) section('limits').maxConnections = parseNumber(flags.maxConnections, '--max-connections', true);
  if (flags.idleTimeout) section('limits').idleTimeoutSec = parseNumber(flags.idleTimeout, '--idle-timeout', false);
  if (flags.drainTimeout) merged.drainTimeoutSec = parseNumber(flags.drainTimeout, '--drain-timeout', false);
  if (flags.parseWorkers) {
    if (flags.parseWorkers !== 'auto' && !/^[0-8]$/.test(flags.parseWorkers)) {
      throw new UsageError(`--parse-workers must be an integer from 0 to 8, or auto, got ${showValue(flags.parseWorkers)}`);
    }
    section('batch').parseWorkers = flags.parseWorkers === 'auto' ? 'auto' : Number(flags.parseWorkers);
  }
  // Checked as flags, so the error names the flag (the config-file check below names the field).
  if (flags.admin && flags.admin !== 'off') parseHostPort(flags.admin, '--admin');
  if (flags.readiness && flags.readiness !== 'off') parseHostPort(flags.readiness, '--readiness', READINESS_EXAMPLE);
  if (flags.admin) merged.admin = flags.admin === 'off' ? false : flags.admin;
  if (flags.readiness) merged.readiness = flags.readiness === 'off' ? false : flags.readiness;
  if (flags.drainGrace) merged.drainGraceSec = parseNumber(flags.drainGrace, '--drain-grace', false);
  if (flags.maxConnectionAge) section('limits').maxConnectionAgeSec = parseNumber(flags.maxConnectionAge, '--max-connection-age', false);
  if (flags.deadLetterFile) merged.deadLetterFile = resolve(flags.deadLetterFile);
  if (flags.logLevel) merged.logLevel = flags.logLevel;
  if (flags.tlsCert || flags.tlsKey || flags.tlsCa || flags.tlsRequireClientCert) {
    const tls = section('tls');
    if (flags.tlsCert) tls.certFile = resolve(flags.tlsCert);
    if (flags.tlsKey) tls.keyFile = resolve(flags.tlsKey);
    if (flags.tlsCa) tls.caFile = resolve(flags.tlsCa);
    if (flags.tlsRequireClientCert) tls.requireClientCert = true;
  }
  const sink = sinkFromFlags(flags, raw.sink as Raw | undefined);
  if (sink) merged.sink = sink;
  if (!merged.sink) {
    throw new UsageError('no sink configured', {
      suggestion: `pass --sink file:PATH (or log-analytics / logs-ingestion with their flags), or --config FILE (default ${defaultPath})`,
    });
  }
  const parsed = forwarderConfigSchema.safeParse(merged);
  if (!parsed.success) throw new UsageError(formatConfigIssues(parsed.error, source, merged));
  const config = parsed.data;
  validateSemantics(config);
  return config;
}

/** The readiness endpoint listens for the balancer, on its own port (25227 is the admin port). */
const READINESS_EXAMPLE = '[::]:8080';

/** Rules the schema cannot express; each a one-line UsageError. */
export function validateSemantics(config: ForwarderConfig): void {
  const addrs = config.listen.map((u) => parseListenUrl(u));
  if (addrs.some((a) => a.protocol === 'tls') && !config.tls) {
    throw new UsageError('a tls:// listener needs a certificate and key', { suggestion: 'pass --tls-cert FILE --tls-key FILE' });
  }
  if (config.tls?.requireClientCert && !config.tls.caFile) {
    throw new UsageError('--tls-require-client-cert needs --tls-ca FILE to verify client certificates');
  }
  if (config.admin !== false) {
    const { host } = parseHostPort(config.admin, 'admin address');
    if (!isLoopback(host)) {
      throw new UsageError(`admin address ${config.admin} is not on loopback`, {
        suggestion: 'use 127.0.0.1:PORT or [::1]:PORT, or --admin off',
      });
    }
  }
  if (config.readiness !== false) parseHostPort(config.readiness, 'readiness address', READINESS_EXAMPLE);
  if (config.retry.maxMs < config.retry.initialMs) throw new UsageError('retry.maxMs must be at least retry.initialMs');
}

export function deadLetterPath(config: ForwarderConfig): string {
  return config.deadLetterFile ?? resolve(dirname(resolve(config.queue.dir)), 'dead-letter.ndjson');
}

export interface ConfigCheck {
  id: string;
  ok: boolean;
  message: string;
  fix?: string;
}

function checkSecretFile(
  id: string,
  file: string | undefined,
  envName: string | undefined,
  env: NodeJS.ProcessEnv,
  what: string,
): ConfigCheck {
  if (!file) {
    if (envName && env[envName]) return { id, ok: true, message: `${what} from environment ${envName}` };
    return {
      id,
      ok: false,
      message: `no ${what}: neither a file nor ${envName ?? 'the environment'} is set`,
      fix: `write it to a 0600 file and pass its path${envName ? `, or set ${envName}` : ''}`,
    };
  }
  try {
    const st = statSync(file);
    if (!st.isFile()) return { id, ok: false, message: `${file} is not a regular file`, fix: 'point to the file holding the secret' };
    if ((st.mode & 0o077) !== 0) {
      return {
        id,
        ok: false,
        message: `${file} is readable by group/others (mode ${(st.mode & 0o777).toString(8)})`,
        fix: `chmod 600 ${file}`,
      };
    }
    accessSync(file, constants.R_OK);
    // Judged here, so the item has one verdict (the sink's own check would add a second, contrary line).
    if (readFileSync(file, 'utf8').trim() === '')
      return { id, ok: false, message: `${what} file ${file} is empty`, fix: `write the ${what} into it (mode 0600)` };
    return { id, ok: true, message: `${what} file ${file} exists, mode 0600` };
  } catch (err) {
    return {
      id,
      ok: false,
      message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      fix: 'create it (0600) or fix the path',
    };
  }
}

/** What an existing non-file at `path` is (a character device such as /dev/null, a directory, …), or '' when it is a file or absent. */
function notAFile(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st || st.isFile()) return '';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe';
  return st.isSocket() ? 'a socket' : 'a special file';
}

function nearestExisting(dir: string): string {
  let d = resolve(dir);
  while (!existsSync(d)) {
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  return d;
}

/** The flag behind a check's field, named in its message when the value came from that flag (else the config field). */
const CHECK_FLAG: Record<string, [keyof ForwarderFlags, string]> = {
  'tls.certFile': ['tlsCert', '--tls-cert'],
  'tls.keyFile': ['tlsKey', '--tls-key'],
  'tls.caFile': ['tlsCa', '--tls-ca'],
  'sink.sharedKey': ['keyFile', '--key-file'],
  'sink.clientSecret': ['clientSecretFile', '--client-secret-file'],
  'sink.certificate': ['certificateFile', '--certificate-file'],
  'sink.file': ['sink', '--sink'],
};

export function checkLabel(id: string, flags: ForwarderFlags): string {
  const f = CHECK_FLAG[id];
  return f && flags[f[0]] !== undefined ? f[1] : id;
}

/** What `forward --check` and start-up verify beyond the schema: secret files, TLS files, queue dir. */
export function checkConfig(config: ForwarderConfig, env: NodeJS.ProcessEnv = process.env): ConfigCheck[] {
  const checks: ConfigCheck[] = [];
  checks.push({ id: 'listen', ok: true, message: `will listen on ${config.listen.map((u) => parseListenUrl(u).url).join(', ')}` });
  const sink = config.sink;
  if (sink.type === 'log-analytics') {
    checks.push(checkSecretFile('sink.sharedKey', sink.sharedKeyFile, 'SENTINEL_CEF_KEY', env, 'shared key'));
  } else if (sink.type === 'logs-ingestion') {
    if (sink.auth.kind === 'client-secret') {
      checks.push(checkSecretFile('sink.clientSecret', sink.auth.clientSecretFile, 'AZURE_CLIENT_SECRET', env, 'client secret'));
    } else if (sink.auth.kind === 'certificate') {
      checks.push(checkSecretFile('sink.certificate', sink.auth.certificateFile, undefined, env, 'certificate'));
    }
  } else if (notAFile(sink.path)) {
    checks.push({
      id: 'sink.file',
      ok: false,
      message: `file sink ${sink.path} is ${notAFile(sink.path)}, not a regular file`,
      fix: 'choose a file path for --sink file:PATH (rows are appended to it as NDJSON)',
    });
  } else {
    const d = nearestExisting(dirname(sink.path));
    try {
      accessSync(d, constants.W_OK);
      checks.push({ id: 'sink.file', ok: true, message: `file sink ${sink.path} is writable` });
    } catch {
      checks.push({ id: 'sink.file', ok: false, message: `cannot write under ${d}`, fix: 'choose a writable path for --sink file:PATH' });
    }
  }
  if (config.tls) {
    for (const [id, f] of [
      ['tls.certFile', config.tls.certFile],
      ['tls.caFile', config.tls.caFile],
    ] as const) {
      if (!f) continue;
      checks.push(
        existsSync(f) ? { id, ok: true, message: `${f} exists` } : { id, ok: false, message: `${f} not found`, fix: 'fix the path' },
      );
    }
    checks.push(checkSecretFile('tls.keyFile', config.tls.keyFile, undefined, env, 'TLS private key'));
  }
  const qd = nearestExisting(config.queue.dir);
  try {
    accessSync(qd, constants.W_OK);
    checks.push({ id: 'queue.dir', ok: true, message: `queue directory ${config.queue.dir} is writable` });
  } catch {
    checks.push({
      id: 'queue.dir',
      ok: false,
      message: `queue directory ${config.queue.dir} is not writable (${qd})`,
      fix: 'create it for the forwarder user or pass --queue-dir',
    });
  }
  const dl = nearestExisting(dirname(deadLetterPath(config)));
  try {
    accessSync(dl, constants.W_OK);
    checks.push({ id: 'deadLetter', ok: true, message: `dead-letter file ${deadLetterPath(config)} is writable` });
  } catch {
    checks.push({ id: 'deadLetter', ok: false, message: `cannot write the dead-letter file under ${dl}`, fix: 'pass --dead-letter-file' });
  }
  checks.push({ id: 'admin', ok: true, message: config.admin === false ? 'admin endpoint off' : `admin endpoint ${config.admin}` });
  if (config.readiness !== false) checks.push({ id: 'readiness', ok: true, message: `readiness endpoint ${config.readiness}` });
  return checks;
}
