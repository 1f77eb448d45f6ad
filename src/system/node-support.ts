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

/**
 * How to get a supported Node on Debian and Ubuntu: Debian 13's own nodejs is 20.19 (in range); Debian 12's 18.20,
 * Debian 11's 12.22 and Ubuntu 24.04's 18.19 are not, so NodeSource's Node 22 LTS (its setup script adds the apt source).
 */
export const NODE_INSTALL_STEP =
  'on Debian 13 `apt-get install nodejs`; on Debian 11/12 or Ubuntu `curl -fsSL https://deb.nodesource.com/setup_22.x | bash - && apt-get install -y nodejs`';

/** One line saying why this Node cannot run sentinel-cef and what to do, or null when it can. `then` is the step after. */
export function unsupportedNodeMessage(version: string, what: string, then: string = 'then run it again'): string | null {
  if (satisfiesNodeRange(version)) return null;
  return (
    `${what} is Node ${version.trim() || '(unknown version)'}, but sentinel-cef needs Node ${NODE_RANGE}` +
    ` — install one (${NODE_INSTALL_STEP}), ${then}`
  );
}
