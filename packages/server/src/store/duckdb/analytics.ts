import type { DuckDBConnection, DuckDBValue } from "@duckdb/node-api";
import { byCostThenKey } from "../rows.js";
import {
  type AgentRunRollupRow,
  type EventFilter,
  SEGMENT_DIMENSIONS,
  type SegmentDimension,
  type SegmentRow,
  type UserDayRow,
} from "../types.js";
import {
  MODEL_CALL_OR_COSTED,
  MODEL_OK_REQUESTS,
  MODEL_REQUESTS,
  RUN_LLM_CALL,
  UTC_DAY,
  whereClause,
} from "./sql.js";

const SEGMENTABLE: ReadonlySet<string> = new Set(SEGMENT_DIMENSIONS);

const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(v as bigint));

/**
 * Segment sums for several dimensions in one scan (GROUPING SETS): a variance query needs four of them
 * per window. Distinct users are counted only when asked (they cost more than the rest together).
 */
export async function segmentSets(
  conn: DuckDBConnection,
  filter: EventFilter,
  dims: readonly SegmentDimension[],
  withUsers: boolean,
): Promise<Record<SegmentDimension, SegmentRow[]>> {
  for (const d of dims) if (!SEGMENTABLE.has(d)) throw new Error(`not a segment dimension: ${d}`);
  const { sql, params } = whereClause(filter);
  const res = await conn.runAndReadAll(
    `SELECT ${dims.map((d) => `grouping(${d})`).join(", ")}, ${dims.join(", ")},
            ${MODEL_REQUESTS} AS requests, ${MODEL_OK_REQUESTS} AS ok_requests, sum(cost_nanousd)::HUGEINT AS cost_sum,
            sum(cost_nanousd) FILTER (WHERE attempt > 1)::HUGEINT AS retry_sum,
            sum(cost_nanousd) FILTER (WHERE status <> 'ok')::HUGEINT AS error_sum,
            ${withUsers ? "count(DISTINCT user_id)" : "0"} AS users, epoch_ms(min(ts_start)) AS first_ms
     FROM events WHERE ${sql} AND ${MODEL_CALL_OR_COSTED}
     GROUP BY GROUPING SETS (${dims.map((d) => `(${d})`).join(", ")})`,
    params,
  );
  const out = Object.fromEntries(dims.map((d) => [d, [] as SegmentRow[]])) as Record<
    SegmentDimension,
    SegmentRow[]
  >;
  const n = dims.length;
  for (const r of res.getRowsJS()) {
    const i = dims.findIndex((_, k) => Number(r[k]) === 0); // the set this row is grouped by
    out[dims[i]!].push({
      key: (r[n + i] as string | null) ?? null,
      requests: Number(r[2 * n]),
      ok_requests: Number(r[2 * n + 1]),
      cost_nanousd: big(r[2 * n + 2]),
      retry_cost_nanousd: big(r[2 * n + 3]),
      error_cost_nanousd: big(r[2 * n + 4]),
      users: Number(r[2 * n + 5]),
      first_seen: Number(r[2 * n + 6]),
    });
  }
  for (const d of dims) out[d].sort(byCostThenKey);
  return out;
}

/**
 * Per UTC day: spend, and the distribution of spend over the users active that day (quantile_disc is
 * the nearest-rank percentile). Calls without a user_id count in the day's total, not as a user. Top
 * users tie by user_id, so every store names the same ones.
 */
export function userDays(conn: DuckDBConnection, filter: EventFilter, top: number): Promise<UserDayRow[]> {
  const { sql, params } = whereClause(filter);
  return userDaysOf(
    conn,
    `SELECT ${UTC_DAY} AS day, user_id, sum(cost_nanousd)::HUGEINT AS c, ${MODEL_REQUESTS} AS n
     FROM events WHERE ${sql} AND ${MODEL_CALL_OR_COSTED} GROUP BY day, user_id`,
    params,
    top,
  );
}

