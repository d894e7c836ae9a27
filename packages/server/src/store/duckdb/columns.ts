import { DuckDBTimestampValue, type DuckDBAppender } from "@duckdb/node-api";
import { ATTRIBUTION_FIELDS, type CallRecord, COST_FIELDS, USAGE_FIELDS } from "@tollgate/core";

/** How one record field is stored: its SQL type and how the Appender writes it. */
interface Column {
  name: keyof CallRecord & string;
  sql: string;
  append: (a: DuckDBAppender, v: unknown) => void;
}

const varchar = (a: DuckDBAppender, v: unknown) => (v == null ? a.appendNull() : a.appendVarchar(v as string));
const integer = (a: DuckDBAppender, v: unknown) => (v == null ? a.appendNull() : a.appendInteger(v as number));
const bigint = (a: DuckDBAppender, v: unknown) => a.appendBigInt(typeof v === "bigint" ? v : BigInt(v as number));
const boolean = (a: DuckDBAppender, v: unknown) => a.appendBoolean(v as boolean);
const timestamp = (a: DuckDBAppender, v: unknown) =>
  v == null ? a.appendNull() : a.appendTimestamp(new DuckDBTimestampValue(BigInt(v as number) * 1000n));
const json = (a: DuckDBAppender, v: unknown) => (v == null ? a.appendNull() : a.appendVarchar(JSON.stringify(v)));

const col = (name: Column["name"], sql: string, append: Column["append"]): Column => ({ name, sql, append });

/** The events table, column by column, in Appender order. */
export const COLUMNS: readonly Column[] = [
  col("event_id", "VARCHAR NOT NULL PRIMARY KEY", varchar),
  col("workspace_id", "VARCHAR NOT NULL", varchar),
  col("ts_start", "TIMESTAMP NOT NULL", timestamp),
  col("ts_end", "TIMESTAMP", timestamp),
  col("latency_ms", "INTEGER", integer),
  col("ttft_ms", "INTEGER", integer),
  col("trace_id", "VARCHAR", varchar),
  col("span_id", "VARCHAR", varchar),
  col("parent_span_id", "VARCHAR", varchar),
  col("kind", "VARCHAR NOT NULL", varchar),
  col("provider", "VARCHAR NOT NULL", varchar),
  col("api", "VARCHAR", varchar),
  col("model_requested", "VARCHAR", varchar),
  col("model", "VARCHAR NOT NULL", varchar),
  col("stream", "BOOLEAN NOT NULL", boolean),
  col("service_tier", "VARCHAR", varchar),
  col("batch", "BOOLEAN NOT NULL", boolean),
  col("status", "VARCHAR NOT NULL", varchar),
  col("http_status", "INTEGER", integer),
  col("error_type", "VARCHAR", varchar),
  col("attempt", "INTEGER NOT NULL", integer),
  col("request_id", "VARCHAR", varchar),
  ...USAGE_FIELDS.map((f) => col(f, "BIGINT NOT NULL", bigint)),
  col("usage_raw", "VARCHAR", json),
  col("cost_nanousd", "BIGINT NOT NULL", bigint),
  ...COST_FIELDS.map((f) => col(f, "BIGINT NOT NULL", bigint)),
  col("cost_source", "VARCHAR NOT NULL", varchar),
  col("price_ref", "VARCHAR NOT NULL", varchar),
  col("priced", "BOOLEAN NOT NULL", boolean),
  ...ATTRIBUTION_FIELDS.map((f) => col(f, "VARCHAR", varchar)),
  col("tags", "VARCHAR", json),
  col("metadata", "VARCHAR", json),
  col("data_mode", "VARCHAR NOT NULL", varchar),
  col("schema_version", "INTEGER NOT NULL", integer),
];

export function appendRecord(a: DuckDBAppender, r: CallRecord): void {
  for (const c of COLUMNS) c.append(a, r[c.name]);
  a.endRow();
}

/** SELECT list that reads rows back in record shape (timestamps as epoch ms). */
export const SELECT_RECORD = COLUMNS.map((c) =>
  c.sql.startsWith("TIMESTAMP") ? `epoch_ms(${c.name}) AS ${c.name}` : c.name,
).join(", ");

const JSON_COLUMNS = new Set(["usage_raw", "tags", "metadata"]);
const INT_COLUMNS = new Set<string>([...USAGE_FIELDS, "latency_ms", "ttft_ms", "http_status", "attempt", "schema_version", "ts_start", "ts_end"]);

/** Row object from DuckDB → CallRecord (JSON columns parsed, token counts as numbers, money as bigint). */
export function rowToRecord(row: Record<string, unknown>): CallRecord {
  const out: Record<string, unknown> = {};
  for (const c of COLUMNS) {
    const v = row[c.name];
    if (v == null) out[c.name] = null;
    else if (JSON_COLUMNS.has(c.name)) out[c.name] = JSON.parse(v as string);
    else if (INT_COLUMNS.has(c.name)) out[c.name] = Number(v);
    else out[c.name] = v;
  }
  return out as unknown as CallRecord;
}
