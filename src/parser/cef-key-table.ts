/**
 * The CEF extension's keys: which characters make a key, and the table from a key in the line to its
 * rule (KEY_RULES), probed with the key's characters in place so mapped keys are found without slicing
 * a key string or hashing a new one (both showed in profiles). The JSON kernel holds a copy of this
 * table and finds keys by the same rules: see json-kernel.ts for what must change together.
 */
import { KEY_RULES, columnIndex, type KeyRule } from './columns.js';
import { FNV_OFFSET, FNV_PRIME, HASH_FOLD } from './json-kernel-layout.js';

/** Per ASCII character: 2 may start a key ([A-Za-z_]), 1 may only follow ([0-9.-]), 0 is not in keys. */
// [A-Za-z0-9_.-]: ArcSight keys are alphanumeric; vendors add `_`, `.` (ad.* fields) and `-`.
export const KEY_CHAR = new Uint8Array(128);
for (let c = 48; c <= 57; c++) KEY_CHAR[c] = 1;
for (let c = 65; c <= 90; c++) KEY_CHAR[c] = 2;
for (let c = 97; c <= 122; c++) KEY_CHAR[c] = 2;
KEY_CHAR[95] = 2; // _
KEY_CHAR[46] = 1; // .
KEY_CHAR[45] = 1; // -

const TABLE_BITS = 11;
const TABLE_MASK = (1 << TABLE_BITS) - 1;
/** Per slot, the key (undefined: empty) and its rule. */
export const tableKeys: Array<string | undefined> = new Array(1 << TABLE_BITS).fill(undefined);
export const tableRules: Array<KeyRule | undefined> = new Array(1 << TABLE_BITS).fill(undefined);

// FNV-1a over the key read backwards: the extension scanner walks keys backwards from their `=`, so it
// computes this hash on the way at no extra cost.
export function finishHash(h: number): number {
  return (h ^ (h >>> HASH_FOLD)) & TABLE_MASK;
}
export function hashRange(s: string, a: number, b: number): number {
  let h = FNV_OFFSET;
  for (let i = b - 1; i >= a; i--) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return finishHash(h);
}

for (const [key, rule] of KEY_RULES) {
  let i = hashRange(key, 0, key.length);
  while (tableKeys[i] !== undefined) i = (i + 1) & TABLE_MASK;
  tableKeys[i] = key;
  tableRules[i] = rule;
}

/**
 * Per slot, the cases the extension scanner handles without a value string, as typed arrays (reading
 * `kind` off the rule objects, which have four shapes, was a megamorphic load per pair): an int column,
 * a string column, or externalId (ExtID as text, ExternalID as int).
 */
export const FAST_NONE = 0;
export const FAST_INT = 1;
export const FAST_STRING = 2;
export const FAST_EXTID = 3;
export const FAST_KIND = new Uint8Array(1 << TABLE_BITS);
export const FAST_COL = new Int16Array(1 << TABLE_BITS);
const I_EXTID = columnIndex('ExtID');
tableRules.forEach((rule, slot) => {
  if (rule?.kind === 'plain' && (rule.type === 'int' || rule.type === 'string')) {
    FAST_KIND[slot] = rule.type === 'int' ? FAST_INT : FAST_STRING;
    FAST_COL[slot] = rule.index;
  } else if (rule?.kind === 'externalId') {
    FAST_KIND[slot] = FAST_EXTID;
    FAST_COL[slot] = I_EXTID;
  }
});

/** Slot of the key `s[a..b)` in the table, or -1 when the key has no column. */
export function findKey(s: string, a: number, b: number, hash: number): number {
  const len = b - a;
  let i = hash;
  for (;;) {
    const k = tableKeys[i];
    if (k === undefined) return -1;
    if (k.length === len && s.startsWith(k, a)) return i;
    i = (i + 1) & TABLE_MASK;
  }
}
