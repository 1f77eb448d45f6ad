/**
 * The one colour rule for every command: colour only on a terminal, never with NO_COLOR set to anything but the
 * empty string (https://no-color.org), never on TERM=dumb.
 */
export function useColour(stream: Pick<NodeJS.WriteStream, 'isTTY'>, env: Record<string, string | undefined> = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb';
}
