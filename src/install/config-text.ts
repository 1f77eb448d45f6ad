import path from 'node:path';
import type { FsRoot } from '../system/fs-root.js';

/** Removes `#` comments outside double quotes, line by line (rsyslog and syslog-ng share the rule). */
export function stripConfigComments(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      let inQuote = false;
      for (let i = 0; i < line.length; i++) {
        const c = line[i];
        if (c === '"' && line[i - 1] !== '\\') inQuote = !inQuote;
        else if (c === '#' && !inQuote) return line.slice(0, i);
      }
      return line;
    })
    .join('\n');
}

/** A rendered file as compared with what install renders now: the version in the "Managed by" header and trailing space do not count. */
export function comparableRender(text: string): string {
  return text.replace(/^# Managed by sentinel-cef \S+\./m, '# Managed by sentinel-cef.').replace(/\s+$/, '');
}

/**
 * Reads `main` and every file it includes, each once, at most 8 levels deep. `includes` scans one file's text and
 * returns its include targets (globs; a trailing `/` means the whole folder; relative to the including file);
 * `onInclude` sees each resolved pattern. Returns the files read, in order.
 */
export async function readConfigTree(
  fs: FsRoot,
  main: string,
  opts: {
    exclude?: string[];
    includes: (text: string, file: string) => string[];
    onInclude?: (from: string, pattern: string) => void;
  },
): Promise<string[]> {
  const exclude = new Set(opts.exclude ?? []);
  const seen = new Set<string>();
  const files: string[] = [];
  const visit = async (file: string, depth: number) => {
    if (seen.has(file) || exclude.has(file) || depth > 8) return;
    seen.add(file);
    const text = await fs.readText(file);
    if (text === null) return;
    files.push(file);
    for (const inc of opts.includes(text, file)) {
      const target = inc.endsWith('/') ? `${inc}*` : inc;
      const pattern = path.isAbsolute(target) ? target : path.join(path.dirname(file), target);
      opts.onInclude?.(file, pattern);
      for (const f of await fs.glob(pattern)) await visit(f, depth + 1);
    }
  };
  await visit(main, 0);
  return files;
}
