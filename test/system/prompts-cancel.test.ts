import { ExitPromptError } from '@inquirer/core';
import { describe, expect, it } from 'vitest';
import { CliError, formatError } from '../../src/errors.js';
import { cancelledOnExit } from '../../src/system/prompts.js';

describe('Ctrl-C at a prompt', () => {
  it('is "cancelled" with exit 130, not inquirer\'s force-closed message', async () => {
    const err = await cancelledOnExit(Promise.reject(new ExitPromptError('User force closed the prompt with SIGINT'))).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CliError);
    expect(formatError(err)).toBe('cancelled');
    expect((err as CliError).exitCode).toBe(130);
  });

  it('passes answers and other errors through', async () => {
    await expect(cancelledOnExit(Promise.resolve(true))).resolves.toBe(true);
    await expect(cancelledOnExit(Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });
});
