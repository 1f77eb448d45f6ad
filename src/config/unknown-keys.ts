import type { z } from 'zod';
import { formatConfigIssue } from '../errors.js';

/**
 * Keys of a config file that the schema does not know. zod's objects strip them silently, so a typo
 * (`deadLeterFile`, `queue.maxByte`) would otherwise leave the default in force and the check would say "valid".
 */
export function findUnknownKeys(raw: unknown, schema: z.ZodType): Array<{ path: string[]; nearest: string | null }> {
  const out: Array<{ path: string[]; nearest: string | null }> = [];
  walk(raw, [schema], [], out);
  return out;
}

/** One `path: unknown key (did you mean …?)` line per unknown key, in the style of the schema's own issues. */
export function unknownKeyMessages(raw: unknown, schema: z.ZodType): string[] {
  return findUnknownKeys(raw, schema).map((u) =>
    formatConfigIssue({ path: u.path, message: `unknown key${u.nearest ? ` (did you mean ${u.nearest}?)` : ''}` }),
  );
}

function walk(raw: unknown, schemas: z.ZodType[], path: string[], out: Array<{ path: string[]; nearest: string | null }>): void {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return;
  const shapes = schemas.flatMap((s) => objectShapes(s, raw as Record<string, unknown>));
  if (shapes.length === 0) return;
  const known = [...new Set(shapes.flatMap((s) => Object.keys(s)))];
  for (const [key, value] of Object.entries(raw)) {
    const children = shapes.map((s) => s[key]).filter((c): c is z.ZodType => c !== undefined);
    if (children.length === 0) out.push({ path: [...path, key], nearest: nearestKey(key, known) });
    else walk(value, children, [...path, key], out);
  }
}

/**
 * The object shapes this value may take under this schema (through optional, default, union, pipe…). A
 * discriminated union offers only the variant its discriminator selects, so a key of another variant (a `dcr`
 * key in a `file` sink) is unknown; with no variant selected (a bad `type`, refused by the schema) all of them.
 */
function objectShapes(schema: z.ZodType, raw: Record<string, unknown>): Array<Record<string, z.ZodType>> {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
  switch (def.type) {
    case 'object':
      return [def.shape as Record<string, z.ZodType>];
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
      return objectShapes(def.innerType as z.ZodType, raw);
    case 'pipe':
      return objectShapes(def.in as z.ZodType, raw);
    case 'union': {
      const options = def.options as z.ZodType[];
      const key = def.discriminator as string | undefined;
      const selected = key === undefined ? [] : options.filter((o) => discriminatorValues(o, key)?.has(raw[key]));
      return (selected.length ? selected : options).flatMap((o) => objectShapes(o, raw));
    }
    default:
      return [];
  }
}

function discriminatorValues(option: z.ZodType, key: string): Set<unknown> | undefined {
  return (option as unknown as { _zod: { propValues?: Record<string, Set<unknown>> } })._zod.propValues?.[key];
}

/** The known key closest to a typo, when it is close enough to be the one meant. */
function nearestKey(key: string, known: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
