// One parquet conversion of bench/parquet.mjs, in a process of its own so that its peak RSS is the
// conversion's: `node bench/parquet-convert.mjs CSV ROWS before|after` prints {seconds, peak_rss_mb}.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BOUNDED_CONVERSION, toParquet } from "../packages/server/dist/cli/parquet.js";
import { EXPORT_COLUMNS } from "../packages/server/dist/query/export.js";

/** before: DuckDB's defaults (a thread per core, row groups of 122,880 rows); after: the export's own. */
const CONVERSIONS = { before: {}, after: BOUNDED_CONVERSION };

const [csv, rows, settings] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-parquet-"));
const meta = {
  generated_at: new Date().toISOString(),
  window: { from: "2026-01-01T00:00:00.000Z", to: "2026-02-01T00:00:00.000Z" },
  coverage: { truncated: false },
  columns: [...EXPORT_COLUMNS],
  rows: Number(rows),
};
try {
  const started = performance.now();
  await toParquet(csv, join(dir, "calls.parquet"), meta, join(dir, "duckdb"), CONVERSIONS[settings]);
  const seconds = (performance.now() - started) / 1000;
  // maxRSS is in kilobytes: the process's high-water mark, Node's own ~50 MB included.
  console.log(JSON.stringify({ seconds, peak_rss_mb: process.resourceUsage().maxRSS / 1024 }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
