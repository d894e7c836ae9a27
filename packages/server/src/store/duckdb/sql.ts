import type { DuckDBValue } from "@duckdb/node-api";
import { type EventFilter, FILTER_FIELDS } from "../types.js";

const FILTERABLE: ReadonlySet<string> = new Set(FILTER_FIELDS);

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
    if (!FILTERABLE.has(k)) throw new Error(`not a filterable field: ${k}`);
    params.push(v);
    parts.push(`${k} = $${params.length}`);
  }
  return { sql: parts.join(" AND "), params };
}
