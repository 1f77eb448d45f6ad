import { join } from 'node:path';
import { createFsRoot, type FileMeta, type FsRoot } from '../system/fs-root.js';
import { detectDaemon, type DaemonInfo } from '../system/detect-daemon.js';
import { detectInitSystem, isProcessAlive, processState } from '../system/processes.js';
import { listListeners, type Listener } from '../system/listeners.js';
import {
  forwarderConfigSchema,
  DEFAULT_ADMIN,
  DEFAULT_CONFIG_PATH,
  DEFAULT_FORWARDER_PORT,
  type ForwarderConfig,
} from '../config/schema.js';
import { LAYOUT } from './layout.js';
import type { Health } from '../forwarder/admin-types.js';
import { validateSemantics } from '../config/load.js';
import { parseListenUrl, type ListenProtocol } from '../config/listen.js';
import { formatConfigIssue } from '../errors.js';
import { unknownKeyMessages } from '../config/unknown-keys.js';
import { listProcesses, listSockets, type ProcessEntry, type SocketEntry } from './proc.js';
import type { Setting, TroubleshootDeps, TroubleshootOptions } from './types.js';

/** The health call's bound, and the longer second try after a timeout (a hung forwarder fails both). */
export const HEALTH_TIMEOUT_MS = 2000;
export const HEALTH_RETRY_MS = 3000;
/** The admin error when the forwarder process is stopped, so nothing was asked. */
export const NOT_ASKED = 'not asked: the forwarder process is stopped';
/** An admin error that says the forwarder is there but does not answer (hung), rather than gone. */
export const HUNG_ERROR = /timeout|timed out|aborted|not asked: the forwarder process is stopped/i;

export type DaemonName = 'rsyslog' | 'syslog-ng';

export interface ConfigState {
  path: string;
  exists: boolean;
  raw?: string;
  config?: ForwarderConfig;
  /** JSON or schema problems or unknown keys (then config is set too), one line each. */
  errors?: string[];
}

export interface HealthState {
  base: string | null;
  reachable: boolean;
  httpStatus?: number;
  health?: Health;
  error?: string;
}

export interface DaemonState {
  /** The daemon found running (by process), else the one installed, else null. */
  name: DaemonName | null;
  running: boolean;
  pid?: number;
  installed: DaemonName[];
  binary: string | null;
  /** Every pid of the daemon (syslog-ng runs a supervisor and a worker). */
  pids: number[];
}

/** Shared, lazily loaded facts: each is gathered once however many checks ask. */
export class Context {
  readonly opts: TroubleshootOptions;
  readonly deps: TroubleshootDeps;
  readonly fs: FsRoot;
  /** Where port, protocol, daemon and config came from (flag, install state, default). */
  readonly settings: Setting[];
  /** When the checks started (deps.now()): --timeout bounds them from here; --fix re-checks start it again. */
  startedAt: number;
  private memo = new Map<string, Promise<unknown>>();

  constructor(opts: TroubleshootOptions, deps: TroubleshootDeps, settings: Setting[] = []) {
    this.opts = opts;
    this.deps = deps;
    this.settings = settings;
    this.fs = createFsRoot(deps.root);
    this.startedAt = deps.now();
  }

  /** Drops cached facts so a re-run after a fix sees the new state. */
  invalidate(keys?: string[]): void {
    if (!keys) this.memo.clear();
    else for (const k of keys) this.memo.delete(k);
  }

