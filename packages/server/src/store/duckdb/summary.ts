import type { DuckDBConnection } from "@duckdb/node-api";
import {
  type EventFilter,
  type Retention,
  type SpendDimension,
  type SpendRow,
  SUMMARY_KEYS,
  summaryCanAnswer,
} from "../types.js";
import { purgeSegmentDays } from "./segment-days.js";
import { COST_UNKNOWN, INPUT_TOKENS, OK_REQUESTS, REQUESTS } from "./sql.js";

/**
 * The daily summary holds the calls that were purged from the raw events: each one is added to its
 * day's row in the same transaction that deletes it, so a call is in the raw events or in the summary,
 * never both and never neither. Concurrent appends never touch it (no write conflicts), and a long-range
 * answer is raw events plus summary days, exactly.
 */
const KEY_COLUMNS = ["workspace_id", "day", ...SUMMARY_KEYS];
const MEASURES = [
  "calls",
  "requests",
  "ok_requests",
  "cost_nanousd",
  "input_tokens",
  "output_tokens",
  "unpriced_calls",
] as const;

/** Spend by a dimension from the summary, for the whole UTC days [fromDay, toDay) (epoch ms of midnights). */
export async function spendFromSummary(
  conn: DuckDBConnection,
  filter: EventFilter,
  by: SpendDimension,
  fromDay: number,
  toDay: number,
): Promise<SpendRow[]> {
  if (!summaryCanAnswer(filter))
    throw new Error("the summary cannot answer a filter on fields it does not keep");
  const params: (string | number)[] = [filter.workspaceId, fromDay, toDay];
  const parts = [
    "workspace_id = $1",
    "day >= make_timestamp($2::BIGINT * 1000)::DATE",
    "day < make_timestamp($3::BIGINT * 1000)::DATE",
  ];
  if (filter.deploymentOrUnset !== undefined) {
    params.push(filter.deploymentOrUnset);
    parts.push(`deployment IN ($${params.length}, '')`);
  }
  for (const [k, v] of Object.entries(filter.where ?? {})) {
    if (v === undefined) continue;
    params.push(v);
    parts.push(`${k} = $${params.length}`);
  }
  const key = by === "day" ? "strftime(day, '%Y-%m-%d')" : NULLABLE.has(by) ? `nullif(${by}, '')` : by;
  const res = await conn.runAndReadAll(
    `SELECT ${key} AS group_key, sum(calls)::BIGINT, sum(cost_nanousd)::HUGEINT, sum(input_tokens)::HUGEINT,
            sum(output_tokens)::HUGEINT, sum(unpriced_calls)::BIGINT
     FROM daily_summary WHERE ${parts.join(" AND ")} GROUP BY group_key`,
    params,
  );
  return res.getRowsJS().map(spendRow);
}

/** A spend row from (key, calls, cost, input tokens, output tokens, unpriced calls). */
export function spendRow(r: unknown[]): SpendRow {
  return {
    key: (r[0] as string | null) ?? null,
    calls: Number(r[1]),
    cost_nanousd: BigInt(r[2] as bigint),
    input_tokens: Number(r[3]),
    output_tokens: Number(r[4]),
    unpriced_calls: Number(r[5]),
  };
}

/** Summary keys stored as '' for "none" (model, provider, data_mode and kind are never null in events). */
const NULLABLE: ReadonlySet<string> = new Set([
  "deployment",
  "feature",
  "customer_id",
  "user_id",
  "prompt_version",
  "agent_type",
]);

/** The tables holding calls: raw ones, and purged ones in the summary. */
const CALL_TABLES = ["events", "daily_summary"];

/** The workspaces holding calls (EventStore.workspaces, purge). */
export const WORKSPACES_WITH_CALLS = CALL_TABLES.map((t) => `SELECT workspace_id FROM ${t}`).join(" UNION ");

