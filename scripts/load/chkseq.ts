/**
 * Sequence checker (in the manner of rsyslog's chkseq): from what reached the sink, how many events
 * were received, lost, duplicated and reordered, per stream and in total, plus the send→accept
 * latency when the sink reports acceptance times.
 *
 * A stream is one sender connection (or one reconnect segment of it, see gen.ts); its events are
 * numbered 0..n-1. Missing events are split into "holes" (a gap before the last event that arrived:
 * the receiver dropped something it had) and the "tail" (the last events of a segment, which a
 * receiver killed with -9 never read out of the kernel's socket buffers: the sender's TCP stack lost
 * them, and plain syslog over TCP has no acknowledgement that would let anyone resend them).
 *
 *   npx tsx scripts/load/chkseq.ts --file rows.ndjson [--file more.ndjson] --expect STREAM=N[,STREAM=N...]
 *   npx tsx scripts/load/chkseq.ts --url http://127.0.0.1:PORT/_mock/rows --expect-file expect.json
 */
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { seqOfRow, type ScannedSeqRows } from './cef.js';

interface StreamState {
  expected: number;
  seen: Uint8Array;
  unique: number;
  dups: number;
  reordered: number;
  maxSeq: number;
}

export interface SeqReport {
  expected: number;
  received: number;
  lost: number;
  /** Lost inside a stream (before its last received event). */
  holes: number;
  /** Lost at the end of a stream segment (in flight in socket buffers when the receiver died). */
  tail: number;
  duplicates: number;
  reordered: number;
  /** Rows whose stream the checker was not told about (or that carry no sequence fields). */
  unknown: number;
  latencyMs: { p50: number; p99: number; max: number; samples: number } | null;
  streams: number;
  /** Streams with holes, for the first few: stream, first missing seq. */
  holeSamples: Array<{ stream: string; seq: number }>;
}

export class SeqChecker {
  private readonly streams = new Map<string, StreamState>();
  private unknown = 0;
  private lat: number[] = [];
  private latEvery: number;
  private latCount = 0;

  /** latencySampleEvery: keep one latency sample per this many rows (memory on million-event runs). */
  constructor(opts: { latencySampleEvery?: number } = {}) {
    this.latEvery = Math.max(1, opts.latencySampleEvery ?? 1);
  }

  expect(stream: string, count: number): void {
    const s = this.streams.get(stream);
    if (s) {
      if (count > s.seen.length) {
        const seen = new Uint8Array(count);
        seen.set(s.seen);
        s.seen = seen;
      }
      s.expected = count;
      return;
    }
    this.streams.set(stream, { expected: count, seen: new Uint8Array(Math.max(1, count)), unique: 0, dups: 0, reordered: 0, maxSeq: -1 });
  }

  get received(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.unique;
    return n;
  }

  /** Distinct events received of the streams given (or all). */
  receivedOf(streams: Iterable<string>): number {
    let n = 0;
    for (const id of streams) n += this.streams.get(id)?.unique ?? 0;
    return n;
  }

  get duplicates(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.dups;
    return n;
  }

  addRow(row: Record<string, unknown>, acceptedAt?: number): void {
    const f = seqOfRow(row);
    if (!f) {
      this.unknown++;
      return;
    }
    this.add(f.stream, f.seq, acceptedAt, f.sentAt);
  }

  /** Rows read by scanSeqRows (cef.ts) from one call body, all accepted at `acceptedAt`. */
  addScanned(rows: ScannedSeqRows, acceptedAt?: number): void {
    for (let i = 0; i < rows.seqs.length; i++) this.add(rows.streams[i]!, rows.seqs[i]!, acceptedAt, rows.sentAts[i]);
  }

