/**
 * One CommonSecurityLog row. Keys are the exact column names; empty columns are omitted.
 * int/long/real columns hold numbers, datetime columns ISO 8601 UTC strings, the rest strings.
 */
export type CslRow = Record<string, string | number>;

export type ParseResult = { ok: true; kind: 'cef' | 'asa'; row: CslRow } | { ok: false; reason: string };
