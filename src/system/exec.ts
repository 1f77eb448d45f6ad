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

export interface Exec {
  run(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
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

/** Variables that may hold secrets: children (daemons that live for months) never inherit them. */
export const SECRET_ENV = ['SENTINEL_CEF_KEY', 'AZURE_CLIENT_SECRET', 'AZURE_CLIENT_CERTIFICATE_PASSWORD'];

function childEnv(extra?: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SECRET_ENV.includes(k)) env[k] = v;
  return { ...env, ...extra };
}

export function createExec(): Exec {
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
        timeout: opts.timeoutMs ?? 120_000,
        stdin: opts.input === undefined ? 'ignore' : undefined,
        all: false,
      });
      const notFound = (r as { code?: string }).code === 'ENOENT';
      return {
        exitCode: typeof r.exitCode === 'number' ? r.exitCode : notFound ? 127 : 1,
        stdout: String(r.stdout ?? ''),
        stderr: String(r.stderr ?? '') || (r.failed && r.exitCode === undefined ? String(r.message ?? '') : ''),
        failed: Boolean(r.failed),
        notFound,
        timedOut: Boolean(r.timedOut),
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
