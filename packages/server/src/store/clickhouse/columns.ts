import {
  ATTRIBUTION_FIELDS,
  CACHED_MEDIA_FIELDS,
  type CallRecord,
  FIRST_LAYOUT_COST_FIELDS,
  FIRST_LAYOUT_TOKEN_FIELDS,
  FIRST_LAYOUT_TOOL_CALL_FIELDS,
  TOOL_CALLS_COST_FIELD,
} from "@tollgate/core/fields";
import { utcDay } from "./sql.js";

type Kind = "text" | "lowtext" | "int" | "nullint" | "bigint" | "bool" | "json" | "tags";

/** How one record field is stored in ClickHouse. */
interface Column {
  name: keyof CallRecord & string;
  kind: Kind;
}

const col =
  (kind: Kind) =>
  (name: Column["name"]): Column => ({ name, kind });
const text = col("text");
const low = col("lowtext");

/**
 * The events table, column by column. Optional text is '' for none (record ids are never empty), so
 * text columns need no Nullable wrapper; low-cardinality ones (models, features, statuses) are
 * dictionary-encoded.
 */
export const COLUMNS: readonly Column[] = [
  text("event_id"),
  low("workspace_id"),
  col("int")("ts_start"),
  col("nullint")("ts_end"),
  col("nullint")("latency_ms"),
  col("nullint")("ttft_ms"),
  text("trace_id"),
  text("span_id"),
  text("parent_span_id"),
  low("kind"),
  low("provider"),
  low("api"),
  low("model_requested"),
  low("model"),
  col("bool")("stream"),
  low("service_tier"),
  col("bool")("batch"),
  low("status"),
  col("nullint")("http_status"),
  low("error_type"),
  col("int")("attempt"),
  text("request_id"),
  ...FIRST_LAYOUT_TOKEN_FIELDS.map(col("int")),
  col("json")("usage_raw"),
  col("bigint")("cost_nanousd"),
  ...FIRST_LAYOUT_COST_FIELDS.map(col("bigint")),
  low("cost_source"),
  low("price_ref"),
  col("bool")("priced"),
  ...ATTRIBUTION_FIELDS.map((f) =>
    ["user_id", "customer_id", "agent_run_id", "session_id"].includes(f) ? text(f) : low(f),
  ),
  col("tags")("tags"),
  col("json")("metadata"),
  low("data_mode"),
  col("int")("schema_version"),
  low("key_id"),
  // Added after the first layout: last, in the order added, and added to older tables on open (ADDED_COLUMNS).
  ...FIRST_LAYOUT_TOOL_CALL_FIELDS.map(col("int")),
  col("bigint")(TOOL_CALLS_COST_FIELD),
  col("int")("web_search_preview_requests"),
  ...CACHED_MEDIA_FIELDS.map(col("int")),
  col("int")("output_image_tokens"),
  col("int")("input_audio_ms"),
  text("parent_event_id"),
  col("int")("input_characters"),
];

const SQL_TYPE: Record<Kind, string> = {
  text: "String",
  lowtext: "LowCardinality(String)",
  int: "Int64",
  nullint: "Nullable(Int64)",
  bigint: "Int64",
  bool: "UInt8",
  json: "String",
  tags: "Array(String)",
};

const columnDdl = (c: Column) => `${c.name} ${SQL_TYPE[c.kind]}`;

/** Column definitions of the events table (plus `day`, the UTC date partitions are cut by). */
export const EVENTS_COLUMNS_DDL = ["day Date", ...COLUMNS.map(columnDdl)].join(",\n  ");

/**
 * Columns added to the events table after its first layout, name → definition: a table made before them
 * gets them on open. 18.16 has no ADD COLUMN IF NOT EXISTS, so what is missing is read from system.columns.
 */
export const ADDED_COLUMNS: ReadonlyMap<string, string> = new Map(
  COLUMNS.slice(COLUMNS.findIndex((c) => c.name === FIRST_LAYOUT_TOOL_CALL_FIELDS[0])).map((c) => [
    c.name,
    columnDdl(c),
  ]),
);

/** A record as a JSONEachRow row: money as decimal strings (exact int64), none as ''. */
export function recordToRow(r: CallRecord): Record<string, unknown> {
  const row: Record<string, unknown> = { day: utcDay(r.ts_start) };
  for (const c of COLUMNS) {
    const v = r[c.name] as unknown;
    switch (c.kind) {
      case "text":
      case "lowtext":
        row[c.name] = v ?? "";
        break;
      case "bigint":
        row[c.name] = String(v);
        break;
      case "bool":
        row[c.name] = v ? 1 : 0;
        break;
      case "json":
        row[c.name] =
          v == null || (typeof v === "object" && Object.keys(v).length === 0) ? "" : JSON.stringify(v);
        break;
      default:
        row[c.name] = v ?? null;
    }
  }
  return row;
}

const EMPTY_JSON: Record<string, unknown> = { usage_raw: null, metadata: {} };
/** Non-model records keep provider and model as '' (the record schema's own convention), not NULL. */
const KEEP_EMPTY = new Set(["provider", "model", "workspace_id", "event_id"]);

/** A JSONEachRow row read back (64-bit integers arrive as strings) → CallRecord. */
export function rowToRecord(row: Record<string, unknown>): CallRecord {
  const out: Record<string, unknown> = {};
  for (const c of COLUMNS) {
    const v = row[c.name];
    switch (c.kind) {
      case "text":
      case "lowtext":
        out[c.name] = v === "" && !KEEP_EMPTY.has(c.name) ? null : v;
        break;
      case "bigint":
        out[c.name] = BigInt(v as string);
        break;
      case "bool":
        out[c.name] = Number(v) === 1;
        break;
      case "json":
        out[c.name] = v === "" ? (EMPTY_JSON[c.name] ?? null) : JSON.parse(v as string);
        break;
      case "nullint":
        out[c.name] = v == null ? null : Number(v);
        break;
      default:
        out[c.name] = Array.isArray(v) ? v : Number(v);
    }
  }
  return out as unknown as CallRecord;
}

export const SELECT_RECORD = COLUMNS.map((c) => c.name).join(", ");
