import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function uninstallCommand(): Command {
  return new Command('uninstall').description('(not yet available)').action(() => {
    throw new CliError('`uninstall` is not available in this build yet');
  });
}
