import { CliError } from "./common.js";

/** Why a write fails that no flag can fix, as the user reads it. */
const WHY: Record<string, string> = {
  ENOSPC: "the disk is full",
  EDQUOT: "the disk quota is used up",
  EFBIG: "the file would pass the largest size allowed (the file system's, or `ulimit -f`)",
  EIO: "an I/O error on its disk",
};

/**
 * A write of an output file that failed midway, said as what happened to `out` (exit 1) rather than as
 * Node's raw error; any other error is given back as it is.
 */
export function writeFailure(out: string, e: unknown): unknown {
  const why = WHY[(e as NodeJS.ErrnoException | null)?.code ?? ""];
  return why ? new CliError(`cannot write ${out}: ${why}; nothing was kept of it`, 1) : e;
}
