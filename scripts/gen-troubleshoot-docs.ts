/**
 * Rewrites the README's troubleshoot tables (check ids, stoppedAt values) from src/troubleshoot/catalogue.ts and the
 * check registry (test/troubleshoot/docs.test.ts fails when they drift).   npx tsx scripts/gen-troubleshoot-docs.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderTroubleshootTables, spliceReadme } from '../src/troubleshoot/catalogue.js';
import { CHECKS } from '../src/troubleshoot/run.js';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, spliceReadme(readFileSync(path, 'utf8'), renderTroubleshootTables(CHECKS.map((c) => c.id))));
process.stdout.write(`wrote ${path.pathname}\n`);
