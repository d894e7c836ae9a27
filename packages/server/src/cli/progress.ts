import { SingleBar } from "cli-progress";

/**
 * A progress bar on stderr when stderr is a terminal (stdout piped or --json stays clean), else null.
 * Cut to the terminal's width, not drawn with the terminal's line wrapping turned off: a command that
 * fails, is interrupted (Ctrl-C) or killed midway would leave the user's terminal without wrapping.
 * Stop it in a `finally`, so an error is written on a line of its own.
 */
export function progressBar(format: string): SingleBar | null {
  return process.stderr.isTTY ? new SingleBar({ format, linewrap: true }) : null;
}
