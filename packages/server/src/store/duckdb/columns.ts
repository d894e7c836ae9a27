import {
  BIGINT,
  BOOLEAN,
  type DuckDBAppender,
  DuckDBDataChunk,
  type DuckDBType,
  INTEGER,
  TIMESTAMP,
  VARCHAR,
} from "@duckdb/node-api";
import duckdb from "@duckdb/node-bindings";
import { ATTRIBUTION_FIELDS, type CallRecord, COST_FIELDS, USAGE_FIELDS } from "@tollgate/core";

type Kind = "varchar" | "int32" | "int64" | "bool" | "timestamp";

/** How one record field is stored: its SQL type, its vector layout, and its value for that layout. */
interface Column {
  name: keyof CallRecord & string;
  sql: string;
  kind: Kind;
  type: DuckDBType;
  value: (v: unknown) => string | number | bigint | boolean | null;
}

const same = (v: unknown) => (v ?? null) as string | number | boolean | null;
// Empty tags/metadata are stored as NULL (read back as []/{}): most rows have none, and every string
// written costs a native call.
const json = (v: unknown) =>
  v == null || (typeof v === "object" && Object.keys(v).length === 0) ? null : JSON.stringify(v);
const TYPE_OF: Record<Kind, DuckDBType> = {
  varchar: VARCHAR,
  int32: INTEGER,
  int64: BIGINT,
  bool: BOOLEAN,
  timestamp: TIMESTAMP,
};
const column = (kind: Kind, name: Column["name"], sql: string, value = same): Column => ({
  name,
  sql,
  kind,
  type: TYPE_OF[kind],
  value,
});

const varchar = (name: Column["name"], sql = "VARCHAR") => column("varchar", name, sql);
const integer = (name: Column["name"], sql = "INTEGER") => column("int32", name, sql);
const bigint = (name: Column["name"]) => column("int64", name, "BIGINT NOT NULL");
const boolean = (name: Column["name"]) => column("bool", name, "BOOLEAN NOT NULL");
const timestamp = (name: Column["name"], sql = "TIMESTAMP") => column("timestamp", name, sql);
const jsonText = (name: Column["name"]) => column("varchar", name, "VARCHAR", json);

/** The events table, column by column, in Appender order. */
export const COLUMNS: readonly Column[] = [
  // Uniqueness lives in the narrow event_ids table (see migrations): the wide table has no index.
  varchar("event_id", "VARCHAR NOT NULL"),
  varchar("workspace_id", "VARCHAR NOT NULL"),
  timestamp("ts_start", "TIMESTAMP NOT NULL"),
  timestamp("ts_end"),
  integer("latency_ms"),
  integer("ttft_ms"),
  varchar("trace_id"),
  varchar("span_id"),
  varchar("parent_span_id"),
  varchar("kind", "VARCHAR NOT NULL"),
  varchar("provider", "VARCHAR NOT NULL"),
  varchar("api"),
  varchar("model_requested"),
  varchar("model", "VARCHAR NOT NULL"),
  boolean("stream"),
  varchar("service_tier"),
  boolean("batch"),
  varchar("status", "VARCHAR NOT NULL"),
  integer("http_status"),
  varchar("error_type"),
  integer("attempt", "INTEGER NOT NULL"),
  varchar("request_id"),
  ...USAGE_FIELDS.map((f) => bigint(f)),
  jsonText("usage_raw"),
  bigint("cost_nanousd"),
  ...COST_FIELDS.map((f) => bigint(f)),
  varchar("cost_source", "VARCHAR NOT NULL"),
  varchar("price_ref", "VARCHAR NOT NULL"),
  boolean("priced"),
  ...ATTRIBUTION_FIELDS.map((f) => varchar(f)),
  jsonText("tags"),
  jsonText("metadata"),
  varchar("data_mode", "VARCHAR NOT NULL"),
  integer("schema_version", "INTEGER NOT NULL"),
  varchar("key_id"),
];

const TYPES = COLUMNS.map((c) => c.type);
/** DuckDB's vector size: the most rows one data chunk holds. */
const CHUNK_ROWS = 2048;
const TWO_32 = 4294967296;

/**
 * Appends records through the Appender one data chunk at a time, writing each column's vector as one
 * buffer (numbers, validity bits) instead of one native call or BigInt mask per value. That per-value
 * work was most of the ingest cost with ~55 columns.
 */
