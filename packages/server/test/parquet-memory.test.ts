// A parquet export's conversion holds what it writes a row group at a time, a few of them, not as many as
// DuckDB's defaults would (a thread per core, each with a row group of 122,880 rows): with wide calls
// those ran out of memory where a smaller machine's DuckDB has little, and grew with the export elsewhere.
// It still writes the rows in the CSV's (ts_start, event_id) order, and the export's metadata with them.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type ExportMeta, toParquet } from "../src/cli/parquet.js";

// As on a machine (or a container) of 160 MB: DuckDB's memory limit is 80% of it.
vi.mock("@duckdb/node-api", async (importOriginal) => {
  const { withConnectionSettings } = await import("./duckdb-connection-settings.js");
  return withConnectionSettings(await importOriginal(), () => ["SET memory_limit = '128MB'"]);
});

/** Enough ~500-byte calls (65 MB of CSV) that one of DuckDB's default row groups needs more than 128 MB. */
const ROWS = 130_000;
const dir = mkdtempSync(join(tmpdir(), "tollgate-parquet-memory-"));
const csv = join(dir, "calls.csv");
const meta: ExportMeta = {
  generated_at: "2026-01-01T00:00:00.000Z",
  window: { from: "2025-12-01T00:00:00.000Z", to: "2026-01-01T00:00:00.000Z" },
  coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
  columns: ["event_id", "ts_start", "usage_raw"],
  rows: ROWS,
};
const eventId = (i: number) => `0190d8e2-7c4a-7000-8000-${String(i).padStart(12, "0")}`;
/** Three calls a millisecond, so that the order is (ts_start, event_id), not ts_start's alone. */
const tsStart = (i: number) => 1_767_225_600_000 + Math.floor(i / 3);

beforeAll(() => {
  const lines = Array.from(
    { length: ROWS },
    (_, i) => `${eventId(i)},${tsStart(i)},"{""note"":""${`${i.toString(36)} `.repeat(100)}""}"`,
  );
  writeFileSync(csv, `${meta.columns.join(",")}\n${lines.join("\n")}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a parquet conversion of wide calls on a machine short of memory", () => {
  it("completes, the rows in the CSV's (ts_start, event_id) order and the export's metadata in the file", async () => {
    const out = join(dir, "calls.parquet");
    await toParquet(csv, out, meta, join(dir, "spill"));

    const { DuckDBInstance } = await import("@duckdb/node-api");
    const db = await DuckDBInstance.create(":memory:");
    const conn = await db.connect();
    try {
      const rows = (
        await conn.runAndReadAll(
          `SELECT event_id, ts_start FROM read_parquet('${out}', file_row_number = true) ORDER BY file_row_number`,
        )
      ).getRowsJS();
      expect(rows).toHaveLength(ROWS);
      const outOfOrder = rows.findIndex(([id, ts], i) => id !== eventId(i) || Number(ts) !== tsStart(i));
      expect(outOfOrder).toBe(-1);
      const kv = (
        await conn.runAndReadAll(
          `SELECT decode(key), decode(value) FROM parquet_kv_metadata('${out}') ORDER BY 1`,
        )
      ).getRowsJS();
      expect(Object.fromEntries(kv)).toEqual({
        coverage: JSON.stringify(meta.coverage),
        generated_at: meta.generated_at,
        rows: String(ROWS),
        window_from: meta.window.from,
        window_to: meta.window.to,
      });
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  });
});
