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
import {
  ATTRIBUTION_FIELDS,
  CACHED_MEDIA_FIELDS,
  type CallRecord,
  FIRST_LAYOUT_COST_FIELDS,
  FIRST_LAYOUT_TOKEN_FIELDS,
  FIRST_LAYOUT_TOOL_CALL_FIELDS,
  TOOL_CALLS_COST_FIELD,
} from "@tollgate/core/fields";

type Kind = "varchar" | "int32" | "int64" | "money" | "bool" | "timestamp";

/** How one record field is stored: its SQL type, its vector layout, and its value for that layout. */
interface Column {
  name: keyof CallRecord & string;
  sql: string;
  kind: Kind;
  type: DuckDBType;
  value: (v: unknown) => string | number | bigint | boolean | null;
  /** A JSON column: its value comes back parsed, this when stored as NULL. */
  empty?: () => unknown;
  /** Text that rarely repeats within a batch (ids, raw usage): not worth looking up to share. */
  distinct?: boolean;
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
  money: BIGINT,
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
const idText = (name: Column["name"], sql = "VARCHAR") => ({ ...varchar(name, sql), distinct: true });
const integer = (name: Column["name"], sql = "INTEGER") => column("int32", name, sql);
const bigint = (name: Column["name"]) => column("int64", name, "BIGINT NOT NULL");
const money = (name: Column["name"]) => column("money", name, "BIGINT NOT NULL");
const boolean = (name: Column["name"]) => column("bool", name, "BOOLEAN NOT NULL");
const timestamp = (name: Column["name"], sql = "TIMESTAMP") => column("timestamp", name, sql);
const jsonText = (name: Column["name"], empty: () => unknown, distinct = false) => ({
  ...column("varchar", name, "VARCHAR", json),
  empty,
  distinct,
});

/** The events table, column by column, in Appender order. */
export const COLUMNS: readonly Column[] = [
  // Uniqueness lives in the narrow event_ids table (see migrations): the wide table has no index.
  idText("event_id", "VARCHAR NOT NULL"),
  varchar("workspace_id", "VARCHAR NOT NULL"),
  timestamp("ts_start", "TIMESTAMP NOT NULL"),
  timestamp("ts_end"),
  integer("latency_ms"),
  integer("ttft_ms"),
  idText("trace_id"),
  idText("span_id"),
  idText("parent_span_id"),
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
  idText("request_id"),
  ...FIRST_LAYOUT_TOKEN_FIELDS.map((f) => bigint(f)),
  jsonText("usage_raw", () => null, true),
  money("cost_nanousd"),
  ...FIRST_LAYOUT_COST_FIELDS.map((f) => money(f)),
  varchar("cost_source", "VARCHAR NOT NULL"),
  varchar("price_ref", "VARCHAR NOT NULL"),
  boolean("priced"),
  ...ATTRIBUTION_FIELDS.map((f) => varchar(f)),
  jsonText("tags", () => []),
  // Metadata mostly carries per-call values (span names, response ids): looking it up to share costs more.
  jsonText("metadata", () => ({}), true),
  varchar("data_mode", "VARCHAR NOT NULL"),
  integer("schema_version", "INTEGER NOT NULL"),
  varchar("key_id"),
  // Migration 6: added after the first layout, so last.
  ...FIRST_LAYOUT_TOOL_CALL_FIELDS.map((f) => bigint(f)),
  money(TOOL_CALLS_COST_FIELD),
  // Migration 7.
  bigint("web_search_preview_requests"),
  // Migration 8.
  ...CACHED_MEDIA_FIELDS.map((f) => bigint(f)),
  // Migration 9.
  bigint("output_image_tokens"),
  // Migration 10.
  bigint("input_audio_ms"),
  idText("parent_event_id"),
  // Migration 11.
  bigint("input_characters"),
];

const TYPES = COLUMNS.map((c) => c.type);
/** DuckDB's vector size: the most rows one data chunk holds. */
const CHUNK_ROWS = 2048;
const TWO_32 = 4294967296;

/**
 * A batch of records column by column: what the store appends and what crosses to the store thread.
 * Numbers and money sit in typed arrays (moved between threads, not copied); texts are indexes into one
 * list of the batch's distinct strings, so a repeated provider or feature is copied once per batch.
 * Cloning ~60-field record objects across threads cost more than storing them.
 */
export interface RecordColumns {
  rows: number;
  /** One array per COLUMNS entry: text index (-1 = NULL), number (NaN = NULL), or nano-USD. */
  data: (Int32Array | Float64Array | BigInt64Array)[];
  texts: string[];
}

export function toColumns(records: readonly CallRecord[]): RecordColumns {
  const n = records.length;
  const texts: string[] = [];
  const index = new Map<string, number>();
  const keep = (v: string | null): number => (v === null ? -1 : texts.push(v) - 1);
  const intern = (v: string | null): number => {
    if (v === null) return -1;
    let i = index.get(v);
    if (i === undefined) {
      i = texts.push(v) - 1;
      index.set(v, i);
    }
    return i;
  };
  const data = COLUMNS.map((c) =>
    c.kind === "money"
      ? new BigInt64Array(n)
      : c.kind === "varchar"
        ? new Int32Array(n)
        : new Float64Array(n),
  );
  fillColumns(records, data, intern, keep, VALUES);
  return { rows: n, data, texts };
}

const VALUES = COLUMNS.map((c) => c.value);
/**
 * Writes every record's fields into the column arrays: generated from COLUMNS once, so each field is read
 * by its name (one hidden class for all records) rather than by a computed key per column.
 */
const fillColumns = new Function(
  "records",
  "d",
  "intern",
  "keep",
  "value",
  `for (let k = 0; k < records.length; k++) {
    const r = records[k];
    ${COLUMNS.map((c, i) => {
      const v = `r.${c.name}`;
      if (c.kind === "varchar") return `d[${i}][k] = ${c.distinct ? "keep" : "intern"}(value[${i}](${v}));`;
      if (c.kind === "money") return `d[${i}][k] = ${v};`;
      return `d[${i}][k] = ${v} == null ? NaN : +${v};`;
    }).join("\n    ")}
  }`,
) as (
  records: readonly CallRecord[],
  d: RecordColumns["data"],
  intern: (v: string | null) => number,
  keep: (v: string | null) => number,
  value: Column["value"][],
) => void;

/** The buffers to move (not copy) with a postMessage of the batch. */
export const transferList = (cols: RecordColumns): ArrayBuffer[] =>
  cols.data.map((a) => a.buffer as ArrayBuffer);

/** Builds the records back, one object literal of every field per row (generated once from COLUMNS). */
export function fromColumns(cols: RecordColumns): CallRecord[] {
  const out = new Array<CallRecord>(cols.rows);
  for (let k = 0; k < cols.rows; k++) out[k] = makeRecord(cols.data, cols.texts, k, readJson);
  return out;
}

function readJson(text: string | null, empty: () => unknown): unknown {
  return text === null ? empty() : JSON.parse(text);
}
const EMPTIES = COLUMNS.map((c) => c.empty);
const makeRecord = new Function(
  "d",
  "t",
  "k",
  "json",
  `const e = this; return { ${COLUMNS.map((c, i) => {
    const v = `d[${i}][k]`;
    const text = `(${v} < 0 ? null : t[${v}])`;
    if (c.empty) return `${c.name}: json(${text}, e[${i}])`;
    if (c.kind === "varchar") return `${c.name}: ${text}`;
    if (c.kind === "money") return `${c.name}: ${v}`;
    if (c.kind === "bool") return `${c.name}: ${v} === 1`;
    return `${c.name}: (${v} !== ${v} ? null : ${v})`;
  }).join(", ")} };`,
).bind(EMPTIES) as (d: RecordColumns["data"], t: string[], k: number, json: typeof readJson) => CallRecord;

/**
 * Appends the batch's rows (all, or those listed in `only`) through the Appender one data chunk at a
 * time, writing each column's vector as one buffer (numbers, validity bits) instead of one native call
 * or BigInt per value. That per-value work was most of the ingest cost with ~60 columns.
 */
export function appendColumns(a: DuckDBAppender, cols: RecordColumns, only?: readonly number[]): void {
  appendChunks(a, cols, ALL_COLUMNS, TYPES, only);
}

/** Positions in COLUMNS (and so in RecordColumns.data) of the columns an Appender takes, in its order. */
const ALL_COLUMNS = COLUMNS.map((_, i) => i);

function appendChunks(
  a: DuckDBAppender,
  cols: RecordColumns,
  columns: readonly number[],
  types: DuckDBType[],
  only?: readonly number[],
): void {
  const total = only ? only.length : cols.rows;
  for (let off = 0; off < total; off += CHUNK_ROWS) {
    const rows = Math.min(CHUNK_ROWS, total - off);
    const pick = only ? only.slice(off, off + rows) : null;
    const chunk = DuckDBDataChunk.create(types, rows);
    columns.forEach((at, i) => {
      const vector = duckdb.data_chunk_get_vector(chunk.chunk, i);
      fillVector(vector, COLUMNS[at]!, cols.data[at]!, cols.texts, off, rows, pick);
    });
    a.appendDataChunk(chunk);
  }
}

function fillVector(
  vector: duckdb.Vector,
  c: Column,
  data: Int32Array | Float64Array | BigInt64Array,
  texts: readonly string[],
  off: number,
  n: number,
  pick: readonly number[] | null,
): void {
  const validity = new Uint32Array(Math.ceil(n / 64) * 2).fill(0xffffffff);
  let nulls = 0;
  const setNull = (k: number) => {
    validity[k >>> 5]! &= ~(1 << (k & 31));
    nulls++;
  };
  const row = (k: number) => (pick ? pick[k]! : off + k);
  if (c.kind === "varchar") {
    const idx = data as Int32Array;
    const only = sameText(idx, n, row);
    if (only >= 0) {
      // One text in every row (a workspace, a data mode, often a model): a constant vector, one native call.
      duckdb.vector_reference_value(vector, duckdb.create_varchar(texts[only]!));
      return;
    }
    for (let k = 0; k < n; k++) {
      const i = idx[row(k)]!;
      if (i < 0) setNull(k);
      else duckdb.vector_assign_string_element(vector, k, texts[i]!);
    }
  } else if (c.kind === "money") {
    const money = data as BigInt64Array;
    const buf = pick ? BigInt64Array.from(pick, (r) => money[r]!) : money.slice(off, off + n);
    duckdb.copy_data_to_vector(vector, 0, buf.buffer, 0, buf.byteLength);
  } else {
    const nums = data as Float64Array;
    const width = c.kind === "bool" ? 1 : c.kind === "int32" ? 4 : 8;
    const buf = new ArrayBuffer(n * width);
    const u32 = width === 8 ? new Uint32Array(buf) : null;
    const i32 = width === 4 ? new Int32Array(buf) : null;
    const u8 = width === 1 ? new Uint8Array(buf) : null;
    const scale = c.kind === "timestamp" ? 1000 : 1;
    for (let k = 0; k < n; k++) {
      const v = nums[row(k)]!;
      if (Number.isNaN(v)) setNull(k);
      else if (u8) u8[k] = v;
      else if (i32) i32[k] = v;
      else {
        // Non-negative integers below 2^53 (tokens, epoch ms): write both 32-bit halves, no BigInt.
        const x = v * scale;
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

/** The text index every one of the n rows holds, or -1 when they differ or are NULL. */
function sameText(idx: Int32Array, n: number, row: (k: number) => number): number {
  const first = idx[row(0)]!;
  for (let k = 1; k < n && first >= 0; k++) if (idx[row(k)] !== first) return -1;
  return first;
}

/** SELECT list that reads rows back in record shape (timestamps as epoch ms). */
export const SELECT_RECORD = COLUMNS.map((c) =>
  c.sql.startsWith("TIMESTAMP") ? `epoch_ms(${c.name}) AS ${c.name}` : c.name,
).join(", ");

/** (workspace, id) of one batch, staged per connection and inserted into event_ids to find the new ones. */
export const STAGING_IDS_DDL = "CREATE TEMP TABLE staging_ids (workspace_id VARCHAR, event_id VARCHAR)";
const ID_COLUMNS = ["workspace_id", "event_id"].map((n) => COLUMNS.findIndex((c) => c.name === n));

export function appendIds(a: DuckDBAppender, cols: RecordColumns, only?: readonly number[]): void {
  appendChunks(a, cols, ID_COLUMNS, [VARCHAR, VARCHAR], only);
}

const NUMBER_KINDS = new Set<Kind>(["int32", "int64", "timestamp"]);

/** Row object from DuckDB → CallRecord (JSON columns parsed, token counts as numbers, money as bigint). */
export function rowToRecord(row: Record<string, unknown>): CallRecord {
  const out: Record<string, unknown> = {};
  for (const c of COLUMNS) {
    const v = row[c.name];
    if (c.empty) out[c.name] = v == null ? c.empty() : JSON.parse(v as string);
    else if (v == null) out[c.name] = null;
    else out[c.name] = NUMBER_KINDS.has(c.kind) ? Number(v) : v;
  }
  return out as unknown as CallRecord;
}
