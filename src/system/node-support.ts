// Which Node versions sentinel-cef runs on. Also built alone as dist/node-support.js for bin/sentinel-cef, which
// checks the running Node before it loads anything else: keep this file free of imports and of syntax newer
// than Node 12 can parse (esbuild lowers it; see scripts/build.mjs).

/**
 * The same range as package.json "engines.node": zlib.crc32 needs 20.15 (22.2), and @inquirer/prompts and which
 * need 20.17, 22.13 or 23.5.
 */
export const NODE_RANGE = '^20.17.0 || ^22.13.0 || >=23.5.0';

function parse(v: string, partial = false): [number, number, number] | null {
  const m = (partial ? /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/ : /^v?(\d+)\.(\d+)\.(\d+)/).exec(v.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : null;
}

function cmp(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Whether `version` (as `node --version` prints it) satisfies a range of `^x.y.z` and `>=x.y.z` terms joined by `||` (minor and patch optional). */
export function satisfiesNodeRange(version: string, range: string = NODE_RANGE): boolean {
  const v = parse(version);
  if (!v) return false;
  return range.split('||').some((term) => {
    const t = term.trim();
    const min = parse(t.replace(/^(\^|>=)\s*/, ''), true);
    if (!min) throw new Error(`unsupported range term ${t}`);
    if (t.startsWith('^')) return v[0] === min[0] && cmp(v, min) >= 0;
    if (t.startsWith('>=')) return cmp(v, min) >= 0;
    throw new Error(`unsupported range term ${t}`);
  });
}

/** One line saying why this Node cannot run sentinel-cef, or null when it can. */
export function unsupportedNodeMessage(version: string, what: string): string | null {
  if (satisfiesNodeRange(version)) return null;
  return (
    `${what} is Node ${version.trim() || '(unknown version)'}, but sentinel-cef needs Node ${NODE_RANGE}` +
    ' — install Node 22 LTS (or 20.17 and later) system-wide so that `node` on PATH is that version, then run it again'
  );
}
