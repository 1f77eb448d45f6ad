import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's templates/ directory, found from this module (src/ in tests, dist/ when installed). */
export function templatesDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'templates')) && existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'templates');
    dir = path.dirname(dir);
  }
  throw new Error('templates/ not found beside the sentinel-cef package');
}

/** The package root (holds dist/forwarder.mjs). */
export function packageRoot(): string {
  return path.dirname(templatesDir());
}

export function loadTemplate(name: string): string {
  return readFileSync(path.join(templatesDir(), name), 'utf8');
}

/**
 * `{{name}}` substitution, nothing more. A line that is only a placeholder and renders empty is dropped, so
 * optional blocks leave no blank lines. An unknown name is an error, not an empty string.
 */
export function renderTemplate(text: string, vars: Record<string, string | number>): string {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    const only = /^\s*\{\{(\w+)\}\}\s*$/.exec(line);
    if (only && String(lookup(vars, only[1])) === '') continue;
    lines.push(line.replace(/\{\{(\w+)\}\}/g, (_, k: string) => String(lookup(vars, k))));
  }
  return lines.join('\n');
}

function lookup(vars: Record<string, string | number>, key: string): string | number {
  if (!(key in vars)) throw new Error(`template variable {{${key}}} has no value`);
  return vars[key];
}
