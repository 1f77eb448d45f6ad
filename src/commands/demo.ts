import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function demoCommand(): Command {
  return new Command('demo').description('(not yet available)').action(() => {
    throw new CliError('`demo` is not available in this build yet');
  });
}
