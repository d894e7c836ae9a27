import { resolve } from "node:path";
import { CliError } from "./common.js";

/**
 * Why a write fails that no flag can fix, as the user reads it; what to do about it, for an output file
 * (`fix`) and for a temporary file in TMPDIR, which no `-o` moves (`tempFix`); and the system's texts for it
 * (lower case), which are all DuckDB's own writes say of it: glibc's, musl's ("I/O error", "Quota
 * exceeded") and macOS's ("Disc quota exceeded") wordings.
 */
const WHY: Record<string, { why: string; fix: string; tempFix: string; texts: string[] }> = {
  ENOSPC: {
    why: "the disk is full",
    fix: "free some space there, or write elsewhere",
    tempFix: "free some space there, or set TMPDIR to a directory on a disk with more room",
    texts: ["no space left on device"],
  },
  EDQUOT: {
    why: "the disk quota is used up",
    fix: "free some of the quota, or write elsewhere",
    tempFix: "free some of the quota, or set TMPDIR to a directory on a disk with more room",
    texts: ["quota exceeded"],
  },
  EFBIG: {
    why: "the file would pass the largest size allowed (the file system's, or `ulimit -f`)",
    fix: "raise that limit, write to another file system, or export a shorter window",
    tempFix: "raise that limit, or set TMPDIR to a directory on another file system",
    texts: ["file too large"],
  },
  EIO: {
    why: "an I/O error on its disk",
    fix: "check that disk, or write elsewhere",
    tempFix: "check that disk, or set TMPDIR to a directory on another disk",
    texts: ["input/output error", "i/o error"],
  },
  EROFS: {
    why: "its file system turned read-only",
    fix: "write elsewhere",
    tempFix: "set TMPDIR to a directory on another file system",
    texts: ["read-only file system"],
  },
};

/** `out` could not be written, `why` and what to do (`fix`), as an error for the user (exit 1). */
export function failure(out: string, { why, fix }: { why: string; fix: string }): CliError {
  return new CliError(`cannot write ${out}: ${why}; nothing was kept of it: ${fix}`, 1);
}

/**
 * A write of an output file that failed midway, said as what happened to `out` (exit 1) rather than as
 * Node's raw error; any other error is given back as it is.
 */
export function writeFailure(out: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code ?? "";
  return Object.hasOwn(WHY, code) ? failure(out, WHY[code]!) : e;
}

/** Why a write that failed with `code` failed, as the user reads it; undefined for a code not in WHY. */
export function whyWriteFails(code: string): string | undefined {
  return Object.hasOwn(WHY, code) ? WHY[code]!.why : undefined;
}

/**
 * DuckDB's IO Error naming a file, and the system's text after it: `Could not write file "<file>": …`, or
 * `Could not fsync file …`, `Could not write to file "<file>" - attempted to write 0 bytes: …`.
 */
const DUCKDB_IO_ERROR = /^IO Error: [^"]*"(?<named>[^"]*)"[^:]*: (?<text>.*)$/s;

/**
 * DuckDB's spill that found no room: its temporary files may take `max_temp_directory_size`, by default 90%
 * of the space their disk has free, and past it DuckDB says an Out of Memory Error that names no file.
 */
const DUCKDB_SPILL_FULL =
  /^Out of Memory Error: failed to offload data block\b.*\bmax_temp_directory_size\b/s;

const SPILL_FULL = {
  why: "no room is left there (they may take up to 90% of the space its disk had free)",
  fix: WHY.ENOSPC!.tempFix,
};

/** A parquet export's files: `out`'s partial file, and the temporary directory (TMPDIR) DuckDB spills into. */
export interface ParquetFiles {
  partial: string;
  tempDir: string;
}

/**
 * DuckDB's own write that failed as it converted a parquet export into `files.partial` (`out`'s), said as
 * writeFailure says Node's. DuckDB gives no code, only its message naming the file and the system's text.
 * The file named is `out` for its partial file, and itself for any other (a temporary file DuckDB spills to,
 * in TMPDIR: what to do is about TMPDIR); a spill that found no room is said as the temporary directory's.
 */
export function duckDbWriteFailure(out: string, files: ParquetFiles, e: unknown): unknown {
  const message = (e as Error | null)?.message ?? "";
  if (DUCKDB_SPILL_FULL.test(message))
    return failure(
      `DuckDB's temporary files in the temporary directory ${files.tempDir} (converting ${out} to parquet)`,
      SPILL_FULL,
    );
  const io = DUCKDB_IO_ERROR.exec(message)?.groups;
  const text = io?.text?.toLowerCase() ?? "";
  const code = Object.keys(WHY).find((c) => WHY[c]!.texts.some((t) => text.includes(t)));
  if (!io || !code) return e;
  const { why, fix, tempFix } = WHY[code]!;
  return message.includes(`"${files.partial}"`)
    ? failure(out, { why, fix })
    : failure(`${resolve(io.named!)} (a temporary file of DuckDB's, converting ${out} to parquet)`, {
        why,
        fix: tempFix,
      });
}
