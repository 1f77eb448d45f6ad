/**
 * CommonSecurityLog columns we send and their Log Analytics types (protocols.md §3), as the sinks,
 * the DCR template and the mock service see them.
 */
import { CSL_COLUMNS as PARSER_COLUMNS, type ColumnType } from '../parser/columns.js';

export type { ColumnType };

/** Derived from the parser's table (src/parser/columns.ts): one list for parser, DCR and mock. */
export const CSL_COLUMN_TYPES: Readonly<Record<string, ColumnType>> = Object.freeze(
  Object.fromEntries(PARSER_COLUMNS.map(([name, type]) => [name, type])),
);

/** TimeGenerated first, then alphabetical: the order of the DCR stream declaration. */
export const CSL_COLUMNS: ReadonlyArray<{ name: string; type: ColumnType }> = [
  { name: 'TimeGenerated', type: 'datetime' },
  ...Object.entries(CSL_COLUMN_TYPES)
    .filter(([name]) => name !== 'TimeGenerated')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, type]) => ({ name, type })),
];

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** Whether a JSON value fits a column type the way the ingestion pipeline converts it. */
export function valueFitsType(value: unknown, type: ColumnType): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX;
    case 'long':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'real':
      return typeof value === 'number' && Number.isFinite(value);
    case 'datetime':
      return (
        typeof value === 'string' &&
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(value) &&
        !Number.isNaN(Date.parse(value))
      );
  }
}
