import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createFsRoot } from '../../src/system/fs-root.js';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import type { Exec, ExecResult } from '../../src/system/exec.js';
import type { InstallDeps } from '../../src/install/run-install.js';
import type { Services } from '../../src/install/service.js';

/**
 * Install's seams for in-process runs on a fixture root: an exec that records its calls, answers `node --version`
 * and `useradd` (it writes the user into the root's passwd), and anything else through `answer` or with exit 0.
 */
export function fakeExec(
  root: string | undefined,
  opts: { nodeVersion?: string; answer?: (cmd: string, args: readonly string[]) => ExecResult | undefined } = {},
): Exec & { calls: string[][] } {
  const calls: string[][] = [];
  const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', failed: false });
  return {
    calls,
    registerSecret() {},
    async which(cmd) {
      return cmd === 'node' ? '/usr/bin/node' : null;
    },
    async run(cmd, args) {
      calls.push([cmd, ...args]);
      if (cmd === '/usr/bin/node' && args[0] === '--version') return ok(`${opts.nodeVersion ?? 'v20.19.0'}\n`);
      if (cmd === 'useradd' && root) {
        const passwd = path.join(root, 'etc/passwd');
        writeFileSync(
          passwd,
          `${existsSync(passwd) ? readFileSync(passwd, 'utf8') : ''}sentinel-cef:x:${process.getuid!()}:${process.getgid!()}::/var/lib/sentinel-cef:/usr/sbin/nologin\n`,
        );
      }
      return opts.answer?.(cmd, args) ?? ok();
    },
    async spawnDetached(cmd, args) {
      calls.push(['spawn', cmd, ...args]);
      return 99999;
    },
  };
}

export const services: Services = {
  async startForwarder() {
    return 'started';
  },
  async stopForwarder() {},
  async restartDaemon() {
    return { ok: true, detail: 'restarted' };
  },
  async isForwarderSupervised() {
    return null;
  },
  async runningDaemonPids() {
    return [4343];
  },
};

export function installDeps(temp: (prefix: string) => string, root: string, extra: Partial<InstallDeps> = {}) {
  const stream: Array<['log' | 'out', string]> = [];
  const bundle = path.join(temp('scef-bundle-'), 'forwarder.mjs');
  writeFileSync(bundle, '// forwarder bundle\n');
  const d: InstallDeps = {
    fs: createFsRoot(root),
    exec: fakeExec(root),
    prompter: createScriptedPrompter([]),
    log: (l) => stream.push(['log', l]),
    out: (t) => stream.push(['out', t]),
    env: {},
    forwarderBundle: bundle,
    services,
    // Never the real Azure: a rule behind an Azure ingestion host is looked up through this, and is not found.
    azure: async () => {
      throw new Error('no Azure in these tests');
    },
    ...extra,
  };
  return { deps: d, stream, text: () => stream.map((s) => s[1]).join('\n') };
}

/** Every file under a tree: path -> mode and content, to compare byte for byte. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, n.name);
      if (n.isDirectory()) walk(p);
      else if (n.isFile()) out[path.relative(dir, p)] = `${(statSync(p).mode & 0o7777).toString(8)} ${readFileSync(p, 'base64')}`;
    }
  };
  walk(dir);
  return out;
}
