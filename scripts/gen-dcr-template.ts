/**
 * Regenerates templates/dcr/commonsecuritylog-dcr.json from the column table in src/sinks/columns.ts
 * (test/sinks/dcr.test.ts fails when the two drift apart).   npx tsx scripts/gen-dcr-template.ts
 */
import { writeFileSync } from 'node:fs';
import { buildDcrTemplate } from '../src/dcr/render.js';

const path = new URL('../templates/dcr/commonsecuritylog-dcr.json', import.meta.url);
writeFileSync(path, JSON.stringify(buildDcrTemplate(), null, 2) + '\n');
process.stdout.write(`wrote ${path.pathname}\n`);
