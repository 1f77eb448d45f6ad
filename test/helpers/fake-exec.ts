import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Exec, ExecOptions, ExecResult, StartedProcess } from '../../src/system/exec.js';

/** What a fake program answers: a result, or a function of its arguments and options (it may wait). */
export type FakeProgram = Partial<ExecResult> | ((args: string[], opts: ExecOptions) => Partial<ExecResult> | Promise<Partial<ExecResult>>);
/** Fake programs by "cmd arg1 arg2" (that exact call) or "cmd" (any call of it). */
export type ExecTable = Record<string, FakeProgram>;

export interface FakeExecOptions {
  /** Every call is appended here too, for tests that build the fake inside a helper. */
  calls?: string[][];
  /** A program the table does not name; default: not installed (exit 127). */
  otherwise?: (cmd: string, args: string[], opts: ExecOptions) => Partial<ExecResult> | Promise<Partial<ExecResult>>;
  /** Where `which` finds a program; default: /usr/sbin/<cmd> for each program the table names. */
  which?: (cmd: string) => string | null;
}

/** The one fake of the process runner (system/exec.ts), for install and troubleshoot tests alike. */
export interface FakeExec extends Exec {
  /** The programs; tests may add to it after creating the fake. */
  table: ExecTable;
  /** Every call in order, as argv (spawnDetached as ['spawn', cmd, …]). */
  calls: string[][];
}

/** Calls as command lines ("cmd arg1 arg2"), for assertions that read like a shell history. */
export function commandLines(calls: string[][]): string[] {
  return calls.map((c) => c.join(' '));
}

/**
 * Programs answer from the table; a program it does not name is not installed unless `otherwise` says.
 * start() runs the same answer as a long-lived child: its stderr is delivered at once; a failing answer ends it at once,
 * a succeeding one on stop().
 */
export function fakeExec(table: ExecTable = {}, o: FakeExecOptions = {}): FakeExec {
  const calls = o.calls ?? [];
  // A path the default `which` gave out runs the table's program of that name.
  const found = new Map<string, string>();
  const answer = async (path: string, args: string[], opts: ExecOptions): Promise<ExecResult> => {
    const cmd = found.get(path) ?? path;
    const hit = table[[cmd, ...args].join(' ')] ?? table[cmd];
    const r = hit === undefined ? await o.otherwise?.(cmd, args, opts) : typeof hit === 'function' ? await hit(args, opts) : hit;
    if (!r) return { exitCode: 127, stdout: '', stderr: `${cmd}: not found`, notFound: true };
    return { exitCode: 0, stdout: '', stderr: '', ...r };
  };
  const which =
    o.which ??
    ((cmd: string) => {
      if (!Object.keys(table).some((k) => k === cmd || k.startsWith(`${cmd} `))) return null;
      found.set(`/usr/sbin/${cmd}`, cmd);
      return `/usr/sbin/${cmd}`;
    });
  return {
    table,
    calls,
    registerSecret() {},
    async which(cmd) {
      return which(cmd);
    },
    async run(cmd, args, opts = {}) {
      calls.push([cmd, ...args]);
      return answer(cmd, args, opts);
    },
    start(cmd, args, opts = {}): StartedProcess {
      calls.push([cmd, ...args]);
      const result = answer(cmd, args, opts);
      let stop: () => void = () => {};
      const stopped = new Promise<void>((r) => (stop = r));
      // A program that fails (or is missing) ends at once; one that succeeds runs until stop().
      const exited = result.then(async (r) => (r.exitCode !== 0 ? r : (await stopped, r)));
      return {
        onStderr(listener) {
          void result.then((r) => r.stderr && !r.notFound && listener(r.stderr));
        },
        exited,
        stop() {
          stop();
          return exited;
        },
      };
    },
    async spawnDetached(cmd, args) {
      calls.push(['spawn', cmd, ...args]);
      return 99999;
    },
  };
}

/**
 * The installer's programs on a fixture root: node on PATH answers --version, useradd and userdel edit the root's
 * passwd (uid:gid `ids`, default ours), and every other program succeeds unless `answer` says otherwise (asked first).
 */
export function fakeSystemExec(
  root: string | undefined,
  o: { nodeVersion?: string; ids?: string; answer?: (cmd: string, args: readonly string[]) => Partial<ExecResult> | undefined } = {},
): FakeExec {
  const passwd = root === undefined ? undefined : path.join(root, 'etc/passwd');
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  return fakeExec(
    { '/usr/bin/node --version': { stdout: `${o.nodeVersion ?? 'v20.19.0'}\n` } },
    {
      which: (cmd) => (cmd === 'node' ? '/usr/bin/node' : null),
      otherwise: (cmd, args) => {
        const r = o.answer?.(cmd, args);
        if (r) return r;
        const ids = o.ids ?? `${process.getuid!()}:${process.getgid!()}`;
        if (passwd && cmd === 'useradd')
          writeFileSync(passwd, `${read(passwd)}sentinel-cef:x:${ids}::/var/lib/sentinel-cef:/usr/sbin/nologin\n`);
        if (passwd && cmd === 'userdel') writeFileSync(passwd, read(passwd).replace(/^sentinel-cef:.*\n/m, ''));
        return {};
      },
    },
  );
}