export function appendRecords(a: DuckDBAppender, records: readonly CallRecord[]): void {
  for (let off = 0; off < records.length; off += CHUNK_ROWS) {
    const rows = records.slice(off, off + CHUNK_ROWS);
    const chunk = DuckDBDataChunk.create(TYPES, rows.length);
    COLUMNS.forEach((c, i) => {
      fillVector(duckdb.data_chunk_get_vector(chunk.chunk, i), c, rows);
    });
    a.appendDataChunk(chunk);
  }
}

function fillVector(vector: duckdb.Vector, c: Column, rows: readonly CallRecord[]): void {
  const n = rows.length;
  const validity = new Uint32Array(Math.ceil(n / 64) * 2).fill(0xffffffff);
  let nulls = 0;
  const setNull = (k: number) => {
    validity[k >>> 5]! &= ~(1 << (k & 31));
    nulls++;
  };
  if (c.kind === "varchar") {
    for (let k = 0; k < n; k++) {
      const v = c.value(rows[k]![c.name]);
      if (v == null) setNull(k);
      else duckdb.vector_assign_string_element(vector, k, v as string);
    }
  } else {
    const width = c.kind === "bool" ? 1 : c.kind === "int32" ? 4 : 8;
    const buf = new ArrayBuffer(n * width);
    const u32 = width === 8 ? new Uint32Array(buf) : null;
    const i64 = width === 8 ? new BigInt64Array(buf) : null;
    const i32 = width === 4 ? new Int32Array(buf) : null;
    const u8 = width === 1 ? new Uint8Array(buf) : null;
    for (let k = 0; k < n; k++) {
      const v = c.value(rows[k]![c.name]);
      if (v == null) setNull(k);
      else if (u8) u8[k] = v ? 1 : 0;
      else if (i32) i32[k] = v as number;
      else if (typeof v === "bigint") i64![k] = v;
      else {
        // Non-negative integers below 2^53 (tokens, epoch ms): write both 32-bit halves, no BigInt.
        const x = c.kind === "timestamp" ? (v as number) * 1000 : (v as number);
        u32![2 * k] = x % TWO_32;
        u32![2 * k + 1] = Math.floor(x / TWO_32);
      }
    }
    duckdb.copy_data_to_vector(vector, 0, buf, 0, buf.byteLength);
  }
  if (nulls) {
    duckdb.vector_ensure_validity_writable(vector);
    duckdb.copy_data_to_vector_validity(vector, 0, validity.buffer, 0, validity.byteLength);
  }
}

/** SELECT list that reads rows back in record shape (timestamps as epoch ms). */
export const SELECT_RECORD = COLUMNS.map((c) =>
  c.sql.startsWith("TIMESTAMP") ? `epoch_ms(${c.name}) AS ${c.name}` : c.name,
).join(", ");

/** (workspace, id) of one batch, staged per connection and inserted into event_ids to find the new ones. */
export const STAGING_IDS_DDL = "CREATE TEMP TABLE staging_ids (workspace_id VARCHAR, event_id VARCHAR)";
const ID_COLUMNS = ["workspace_id", "event_id"].map((n) => COLUMNS.find((c) => c.name === n)!);

export function appendIds(a: DuckDBAppender, records: readonly CallRecord[]): void {
  for (let off = 0; off < records.length; off += CHUNK_ROWS) {
    const rows = records.slice(off, off + CHUNK_ROWS);
    const chunk = DuckDBDataChunk.create([VARCHAR, VARCHAR], rows.length);
    ID_COLUMNS.forEach((c, i) => {
      fillVector(duckdb.data_chunk_get_vector(chunk.chunk, i), c, rows);
    });
    a.appendDataChunk(chunk);
  }
}

const JSON_COLUMNS = new Set(["usage_raw", "tags", "metadata"]);
const EMPTY: Record<string, () => unknown> = { tags: () => [], metadata: () => ({}) };
const INT_COLUMNS = new Set<string>([
  ...USAGE_FIELDS,
  "latency_ms",
  "ttft_ms",
  "http_status",
  "attempt",
  "schema_version",
  "ts_start",
  "ts_end",
]);

/** Row object from DuckDB → CallRecord (JSON columns parsed, token counts as numbers, money as bigint). */
export function rowToRecord(row: Record<string, unknown>): CallRecord {
  const out: Record<string, unknown> = {};
  for (const c of COLUMNS) {
    const v = row[c.name];
    if (v == null) out[c.name] = EMPTY[c.name]?.() ?? null;
    else if (JSON_COLUMNS.has(c.name)) out[c.name] = JSON.parse(v as string);
    else if (INT_COLUMNS.has(c.name)) out[c.name] = Number(v);
    else out[c.name] = v;
  }
  return out as unknown as CallRecord;
}
