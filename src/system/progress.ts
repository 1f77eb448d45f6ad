import ora, { type Ora } from 'ora';
import { useColour } from './colour.js';
import { inCi } from './prompts.js';

/** A step that can take more than a second says what it is doing while it runs. */
export type Step = <T>(text: string, work: () => Promise<T>) => Promise<T>;

/**
 * An ora spinner on a terminal (no colour with NO_COLOR); elsewhere, and in CI, one line per step, so logs
 * and pipes read `text…` and never see spinner frames.
 */
export function createStep(stream: NodeJS.WriteStream = process.stderr, env: NodeJS.ProcessEnv = process.env): Step {
  const spin = spins(stream, env);
  return async (text, work) => {
    if (!spin) {
      stream.write(`${text}…\n`);
      return work();
    }
    const spinner = createSpinner(text, stream, env).start();
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

/** Spinners animate on a terminal outside CI; NO_COLOR takes their colour away, not the spinner. */
function spins(stream: Pick<NodeJS.WriteStream, 'isTTY'>, env: NodeJS.ProcessEnv): boolean {
  return Boolean(stream.isTTY) && !inCi(env);
}

/**
 * The one spinner for every command: animated on a terminal outside CI (plain with NO_COLOR), silent elsewhere — a
 * disabled ora would print its text once as `- text`, a line left behind on a terminal and noise in a log.
 */
export function createSpinner(text: string, stream: NodeJS.WriteStream = process.stderr, env: NodeJS.ProcessEnv = process.env): Ora {
  const spin = spins(stream, env);
  // `false`, not undefined: ora would fall back to a colour of its own.
  return ora({ text, stream, color: useColour(stream, env) ? 'cyan' : false, isEnabled: spin, isSilent: !spin });
}

/** For code given only a log function (tests, library callers): one line per step. */
export function stepFromLog(log: (line: string) => void): Step {
  return (text, work) => {
    log(`${text}…`);
    return work();
  };
}
