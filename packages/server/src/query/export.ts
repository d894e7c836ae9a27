import {
  ATTRIBUTION_FIELDS,
  CACHED_MEDIA_FIELDS,
  type CallRecord,
  FIRST_LAYOUT_COST_FIELDS,
  FIRST_LAYOUT_TOKEN_FIELDS,
  FIRST_LAYOUT_TOOL_CALL_FIELDS,
  TOOL_CALLS_COST_FIELD,
} from "@tollgate/core";
import { inQueryTimes } from "../query-time.js";
import type { EventFilter, EventStore, JsonRows, QueryCursor } from "../store/types.js";

/**
 * The columns of a calls export, in this order, named as the call record's fields (DESIGN.md): new fields
 * are only ever appended, so scripts reading exports by position or name keep working.
 */
export const EXPORT_COLUMNS = [
  "event_id",
  "workspace_id",
  "trace_id",
  "span_id",
  "parent_span_id",
  "ts_start",
  "ts_end",
  "latency_ms",
  "ttft_ms",
  "kind",
  "provider",
  "api",
  "model_requested",
  "model",
  "stream",
  "service_tier",
  "batch",
  "status",
  "http_status",
  "error_type",
  "attempt",
  "request_id",
  ...FIRST_LAYOUT_TOKEN_FIELDS,
  "cost_nanousd",
  ...FIRST_LAYOUT_COST_FIELDS,
  "cost_source",
  "price_ref",
  "priced",
  ...ATTRIBUTION_FIELDS,
  "tags",
  "metadata",
  "data_mode",
  "key_id",
  "usage_raw",
  "schema_version",
  ...FIRST_LAYOUT_TOOL_CALL_FIELDS,
  TOOL_CALLS_COST_FIELD,
  "web_search_preview_requests",
  ...CACHED_MEDIA_FIELDS,
  "output_image_tokens",
  "input_audio_ms",
  "parent_event_id",
  "input_characters",
] as const satisfies readonly (keyof CallRecord)[];

/** The integer columns of a calls export: times (epoch ms), durations, counts and money (nano-USD). */
const INTEGER_COLUMNS: ReadonlySet<string> = new Set([
  "ts_start",
  "ts_end",
  "latency_ms",
  "ttft_ms",
  "http_status",
  "attempt",
  ...FIRST_LAYOUT_TOKEN_FIELDS,
  "cost_nanousd",
  ...FIRST_LAYOUT_COST_FIELDS,
  "schema_version",
  ...FIRST_LAYOUT_TOOL_CALL_FIELDS,
  TOOL_CALLS_COST_FIELD,
  "web_search_preview_requests",
  ...CACHED_MEDIA_FIELDS,
  "output_image_tokens",
  "input_audio_ms",
  "input_characters",
]);
const BOOLEAN_COLUMNS: ReadonlySet<string> = new Set(["stream", "batch", "priced"]);
/** The columns holding JSON values: usage_raw is whatever the provider sent (an object, a number, a string…). */
const JSON_COLUMNS: ReadonlySet<string> = new Set(["tags", "metadata", "usage_raw"]);

/**
 * An export row's values as a text export (CSV, parquet) writes them: JSON columns as their JSON text, so
 * a usage_raw "5" (the text) and 5 (the number) stay apart; none stays none.
 */
export function asTextRow(columns: readonly string[]): (row: readonly unknown[]) => unknown[] {
  const json = columns.map((c) => JSON_COLUMNS.has(c));
  return (row) => row.map((v, i) => (json[i] && v !== null && v !== undefined ? JSON.stringify(v) : v));
}

/**
 * A column's type in a typed export (parquet), as the call record has it: never guessed from the values,
 * which would make a prompt_version "1.10" the number 1.1 and a column's type differ from export to export.
 * Text columns (ids, attribution, tags, metadata and usage_raw as JSON) are VARCHAR.
 */
export function exportColumnType(column: string): "BIGINT" | "BOOLEAN" | "VARCHAR" {
  return INTEGER_COLUMNS.has(column) ? "BIGINT" : BOOLEAN_COLUMNS.has(column) ? "BOOLEAN" : "VARCHAR";
}

/** An opaque page cursor: base64url of the last record's start time and event id. */
export function encodeCursor(c: QueryCursor): string {
  return Buffer.from(`${c.ts}:${c.id}`).toString("base64url");
}

/** A cursor encodeCursor gave out, or null: its time is a record's, so within the times a query may name. */
export function decodeCursor(text: string): QueryCursor | null {
  const m = /^(\d{1,16}):([0-9a-f-]{36})$/.exec(Buffer.from(text, "base64url").toString("utf8"));
  return m && inQueryTimes(Number(m[1])) ? { ts: Number(m[1]), id: m[2]! } : null;
}

/** A page of calls for an export: rows in (ts_start, event_id) order and the cursor of the next page. */
export interface ExportPage {
  /** The rows as JSON text, each call the array of its EXPORT_COLUMNS values (money as decimal strings). */
  rows: JsonRows;
  next: string | null;
  /** Every call of the filter: counted on the first page only, for progress. */
  total: number | null;
}

export async function exportPage(
  store: Pick<EventStore, "queryJson" | "count">,
  filter: EventFilter,
  after: QueryCursor | null,
  limit: number,
): Promise<ExportPage> {
  const page = await store.queryJson({ ...filter, limit, ...(after ? { after } : {}) }, EXPORT_COLUMNS);
  return {
    rows: page,
    next: page.rows === limit && page.last ? encodeCursor(page.last) : null,
    total: after ? null : await store.count(filter),
  };
}

/**
 * GET /api/export/calls's answer as JSON text: the head's members, then the page's rows as the store wrote
 * them (a page is megabytes: parsing it only to write it again cost more than reading it), `next` and `total`.
 */
export function exportAnswer(
  head: { generated_at: string; window: unknown; coverage: unknown; columns: readonly string[] },
  page: ExportPage,
): string {
  const members = JSON.stringify(head).slice(0, -1); // without its closing brace
  return `${members},"rows":[${page.rows.json}],"next":${JSON.stringify(page.next)},"total":${JSON.stringify(page.total)}}`;
}