/** Whether workspace $1 holds calls (EventStore.workspace): each table asked apart, its first row answers. */
export const WORKSPACE_HOLDS_CALLS = CALL_TABLES.map(
  (t) => `EXISTS (SELECT 1 FROM ${t} WHERE workspace_id = $1)`,
).join(" OR ");

export async function retentionOf(conn: DuckDBConnection, workspaceId: string): Promise<Retention> {
  const res = await conn.runAndReadAll(
    "SELECT epoch_ms(raw_available_from), epoch_ms(summary_available_from::TIMESTAMP) FROM retention WHERE workspace_id = $1",
    [workspaceId],
  );
  const row = res.getRowsJS()[0];
  return {
    raw_available_from: row?.[0] == null ? null : Number(row[0]),
    summary_available_from: row?.[1] == null ? null : Number(row[1]),
  };
}

/**
 * Moves raw events before `rawBefore` into the daily summary, deletes summary days before `summaryBefore`
 * (UTC midnights; null keeps them), and records the new horizons for every workspace. Event ids stay, so
 * a late retry of a purged call is still recognised as a duplicate and never counted twice.
 */
export async function purge(
  conn: DuckDBConnection,
  rawBefore: number | null,
  summaryBefore: number | null,
): Promise<{ raw_deleted: number; summary_deleted: number }> {
  await conn.run("BEGIN TRANSACTION");
  try {
    let raw = 0;
    let summary = 0;
    if (rawBefore !== null) {
      const before = "ts_start < make_timestamp($1::BIGINT * 1000)";
      const keys = SUMMARY_KEYS.map((k) => (NULLABLE.has(k) ? `coalesce(${k}, '')` : k)).join(", ");
      const set = MEASURES.map((m) => `${m} = daily_summary.${m} + excluded.${m}`).join(", ");
      await conn.run(
        `INSERT INTO daily_summary
           SELECT workspace_id, ts_start::DATE, ${keys}, count(*), ${REQUESTS}, ${OK_REQUESTS},
                  sum(cost_nanousd), sum(${INPUT_TOKENS}), sum(output_tokens), count(*) FILTER (WHERE ${COST_UNKNOWN})
           FROM events WHERE ${before} GROUP BY ALL
         ON CONFLICT (${KEY_COLUMNS.join(", ")}) DO UPDATE SET ${set}`,
        [rawBefore],
      );
      raw = Number((await conn.run(`DELETE FROM events WHERE ${before}`, [rawBefore])).rowsChanged);
      await purgeSegmentDays(conn, rawBefore);
    }
    // Every workspace made or holding calls (a root import's too), summary days read before any go: one
    // whose calls are all raw gets its horizons as on ClickHouse, whose summary holds every call.
    await conn.run(
      `INSERT INTO retention SELECT id,
         CASE WHEN $1::BIGINT IS NULL THEN NULL ELSE make_timestamp($1::BIGINT * 1000) END,
         CASE WHEN $2::BIGINT IS NULL THEN NULL ELSE make_timestamp($2::BIGINT * 1000)::DATE END
       FROM (SELECT id FROM workspaces UNION ${WORKSPACES_WITH_CALLS})
       ON CONFLICT (workspace_id) DO UPDATE SET
         raw_available_from = greatest(coalesce(retention.raw_available_from, excluded.raw_available_from), excluded.raw_available_from),
         summary_available_from = greatest(coalesce(retention.summary_available_from, excluded.summary_available_from), excluded.summary_available_from)`,
      [rawBefore, summaryBefore],
    );
    if (summaryBefore !== null) {
      const r = await conn.run(
        "DELETE FROM daily_summary WHERE day < make_timestamp($1::BIGINT * 1000)::DATE",
        [summaryBefore],
      );
      summary = Number(r.rowsChanged);
    }
    await conn.run("COMMIT");
    return { raw_deleted: raw, summary_deleted: summary };
  } catch (e) {
    await conn.run("ROLLBACK").catch(() => {});
    throw e;
  }
}
