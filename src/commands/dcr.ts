import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function dcrCommand(): Command {
  return new Command('dcr').description('(not yet available)').action(() => {
    throw new CliError('`dcr` is not available in this build yet');
  });
}
