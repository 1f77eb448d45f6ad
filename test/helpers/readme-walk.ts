// The README's walkthrough blocks and the one comparison of a real run's output with them, shared by the sandbox
// walk (CI and terminal) and the VM suites (systemd).

export type WalkDaemon = 'rsyslog' | 'syslog-ng';
export interface WalkBlock {
  step: string;
  daemon?: WalkDaemon;
  args: string[];
  output: string;
}

/**
 * The blocks marked `<!-- MARKER:STEP [DAEMON] -->` in the README, in order: `walk` for the run as CI prints it,
 * `walk-terminal` for what a terminal shows, `walk-systemd` for the lines only a systemd machine prints.
 */
export function readWalkBlocks(readme: string, marker = 'walk'): WalkBlock[] {
  const blocks: WalkBlock[] = [];
  const re = new RegExp(
    `<!-- ${marker}:([a-z-]+)(?: (rsyslog|syslog-ng))? -->\\n\`\`\`console\\n\\$ (?:sudo )?npx sentinel-cef ([^\\n]*)\\n([\\s\\S]*?)\`\`\``,
    'g',
  );
  for (const m of readme.matchAll(re)) {
    blocks.push({ step: m[1], daemon: m[2] as WalkDaemon | undefined, args: m[3].trim().split(/ +/), output: m[4] });
  }
  return blocks;
}

/** The block for this step and daemon, else the one for both. */
export function blockFor(blocks: WalkBlock[], step: string, daemon: WalkDaemon): WalkBlock {
  const b = blocks.find((x) => x.step === step && x.daemon === daemon) ?? blocks.find((x) => x.step === step && !x.daemon);
  if (!b) throw new Error(`README walk step ${step} has no block for ${daemon}`);
  return b;
}

const KEEP_PORTS = new Set(['514', '25226', '25227']);
/** Only what truly varies between runs; every word and every other number must match. */
export function normalise(text: string): string {
  const lines = text
    .replace(/\r/g, '')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/\d{4}-\d\d-\d\dT\d\d[:-]\d\d[:-]\d\d[.-]\d{3}Z/g, '<time>')
    .replace(/\b\d+ ms\b/g, 'N ms')
    .replace(/\bup \d+s\b/g, 'up Ns')
    .replace(/\b(pid|uid|PID) \d+/g, '$1 N')
    .replace(/\b\d+ delivered\b/g, 'N delivered')
    .replace(/\b\d+ GiB free \(\d+%\)/g, 'N GiB free (N%)')
    .replace(/\bgenerated, \d+ bytes\b/g, 'generated, N bytes')
    .replace(/\b(rsyslog|syslog-ng|version) \d+\.\d+(\.\d+)*/g, '$1 <version>')
    .replace(/sentinel-cef-demo-[A-Za-z0-9]{6}/g, 'sentinel-cef-demo-XXXXXX')
    .replace(/127\.0\.0\.1:(\d+)/g, (m, p: string) => (KEEP_PORTS.has(p) ? m : '127.0.0.1:PORT'))
    .split('\n')
    .map((l) => l.trimEnd());
  // The demo's rows arrive over TCP and UDP at once: their order in the table is the order they arrived.
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    out.push(lines[i]);
    if (/^─[─ ]+$/.test(lines[i])) {
      let j = i + 1;
      while (j < lines.length && lines[j] !== '') j++;
      out.push(...lines.slice(i + 1, j).sort());
      i = j - 1;
    }
  }
  return out.join('\n').trim();
}

/** A README line `…` stands for lines a person need not read there (a long diff); nothing else is skipped. */
const ELIDED = '…';

/**
 * A run's output as the README block would show it: normalised, and each run of lines the block elides with `…`
 * replaced by `…`, so `expect(matchWalkBlock(out, block)).toBe(normalise(block))` shows a line-for-line diff.
 */
export function matchWalkBlock(actual: string, block: string): string {
  const want = normalise(block).split('\n');
  const got = normalise(actual).split('\n');
  const out: string[] = [];
  let g = 0;
  for (let w = 0; w < want.length; w++) {
    if (want[w] !== ELIDED) {
      if (g < got.length) out.push(got[g++]);
      continue;
    }
    // Skip up to the next line the block shows (the first one that matches), or to the end when it ends in `…`.
    const next = want.slice(w + 1).find((l) => l !== ELIDED);
    const at = next === undefined ? got.length : got.indexOf(next, g);
    if (at < 0) continue;
    if (at > g) out.push(ELIDED);
    g = at;
  }
  out.push(...got.slice(g));
  return out.join('\n');
}