  once<T>(key: string, f: () => Promise<T>): Promise<T> {
    let p = this.memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = f();
      this.memo.set(key, p);
    }
    return p;
  }

  path(p: string): string {
    return join(this.deps.root, p);
  }

  /** A file's text, or null when it is missing or unreadable (a check reports that, it does not crash). */
  async readText(p: string): Promise<string | null> {
    return this.fs.readText(p).catch(() => null);
  }

  async stat(p: string): Promise<FileMeta | null> {
    return this.fs.stat(p).catch(() => null);
  }

  async list(dir: string): Promise<string[]> {
    return this.fs.readdir(dir).catch(() => []);
  }

  config(): Promise<ConfigState> {
    return this.once('config', async () => {
      const path = this.opts.configPath;
      const raw = await this.readText(path);
      if (raw === null) return { path, exists: false };
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch (err) {
        return { path, exists: true, raw, errors: [`not valid JSON: ${(err as Error).message}`] };
      }
      const r = forwarderConfigSchema.safeParse(json);
      if (!r.success) {
        return {
          path,
          exists: true,
          raw,
          errors: [...unknownKeyMessages(json, forwarderConfigSchema), ...r.error.issues.map(formatConfigIssue)],
        };
      }
      try {
        validateSemantics(r.data);
      } catch (err) {
        return { path, exists: true, raw, errors: [(err as Error).message] };
      }
      // The service warns about an unknown key and runs (the other checks read its config); this check refuses it.
      const unknown = unknownKeyMessages(json, forwarderConfigSchema);
      return { path, exists: true, raw, config: r.data, ...(unknown.length ? { errors: unknown } : {}) };
    });
  }

  /** The admin endpoint's base URL, or null when the config disables it. */
  async adminBase(): Promise<string | null> {
    if (this.opts.admin) return `http://${this.opts.admin}`;
    const c = await this.config();
    const admin = c.config ? c.config.admin : DEFAULT_ADMIN;
    return admin === false ? null : `http://${admin}`;
  }

  /** The forwarder's TCP/UDP intake ports on loopback (what the daemon must forward to). */
  async forwarderPorts(): Promise<number[]> {
    const c = await this.config();
    const ports = new Set<number>();
    for (const url of c.config?.listen ?? []) {
      const port = listenPort(url);
      if (port !== null) ports.add(port);
    }
    if (ports.size === 0) ports.add(this.opts.forwarderPort ?? DEFAULT_FORWARDER_PORT);
    return [...ports];
  }

  async fetchJson<T>(path: string, timeoutMs = 2000): Promise<{ status: number; body?: T; error?: string }> {
    const base = await this.adminBase();
    if (!base) return { status: 0, error: 'admin endpoint disabled in the config' };
    // A stopped process never answers: asking it costs every check the whole timeout, and runs past --timeout.
    const stopped = await this.stoppedForwarder();
    if (stopped) return { status: 0, error: `${NOT_ASKED} (pid ${stopped.pid}, state ${stopped.state})` };
    try {
      const res = await this.deps.fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text();
      try {
        return { status: res.status, body: JSON.parse(text) as T };
      } catch {
        return { status: res.status, error: `not JSON: ${text.slice(0, 120)}` };
      }
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      return { status: 0, error: e.cause?.code ?? e.cause?.message ?? e.message };
    }
  }

  health(): Promise<HealthState> {
    return this.once('health', async () => {
      const base = await this.adminBase();
      if (!base) return { base, reachable: false, error: 'admin endpoint disabled in the config' };
      let r = await this.fetchJson<Health>('/healthz', HEALTH_TIMEOUT_MS);
      // A busy forwarder on a loaded machine can take over 2 s: ask once more, longer, before calling it hung.
      if (r.status === 0 && /timeout|timed out|aborted/i.test(r.error ?? '')) r = await this.fetchJson<Health>('/healthz', HEALTH_RETRY_MS);
      if (r.status === 0 || !r.body) return { base, reachable: false, httpStatus: r.status || undefined, error: r.error };
      return { base, reachable: true, httpStatus: r.status, health: r.body };
    });
  }

  processes(): Promise<ProcessEntry[]> {
    return this.once('processes', () => listProcesses(this.deps.root));
  }

  /** Every socket with its owner, connections included (the daemon's link to the forwarder is one). */
  sockets(): Promise<SocketEntry[]> {
    return this.once('sockets', async () => listSockets(this.deps.root, await this.processes()));
  }

  /** Listening sockets with their owners, as install sees them. */
  listeners(): Promise<Listener[]> {
    return this.once('listeners', () => listListeners(this.fs, { withProcesses: true }));
  }

  /** Is PID 1 systemd (so services are managed with systemctl)? */
  systemd(): Promise<boolean> {
    return this.once('systemd', async () => (await detectInitSystem(this.fs)).kind === 'systemd');
  }

  daemon(): Promise<DaemonState> {
    return this.once('daemon', async () => {
      const info: DaemonInfo = await detectDaemon(this.fs);
      // The daemon install configured, while it is still installed (both may be).
      const name = this.opts.daemon && info.installed.includes(this.opts.daemon) ? this.opts.daemon : info.daemon;
      const pids = name
        ? info.running
            .filter((r) => r.daemon === name)
            .map((r) => r.pid)
            .sort((a, b) => a - b)
        : [];
      return { name, running: pids.length > 0, pid: pids[0], installed: info.installed, binary: info.binary, pids };
    });
  }

  async daemonPids(): Promise<number[]> {
    return (await this.daemon()).pids;
  }

  /**
   * The forwarder's processes now: the one its pid file names while that is alive and still a forwarder of this
   * config (a stale file's pid may be reused by another program), else those found by command line.
   */
  async forwarderPidsNow(): Promise<number[]> {
    const fromFile = Number((await this.readText(LAYOUT.forwarderPidFile))?.trim());
    if (Number.isInteger(fromFile) && fromFile > 0 && (await isProcessAlive(this.fs, fromFile))) {
      const argv = ((await this.readText(`/proc/${fromFile}/cmdline`)) ?? '').split('\0').filter(Boolean);
      if (this.servesConfig(argv)) return [fromFile];
    }
    return this.forwarderPids();
  }

  /** A forwarder process that exists but is stopped by a signal (T) or a debugger (t), with its /proc state letter. */
  async stoppedForwarder(): Promise<{ pid: number; state: string } | null> {
    for (const pid of await this.forwarderPidsNow()) {
      const state = await processState(this.fs, pid);
      if (state === 'T' || state === 't') return { pid, state };
    }
    return null;
  }

  /**
   * Forwarder processes serving this config: our installed bundle, or `sentinel-cef forward` started by hand,
   * with `--config` naming the config under test (other forwarders on the machine are not ours to report).
   */
  async forwarderPids(): Promise<number[]> {
    return (await this.processes()).filter((p) => this.servesConfig(p.cmdline)).map((p) => p.pid);
  }

  private servesConfig(argv: string[]): boolean {
    const cfg = this.opts.configPath;
    // The supervisor carries the forwarder's command line after its own: it is not the forwarder.
    if (argv.some((a) => a.endsWith(`/${LAYOUT.supervisorName}`))) return false;
    const isBundle = argv.some((a) => LAYOUT.bundleCandidates.includes(a));
    const isCli = argv.some((a) => /sentinel-cef(\.js)?$|dist\/cli\.js$/.test(a)) && argv.includes('forward');
    const c = argv.indexOf('--config');
    const configMatches = c >= 0 ? argv[c + 1] === cfg : cfg === DEFAULT_CONFIG_PATH;
    return (isBundle || isCli) && configMatches;
  }

  /** Daemon configuration text: main file plus drop-ins, each with its path. */
  daemonConfigFiles(): Promise<Array<{ path: string; text: string }>> {
    return this.once('daemon-config', async () => {
      const d = await this.daemon();
      const files: Array<{ path: string; text: string }> = [];
      const add = async (p: string) => {
        const t = await this.readText(p);
        if (t !== null) files.push({ path: p, text: t });
      };
      const dirs =
        d.name === 'syslog-ng'
          ? [['/etc/syslog-ng/syslog-ng.conf'], ['/etc/syslog-ng/conf.d']]
          : [['/etc/rsyslog.conf'], ['/etc/rsyslog.d']];
      await add(dirs[0][0]);
      for (const f of await this.list(dirs[1][0])) if (f.endsWith('.conf')) await add(`${dirs[1][0]}/${f}`);
      return files;
    });
  }

  /** Shared result slot for the probe run, read by other checks (e.g. credentials). */
  e2eMemo<T>(f: () => Promise<T>): Promise<T> {
    return this.once('e2e', f);
  }
}

/** A listen URL's port as the forwarder reads it (`?proxy=` included), for `protocol` only if given; null if invalid. */
export function listenPort(url: string, protocol?: ListenProtocol): number | null {
  try {
    const l = parseListenUrl(url);
    return protocol === undefined || l.protocol === protocol ? l.port : null;
  } catch {
    return null;
  }
}
