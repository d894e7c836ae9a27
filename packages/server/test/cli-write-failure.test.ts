// DuckDB's own write of a parquet export that fails is said as the CLI's own writes are: DuckDB gives no
// error code, only its message naming the file and the system's text, whose wording varies with the libc
// (glibc, musl, macOS) and with the write (a write, an fsync; the export's file or a temporary one).
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CliError } from "../src/cli/common.js";
import { duckDbWriteFailure } from "../src/cli/write-failure.js";

const OUT = "/exports/calls.parquet";
const PARTIAL = `${OUT}.partial`;
/** The export's files: its partial file, and the temporary directory (TMPDIR) DuckDB spills into. */
const FILES = { partial: PARTIAL, tempDir: "/var/tmp" };

/** Why and what to do, as the CLI says them for each error code. */
const SAID = {
  ENOSPC: "the disk is full; nothing was kept of it: free some space there, or write elsewhere",
  EDQUOT: "the disk quota is used up; nothing was kept of it: free some of the quota, or write elsewhere",
  EFBIG:
    "the file would pass the largest size allowed (the file system's, or `ulimit -f`); nothing was kept of it: " +
    "raise that limit, write to another file system, or export a shorter window",
  EIO: "an I/O error on its disk; nothing was kept of it: check that disk, or write elsewhere",
  EROFS: "its file system turned read-only; nothing was kept of it: write elsewhere",
};

/**
 * Why and what to do, as the CLI says them for a temporary file DuckDB spills to: it is in the temporary
 * directory (TMPDIR), not where the export is written.
 */
const SAID_OF_TEMP = {
  ENOSPC:
    "the disk is full; nothing was kept of it: free some space there, or set TMPDIR to a directory on a disk with more room",
  EDQUOT:
    "the disk quota is used up; nothing was kept of it: free some of the quota, or set TMPDIR to a directory on a disk with more room",
  EFBIG:
    "the file would pass the largest size allowed (the file system's, or `ulimit -f`); nothing was kept of it: " +
    "raise that limit, or set TMPDIR to a directory on another file system",
  EIO: "an I/O error on its disk; nothing was kept of it: check that disk, or set TMPDIR to a directory on another disk",
  EROFS:
    "its file system turned read-only; nothing was kept of it: set TMPDIR to a directory on another file system",
};

const said = (e: unknown) => (e instanceof CliError ? [e.message, e.exitCode] : e);

describe("duckDbWriteFailure", () => {
  it.each([
    ["No space left on device", SAID.ENOSPC],
    ["Disk quota exceeded", SAID.EDQUOT], // glibc
    ["Quota exceeded", SAID.EDQUOT], // musl
    ["Disc quota exceeded", SAID.EDQUOT], // macOS
    ["File too large", SAID.EFBIG],
    ["Input/output error", SAID.EIO], // glibc, macOS
    ["I/O error", SAID.EIO], // musl
    ["Read-only file system", SAID.EROFS],
  ])("says DuckDB's %j writing the export's partial file as the export's failure (exit 1)", (text, why) => {
    const e = new Error(`IO Error: Could not write file "${PARTIAL}": ${text}`);
    expect(said(duckDbWriteFailure(OUT, FILES, e))).toEqual([`cannot write ${OUT}: ${why}`, 1]);
  });

  it.each([
    `IO Error: Could not fsync file "${PARTIAL}": Input/output error`,
    `IO Error: Could not write to file "${PARTIAL}" - attempted to write 0 bytes: Input/output error`,
    `IO Error: Could not write file "${PARTIAL}": Input/output error\n`,
  ])("reads DuckDB's other wordings of a failed write: %j", (message) => {
    expect(said(duckDbWriteFailure(OUT, FILES, new Error(message)))).toEqual([
      `cannot write ${OUT}: ${SAID.EIO}`,
      1,
    ]);
  });

  it("names a temporary file DuckDB spills to as itself, not the export's file", () => {
    for (const spill of [".tmp/duckdb_temp_storage_S160K-0.tmp", "/var/tmp/duckdb_temp_storage-0.tmp"]) {
      const e = new Error(`IO Error: Could not write file "${spill}": No space left on device`);
      expect(said(duckDbWriteFailure(OUT, FILES, e))).toEqual([
        `cannot write ${resolve(spill)} (a temporary file of DuckDB's, converting ${OUT} to parquet): ${SAID_OF_TEMP.ENOSPC}`,
        1,
      ]);
    }
  });

  it.each([
    ["No space left on device", SAID_OF_TEMP.ENOSPC],
    ["Disk quota exceeded", SAID_OF_TEMP.EDQUOT],
    ["File too large", SAID_OF_TEMP.EFBIG],
    ["Input/output error", SAID_OF_TEMP.EIO],
    ["Read-only file system", SAID_OF_TEMP.EROFS],
  ])(
    "advises for DuckDB's %j writing a temporary file what to do about TMPDIR, not to write the export elsewhere",
    (text, why) => {
      const spill = "/var/tmp/tollgate-export-x/duckdb/duckdb_temp_storage-0.tmp";
      const e = new Error(`IO Error: Could not write file "${spill}": ${text}`);
      expect(said(duckDbWriteFailure(OUT, FILES, e))).toEqual([
        `cannot write ${spill} (a temporary file of DuckDB's, converting ${OUT} to parquet): ${why}`,
        1,
      ]);
    },
  );

  it("says DuckDB's spill that found no room in the temporary directory as the directory's, and what to do (exit 1)", () => {
    // DuckDB 1.5's text: its temporary files may take `max_temp_directory_size`, by default 90% of the disk's free space.
    const e = new Error(
      "Out of Memory Error: failed to offload data block of size 256.0 KiB (4.5 GiB/4.5 GiB used).\n" +
        "This limit was set by the 'max_temp_directory_size' setting.\n" +
        "By default, this setting utilizes the available disk space on the drive where the 'temp_directory' is located.\n" +
        "You can adjust this setting, by using (for example) PRAGMA max_temp_directory_size='10GiB'\n\n" +
        "Possible solutions:\n* Reducing the number of threads (SET threads=X)\n",
    );
    expect(said(duckDbWriteFailure(OUT, FILES, e))).toEqual([
      `cannot write DuckDB's temporary files in the temporary directory /var/tmp (converting ${OUT} to parquet): ` +
        "no room is left there (they may take up to 90% of the space its disk had free); nothing was kept of it: " +
        "free some space there, or set TMPDIR to a directory on a disk with more room",
      1,
    ]);
  });

  it("gives back as it is any other error: another kind, or a system text it does not know", () => {
    for (const message of [
      // A CSV value quoted in a conversion error is no failed write, whatever it says.
      `Conversion Error: Could not convert string "No space left on device" to INT64`,
      `IO Error: Could not write file "${PARTIAL}": Permission denied`,
      "Out of Memory Error: failed to allocate data of size 16.0 MiB",
    ]) {
      const e = new Error(message);
      expect(duckDbWriteFailure(OUT, FILES, e)).toBe(e);
    }
    expect(duckDbWriteFailure(OUT, FILES, null)).toBe(null);
  });
});
