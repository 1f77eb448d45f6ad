// Builds the CLI (dependencies stay external; npm installs them) and the
// self-contained forwarder bundle the installer deploys without node_modules.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

// Source maps only on request (SOURCEMAP=1): nothing in the package reads them and they were most of its size.
const sourcemap = process.env.SOURCEMAP === '1' || process.env.SOURCEMAP === 'true';
const common = {
  platform: 'node',
  target: 'node20',
  format: 'esm',
  bundle: true,
  sourcemap,
  logLevel: 'warning',
  // Bundled CommonJS dependencies call require(); give ESM output one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
};

rmSync('dist', { recursive: true, force: true });
await build({ ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js', packages: 'external' });
await build({ ...common, entryPoints: ['src/forwarder-main.ts'], outfile: 'dist/forwarder.mjs' });
// bin/sentinel-cef loads this first, on whatever Node the operator has: no banner, syntax an old Node parses.
await build({
  ...common,
  banner: undefined,
  sourcemap: false,
  target: 'node12',
  entryPoints: ['src/system/node-support.ts'],
  outfile: 'dist/node-support.js',
});
