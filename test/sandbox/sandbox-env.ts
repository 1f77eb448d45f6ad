import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

export const repo = path.resolve(import.meta.dirname, '../..');
export const sandbox = path.join(repo, 'scripts/sandbox');
export const debCache = process.env.SENTINEL_CEF_DEB_CACHE ?? path.join(repo, '.cache/debs');

/** Why the sandbox tests cannot run here, or null when they can. */
export function sandboxSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (mount and network namespaces)';
  if (!existsSync('/usr/bin/unshare') && !existsSync('/bin/unshare')) return 'unshare (util-linux) is not installed';
  for (const d of ['rsyslog', 'syslog-ng-core']) {
    const dir = path.join(debCache, d);
    if (!existsSync(dir) || !readdirSync(dir).some((f) => f.endsWith('.deb'))) {
      // CI fetches the packages first; there a missing cache is a failure, not a skip.
      if (process.env.CI === 'true') return null;
      return `no cached ${d} packages: run scripts/sandbox fetch`;
    }
  }
  return null;
}
