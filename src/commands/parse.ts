import { Command, Option } from 'commander';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { z } from 'zod';
import { CliError, UsageError, optionError, showValue } from '../errors.js';
import { parseLine } from '../parser/index.js';

export const parseOptionsSchema = z.object({
  files: z.array(z.string()),
  receivedAt: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const d = new Date(v);
      if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(d.getTime())) {
        ctx.addIssue({
          code: 'custom',
          message: `--received-at must be an ISO 8601 date-time (2026-01-31T12:00:00Z), got ${showValue(v)}`,
        });
        return z.NEVER;
      }
      return d;
    }),
});
export type ParseOptions = z.input<typeof parseOptionsSchema>;

export interface ParseIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

export interface ParseSummary {
  lines: number;
  parsed: number;
  failed: number;
  blank: number;
}

/** Longest line accepted; longer ones are reported and skipped rather than held in memory. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Split a byte stream into lines (LF or CRLF; the parser strips the CR) without decoding it first. */
async function* readLines(input: Readable): AsyncGenerator<Buffer | { tooLong: number }> {
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let skipping = false;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl === -1) break;
      if (skipping) {
        skipping = false;
      } else if (pendingLen + (nl - start) > MAX_LINE_BYTES) {
        yield { tooLong: pendingLen + (nl - start) };
      } else if (pendingLen === 0) {
        yield buf.subarray(start, nl);
      } else {
        pending.push(buf.subarray(start, nl));
        yield Buffer.concat(pending);
      }
      pending = [];
      pendingLen = 0;
      start = nl + 1;
    }
    if (start < buf.length && !skipping) {
      pending.push(buf.subarray(start));
      pendingLen += buf.length - start;
      if (pendingLen > MAX_LINE_BYTES) {
        yield { tooLong: pendingLen };
        pending = [];
        pendingLen = 0;
        skipping = true;
      }
    }
  }
  if (pendingLen > 0 && !skipping) yield Buffer.concat(pending);
}

function isBlank(line: Buffer): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}

/** Write with backpressure; resolves false when the reader went away (EPIPE, e.g. `| head`). */
function write(out: Writable, text: string): Promise<boolean> | boolean {
  if (out.destroyed || out.writableEnded) return false;
  if (out.write(text)) return true;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onError = () => done(false);
    const onClose = () => done(false);
    out.once('drain', onDrain);
    out.once('error', onError);
    out.once('close', onClose);
  });
}

/**
 * Parse CEF / Cisco ASA lines from files (or stdin) to CommonSecurityLog rows as NDJSON on stdout, in
 * input order. Lines that are not CEF/ASA are reported on stderr as `line N: reason`. Blank lines are
 * skipped silently. Returns counts; the command exits 1 when any line failed.
 */
export async function runParse(options: ParseOptions, io: ParseIo): Promise<ParseSummary> {
  const parsedOpts = parseOptionsSchema.safeParse(options, { reportInput: true });
  if (!parsedOpts.success) throw optionError(parsedOpts.error, { files: '<file>' });
  const { files, receivedAt } = parsedOpts.data;
  for (const f of files) {
    if (f === '-') continue;
    let st;
    try {
      st = await stat(f);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`cannot read ${f}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    if (st.isDirectory()) throw new UsageError(`cannot read ${f}: is a directory`);
  }
  const sources = files.length === 0 ? ['-'] : files;
  const named = sources.length > 1;
  const summary: ParseSummary = { lines: 0, parsed: 0, failed: 0, blank: 0 };
  let stdoutOpen = true;
  let outBuf = '';
  const flush = async () => {
    if (outBuf === '' || !stdoutOpen) return;
    const text = outBuf;
    outBuf = '';
    stdoutOpen = await write(io.stdout, text);
  };
  const onStdoutError = () => {
    stdoutOpen = false;
  };
  io.stdout.on('error', onStdoutError);
  try {
    for (const source of sources) {
      const label = source === '-' ? '(stdin)' : source;
      const input = source === '-' ? io.stdin : createReadStream(source, { highWaterMark: 256 * 1024 });
      let n = 0;
      try {
        for await (const line of readLines(input)) {
          n++;
          summary.lines++;
          if (!Buffer.isBuffer(line)) {
            summary.failed++;
            await flush();
            io.stderr.write(`${named ? `${label}: ` : ''}line ${n}: longer than ${MAX_LINE_BYTES} bytes (${line.tooLong}+), skipped\n`);
            continue;
          }
          if (isBlank(line)) {
            summary.blank++;
            continue;
          }
          const r = parseLine(line, receivedAt ?? new Date());
          if (r.ok) {
            summary.parsed++;
            outBuf += `${JSON.stringify(r.row)}\n`;
            if (outBuf.length >= 64 * 1024) await flush();
          } else {
            summary.failed++;
            // Keep stdout and stderr in input order for people watching both.
            await flush();
            io.stderr.write(`${named ? `${label}: ` : ''}line ${n}: ${r.reason}\n`);
          }
          if (!stdoutOpen) break;
        }
      } catch (err) {
        throw new CliError(`cannot read ${label}: ${(err as Error).message}`, { cause: err });
      } finally {
        if (input !== io.stdin) input.destroy();
      }
      if (!stdoutOpen) break;
    }
    await flush();
  } finally {
    io.stdout.off('error', onStdoutError);
  }
  return summary;
}

export function parseCommand(): Command {
  return new Command('parse')
    .description('Parse CEF and Cisco ASA/FTD syslog lines into CommonSecurityLog rows (NDJSON on stdout)')
    .argument('[file...]', 'files to read, one message per line (default: stdin; - also means stdin)')
    .addOption(
      new Option('--received-at <iso>', 'use this time for TimeGenerated instead of the time each line is read (reproducible output)'),
    )
    .addHelpText(
      'after',
      `
Each CEF or ASA line becomes one JSON object whose keys are CommonSecurityLog column names (empty
columns left out); unmapped keys and values that do not fit their column go to AdditionalExtensions.
Lines that are neither are reported on stderr as "line N: reason"; blank lines are skipped.
Exit status: 0 when every line parsed, 1 when any did not, 2 for a bad flag or a missing file.

Examples:
  $ echo 'CEF:0|Acme|IDS|1.0|100|Port scan|7|src=10.0.0.5 dst=10.0.0.9 dpt=22 cs1Label=Rule cs1=scan' | sentinel-cef parse
  {"TimeGenerated":"…","DeviceVendor":"Acme","DeviceProduct":"IDS","DeviceVersion":"1.0","DeviceEventClassID":"100","Activity":"Port scan","LogSeverity":"7","DestinationPort":22,"DestinationIP":"10.0.0.9","SourceIP":"10.0.0.5","DeviceCustomString1":"scan","DeviceCustomString1Label":"Rule"}

  $ sentinel-cef parse --received-at 2026-01-01T00:00:00Z /var/log/remote/fw01.log > rows.ndjson
`,
    )
    .action(async (files: string[], opts: { receivedAt?: string }) => {
      const summary = await runParse(
        { files, receivedAt: opts.receivedAt },
        { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
      );
      if (summary.failed > 0) {
        throw new CliError(
          `${summary.failed} of ${summary.lines - summary.blank} line${summary.lines - summary.blank === 1 ? '' : 's'} not parsed (reasons above)`,
          { code: 'ERR_PARSE', exitCode: 1 },
        );
      }
    });
}
