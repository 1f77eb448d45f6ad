/**
 * SIGTERM/SIGINT that arrive while the forwarder still loads. Node's default action would end the process at once,
 * with no word in the log and a stop that systemd reports as a kill; held here, they stop it as soon as it can.
 * Node's own start and the bundle's compilation come before this runs (about 0.2 s on a quiet machine): a signal
 * then still ends the process the default way.
 */
export interface HeldStopSignals {
  /** The first signal held, if any. */
  readonly first: NodeJS.Signals | null;
  /** Hands the signals back to Node (called once the caller's own handlers are on). */
  release(): void;
}

export function holdStopSignals(): HeldStopSignals {
  let first: NodeJS.Signals | null = null;
  const note = (sig: NodeJS.Signals): void => {
    first ??= sig;
  };
  process.on('SIGTERM', note);
  process.on('SIGINT', note);
  return {
    get first() {
      return first;
    },
    release() {
      process.off('SIGTERM', note);
      process.off('SIGINT', note);
    },
  };
}
