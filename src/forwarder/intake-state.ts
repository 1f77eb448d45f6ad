import { constants, fchmodSync } from 'node:fs';
import * as fsio from '../util/fsio.js';

/**
 * The intake state file that rsyslog's action reads before each batch (action.externalstate.file): SUSPENDED keeps
 * the batch in rsyslog's queue instead of in the memory of an action that retries a stopped forwarder, which
 * rsyslog drops when it restarts (docs/RELIABILITY.md item 13). Anything else, or no file, means go ahead.
 */
export type IntakeState = 'READY' | 'SUSPENDED';

/** Replaces the file whole (rsyslog reads it with one read). World-readable: rsyslog may run as its own user. */
export function writeIntakeState(path: string, state: IntakeState): void {
  // Own name per process (two forwarders on one config must not share it); a planted link is not followed.
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = fsio.openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  try {
    fchmodSync(fd, 0o644);
    fsio.writeAllSync(fd, Buffer.from(`${state}\n`));
  } finally {
    fsio.closeSync(fd);
  }
  fsio.renameSync(tmp, path);
}
