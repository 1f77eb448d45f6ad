import { describe, expect, it } from 'vitest';
import { createSpinner, createStep } from '../../src/system/progress.js';

function fakeStream(isTTY: boolean) {
  const written: string[] = [];
  return { stream: { isTTY, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream, written };
}

describe('waits say what they are doing', () => {
  it.each([
    ['a pipe', false, {}],
    ['CI on a terminal', true, { CI: 'true' }],
  ])('%s: one line per step, no spinner frames', async (_name, isTTY, env) => {
    const { stream, written } = fakeStream(isTTY);
    const step = createStep(stream, env);
    expect(await step('waiting for the forwarder to answer (up to 15 s)', async () => 42)).toBe(42);
    await expect(
      step('stopping the forwarder', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(written).toEqual(['waiting for the forwarder to answer (up to 15 s)…\n', 'stopping the forwarder…\n']);
  });
});

describe('the one spinner (troubleshoot, install steps)', () => {
  function fakeTerminal(isTTY: boolean) {
    const written: string[] = [];
    const stream = {
      isTTY,
      columns: 120,
      write: (s: string) => written.push(s),
      cursorTo: () => true,
      clearLine: () => true,
      moveCursor: () => true,
    } as unknown as NodeJS.WriteStream;
    return { stream, written };
  }

  it('spins on a terminal with NO_COLOR, without colour, and leaves no line behind', () => {
    const { stream, written } = fakeTerminal(true);
    const s = createSpinner('Checking forwarder, daemon, system and Azure…', stream, { NO_COLOR: '1', TERM: 'xterm' });
    expect(s.isEnabled).toBe(true);
    s.start();
    s.stop();
    const out = written.join('');
    expect(out).toContain('Checking forwarder');
    // A disabled ora prints `- text` once: a line that stays on the screen above the report.
    expect(out).not.toContain('- Checking');
    // eslint-disable-next-line no-control-regex -- colour codes are what is checked
    expect(out).not.toMatch(/\x1b\[3\dm/);
  });

  it.each([
    ['a pipe', false, {}],
    ['CI on a terminal', true, { CI: 'true' }],
  ])('%s: writes nothing at all', (_name, isTTY, env) => {
    const { stream, written } = fakeTerminal(isTTY);
    const s = createSpinner('Checking…', stream, env);
    s.start();
    s.text = 'next';
    s.stop();
    expect(written).toEqual([]);
  });
});
