import { closeSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { CliError } from "./common.js";
import { cleanUpOnInterrupt } from "./interrupt-cleanup.js";

const WHY: Record<string, string> = {
  ENOENT: "its directory does not exist",
  EACCES: "permission denied",
  EROFS: "a read-only file system",
};

/**
 * An export's file, written as `<out>.partial` and renamed to `out` when complete: an export that fails
 * midway (its server gone, a full disk) or is interrupted (Ctrl-C) leaves no file that reads as whole, and
 * keeps the one it would have replaced. Created before the export asks anything of the server, so a path
 * that cannot be written is said at once, as a usage error (an unreadable `ingest` file is one), not after
 * a long export.
 */
export function outputFile(out: string): { partial: string; complete(): void; discard(): void } {
  const partial = `${out}.partial`;
  if (statSync(out, { throwIfNoEntry: false })?.isDirectory())
    throw new CliError(`cannot write ${out}: it is a directory`, 2);
  try {
    closeSync(openSync(partial, "w"));
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    throw new CliError(`cannot write ${out}: ${WHY[code ?? ""] ?? message}`, 2);
  }
  const remove = () => rmSync(partial, { force: true });
  const cancelCleanup = cleanUpOnInterrupt(remove);
  return {
    partial,
    complete: () => renameSync(partial, out),
    discard: () => {
      cancelCleanup();
      remove();
    },
  };
}
