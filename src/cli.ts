// The entry point: everything else is in program.ts, which tests import without running it.
import { main } from './program.js';

main(process.argv).then((code) => {
  process.exitCode = code;
});
