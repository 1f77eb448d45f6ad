import { afterEach, describe, expect, it, vi } from 'vitest';
import { createPrompter } from '../../src/system/prompts.js';

// Walk (issue 19): on a terminal with CI=true, uninstall said "no TTY to ask". It now says why it cannot ask.
describe('a prompt that cannot be shown says why', () => {
  const tty = (v: boolean) => {
    Object.defineProperty(process.stdin, 'isTTY', { value: v, configurable: true });
    Object.defineProperty(process.stderr, 'isTTY', { value: v, configurable: true });
  };
  afterEach(() => {
    vi.unstubAllEnvs();
    tty(false);
  });

  it.each([
    ['a terminal with CI=true', true, 'true', 'Uninstall sentinel-cef? — cannot ask (CI is set)'],
    ['no terminal', false, '', 'Uninstall sentinel-cef? — cannot ask (no terminal)'],
  ])('%s', async (_name, isTTY, ci, message) => {
    tty(isTTY);
    vi.stubEnv('CI', ci);
    const p = createPrompter();
    expect(p.interactive).toBe(false);
    await expect(p.confirm('Uninstall sentinel-cef?', { default: false })).rejects.toThrow(message);
    await expect(p.input('Workspace id', { flag: '--workspace' })).rejects.toMatchObject({
      suggestion: `pass --workspace (cannot ask: ${isTTY ? 'CI is set' : 'no terminal'})`,
    });
  });
});
