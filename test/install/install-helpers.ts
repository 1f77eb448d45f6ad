import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createFsRoot } from '../../src/system/fs-root.js';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import { fakeSystemExec } from '../helpers/fake-exec.js';
import type { InstallDeps } from '../../src/install/run-install.js';
import type { Services } from '../../src/install/service.js';

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
    exec: fakeSystemExec(root),
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
