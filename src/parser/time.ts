/**
 * CEF timestamps (ArcSight: epoch milliseconds or `MMM dd [yyyy] HH:mm:ss[.SSS] [zone]`) to epoch ms.
 * Returns NaN when the text is not a timestamp we can place on the time line without guessing the zone
 * wrongly; callers then keep the text as sent.
 */

const MONTHS: Record<string, number> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11,
};

// Zone abbreviations in common use by CEF senders whose offset is unambiguous. IST, BST and the like
// mean different zones in different places, so they are deliberately absent.
const ZONES: Record<string, number> = {
  UTC: 0,
  UT: 0,
  GMT: 0,
  Z: 0,
  EST: -300,
  EDT: -240,
  CST: -360,
  CDT: -300,
  MST: -420,
  MDT: -360,
  PST: -480,
  PDT: -420,
  AKST: -540,
  AKDT: -480,
  HST: -600,
  WET: 0,
  WEST: 60,
  CET: 60,
  CEST: 120,
  EET: 120,
  EEST: 180,
  MSK: 180,
  JST: 540,
  KST: 540,
  AEST: 600,
  AEDT: 660,
  ACST: 570,
  AWST: 480,
  NZST: 720,
  NZDT: 780,
};

const CEF_DATE = /^([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(?:(\d{4})\s+)?(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(?:\s*(.+))?$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$/i;

/** Offset in minutes east of UTC for a zone designator, or NaN. Accepts `UTC`, `+01:00`, `GMT+01:00`, `+0100`. */
export function zoneOffsetMinutes(zone: string): number {
  const z = zone.trim();
  if (z === '') return 0;
  const named = ZONES[z.toUpperCase()];
  if (named !== undefined) return named;
  const m = /^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$/i.exec(z);
  if (!m) return NaN;
  const h = Number(m[2]);
  const min = m[3] ? Number(m[3]) : 0;
  if (h > 14 || min > 59) return NaN;
  return (m[1] === '-' ? -1 : 1) * (h * 60 + min);
}

/**
 * Parse a CEF timestamp. `reference` supplies the year when the sender left it out; a date that would
 * then lie more than a week after the reference belongs to the previous year (events sent just after
 * New Year).
 */
export function parseCefTimestamp(text: string, reference: Date, deviceZone?: string): number {
  const s = text.trim();
  if (s === '') return NaN;
  const c0 = s.charCodeAt(0);
  if (c0 >= 48 && c0 <= 57) {
    if (isAllDigits(s)) {
      // ArcSight says milliseconds; ten digits or fewer can only sensibly be seconds (year < 2286).
      const n = Number(s);
      return s.length <= 10 ? n * 1000 : n;
    }
    if (ISO_DATE.test(s)) {
      const iso = s.replace(' ', 'T');
      const hasZone = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(iso) && iso.length > 16;
      if (hasZone) return Date.parse(iso);
      // Without a zone, ECMAScript would read local time; read it as UTC, then move to the device zone.
      const wall = Date.parse(`${iso}Z`);
      return deviceZone === undefined ? wall : wallTimeIn(deviceZone, wall);
    }
    return NaN;
  }
  const m = CEF_DATE.exec(s);
  if (!m) return NaN;
  const month = MONTHS[m[1].toLowerCase()];
  if (month === undefined) return NaN;
  const day = Number(m[2]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return NaN;
  const ms = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  const offset = m[8] === undefined ? 0 : zoneOffsetMinutes(m[8]);
  if (Number.isNaN(offset)) return NaN;
  const useDeviceZone = m[8] === undefined && deviceZone !== undefined;
  const at = (year: number) => {
    const wall = Date.UTC(year, month, day, hour, minute, second, ms);
    // Date.UTC rolls 31 Feb into March; reject rather than move the event.
    if (new Date(wall).getUTCDate() !== day) return NaN;
    return useDeviceZone ? wallTimeIn(deviceZone, wall) : wall - offset * 60_000;
  };
  if (m[3] !== undefined) return at(Number(m[3]));
  const refYear = reference.getUTCFullYear();
  const t = at(refYear);
  if (!Number.isNaN(t) && t > reference.getTime() + 7 * 86_400_000) return at(refYear - 1);
  return t;
}

// One formatter per zone; a bounded cache, since zone names come from the network.
const formatters = new Map<string, Intl.DateTimeFormat | null>();

function formatterFor(zone: string): Intl.DateTimeFormat | null {
  let f = formatters.get(zone);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      f = null; // not an IANA zone name
    }
    if (formatters.size >= 256) formatters.clear();
    formatters.set(zone, f);
  }
  return f;
}

/** Offset of `zone` from UTC at instant `t`, in ms. */
function zoneOffsetAt(f: Intl.DateTimeFormat, t: number): number {
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(t)) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - (t - (((t % 1000) + 1000) % 1000));
}

/**
 * The instant at which wall-clock time `wall` (given as if UTC) occurs in IANA `zone`; `wall` itself
 * (read as UTC) when the zone is unknown.
 */
export function wallTimeIn(zone: string, wall: number): number {
  if (Number.isNaN(wall)) return NaN;
  const f = formatterFor(zone);
  if (f === null) return wall;
  const first = wall - zoneOffsetAt(f, wall);
  // Around a DST change the offset at the guess can differ from the offset at the answer.
  const second = wall - zoneOffsetAt(f, first);
  return second;
}

function isAllDigits(s: string): boolean {
  if (s.length > 16) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** ISO 8601 UTC text for epoch ms, or undefined when outside what Log Analytics and Date accept. */
export function toIsoUtc(ms: number): string | undefined {
  if (!Number.isFinite(ms)) return undefined;
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  if (Number.isNaN(y) || y < 1 || y > 9999) return undefined;
  return d.toISOString();
}
