import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { addForwarderOptions, checkConfig, checkLabel, loadForwarderConfig, type ForwarderFlags } from '../config/load.js';
import { UsageError, formatError } from '../errors.js';
import { createSink } from '../sinks/index.js';
import { runForwarder, setWorkerEntry } from '../forwarder/forwarder.js';
import { createLogger, logDestinationOf } from '../forwarder/logger.js';
import type { HeldStopSignals } from '../forwarder/stop-signals.js';

export interface ForwardIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Where the running forwarder's JSON log goes; default the non-blocking destination on stdout. */
  log?: NodeJS.WritableStream;
}

/**
 * `forward` and the bundle's entry share this: load + validate the config, then either report the
 * checks (--check) or run until SIGTERM/SIGINT.
 */
export async function runForwardCommand(flags: ForwarderFlags, io: ForwardIo = process, held?: HeldStopSignals): Promise<number> {
  // --check refuses an unknown key; the service warns and runs, as a stopped forwarder loses events.
  const unknownKeys: string[] = [];
  // A check runs no service: Ctrl-C ends it as Node's default does.
  if (flags.check) held?.release();
  const config = loadForwarderConfig(flags, flags.check ? {} : { onUnknownKeys: (lines) => unknownKeys.push(...lines) });
  const checks = checkConfig(config);
  if (flags.check && checks.every((c) => c.ok)) {
    // Building the sink reads and validates its secret (key format, certificate) without any network call.
    try {
      const sink = createSink(config.sink);
      await sink.close?.();
      checks.push({ id: 'sink', ok: true, message: `${config.sink.type} sink can be built from this configuration` });
    } catch (err) {
      checks.push({ id: 'sink', ok: false, message: formatError(err) });
    }
  }
  const failed = checks.filter((c) => !c.ok);
  if (flags.check) {
    for (const c of checks)
      io.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'} ${checkLabel(c.id, flags)}: ${c.message}${c.fix ? ` — ${c.fix}` : ''}\n`);
    if (failed.length) throw new UsageError(`configuration has ${failed.length} problem(s); see above`);
    io.stdout.write('configuration is valid\n');
    return 0;
  }
  if (failed.length) {
    const f = failed[0];
    throw new UsageError(`${checkLabel(f.id, flags)}: ${f.message}`, { suggestion: f.fix });
  }
  // From the installed package (dist/cli.js), the self-contained dist/forwarder.mjs beside it hosts
  // the parse worker threads; under tsx/tests there is none and parsing stays on the main thread.
  const bundle = new URL('./forwarder.mjs', import.meta.url);
  if (import.meta.url.endsWith('/dist/cli.js') && existsSync(bundle)) setWorkerEntry(bundle);
  const logger = createLogger(config.logLevel, io.log);
  for (const line of unknownKeys) logger.warn(`${line}; ignored`);
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    logger.info({ signal: sig }, 'signal received');
    ac.abort();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  held?.release();
  if (held?.first) onSignal(held.first);
  // A stop signalled while the modules and the config loaded waits in the event loop: two turns deliver it (Node 18
  // and 20 deliver it only on the second, 22 and later on the first).
  await new Promise((r) => setImmediate(() => setImmediate(r)));
  try {
    if (ac.signal.aborted) {
      // Asked to stop before it ran: nothing is opened (no port, no token request, no drain grace) and the queue
      // waits for the next start.
      logger.info({ started: false }, 'forwarder stopped');
      return 0;
    }
    await runForwarder(config, { signal: ac.signal, logger });
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    // Lines are written asynchronously; the bundle's entry exits at once after this returns.
    await logDestinationOf(logger)?.drain(2000);
  }
  return 0;
}

export function forwardCommand(): Command {
  return addForwarderOptions(
    new Command('forward').description('Receive syslog CEF, queue it on disk and deliver it to Sentinel (or a file)'),
  )
    .addHelpText(
      'after',
      `
Examples:
  sentinel-cef forward --check                                   # validate /etc/sentinel-cef/forwarder.json and exit
  sentinel-cef forward --listen tcp://127.0.0.1:25226 --sink file:/tmp/rows.ndjson --queue-dir /tmp/q`,
    )
    .action(async (flags: ForwarderFlags) => {
      process.exitCode = await runForwardCommand(flags);
    });
}
