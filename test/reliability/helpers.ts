import { execFileSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE, REPO } from '../../scripts/load/harness.js';

/** The scenarios run the real bundle: rebuild it when any source file is newer. */
export function ensureBundle(): void {
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  if (!existsSync(BUNDLE) || statSync(BUNDLE).mtimeMs < newest(join(REPO, 'src'))) {
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: REPO, stdio: 'inherit' });
  }
}

export const isRoot = process.getuid?.() === 0;
export const hasUnshare = existsSync('/usr/bin/unshare') || existsSync('/bin/unshare');
