import { statSync } from "node:fs";
import { exportColumnType } from "../query/export.js";

/** The export's metadata, as the parquet file's key-value metadata carries it. */
export interface ExportMeta {
  generated_at: string;
  window: { from: string; to: string };
  coverage: unknown;
  columns: string[];
  rows: number;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * How DuckDB runs the conversion: its threads, and the most rows of each parquet row group it writes, and the
 * most bytes of the CSV they may come from.
 */
export interface ParquetConversion {
  threads?: number;
  rowGroupRows?: number;
  rowGroupCsvBytes?: number;
}

/**
 * The conversion's memory is the row groups DuckDB holds while it writes them: one per thread (more, waiting
 * their turn, to keep the rows' order). At its defaults, a thread per core and 122,880 rows, that is over a
 * gigabyte of wide calls, growing with the export. One thread holding 20,000 rows keeps it near 350 MB for
 * any export of ~2 KB calls, about as fast as the defaults on two cores (bench/parquet.mjs). Calls of ~20 KB
 * (long prompts kept in their metadata) made those 20,000 rows 1.2 GB: a row group also holds no more
 * than 50 MB of the CSV (20,000 calls of 2.5 KB) in rows of the export's average width, ~450 MB for them.
 * A stretch of calls much wider than the rest still makes a bigger group: DuckDB's ROW_GROUP_SIZE_BYTES
 * would bound each group as written, but DuckDB 1.5 refuses it unless preserve_insertion_order is off,
 * and the rows must stay in the CSV's `(ts_start, event_id)` order: DuckDB keeps insertion order by
 * default, and one thread reads in order.
 * No memory_limit of its own: DuckDB cannot spill the row group it is writing, so a limit would fail an
 * export of wider calls rather than slow it.
 */
export const BOUNDED_CONVERSION: ParquetConversion = {
  threads: 1,
  rowGroupRows: 20_000,
  rowGroupCsvBytes: 50_000_000,
};

/** DuckDB's smallest row group: one vector of rows. */
const MIN_ROW_GROUP_ROWS = 2048;

/** The rows of each row group of `csv`'s `rows` calls: conversion's rows, fewer where its bytes bound them. */
function rowGroupRows(conversion: ParquetConversion, csv: string, rows: number): number | undefined {
  const { rowGroupRows: most, rowGroupCsvBytes: bytes } = conversion;
  if (!most || !bytes || rows === 0) return most;
  const fitting = Math.floor((bytes * rows) / statSync(csv).size);
  return Math.max(MIN_ROW_GROUP_ROWS, Math.min(most, fitting));
}

/**
 * A calls export's CSV (csvCell's dialect) as the parquet file `out`, `meta` as its key-value metadata. What
 * DuckDB buffers past its memory goes to `spillDir`, not to its default `./.tmp` of wherever the CLI is run.
 * `conversion`: BOUNDED_CONVERSION; the benchmark passes `{}` too, DuckDB's defaults, to compare.
 */
export async function toParquet(
  csv: string,
  out: string,
  meta: ExportMeta,
  spillDir: string,
  conversion: ParquetConversion = BOUNDED_CONVERSION,
): Promise<void> {
  // Loaded on use: every other command of the CLI (a ClickHouse-backed gateway among them) runs without DuckDB.
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:", {
    temp_directory: spillDir,
    ...(conversion.threads ? { threads: String(conversion.threads) } : {}),
  });
  const conn = await db.connect();
  try {
    const kv = Object.entries({
      generated_at: meta.generated_at,
      window_from: meta.window.from,
      window_to: meta.window.to,
      coverage: JSON.stringify(meta.coverage),
      rows: String(meta.rows),
    })
      .map(([k, v]) => `${k}: ${sqlString(v)}`)
      .join(", ");
    // Every column's type as the record has it: inferred from the values, text that reads as a number
    // (a prompt_version "1.10", a customer_id "42") would be written as one. The dialect is csvCell's, given
    // rather than sniffed: the sniffer reads 20,480 rows, and none quoted there it reads the file unquoted.
    // A quoted empty cell is "" and only an empty one is NULL (DuckDB reads both as NULL by default).
    // Written straight into `out` (the `.partial` file, already there): by default DuckDB writes over an
    // existing file through a tmp_ file of its own beside it, which an interrupted export would leave behind.
    const columns = meta.columns.map((c) => `${sqlString(c)}: ${sqlString(exportColumnType(c))}`).join(", ");
    const groupRows = rowGroupRows(conversion, csv, meta.rows);
    const rowGroup = groupRows ? `, ROW_GROUP_SIZE ${groupRows}` : "";
    await conn.run(
      `COPY (SELECT * FROM read_csv(${sqlString(csv)}, auto_detect = false, header = true, delim = ',',
                                    quote = '"', escape = '"', allow_quoted_nulls = false,
                                    columns = {${columns}}))
       TO ${sqlString(out)} (FORMAT parquet, USE_TMP_FILE false, KV_METADATA {${kv}}${rowGroup})`,
    );
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
