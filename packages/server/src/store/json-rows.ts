import type { CallRecord } from "@tollgate/core/fields";
import type { JsonRows } from "./types.js";

/**
 * Records as JsonRows: each one the JSON array of its `fields`' values, int64 money as decimal strings (it does
 * not fit a JSON number) and JSON fields (tags, metadata, usage_raw) as their values. The reference a store
 * writing the same text itself (DuckDB's SQL) must agree with.
 */
export function recordsJson(records: readonly CallRecord[], fields: readonly (keyof CallRecord)[]): JsonRows {
  const last = records.at(-1);
  return {
    json: records
      .map((r) => JSON.stringify(fields.map((f) => (typeof r[f] === "bigint" ? r[f].toString() : r[f]))))
      .join(","),
    rows: records.length,
    last: last ? { ts: last.ts_start, id: last.event_id } : null,
  };
}
