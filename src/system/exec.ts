import { execa } from 'execa';
import which from 'which';

/**
 * The one place child processes start. It refuses any argv that contains a registered secret, so a key can
 * reach a child only through stdin, a file or the environment — never /proc/<pid>/cmdline.
 */
export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Non-zero exit, a signal, a timeout or a spawn error. */
  failed?: boolean;
  /** The program is not installed (ENOENT). */
  notFound?: boolean;
  timedOut?: boolean;
}

export interface ExecOptions {
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  cwd?: string;
}

/** A child that runs until stopped (a packet capture): its stderr as it arrives, its result once it exits. */
export interface StartedProcess {
  /** Each chunk the child writes to stderr, as it arrives (e.g. to wait for "listening on"). */
  onStderr(listener: (text: string) => void): void;
  /** Settles, never rejects, once the child has exited for whatever reason; stdout and stderr are the whole output. */
  readonly exited: Promise<ExecResult>;
  /** Sends the signal (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<ExecResult>;
}

export interface Exec {
  /** Runs a program to its end; never rejects for a non-zero exit, a timeout or a missing program. */
  run(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a program that runs until stop() (no timeout unless given); a missing program shows in `exited`. */
  start(cmd: string, args: string[], opts?: Omit<ExecOptions, 'input'>): StartedProcess;
  /** Full path of a program on PATH, or null. */
  which(cmd: string): Promise<string | null>;
  /** Starts a long-lived process outside our process group; resolves with its pid once spawned. */
  spawnDetached(cmd: string, args: string[], opts?: { env?: Record<string, string>; uid?: number; gid?: number }): Promise<number>;
  registerSecret(value: string): void;
}

export class SecretInArgvError extends Error {
  constructor(cmd: string) {
    super(`refusing to run ${cmd}: a secret would appear in its argv`);
    this.name = 'SecretInArgvError';
  }
}

/**
 * The same runner with every run()'s and start()'s options passed through `adjust` first (a deadline, say: a started
 * child such as a capture must not outlive it either).
 */
export function adjustRuns(exec: Exec, adjust: <O extends ExecOptions>(opts: O, kind: 'run' | 'start') => O): Exec {
  return {
    run: (cmd, args, opts = {}) => exec.run(cmd, args, adjust(opts, 'run')),
    start: (cmd, args, opts = {}) => exec.start(cmd, args, adjust(opts, 'start')),
    which: (cmd) => exec.which(cmd),
    spawnDetached: (cmd, args, opts) => exec.spawnDetached(cmd, args, opts),
    registerSecret: (value) => exec.registerSecret(value),
  };
}

/** Variables that may hold secrets: children (daemons that live for months) never inherit them. */
export const SECRET_ENV = ['SENTINEL_CEF_KEY', 'AZURE_CLIENT_SECRET', 'AZURE_CLIENT_CERTIFICATE_PASSWORD'];

function childEnv(extra?: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SECRET_ENV.includes(k)) env[k] = v;
  return { ...env, ...extra };
}

function toResult(r: {
  exitCode?: number;
  stdout?: unknown;
  stderr?: unknown;
  failed?: boolean;
  timedOut?: boolean;
  message?: string;
  code?: string;
}): ExecResult {
  const notFound = r.code === 'ENOENT';
  return {
    exitCode: typeof r.exitCode === 'number' ? r.exitCode : notFound ? 127 : 1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') || (r.failed && r.exitCode === undefined ? String(r.message ?? '') : ''),
    failed: Boolean(r.failed),
    notFound,
    timedOut: Boolean(r.timedOut),
  };
}

/** `defaultTimeoutMs` bounds every run() that gives no timeout of its own. */
export function createExec(o: { defaultTimeoutMs?: number } = {}): Exec {
  const secrets = new Set<string>();
  const guard = (cmd: string, args: string[]) => {
    for (const s of secrets) {
      if (cmd.includes(s) || args.some((a) => a.includes(s))) throw new SecretInArgvError(cmd);
    }
  };
  return {
    registerSecret(value) {
      if (value.length >= 4) secrets.add(value);
    },
    async run(cmd, args, opts = {}) {
      guard(cmd, args);
      const r = await execa(cmd, args, {
        reject: false,
        input: opts.input,
        env: childEnv(opts.env),
        extendEnv: false,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? o.defaultTimeoutMs ?? 120_000,
        stdin: opts.input === undefined ? 'ignore' : undefined,
        all: false,
      });
      return toResult(r);
    },
    start(cmd, args, opts = {}) {
      guard(cmd, args);
      const child = execa(cmd, args, {
        reject: false,
        env: childEnv(opts.env),
        extendEnv: false,
        cwd: opts.cwd,
        timeout: opts.timeoutMs,
        stdin: 'ignore',
      });
      const exited = child.then(toResult);
      return {
        onStderr(listener) {
          child.stderr?.on('data', (d: Buffer) => listener(d.toString()));
        },
        exited,
        stop(signal = 'SIGTERM') {
          child.kill(signal);
          return exited;
        },
      };
    },
    async which(cmd) {
      return (await which(cmd, { nothrow: true })) ?? null;
    },
    async spawnDetached(cmd, args, opts = {}) {
      guard(cmd, args);
      const child = execa(cmd, args, {
        detached: true,
        stdio: 'ignore',
        env: childEnv(opts.env),
        extendEnv: false,
        uid: opts.uid,
        gid: opts.gid,
        cleanup: false,
        reject: false,
      });
      const pid = child.pid;
      child.unref();
      // Swallow the eventual result; the process outlives us by design.
      child.catch(() => {});
      if (pid === undefined) throw new Error(`could not start ${cmd}`);
      return pid;
    },
  };
}
