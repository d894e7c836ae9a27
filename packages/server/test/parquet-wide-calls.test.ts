// A parquet export of calls ten times as wide as most (~20 KB each: long prompts kept in their metadata) holds
// no more of them in a row group than of the usual ~2 KB ones: its row groups are bounded by the CSV's bytes
// as well as by rows, so 20,000 of them are not held at once. The rows keep the CSV's (ts_start, event_id)
// order and their values, as a conversion bounded by rows alone writes them.

import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BOUNDED_CONVERSION, type ExportMeta, toParquet } from "../src/cli/parquet.js";

/** What every DuckDB connection runs first: none but for the conversion on a machine short of memory. */
const duckDbSettings = vi.hoisted(() => ({ now: [] as string[] }));

vi.mock("@duckdb/node-api", async (importOriginal) => {
  const { withConnectionSettings } = await import("./duckdb-connection-settings.js");
  return withConnectionSettings(await importOriginal(), () => duckDbSettings.now);
});

/** More calls of ~20 KB (160 MB of CSV) than fit in 256 MB held at once. */
const ROWS = 8_000;
const dir = mkdtempSync(join(tmpdir(), "tollgate-parquet-wide-"));
const csv = join(dir, "calls.csv");
const meta: ExportMeta = {
  generated_at: "2026-01-01T00:00:00.000Z",
  window: { from: "2025-12-01T00:00:00.000Z", to: "2026-01-01T00:00:00.000Z" },
  coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
  columns: ["event_id", "ts_start", "metadata"],
  rows: ROWS,
};
const eventId = (i: number) => `0190d8e2-7c4a-7000-8000-${String(i).padStart(12, "0")}`;
/** Three calls a millisecond, so that the order is (ts_start, event_id), not ts_start's alone. */
const tsStart = (i: number) => 1_767_225_600_000 + Math.floor(i / 3);
/** A ~20 KB prompt, varied so that compression does not make it nothing. */
const prompt = (i: number) =>
  Array.from({ length: 2_500 }, (_, k) => ((i + 1) * 2_654_435_761 + k * 40_503).toString(36).slice(-7)).join(
    " ",
  );

beforeAll(() => {
  const lines = Array.from(
    { length: ROWS },
    (_, i) => `${eventId(i)},${tsStart(i)},"{""prompt"":""${prompt(i)}""}"`,
  );
  writeFileSync(csv, `${meta.columns.join(",")}\n${lines.join("\n")}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The file's row groups' row counts, and its rows (event_id, ts_start, metadata) in the file's order. */
async function readBack(file: string) {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  try {
    const groups = (
      await conn.runAndReadAll(
        `SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata('${file}') ORDER BY 1`,
      )
    )
      .getRowsJS()
      .map(([, rows]) => Number(rows));
    const rows = (
      await conn.runAndReadAll(
        `SELECT event_id, ts_start, metadata FROM read_parquet('${file}', file_row_number = true) ORDER BY file_row_number`,
      )
    ).getRowsJS();
    return { groups, rows };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe("a parquet conversion of calls of ~20 KB", () => {
  it("writes row groups of at most 50 MB of the CSV (its calls' average width), not of 20,000 calls", async () => {
    const out = join(dir, "bounded.parquet");
    await toParquet(csv, out, meta, join(dir, "spill-bounded"));
    const { groups, rows } = await readBack(out);
    expect(groups.reduce((a, n) => a + n)).toBe(ROWS);
    // DuckDB closes a group once it has the rows asked (ROW_GROUP_SIZE is a least), adding a vector of at
    // most 2,048 rows at a time: a group may pass 50 MB by that much.
    const callBytes = statSync(csv).size / ROWS;
    expect(Math.max(...groups)).toBeLessThan(50_000_000 / callBytes + 2_048);
    expect(rows.findIndex(([id, ts], i) => id !== eventId(i) || Number(ts) !== tsStart(i))).toBe(-1);
    // The same rows, values and order as a conversion bounded by rows alone.
    const byRows = join(dir, "by-rows.parquet");
    await toParquet(csv, byRows, meta, join(dir, "spill-by-rows"), {
      ...BOUNDED_CONVERSION,
      rowGroupCsvBytes: undefined,
    });
    const unbounded = await readBack(byRows);
    expect(unbounded.groups).toEqual([ROWS]);
    expect(rows).toEqual(unbounded.rows);
  });

  it("completes where DuckDB has 256 MB (80% of a machine or container of 320 MB)", async () => {
    duckDbSettings.now = ["SET memory_limit = '256MB'"];
    try {
      const out = join(dir, "short-of-memory.parquet");
      await toParquet(csv, out, meta, join(dir, "spill-short"));
      duckDbSettings.now = [];
      expect((await readBack(out)).rows).toHaveLength(ROWS);
    } finally {
      duckDbSettings.now = [];
    }
  });
});
