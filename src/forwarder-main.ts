// Entry of the self-contained bundle dist/forwarder.mjs that the installer deploys:
//   node /usr/lib/sentinel-cef/forwarder.mjs --config /etc/sentinel-cef/forwarder.json
// It accepts the same flags as `sentinel-cef forward`. The same file is the entry of the parse
// worker threads (one deployed file).
import { isMainThread, workerData } from 'node:worker_threads';
import { Command, CommanderError } from 'commander';
import { runForwardCommand } from './commands/forward.js';
import { addForwarderOptions, type ForwarderFlags } from './config/load.js';
import { CliError, formatError } from './errors.js';
import { PARSE_WORKER_ROLE, runParseWorker, type ParseWorkerData } from './forwarder/parse-workers.js';
import { setWorkerEntry } from './forwarder/forwarder.js';
import { VERSION } from './version.js';

async function main(): Promise<void> {
  const program = addForwarderOptions(new Command('sentinel-cef-forwarder'))
    .description('sentinel-cef forwarder (same flags as `sentinel-cef forward`)')
    .version(VERSION)
    .exitOverride();
  try {
    program.parse(process.argv);
    setWorkerEntry(new URL(import.meta.url));
    const code = await runForwardCommand(program.opts<ForwarderFlags>());
    process.exit(code);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    process.stderr.write(`sentinel-cef forwarder: ${formatError(err)}\n`);
    process.exit(err instanceof CliError ? err.exitCode : 1);
  }
}

if (!isMainThread && (workerData as ParseWorkerData | undefined)?.role === PARSE_WORKER_ROLE) {
  runParseWorker(workerData as ParseWorkerData);
} else {
  await main();
}