/** The user-day rollup over `source`: rows of (day 'YYYY-MM-DD', user_id or NULL, cost c, requests n). */
export async function userDaysOf(
  conn: DuckDBConnection,
  source: string,
  params: DuckDBValue[],
  top: number,
): Promise<UserDayRow[]> {
  const n = Math.max(1, Math.min(100, Math.trunc(top)));
  const user = "FILTER (WHERE user_id IS NOT NULL)";
  const res = await conn.runAndReadAll(
    `SELECT day, sum(c)::HUGEINT AS cost_sum, count(*) ${user} AS users, sum(n)::BIGINT AS requests,
            quantile_disc(c, 0.5) ${user}, quantile_disc(c, 0.9) ${user}, quantile_disc(c, 0.99) ${user},
            max(c) ${user}, list({'user_id': user_id, 'c': c} ORDER BY c DESC, user_id) ${user}
     FROM (${source}) GROUP BY day ORDER BY day`,
    params,
  );
  return res.getRowsJS().map((r) => ({
    day: r[0] as string,
    cost_nanousd: big(r[1]),
    users: Number(r[2]),
    requests: Number(r[3]),
    p50_nanousd: big(r[4]),
    p90_nanousd: big(r[5]),
    p99_nanousd: big(r[6]),
    max_nanousd: big(r[7]),
    top: ((r[8] as { user_id: string | null; c: bigint }[] | null) ?? []).slice(0, n).map((t) => ({
      user_id: t.user_id,
      cost_nanousd: big(t.c),
    })),
  }));
}

/**
 * Per agent_type: its runs (records sharing agent_run_id), their cost distribution, kills and call counts.
 * The costliest run is the smallest id among those tied on cost (arg_max would name any), as ClickHouse does.
 */
export async function agentRuns(conn: DuckDBConnection, filter: EventFilter): Promise<AgentRunRollupRow[]> {
  const { sql, params } = whereClause(filter);
  const res = await conn.runAndReadAll(
    `SELECT agent_type, count(*) AS runs, sum(c)::HUGEINT AS cost_sum, quantile_disc(c, 0.5),
            quantile_disc(c, 0.99), max(c), first(agent_run_id ORDER BY c DESC, agent_run_id),
            count(*) FILTER (WHERE killed),
            sum(llm)::BIGINT, sum(tools)::BIGINT
     FROM (SELECT agent_type, agent_run_id, sum(cost_nanousd)::HUGEINT AS c,
                  count(*) FILTER (WHERE ${RUN_LLM_CALL}) AS llm,
                  count(*) FILTER (WHERE kind = 'tool') AS tools,
                  bool_or(status = 'killed') AS killed
           FROM events WHERE ${sql} AND agent_run_id IS NOT NULL GROUP BY agent_type, agent_run_id)
     GROUP BY agent_type ORDER BY cost_sum DESC, agent_type`,
    params,
  );
  return res.getRowsJS().map((r) => ({
    agent_type: (r[0] as string | null) ?? null,
    runs: Number(r[1]),
    cost_nanousd: big(r[2]),
    p50_nanousd: big(r[3]),
    p99_nanousd: big(r[4]),
    max_nanousd: big(r[5]),
    max_run_id: r[6] as string,
    killed_runs: Number(r[7]),
    llm_calls: Number(r[8]),
    tool_calls: Number(r[9]),
  }));
}

/** Values of `by` whose first call (within `filter`, usually all history to a point) is at or after `since`. */
export async function firstSeen(
  conn: DuckDBConnection,
  filter: EventFilter,
  by: SegmentDimension,
  since: number,
): Promise<{ key: string; first_seen: number }[]> {
  if (!SEGMENTABLE.has(by)) throw new Error(`not a segment dimension: ${by}`);
  const { sql, params } = whereClause(filter);
  params.push(since);
  const res = await conn.runAndReadAll(
    // None is NULL, or "" (a tool's model and provider): never a value first seen.
    `SELECT ${by}, epoch_ms(min(ts_start)) AS first_ms FROM events
     WHERE ${sql} AND ${MODEL_CALL_OR_COSTED} AND ${by} <> '' GROUP BY ${by}
     HAVING min(ts_start) >= make_timestamp($${params.length}::BIGINT * 1000) ORDER BY first_ms, ${by}`,
    params,
  );
  return res.getRowsJS().map((r) => ({ key: r[0] as string, first_seen: Number(r[1]) }));
}
