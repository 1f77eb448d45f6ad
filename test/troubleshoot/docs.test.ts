import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_DOCS, README_MARKERS, renderTroubleshootTables, STOPPED_AT_DOCS } from '../../src/troubleshoot/catalogue.js';
import { CHECKS } from '../../src/troubleshoot/run.js';
import { HEALTH_RETRY_MS, HEALTH_TIMEOUT_MS } from '../../src/troubleshoot/context.js';
import { cleanup, healthyTree, makeRoot } from './helpers.js';

const repo = new URL('../..', import.meta.url).pathname;
const readme = () => readFileSync(join(repo, 'README.md'), 'utf8');

describe('README troubleshoot tables', () => {
  it('document every check id, and nothing else', () => {
    expect(Object.keys(CHECK_DOCS).sort()).toEqual(CHECKS.map((c) => c.id).sort());
  });

  it('say how long forwarder.admin waits as the code does: the bound, then the longer retry after a timeout', () => {
    expect(CHECK_DOCS['forwarder.admin']).toContain(`within ${HEALTH_TIMEOUT_MS / 1000} s`);
    expect(CHECK_DOCS['forwarder.admin']).toContain(`${HEALTH_RETRY_MS / 1000} s more`);
  });

  it('are what scripts/gen-troubleshoot-docs.ts writes (run it after changing checks or stages)', () => {
    const text = readme();
    const [a, b] = README_MARKERS;
    const section = text.slice(text.indexOf(a) + a.length + 1, text.indexOf(b));
    expect(section).toBe(renderTroubleshootTables(CHECKS.map((c) => c.id)));
    for (const stage of Object.keys(STOPPED_AT_DOCS)) expect(section).toContain(`| \`${stage}\` |`);
  });
});

/** The steps of the README's GitHub Actions example, as the runner reads them. */
function ciSteps(text: string): Array<{ name: string; run: string; shell?: string }> {
  const start = text.indexOf('### As a CI smoke check');
  const block = /```yaml\n([\s\S]*?)```/.exec(text.slice(start))![1];
  return block
    .split(/^- /m)
    .filter((s) => s.trim())
    .map((s) => {
      const get = (k: string) => new RegExp(`^\\s*${k}:\\s*(.*?)(\\s+#.*)?$`, 'm').exec(s)?.[1];
      return { name: get('name')!, run: get('run')!, shell: get('shell') };
    });
}

/** The command line GitHub Actions runs a `run:` script with (docs: "jobs.<job_id>.steps[*].shell"). */
function runnerShell(shell: string | undefined): string[] {
  if (shell === undefined) return ['bash', '-e'];
  if (shell === 'bash') return ['bash', '--noprofile', '--norc', '-eo', 'pipefail'];
  throw new Error(`shell ${shell} not modelled`);
}

// Issue 16: `troubleshoot | tee` under the runner's default `bash -e` could never fail the step.
describe('the README CI example, run as a GitHub runner runs it', () => {
  let root: string;
  let dir: string;
  let port: number;
  beforeAll(async () => {
    if (!(await readFile(join(repo, 'dist/cli.js')).catch(() => null))) await execa('node', ['scripts/build.mjs'], { cwd: repo });
    // A broken install: everything in place, the forwarder down (nothing answers on its admin port).
    // Port 1: privileged and unused, so it stays closed (a port found free a moment ago can be taken by a test alongside).
    port = 1;
    root = await makeRoot();
    await healthyTree(root, { adminPort: port, daemonPort: port });
    await rm(join(root, 'proc/400'), { recursive: true });
    await rm(join(root, 'run/sentinel-cef'), { recursive: true });
    dir = await mkdtemp(join(tmpdir(), 'ts-ci-'));
  }, 60_000);
  afterAll(async () => {
    await cleanup(root);
    await rm(dir, { recursive: true, force: true });
  });

  it('fails the step when troubleshoot fails, and still writes troubleshoot.json', async () => {
    const step = ciSteps(readme()).find((s) => s.run.includes('troubleshoot --json'))!;
    expect(step.run).toContain('| tee troubleshoot.json');
    // The same line, with the local build for `sudo npx sentinel-cef`, pointed at the broken tree.
    const line = step.run.replace(
      'sudo npx sentinel-cef troubleshoot',
      `node ${join(repo, 'dist/cli.js')} troubleshoot --root ${root} --port ${port} --timeout 2`,
    );
    await writeFile(join(dir, 'step.sh'), `${line}\n`);
    const [cmd, ...args] = runnerShell(step.shell);
    const r = await execa(cmd, [...args, join(dir, 'step.sh')], {
      cwd: dir,
      reject: false,
      env: { CI: 'true', NO_COLOR: '1', PATH: process.env.PATH ?? '' },
    });
    expect(r.exitCode).not.toBe(0);
    const report = JSON.parse(await readFile(join(dir, 'troubleshoot.json'), 'utf8'));
    expect(report.ok).toBe(false);
    expect(report.checks.find((c: { id: string }) => c.id === 'forwarder.running').status).toBe('fail');
  }, 60_000);
});
