import { constants } from "node:os";

const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const cleanups = new Set<() => void>();

function interrupted(signal: NodeJS.Signals): void {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // One that fails (a file no longer ours to remove) keeps neither the others nor the exit from running.
    }
  }
  process.exit(128 + constants.signals[signal]); // the status a shell gives that signal: 130, 143
}

/**
 * Runs `cleanup` if the command is interrupted (Ctrl-C's SIGINT, or SIGTERM) before the returned function
 * is called, then exits as the signal would have. Nothing runs on a crash or kill -9: what a cleanup removes
 * must be recognisable as unfinished (an export's `.partial` file).
 */
export function cleanUpOnInterrupt(cleanup: () => void): () => void {
  if (cleanups.size === 0) for (const s of SIGNALS) process.on(s, interrupted);
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
    if (cleanups.size === 0) for (const s of SIGNALS) process.off(s, interrupted);
  };
}
