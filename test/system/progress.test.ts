import { describe, expect, it } from 'vitest';
import { createStep } from '../../src/system/progress.js';

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
