import type { DuckDBValue } from "@duckdb/node-api";
import { STREAM_OPTIONS_REFUSED } from "@tollgate/core/fields";
import { type EventFilter, isFilterField, type QueryCursor } from "../types.js";

// SQL fragments every event query shares, so each definition lives in one place.
/** A model call: analytics count these as calls and requests; tool, agent and other records are structure. */
export const MODEL_CALL = "kind IN ('llm', 'embedding')";
/**
 * One of an agent run's LLM calls: a batch's results are no loop's calls, a hosted tool's model call its
 * call's, and an attempt refused for the stream_options the gateway added is its re-send's.
 */
export const RUN_LLM_CALL = `${MODEL_CALL} AND NOT batch AND parent_event_id IS NULL AND error_type IS DISTINCT FROM '${STREAM_OPTIONS_REFUSED}'`;
/**
 * A record analytics read: every model call, and any other record that carries a cost (a tool's reported
 * cost is spend, as `spend`, budgets and exports count it, so a window's money is one amount everywhere).
 * A traced tool or agent span at $0 adds nothing, not even an empty row.
 */
export const MODEL_CALL_OR_COSTED = `(${MODEL_CALL} OR cost_nanousd <> 0)`;
/** A call whose cost is not known: a model call without a price or without usage. */
export const COST_UNKNOWN = `NOT priced AND ${MODEL_CALL}`;
/** All input tokens of a record (its input categories are disjoint). */
export const INPUT_TOKENS =
  "input_uncached_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens + input_audio_tokens + image_tokens + cache_audio_read_tokens + cache_image_read_tokens";
/** A record's UTC day as YYYY-MM-DD. */
export const UTC_DAY = "strftime(date_trunc('day', ts_start), '%Y-%m-%d')";
/**
 * Requests, counted by their first attempt: retries (attempt > 1) share its request_id and are not more
 * requests. A request succeeded when one of its attempts has status ok (the last one). A hosted tool's
 * model call (parent_event_id set) takes its response's attempt and is always ok: its spend counts, but it
 * is neither another request nor a success of its own.
 */
const FIRST_ATTEMPT = "attempt = 1 AND parent_event_id IS NULL";
const SUCCEEDED = "status = 'ok' AND parent_event_id IS NULL";
export const REQUESTS = `count(*) FILTER (WHERE ${FIRST_ATTEMPT})`;
export const OK_REQUESTS = `count(*) FILTER (WHERE ${SUCCEEDED})`;
/** REQUESTS and OK_REQUESTS among MODEL_CALL_OR_COSTED records: a costed tool record is no request. */
export const MODEL_REQUESTS = `count(*) FILTER (WHERE ${FIRST_ATTEMPT} AND ${MODEL_CALL})`;
export const MODEL_OK_REQUESTS = `count(*) FILTER (WHERE ${SUCCEEDED} AND ${MODEL_CALL})`;

/** WHERE clause with positional parameters; column names come from a fixed allow-list, never from input. */
export function whereClause(f: EventFilter): { sql: string; params: DuckDBValue[] } {
  const parts = ["workspace_id = $1"];
  const params: DuckDBValue[] = [f.workspaceId];
  if (f.from !== undefined) {
    params.push(f.from);
    parts.push(`ts_start >= make_timestamp($${params.length}::BIGINT * 1000)`);
  }
  if (f.to !== undefined) {
    params.push(f.to);
    parts.push(`ts_start < make_timestamp($${params.length}::BIGINT * 1000)`);
  }
  if (f.deploymentOrUnset !== undefined) {
    params.push(f.deploymentOrUnset);
    parts.push(`(deployment = $${params.length} OR deployment IS NULL)`);
  }
  for (const [k, v] of Object.entries(f.where ?? {})) {
    if (v === undefined) continue;
    if (!isFilterField(k)) throw new Error(`not a filterable field: ${k}`);
    params.push(v);
    parts.push(`${k} = $${params.length}`);
  }
  return { sql: parts.join(" AND "), params };
}

/**
 * A page of records in (ts_start, event_id) order: the filter's WHERE clause and, after a cursor, only what
 * sorts past it; the limit bounded to 1..100,000.
 */
export function pageClause(f: EventFilter & { limit?: number; after?: QueryCursor }): {
  sql: string;
  params: DuckDBValue[];
  limit: number;
} {
  const { sql, params } = whereClause(f);
  const limit = Math.min(Math.max(f.limit ?? 1000, 1), 100_000);
  if (!f.after) return { sql, params, limit };
  params.push(f.after.ts, f.after.id);
  const t = `make_timestamp($${params.length - 1}::BIGINT * 1000)`;
  // Strictly after the last (ts_start, event_id) seen. The bound on ts_start alone lets the scan skip what
  // starts before the cursor by its row groups' min/max, which it cannot read from the OR: a later page of an
  // export read every earlier call again.
  const after = `ts_start >= ${t} AND (ts_start > ${t} OR (ts_start = ${t} AND event_id > $${params.length}))`;
  return { sql: `${sql} AND ${after}`, params, limit };
}
