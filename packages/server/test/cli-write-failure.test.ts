// DuckDB's own write of a parquet export that fails is said as the CLI's own writes are: DuckDB gives no
// error code, only its message naming the file and the system's text, whose wording varies with the libc
// (glibc, musl, macOS) and with the write (a write, an fsync; the export's file or a temporary one).
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CliError } from "../src/cli/common.js";
import { duckDbWriteFailure } from "../src/cli/write-failure.js";

const OUT = "/exports/calls.parquet";
const PARTIAL = `${OUT}.partial`;

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
    expect(said(duckDbWriteFailure(OUT, PARTIAL, e))).toEqual([`cannot write ${OUT}: ${why}`, 1]);
  });

  it.each([
    `IO Error: Could not fsync file "${PARTIAL}": Input/output error`,
    `IO Error: Could not write to file "${PARTIAL}" - attempted to write 0 bytes: Input/output error`,
    `IO Error: Could not write file "${PARTIAL}": Input/output error\n`,
  ])("reads DuckDB's other wordings of a failed write: %j", (message) => {
    expect(said(duckDbWriteFailure(OUT, PARTIAL, new Error(message)))).toEqual([
      `cannot write ${OUT}: ${SAID.EIO}`,
      1,
    ]);
  });

  it("names a temporary file DuckDB spills to as itself, not the export's file", () => {
    for (const spill of [".tmp/duckdb_temp_storage_S160K-0.tmp", "/var/tmp/duckdb_temp_storage-0.tmp"]) {
      const e = new Error(`IO Error: Could not write file "${spill}": No space left on device`);
      expect(said(duckDbWriteFailure(OUT, PARTIAL, e))).toEqual([
        `cannot write ${resolve(spill)} (a temporary file of DuckDB's, converting ${OUT} to parquet): ${SAID.ENOSPC}`,
        1,
      ]);
    }
  });

  it("gives back as it is any other error: another kind, or a system text it does not know", () => {
    for (const message of [
      // A CSV value quoted in a conversion error is no failed write, whatever it says.
      `Conversion Error: Could not convert string "No space left on device" to INT64`,
      `IO Error: Could not write file "${PARTIAL}": Permission denied`,
      "Out of Memory Error: failed to allocate data of size 16.0 MiB",
    ]) {
      const e = new Error(message);
      expect(duckDbWriteFailure(OUT, PARTIAL, e)).toBe(e);
    }
    expect(duckDbWriteFailure(OUT, PARTIAL, null)).toBe(null);
  });
});
