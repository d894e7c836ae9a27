import { CliError } from "./common.js";

/**
 * Why a write fails that no flag can fix, as the user reads it; what to do about it; and the system's text
 * for it, which is all DuckDB's own writes say of it.
 */
const WHY: Record<string, { why: string; fix: string; text: string }> = {
  ENOSPC: {
    why: "the disk is full",
    fix: "free some space there, or write elsewhere",
    text: "No space left on device",
  },
  EDQUOT: {
    why: "the disk quota is used up",
    fix: "free some of the quota, or write elsewhere",
    text: "Disk quota exceeded",
  },
  EFBIG: {
    why: "the file would pass the largest size allowed (the file system's, or `ulimit -f`)",
    fix: "raise that limit, write to another file system, or export a shorter window",
    text: "File too large",
  },
  EIO: {
    why: "an I/O error on its disk",
    fix: "check that disk, or write elsewhere",
    text: "Input/output error",
  },
  EROFS: { why: "its file system turned read-only", fix: "write elsewhere", text: "Read-only file system" },
};

/** `out` could not be written because of `code` (a key of WHY), as an error for the user (exit 1). */
function failure(out: string, code: string): CliError {
  const { why, fix } = WHY[code]!;
  return new CliError(`cannot write ${out}: ${why}; nothing was kept of it: ${fix}`, 1);
}

/**
 * A write of an output file that failed midway, said as what happened to `out` (exit 1) rather than as
 * Node's raw error; any other error is given back as it is.
 */
export function writeFailure(out: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code ?? "";
  return Object.hasOwn(WHY, code) ? failure(out, code) : e;
}

/**
 * DuckDB's own write of `file` (a parquet export's COPY into `out`'s partial file) that failed, said as
 * writeFailure says Node's. DuckDB gives no code, only its message naming the file and ending with the
 * system's text: `IO Error: Could not write file "<file>": No space left on device`.
 */
export function duckDbWriteFailure(out: string, file: string, e: unknown): unknown {
  const message = (e as Error | null)?.message ?? "";
  if (!message.startsWith("IO Error: ") || !message.includes(`"${file}"`)) return e;
  const code = Object.keys(WHY).find((c) => message.endsWith(`: ${WHY[c]!.text}`));
  return code ? failure(out, code) : e;
}
