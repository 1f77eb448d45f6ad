// Types for the plain-JavaScript man page generator, so tests import it checked.
import type { Command } from 'commander';
export function renderManPage(program: Command, version: string): string;
