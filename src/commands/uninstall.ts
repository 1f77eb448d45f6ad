import { Command, Option } from 'commander';
import { optionError } from '../errors.js';
import { INSTALL_ARGUMENTS, uninstallOptionsSchema } from '../install/options.js';
import { runUninstall } from '../install/run-uninstall.js';
import { deps } from './install.js';

export function uninstallCommand(): Command {
  return new Command('uninstall')
    .description('Remove what install added and restore the original files byte for byte')
    .option('--remove-user', 'also delete the sentinel-cef system user (when install created it)')
    .option('--purge', 'also delete queued, undelivered data, every backup and the user install created')
    .option('--dry-run', 'show what would be removed; change nothing')
    .option('-y, --yes', 'do not ask')
    .addOption(new Option('--root <dir>', 'filesystem root (tests)').default('/').hideHelp())
    .addHelpText(
      'after',
      `
Examples:
  sentinel-cef uninstall --dry-run         # list what would be removed or restored
  sentinel-cef uninstall --yes --purge     # also delete queued data, backups, logs and the user install created`,
    )
    .action(async (flags: Record<string, unknown>) => {
      const parsed = uninstallOptionsSchema.safeParse(flags);
      if (!parsed.success) throw optionError(parsed.error, INSTALL_ARGUMENTS);
      await runUninstall(parsed.data, deps(parsed.data.root));
    });
}
