import ora from 'ora';
import { useColour } from './colour.js';
import { inCi } from './prompts.js';

/** A step that can take more than a second says what it is doing while it runs. */
export type Step = <T>(text: string, work: () => Promise<T>) => Promise<T>;

/**
 * An ora spinner on a terminal (no colour with NO_COLOR); elsewhere, and in CI, one line per step, so logs
 * and pipes read `text…` and never see spinner frames.
 */
export function createStep(stream: NodeJS.WriteStream = process.stderr, env: NodeJS.ProcessEnv = process.env): Step {
  const spin = Boolean(stream.isTTY) && !inCi(env);
  return async (text, work) => {
    if (!spin) {
      stream.write(`${text}…\n`);
      return work();
    }
    const colour = useColour(stream, env);
    // `false`, not undefined: ora would fall back to a colour of its own.
    const spinner = ora({ text, stream, color: colour ? 'cyan' : false, isEnabled: true }).start();
    try {
      const r = await work();
      spinner.stop();
      return r;
    } catch (err) {
      spinner.stop();
      throw err;
    }
  };
}

/** For code given only a log function (tests, library callers): one line per step. */
export function stepFromLog(log: (line: string) => void): Step {
  return (text, work) => {
    log(`${text}…`);
    return work();
  };
}
