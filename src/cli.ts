// The entry point: everything else is in program.ts, which tests import without running it.
import { main } from './program.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  // main maps every error to an exit code; this is a crash before it could (building the program).
  (err: unknown) => {
    process.stderr.write(`sentinel-cef: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
