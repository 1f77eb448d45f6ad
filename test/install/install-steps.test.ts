import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createScriptedPrompter } from '../../src/system/prompts.js';
import { INSTALL_STEPS, runInstall, type InstallStepName } from '../../src/install/run-install.js';
import { installOptionsSchema } from '../../src/install/options.js';
import { installDeps } from './install-helpers.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/install');
const temps: string[] = [];
const temp = (p: string) => {
  const d = mkdtempSync(path.join(tmpdir(), p));
  temps.push(d);
  return d;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
const copyFixture = (c: string) => {
  const dir = temp(`scef-steps-${c}-`);
  cpSync(path.join(fixtures, c), dir, { recursive: true });
  return dir;
};
const opts = (o: Record<string, unknown>) =>
  installOptionsSchema.parse({ sink: 'file:/var/log/sentinel-cef-rows/rows.ndjson', verify: false, ...o });

/** Every file under a tree with its mode and bytes, to compare before and after. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, n.name);
      if (n.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = `${(statSync(p).mode & 0o7777).toString(8)} ${readFileSync(p, 'base64')}`;
    }
  };
  walk(dir);
  return out;
}

describe('runInstall as named steps', () => {
  it('runs detect, render, plan, confirm, apply, verify in that order', async () => {
    expect(INSTALL_STEPS.map((s) => s.name)).toEqual(['detect', 'render', 'plan', 'confirm', 'apply', 'verify']);
    const seen: InstallStepName[] = [];
    const d = installDeps(temp, copyFixture('debian12-rsyslog'), { onStep: (n) => seen.push(n) });
    const r = await runInstall(opts({ yes: true }), d.deps);
    expect(r.changed).toBe(true);
    expect(seen).toEqual(['detect', 'render', 'plan', 'confirm', 'apply', 'verify']);
  });

  it.each(['debian12-rsyslog', 'rhel8-syslog-ng'])(
    '--dry-run (%s) is the same steps stopping after plan: the tree is byte-identical',
    async (fixture) => {
      const root = copyFixture(fixture);
      const before = snapshot(root);
      const seen: InstallStepName[] = [];
      const d = installDeps(temp, root, { onStep: (n) => seen.push(n) });
      const r = await runInstall(opts({ dryRun: true }), d.deps);
      expect(seen).toEqual(['detect', 'render', 'plan']);
      expect(r).toMatchObject({ dryRun: true, changed: true });
      expect(d.text()).toMatch(/Dry run: nothing was changed\.\n$/);
      expect(snapshot(root)).toEqual(before);
    },
  );

  it('a "no" at confirm stops before apply and changes nothing', async () => {
    const root = copyFixture('debian12-rsyslog');
    const before = snapshot(root);
    const seen: InstallStepName[] = [];
    const prompter = createScriptedPrompter([false]);
    const d = installDeps(temp, root, { onStep: (n) => seen.push(n), prompter });
    await expect(runInstall(opts({}), d.deps)).rejects.toThrow(/cancelled; nothing was changed/);
    expect(seen).toEqual(['detect', 'render', 'plan', 'confirm']);
    expect(snapshot(root)).toEqual(before);
  });
});
