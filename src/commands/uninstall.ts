import type { Command } from 'commander';
import { uninstallCommandImpl } from './install.js';

export function uninstallCommand(): Command {
  return uninstallCommandImpl();
}
