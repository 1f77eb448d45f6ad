// Entry of the self-contained bundle dist/forwarder.mjs that the installer deploys:
//   node /usr/lib/sentinel-cef/forwarder.mjs --config /etc/sentinel-cef/forwarder.json
// It accepts the same flags as `sentinel-cef forward`. The same file is the entry of the parse
// worker threads (one deployed file). Each role imports only what it runs: a worker then loads the
// parser and the sinks' serialization, not the CLI, the HTTP stack or @azure/identity.
import { isMainThread, workerData } from 'node:worker_threads';
import { PARSE_WORKER_ROLE, type ParseWorkerData } from './forwarder/parse-worker-role.js';
import { unsupportedNodeMessage } from './system/node-support.js';
import { holdStopSignals } from './forwarder/stop-signals.js';

async function main(): Promise<void> {
  // First: a stop while the modules below load ends in a clean, logged exit instead of Node's default kill.
  const held = holdStopSignals();
  // Before anything that needs a newer runtime loads: one line and exit 2 instead of a crash loop's stack traces.
  const oldNode = unsupportedNodeMessage(
    process.version,
    `this node (${process.execPath})`,
    'then `systemctl restart sentinel-cef-forwarder` (or `sentinel-cef install --node PATH` to run the service on another node)',
  );
  if (oldNode) {
    process.stderr.write(`sentinel-cef forwarder: ${oldNode}\n`);
    process.exit(2);
  }
  const [
    { Command, CommanderError },
    { runForwardCommand },
    { addForwarderOptions },
    { CliError, formatError },
    { setWorkerEntry },
    { VERSION },
  ] = await Promise.all([
    import('commander'),
    import('./commands/forward.js'),
    import('./config/load.js'),
    import('./errors.js'),
    import('./forwarder/forwarder.js'),
    import('./version.js'),
  ]);
  const program = addForwarderOptions(new Command('sentinel-cef-forwarder'))
    .description('sentinel-cef forwarder (same flags as `sentinel-cef forward`)')
    .version(VERSION)
    .exitOverride();
  try {
    program.parse(process.argv);
    setWorkerEntry(new URL(import.meta.url));
    const code = await runForwardCommand(program.opts(), process, held);
    process.exit(code);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    process.stderr.write(`sentinel-cef forwarder: ${formatError(err)}\n`);
    process.exit(err instanceof CliError ? err.exitCode : 1);
  }
}

if (!isMainThread && (workerData as ParseWorkerData | undefined)?.role === PARSE_WORKER_ROLE) {
  const { runParseWorker } = await import('./forwarder/parse-workers.js');
  runParseWorker(workerData as ParseWorkerData);
} else {
  await main();
}
