import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function installCommand(): Command {
  return new Command('install').description('(not yet available)').action(() => {
    throw new CliError('`install` is not available in this build yet');
  });
}
