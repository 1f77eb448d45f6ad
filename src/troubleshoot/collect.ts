import { mkdtemp, mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir, release, hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { create as createTar } from 'tar';
import { VERSION } from '../version.js';
import { redact } from '../util/secrets.js';
import { Context } from './context.js';
import { deadLetterPath } from '../config/load.js';
import { LAYOUT } from './layout.js';
import { applyInstalledOptions } from './install-options.js';
import { troubleshootOptionsSchema, type TroubleshootDeps, type TroubleshootOptionsInput, type TroubleshootReport } from './types.js';

const SECRET_NAME = /(key|secret|token|passw(or)?d|credential|signature|sas|connectionstring)/i;
const MIN_SECRET = 8;

/**
 * Removes secrets from text bound for a support bundle: exact known values (from the secret files and the
 * environment) first, then shapes that look like credentials wherever they come from.
 */
export class Redactor {
  private values: string[] = [];

  addValue(v: string | undefined): void {
    const t = v?.trim();
    if (!t || t.length < MIN_SECRET) return;
    this.values.push(t);
    // A key may also appear decoded or re-encoded in logs.
    if (/^[A-Za-z0-9+/]+=*$/.test(t) && t.length % 4 === 0) {
      const decodedHex = Buffer.from(t, 'base64').toString('hex');
      if (decodedHex.length >= 32) this.values.push(decodedHex);
    }
    this.values.sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    return (
      redact(text, this.values)
        .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, '[REDACTED PRIVATE KEY]')
        .replace(/(SharedKey\s+[^:\s"]+:)[A-Za-z0-9+/=]+/g, '$1[REDACTED]')
        .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, '$1[REDACTED]')
        .replace(/([a-z][a-z0-9+.-]*:\/\/[^:/\s@"]+:)[^@\s"]+@/gi, '$1[REDACTED]@')
        .replace(/([?&](?:sig|signature|code|client_secret|access_token)=)[^&\s"]+/gi, '$1[REDACTED]')
        .replace(
          /(["']?[\w.-]*(?:key|secret|token|password|passwd)["']?\s*[:=]\s*["']?)(?!\[REDACTED)([^\s"',}]{8,})/gi,
          (m, k: string, v: string) => (/file|path|label|type|kind|id$/i.test(k) || v.startsWith('/') ? m : `${k}[REDACTED]`),
        )
        // Workspace keys and similar: long base64 runs with padding (88 characters for a 64-byte key).
        .replace(/\b[A-Za-z0-9+/]{43,}={1,2}/g, '[REDACTED]')
    );
  }
}

/**
 * The Redactor primed with every secret value this machine's forwarder may echo: the sink's secret files (shared
 * key, client secret, certificate with its key), the TLS listeners' key file, secret-looking environment variables
 * and inline values in the raw config. One set for the support bundle and the start-up error troubleshoot quotes.
 */
export async function secretRedactor(ctx: Context): Promise<Redactor> {
  const red = new Redactor();
  const cfg = await ctx.config();
  const sink = cfg.config?.sink;
  const secretPaths: string[] = [];
  if (sink?.type === 'log-analytics' && sink.sharedKeyFile) secretPaths.push(sink.sharedKeyFile);
  if (sink?.type === 'logs-ingestion' && sink.auth.kind === 'client-secret' && sink.auth.clientSecretFile)
    secretPaths.push(sink.auth.clientSecretFile);
  if (sink?.type === 'logs-ingestion' && sink.auth.kind === 'certificate') secretPaths.push(sink.auth.certificateFile);
  if (cfg.config?.tls) secretPaths.push(cfg.config.tls.keyFile);
  for (const p of secretPaths) {
    const t = await ctx.readText(p);
    // PEM armour lines are no secret (and redacting them would mangle every certificate shown).
    if (t) for (const line of t.split('\n')) if (!line.startsWith('-----')) red.addValue(line);
  }
  for (const [k, v] of Object.entries(ctx.deps.env)) if (SECRET_NAME.test(k)) red.addValue(v);
  // A raw config that failed to parse may still hold an inline key: take any secret-looking JSON value.
  if (cfg.raw) {
    for (const m of cfg.raw.matchAll(/"([^"]+)"\s*:\s*"([^"]*)"/g))
      if (SECRET_NAME.test(m[1]) && !/file|path|label|id$/i.test(m[1])) red.addValue(m[2]);
  }
  return red;
}

/** JSON values under secret-looking names are replaced, except paths to secret files (kept: they help). */
export function redactJson(value: unknown, r: Redactor): unknown {
  if (Array.isArray(value)) return value.map((v) => redactJson(v, r));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_NAME.test(k) && !/file|path|label|id$/i.test(k) && typeof v === 'string') out[k] = '[REDACTED]';
      else out[k] = redactJson(v, r);
    }
    return out;
  }
  return typeof value === 'string' ? r.redact(value) : value;
}

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines - 1)).join('\n');
}

/** Writes a tar.gz support bundle: configs, versions, check results, recent logs, metrics; every secret redacted. */
export async function writeSupportBundle(
  file: string,
  report: TroubleshootReport,
  options: TroubleshootOptionsInput,
  deps: TroubleshootDeps,
): Promise<{ file: string; entries: string[] }> {
  const resolved = await applyInstalledOptions(options, deps);
  const opts = troubleshootOptionsSchema.parse(resolved.input);
  const ctx = new Context(opts, deps, resolved.settings);
  const red = await secretRedactor(ctx);
  const cfg = await ctx.config();

  const staging = await mkdtemp(join(tmpdir(), 'sentinel-cef-bundle-'));
  await chmod(staging, 0o700);
  const top = `sentinel-cef-support-${hostname()}-${new Date(deps.now()).toISOString().replace(/[:.]/g, '-')}`;
  const entries: string[] = [];
  const put = async (name: string, text: string) => {
    const p = join(staging, top, name);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, red.redact(text), { mode: 0o600 });
    entries.push(name);
  };

  try {
    await put('checks.json', JSON.stringify(redactJson(report, red), null, 2));
    const versions = [`sentinel-cef ${VERSION}`, `node ${process.version}`, `kernel ${release()}`];
    const osRelease = await ctx.readText('/etc/os-release');
    if (osRelease) versions.push('', osRelease.trim());
    const d = await ctx.daemon();
    if (d.name) {
      const r = await deps.exec.run(d.name === 'rsyslog' ? 'rsyslogd' : 'syslog-ng', [d.name === 'rsyslog' ? '-v' : '--version'], {
        timeoutMs: 10_000,
      });
      versions.push('', r.stdout.split('\n').slice(0, 3).join('\n'));
    }
    await put('versions.txt', `${versions.join('\n')}\n`);

    if (cfg.raw !== undefined) {
      let text = cfg.raw;
      try {
        text = JSON.stringify(redactJson(JSON.parse(cfg.raw), red), null, 2);
      } catch {
        /* invalid JSON: line redaction below still applies */
      }
      await put(`config${cfg.path}`, text);
    }
    for (const f of await ctx.daemonConfigFiles()) await put(`config${f.path}`, f.text);
    for (const p of [`/etc/systemd/system/${LAYOUT.serviceName}.service`]) {
      const t = await ctx.readText(p);
      if (t !== null) await put(`config${p}`, t);
    }
    const envLines = Object.entries(deps.env)
      .filter(([k]) => /^(SENTINEL_CEF_|AZURE_|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy|NODE_EXTRA_CA_CERTS)/.test(k))
      .map(([k, v]) => `${k}=${SECRET_NAME.test(k) ? '[REDACTED]' : v}`);
    await put('environment.txt', `${envLines.join('\n')}\n`);

    const sockets = await ctx.sockets();
    await put(
      'sockets.txt',
      sockets
        .map(
          (s) =>
            `${s.transport}${s.family === 6 ? '6' : ''} ${s.state} ${s.localAddress}:${s.localPort} ${s.remoteAddress}:${s.remotePort} ${s.process ?? ''}${s.pid ? `[${s.pid}]` : ''}`,
        )
        .join('\n') + '\n',
    );

    for (const p of [...LAYOUT.logFiles, ...LAYOUT.systemLogs]) {
      const t = await ctx.readText(p);
      if (t) await put(`logs${p}`, tail(t, 1000));
    }
    if (await ctx.systemd()) {
      for (const unit of [LAYOUT.serviceName, d.name ?? 'rsyslog']) {
        const r = await deps.exec.run('journalctl', ['-u', unit, '-n', '500', '--no-pager'], { timeoutMs: 20_000 });
        if (r.exitCode === 0) await put(`logs/journal-${unit}.txt`, r.stdout);
      }
    }
    const dl = cfg.config ? deadLetterPath(cfg.config) : undefined;
    if (dl) {
      const t = await ctx.readText(dl);
      if (t) await put('logs/dead-letter-tail.ndjson', tail(t, 50));
    }

    const base = await ctx.adminBase();
    if (base) {
      for (const [path, name] of [
        ['/healthz', 'health.json'],
        ['/metrics', 'metrics.txt'],
      ]) {
        try {
          const res = await deps.fetch(`${base}${path}`, { signal: AbortSignal.timeout(3000) });
          await put(name, await res.text());
        } catch (err) {
          await put(name, `unavailable: ${(err as Error).message}\n`);
        }
      }
    }

    const out = resolve(file);
    await createTar({ gzip: true, file: out, cwd: staging, portable: true }, [top]);
    await chmod(out, 0o600);
    return { file: out, entries };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
