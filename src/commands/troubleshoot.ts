import { Command } from 'commander';
import { CliError } from '../errors.js';

// Placeholder until this command lands; it fails loudly rather than pretending.
export function troubleshootCommand(): Command {
  return new Command('troubleshoot').description('(not yet available)').action(() => {
    throw new CliError('`troubleshoot` is not available in this build yet');
  });
}
