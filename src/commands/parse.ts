import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function parseCommand(): Command {
  return new Command('parse').description('(not yet available)').action(() => {
    throw new CliError('`parse` is not available in this build yet');
  });
}