  add(stream: string, seq: number, acceptedAt?: number, sentAt?: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq > 1e9) {
      this.unknown++;
      return;
    }
    let s = this.streams.get(stream);
    // Rows may arrive before the generator reports its counts: streams are created on first sight.
    if (!s) this.streams.set(stream, (s = { expected: -1, seen: new Uint8Array(1024), unique: 0, dups: 0, reordered: 0, maxSeq: -1 }));
    if (seq >= s.seen.length) {
      const seen = new Uint8Array(Math.max(seq + 1, s.seen.length * 2));
      seen.set(s.seen);
      s.seen = seen;
    }
    if (s.seen[seq]) {
      s.dups++;
      return;
    }
    s.seen[seq] = 1;
    s.unique++;
    if (seq < s.maxSeq) s.reordered++;
    else s.maxSeq = seq;
    if (acceptedAt !== undefined && sentAt !== undefined && Number.isFinite(sentAt) && this.latCount++ % this.latEvery === 0) {
      this.lat.push(acceptedAt - sentAt);
    }
  }

  report(): SeqReport {
    let expected = 0;
    let received = 0;
    let holes = 0;
    let tail = 0;
    let dups = 0;
    let reordered = 0;
    const holeSamples: SeqReport['holeSamples'] = [];
    let unknown = this.unknown;
    for (const [id, s] of this.streams) {
      if (s.expected < 0) {
        // Never announced by the generator: foreign rows.
        unknown += s.unique + s.dups;
        continue;
      }
      // Sequence numbers past what the generator says it sent are not ours either.
      for (let i = s.expected; i < s.seen.length; i++) if (s.seen[i]) unknown++;
      expected += s.expected;
      received += s.unique - countFrom(s.seen, s.expected);
      dups += s.dups;
      reordered += s.reordered;
      let last = -1;
      for (let i = s.expected - 1; i >= 0; i--) {
        if (s.seen[i]) {
          last = i;
          break;
        }
      }
      tail += s.expected - 1 - last;
      for (let i = 0; i < last; i++) {
        if (!s.seen[i]) {
          if (holes === 0 || holeSamples.length < 5) holeSamples.push({ stream: id, seq: i });
          holes++;
        }
      }
    }
    let latencyMs: SeqReport['latencyMs'] = null;
    if (this.lat.length) {
      const a = Float64Array.from(this.lat).sort();
      const q = (p: number) => a[Math.min(a.length - 1, Math.floor(a.length * p))];
      latencyMs = { p50: q(0.5), p99: q(0.99), max: a[a.length - 1], samples: a.length };
    }
    return {
      expected,
      received,
      lost: expected - received,
      holes,
      tail,
      duplicates: dups,
      reordered,
      unknown,
      latencyMs,
      streams: this.streams.size,
      holeSamples,
    };
  }
}

function countFrom(a: Uint8Array, from: number): number {
  let n = 0;
  for (let i = from; i < a.length; i++) n += a[i];
  return n;
}

export function formatReport(r: SeqReport): string {
  const lat = r.latencyMs ? ` p50=${r.latencyMs.p50}ms p99=${r.latencyMs.p99}ms` : '';
  return `expected=${r.expected} received=${r.received} lost=${r.lost} (holes=${r.holes} tail=${r.tail}) duplicated=${r.duplicates} reordered=${r.reordered} unknown=${r.unknown}${lat}`;
}

/** Feeds every NDJSON row of a file (file sink output, or a mock rows dump) to the checker. */
export async function checkNdjson(checker: SeqChecker, path: string): Promise<void> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line) as Record<string, unknown>;
    } catch {
      checker.addRow({});
      continue;
    }
    // A mock rows dump wraps the row: {api, table, row, at}.
    if (row.row && typeof row.row === 'object') checker.addRow(row.row as Record<string, unknown>, Number(row.at));
    else checker.addRow(row);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      file: { type: 'string', multiple: true },
      url: { type: 'string' },
      expect: { type: 'string' },
      'expect-file': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const checker = new SeqChecker();
  const expect: Record<string, number> = values['expect-file']
    ? (JSON.parse(readFileSync(values['expect-file'], 'utf8')) as Record<string, number>)
    : Object.fromEntries(
        (values.expect ?? '')
          .split(',')
          .filter(Boolean)
          .map((kv) => [kv.split('=')[0], Number(kv.split('=')[1])]),
      );
  if (!Object.keys(expect).length)
    throw new Error('chkseq: give --expect STREAM=N[,...] or --expect-file FILE (the generator prints both)');
  for (const [k, v] of Object.entries(expect)) checker.expect(k, v);
  for (const f of values.file ?? []) await checkNdjson(checker, f);
  if (values.url) {
    const rows = (await (await fetch(values.url)).json()) as Array<{ row: Record<string, unknown>; at: number }>;
    for (const r of rows) checker.addRow(r.row, r.at);
  }
  const r = checker.report();
  console.log(values.json ? JSON.stringify(r) : formatReport(r));
  process.exitCode = r.lost === 0 && r.unknown === 0 ? 0 : 1;
}

/** Run as a script (not when imported, nor when bundled into another script). */
function isMain(): boolean {
  return /[\\/]scripts[\\/]load[\\/]chkseq\.[cm]?[jt]s$/.test(process.argv[1] ?? '');
}

if (isMain()) await main();
