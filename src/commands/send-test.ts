import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function sendTestCommand(): Command {
  return new Command('send-test').description('(not yet available)').action(() => {
    throw new CliError('`send-test` is not available in this build yet');
  });
}
