import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repo, sandbox, sandboxSkipReason } from './sandbox-env.js';
import { blockFor, matchWalkBlock, normalise, readWalkBlocks, type WalkBlock, type WalkDaemon } from '../helpers/readme-walk.js';

// The README's walkthrough, run for real: each `<!-- walk:STEP [DAEMON] -->` block's command is run in the sandbox
// with real rsyslog / syslog-ng, and what it printed must be the block's output line for line once the values that
// differ between runs (times, ids, pids, ports, versions, free space) are normalised. Then the original's legacy form
// `install <workspaceId> <key>` against the mock workspace, through troubleshoot and uninstall. Then the walk on a
// real terminal (tmux): each `<!-- walk-terminal:STEP -->` block with its prompt answered by keystroke, troubleshoot
// against the CI block, "n" and Ctrl-C at the prompts (rsyslog with NO_COLOR=1, syslog-ng in colour).
const reason = sandboxSkipReason();
if (reason) console.warn(`sandbox tests skipped: ${reason}`);

type Daemon = WalkDaemon;

/** Each step once, in README order, with the block for this daemon (or the one for both). */
function stepsFor(blocks: WalkBlock[], daemon: Daemon): WalkBlock[] {
  return [...new Set(blocks.map((b) => b.step))].map((n) => blockFor(blocks, n, daemon));
}

