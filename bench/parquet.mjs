#!/usr/bin/env node
// A parquet export's conversion (toParquet: DuckDB's COPY of the export's temporary CSV to parquet) on
// synthetic calls: every export column, ~2 KB of CSV a call (usage_raw, metadata and tags as JSON), in the
// export's (ts_start, event_id) order. For each --rows count, the CSV is written once, then converted
// --runs times at DuckDB's default settings (before) and at the export's own (after), each conversion in a
// process of its own; reported: the fastest run's seconds and the highest peak RSS, side by side, with the
// load average (the machine's other work slows a run). The CSVs (~2 GB a million calls) are written under
// TMPDIR and removed at the end.
// `--prompt-kb N` adds a prompt of N KB to each call's metadata (calls of ~20 KB: `--prompt-kb 18`).
// Usage: npm run bench:parquet [-- --rows 500000,1000000] [-- --runs 1] [-- --prompt-kb 0]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.mjs";
import { writeCallsCsv } from "./parquet-csv.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  rows: { type: "string", default: "500000,1000000" },
  runs: { type: "string", default: "1" },
  "prompt-kb": { type: "string", default: "0" },
});
const RUNS = Number(argv.runs);
const convert = fileURLToPath(new URL("./parquet-convert.mjs", import.meta.url));
const load = () => loadavg()[0].toFixed(1);

/** The fastest of RUNS conversions at `settings` and the highest peak RSS among them. */
function measure(csv, rows, settings) {
  const runs = Array.from({ length: RUNS }, () =>
    JSON.parse(execFileSync(process.execPath, [convert, csv, String(rows), settings], { encoding: "utf8" })),
  );
  return {
    seconds: Math.min(...runs.map((r) => r.seconds)),
    peak_rss_mb: Math.max(...runs.map((r) => r.peak_rss_mb)),
  };
}

const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-parquet-csv-"));
console.log(`${cpus().length} cores, load ${load()} at the start`);
console.log("rows       CSV MB   before: s  peak RSS MB   after: s  peak RSS MB   load");
try {
  for (const rows of argv.rows.split(",").map(Number)) {
    const csv = join(dir, `calls-${rows}.csv`);
    await writeCallsCsv(csv, rows, Number(argv["prompt-kb"]) * 1024);
    const before = measure(csv, rows, "before");
    const after = measure(csv, rows, "after");
    const cells = [
      rows.toLocaleString("en-US").padEnd(10),
      (statSync(csv).size / 1e6).toFixed(0).padStart(6),
      before.seconds.toFixed(1).padStart(11),
      before.peak_rss_mb.toFixed(0).padStart(12),
      after.seconds.toFixed(1).padStart(10),
      after.peak_rss_mb.toFixed(0).padStart(12),
      load().padStart(6),
    ];
    console.log(cells.join(" "));
    rmSync(csv);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
