import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function forwardCommand(): Command {
  return new Command('forward').description('(not yet available)').action(() => {
    throw new CliError('`forward` is not available in this build yet');
  });
}