const read = (dir: string, f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8') : '');
/** The shadow tools (useradd, userdel) keep their own previous copy in /etc/passwd- etc.; not ours to restore. */
const etc = (dir: string, f: string) =>
  read(dir, f)
    .split('\n')
    .filter((l) => !/\/etc\/(passwd|group|shadow|gshadow|subuid|subgid)-(\s|$)/.test(l))
    .join('\n');

const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
const blocks = readWalkBlocks(readme);
const terminalBlocks = readWalkBlocks(readme, 'walk-terminal');

const APPLY = 'Apply these changes\\?';
/** The terminal walk in tmux: name, command line, the prompt to answer (ERE) and the keys (`-`: none), a timeout (s). */
function terminalSteps(daemon: Daemon, out = ''): Array<[string, string, string, string, number]> {
  const cmd = (step: string) => `sentinel-cef ${blockFor(terminalBlocks, step, daemon).args.join(' ')}`;
  const answers: Array<[string, string, string, string, number]> = [
    // Once is enough for the answers that change nothing: the destination menu, "n", Ctrl-C at the confirmation.
    ['install-menu', 'sentinel-cef install', 'Where should the forwarder send events\\?', 'C-c', 90],
    // stdout to a file: the prompt must still be on the screen (it goes to stderr), and not in the file.
    ['install-no', `${cmd('install')} >${path.join(out, 'install-no.stdout')}`, APPLY, 'n Enter', 120],
    ['install-ctrlc', cmd('install'), APPLY, 'C-c', 120],
  ];
  return [
    ...(daemon === 'rsyslog' ? answers : []),
    ['install', cmd('install'), APPLY, 'y Enter', 240],
    ['send-test', cmd('send-test'), '-', '-', 60],
    ['troubleshoot', `sentinel-cef ${blockFor(blocks, 'troubleshoot', daemon).args.join(' ')}`, '-', '-', 180],
    ['uninstall', cmd('uninstall'), 'Uninstall sentinel-cef\\?', 'y Enter', 180],
  ];
}

/** What one command put on the screen: the lines between the command line and its `<rc=N>` marker. */
function screen(pane: string): string {
  const lines = pane.split('\n');
  const end = lines.findIndex((l) => /^<rc=\d+>$/.test(l));
  return lines.slice(1, end < 0 ? undefined : end).join('\n');
}
/** With colour, troubleshoot marks each check with a symbol where the plain report says the word. */
const plainMarks = (text: string) =>
  text.replace(/^ {2}([✔⚠✖–]) /gm, (_m, s: string) => `  ${{ '✔': 'PASS', '⚠': 'WARN', '✖': 'FAIL', '–': 'SKIP' }[s]} `);

describe('the README walkthrough', () => {
  it('has the marked steps, for both daemons', () => {
    for (const d of ['rsyslog', 'syslog-ng'] as const) {
      expect(stepsFor(blocks, d).map((b) => b.step)).toEqual(['demo', 'install', 'troubleshoot', 'uninstall']);
      expect(stepsFor(terminalBlocks, d).map((b) => b.step)).toEqual(['install', 'send-test', 'uninstall']);
    }
  });
});

describe.skipIf(reason !== null).each(['rsyslog', 'syslog-ng'] as const)('the README walkthrough on real %s in the sandbox', (daemon) => {
  let dir: string;
  const steps = stepsFor(blocks, daemon);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), `scef-walk-${daemon}-`));
    chmodSync(dir, 0o755);
    writeFileSync(path.join(dir, 'steps'), steps.map((s) => `${s.step}\t${s.args.join(' ')}\n`).join(''));
    mkdirSync(path.join(dir, 'terminal'), { mode: 0o755 });
    writeFileSync(
      path.join(dir, 'terminal-steps'),
      terminalSteps(daemon, path.join(dir, 'terminal'))
        .map((s) => `${s.join('\t')}\n`)
        .join(''),
    );
    // One sandbox for both walks: CI's, then the terminal's (rsyslog with NO_COLOR=1, syslog-ng in colour).
    const script = path.join(repo, 'test/sandbox/walk-scenario.sh');
    const terminal = path.join(repo, 'test/sandbox/walk-terminal-scenario.sh');
    const r = await execa(
      sandbox,
      [
        'run',
        '--daemon',
        daemon,
        '--',
        'bash',
        '-c',
        'bash "$1" "$2" "$3" "$4" && bash "$5" "$6" "$7" "$8"',
        'walk',
        script,
        dir,
        daemon,
      ].concat([
        path.join(dir, 'steps'),
        terminal,
        path.join(dir, 'terminal'),
        daemon === 'rsyslog' ? '1' : '',
        path.join(dir, 'terminal-steps'),
      ]),
      { reject: false, timeout: 600_000 },
    );
    if (r.exitCode !== 0) throw new Error(`sandbox failed (${r.exitCode}): ${r.stderr}`);
  }, 630_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(steps.map((s) => [s.step, s] as const))('`%s` prints what the README shows', (name, s) => {
    expect(read(dir, `${name}.rc`).trim(), read(dir, `${name}.out`)).toBe('0');
    expect(normalise(read(dir, `${name}.out`))).toBe(normalise(s.output));
  });

  it('uninstall leaves /etc byte-identical (content, mode, owner)', () => {
    expect(etc(dir, 'walk.pre.sha')).not.toBe('');
    expect(etc(dir, 'walk.post.sha')).toBe(etc(dir, 'walk.pre.sha'));
    expect(etc(dir, 'walk.post.stat')).toBe(etc(dir, 'walk.pre.stat'));
  });

  describe(`on a terminal (tmux 120x50, CI unset${daemon === 'rsyslog' ? ', NO_COLOR=1' : ', colour'})`, () => {
    const term = (f: string) => read(path.join(dir, 'terminal'), f);
    const rc = (name: string) => term(`${name}.rc`).trim();

    it.each(['install', 'send-test', 'uninstall'])('`%s` shows what the README shows, the prompt answered by keystroke', (name) => {
      expect(rc(name), term(`${name}.pane`) + term('terminal.err')).toBe('0');
      const block = blockFor(terminalBlocks, name, daemon).output;
      expect(matchWalkBlock(screen(term(`${name}.pane`)), block)).toBe(normalise(block));
    });

    it('troubleshoot shows the report the README shows, and no spinner line is left above it', () => {
      expect(rc('troubleshoot'), term('troubleshoot.pane')).toBe('0');
      const block = blockFor(blocks, 'troubleshoot', daemon).output;
      expect(matchWalkBlock(plainMarks(screen(term('troubleshoot.pane'))), block)).toBe(normalise(block));
    });

    it('leaves no spinner frame on the screen, and colour follows NO_COLOR', () => {
      const steps = terminalSteps(daemon).map(([name]) => name);
      for (const name of steps) expect(term(`${name}.pane`), name).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
      // eslint-disable-next-line no-control-regex -- colour codes are what is checked
      const sgr = steps.filter((name) => /\x1b\[[0-9;]*m/.test(term(`${name}.raw`)));
      if (daemon === 'rsyslog') expect(sgr, 'steps whose bytes hold colour or style codes with NO_COLOR=1').toEqual([]);
      else expect(sgr).toContain('troubleshoot');
    });

    it('uninstall leaves /etc byte-identical', () => {
      expect(etc(path.join(dir, 'terminal'), 'pre.sha')).not.toBe('');
      expect(etc(path.join(dir, 'terminal'), 'uninstall.etc.sha')).toBe(etc(path.join(dir, 'terminal'), 'pre.sha'));
      expect(etc(path.join(dir, 'terminal'), 'uninstall.etc.stat')).toBe(etc(path.join(dir, 'terminal'), 'pre.stat'));
    });

    it.runIf(daemon === 'rsyslog').each([
      ['install-menu', 'Ctrl-C at the destination menu', '130', 'sentinel-cef: cancelled'],
      ['install-no', '"n" at the confirmation', '1', 'sentinel-cef: cancelled; nothing was changed'],
      ['install-ctrlc', 'Ctrl-C at the confirmation', '130', 'sentinel-cef: cancelled'],
    ])('%s (%s): exit %s, says so in one line, /etc byte-identical', (name, _what, code, last) => {
      const out = screen(term(`${name}.pane`)).trimEnd();
      expect(rc(name), out).toBe(code);
      expect(out.split('\n').at(-1)).toBe(last);
      expect(out).not.toMatch(/force closed|SIGINT|Error/);
      const d = path.join(dir, 'terminal');
      expect(etc(d, `${name}.etc.sha`)).toBe(etc(d, 'pre.sha'));
      expect(etc(d, `${name}.etc.stat`)).toBe(etc(d, 'pre.stat'));
    });

    it.runIf(daemon === 'rsyslog')('the prompt goes to the terminal (stderr), not to stdout', () => {
      expect(existsSync(path.join(dir, 'terminal/install-no.stdout'))).toBe(true);
      expect(term('install-no.stdout')).not.toMatch(/Apply these changes/);
      expect(screen(term('install-no.pane'))).toMatch(/^✔ Apply these changes\? No$/m);
    });
  });

  describe('the legacy form `install <workspaceId> <primaryKey>` against the mock workspace', () => {
    const key = () => read(dir, 'ws.key').trim();

    it('installs, says the API is retired and what to do, and the mock receives the rows in CommonSecurityLog_CL', () => {
      expect(read(dir, 'legacy-install.rc').trim(), read(dir, 'legacy-install.out')).toBe('0');
      const out = read(dir, 'legacy-install.out');
      expect(out).toContain('the key on the command line is visible to other local users in /proc');
      expect(out).toContain('the Data Collector API (workspace id + key) was retired by Microsoft on 2026-09-14');
      expect(out).toMatch(/a signed probe to POST http:\/\/127\.0\.0\.1:\d+\/api\/logs\?api-version=2016-04-01 answered HTTP 200/);
      expect(out).toContain('rows sent this way go to the custom table CommonSecurityLog_CL, not to CommonSecurityLog');
      expect(out).toContain('`sentinel-cef install --workspace 0b5e7c1a-3f1d-4c2e-9a8b-1234567890ab`');
      expect(out).toMatch(new RegExp(`-> ${daemon} -> forwarder -> workspace 0b5e7c1a-.*accepted after \\d+ ms`));
      const rows = JSON.parse(read(dir, 'legacy-rows.json')) as Array<{ api: string; table: string; row: Record<string, string> }>;
      expect(rows.find((r) => r.row.Activity === 'legacy walk')).toMatchObject({
        api: 'log-analytics',
        table: 'CommonSecurityLog_CL',
        row: { SourceIP: '10.9.9.9', DeviceVendor: 'Acme' },
      });
    });

    it('keeps the key out of every child process and every output, and stores it 0600 for the service user', () => {
      expect(key().length).toBeGreaterThan(40);
      // Only install itself holds it (the user typed it there); no child's argv, no process's environment.
      const seen = read(dir, 'key-seen').trim().split('\n').filter(Boolean);
      expect(seen.length, 'the watcher saw install itself').toBeGreaterThan(0);
      for (const s of seen) expect(s).toMatch(/^cmdline node \S+\/bin\/sentinel-cef install /);
      for (const f of ['legacy-install.out', 'legacy-troubleshoot.out', 'legacy-uninstall.out']) expect(read(dir, f)).not.toContain(key());
      expect(read(dir, 'legacy.files')).toContain('/etc/sentinel-cef/shared-key 600 sentinel-cef:sentinel-cef');
      expect(read(dir, 'legacy.files')).toContain('/etc/sentinel-cef/forwarder.json 640 root:sentinel-cef');
    });

    it('troubleshoot passes with the retirement as a warning that names the way out', () => {
      const out = read(dir, 'legacy-troubleshoot.out');
      expect(read(dir, 'legacy-troubleshoot.rc').trim(), out).toBe('0');
      expect(out).toMatch(/WARN Forwarder config valid \[forwarder\.config\]: sink: Data Collector API, .*retired this API on 2026-09-14/);
      expect(out).toContain(
        'fix: move to the Logs Ingestion API (creates the DCR and grants the role): `sentinel-cef install --workspace ',
      );
      expect(out).toMatch(/PASS Azure accepts the credentials \[azure\.credentials\]: shared key accepted/);
      expect(out).toMatch(/PASS End-to-end probes \[e2e\.probes\]: 6\/6 probes delivered/);
      expect(out).not.toMatch(/pass --workspace/);
    });

    it('uninstall --purge leaves /etc byte-identical', () => {
      expect(read(dir, 'legacy-uninstall.rc').trim(), read(dir, 'legacy-uninstall.out')).toBe('0');
      expect(etc(dir, 'legacy.post.sha')).toBe(etc(dir, 'legacy.pre.sha'));
      expect(etc(dir, 'legacy.post.stat')).toBe(etc(dir, 'legacy.pre.stat'));
    });
  });
});
