// A parquet export's conversion that runs short of memory spills what it buffers to disk: into the directory
// it is given, under the export's own temp dir (TMPDIR), not into DuckDB's default `./.tmp` of wherever the
// CLI was run, which may be read-only or hold a `.tmp` of its own. A spill that finds no room there is said
// as the temporary directory's, with what to do, not as DuckDB's "Out of Memory Error" naming no file.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CliError } from "../src/cli/common.js";
import { type ExportMeta, toParquet } from "../src/cli/parquet.js";
import { duckDbWriteFailure } from "../src/cli/write-failure.js";

/** What every DuckDB connection of this file runs first, past the memory settings below. */
const duckDbSettings = vi.hoisted(() => [] as string[]);

// As on a machine short of memory: 120 MB for 8 threads reading a 35 MB CSV, so the conversion spills.
vi.mock("@duckdb/node-api", async (importOriginal) => {
  const { withConnectionSettings } = await import("./duckdb-connection-settings.js");
  return withConnectionSettings(await importOriginal(), () => [
    "SET memory_limit = '120MB'",
    "SET threads = 8",
    ...duckDbSettings,
  ]);
});

const ROWS = 300_000;
const dir = mkdtempSync(join(tmpdir(), "tollgate-parquet-spill-"));
const csv = join(dir, "calls.csv");
const meta: ExportMeta = {
  generated_at: "2026-01-01T00:00:00.000Z",
  window: { from: "2025-12-01T00:00:00.000Z", to: "2026-01-01T00:00:00.000Z" },
  coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
  columns: ["event_id", "ts_start", "model"],
  rows: ROWS,
};
/** Where the CLI is run from: DuckDB's default spill dir, `.tmp`, is a file there. */
const cwd = join(dir, "cwd");
const startedIn = process.cwd();

beforeAll(() => {
  const lines = Array.from(
    { length: ROWS },
    (_, i) =>
      `0190d8e2-7c4a-7000-8000-${String(i).padStart(12, "0")},${1_767_225_600_000 + i},${"m".repeat(90)}`,
  );
  writeFileSync(csv, `${meta.columns.join(",")}\n${lines.join("\n")}\n`);
  mkdirSync(cwd);
  writeFileSync(join(cwd, ".tmp"), "not DuckDB's\n");
  process.chdir(cwd);
});
afterAll(() => {
  process.chdir(startedIn);
  rmSync(dir, { recursive: true, force: true });
});

describe("a parquet conversion that spills", () => {
  it("spills into the directory it is given, and leaves the directory it was run from as it was", async () => {
    const out = join(dir, "calls.parquet");
    await toParquet(csv, out, meta, join(dir, "spill"));
    expect(readFileSync(out).subarray(0, 4).toString()).toBe("PAR1");
    expect(readdirSync(cwd)).toEqual([".tmp"]);
    expect(readFileSync(join(cwd, ".tmp"), "utf8")).toBe("not DuckDB's\n");
  });
});

describe("a parquet conversion whose spill finds no room", () => {
  it("fails with DuckDB's error, which the export says as the temporary directory's, with what to do", async () => {
    // As on a disk nearly full: DuckDB keeps its spill to 90% of the free space, here 100 KB.
    duckDbSettings.push("SET max_temp_directory_size = '100KB'");
    const out = join(dir, "full.parquet");
    const e = await toParquet(csv, out, meta, join(dir, "spill")).catch((e: unknown) => e);
    duckDbSettings.length = 0;
    const said = duckDbWriteFailure(out, { partial: out, tempDir: dir }, e);
    expect(said, String(e)).toBeInstanceOf(CliError);
    expect((said as CliError).message).toMatch(
      `cannot write DuckDB's temporary files in the temporary directory ${dir} (converting ${out} to parquet): no room`,
    );
  });
});
