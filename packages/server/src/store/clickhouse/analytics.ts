import { byCostNullsLast, byCostThenKey } from "../rows.js";
import {
  type AgentRunRollupRow,
  type EventFilter,
  SEGMENT_DIMENSIONS,
  type SegmentDimension,
  type SegmentRow,
  type UserDayRow,
} from "../types.js";
import type { ChExec } from "./exec.js";
import {
  COUNT_RUN_LLM_CALLS,
  int,
  MODEL_CALL_OR_COSTED,
  MODEL_OK_REQUESTS,
  MODEL_REQUESTS,
  moneyOf,
  moneySum,
  whereSql,
} from "./sql.js";

const SEGMENTABLE: ReadonlySet<string> = new Set(SEGMENT_DIMENSIONS);
/** Segment dimensions that are never none: a model call names its provider and model, a tool's record "". */
const NEVER_NONE: ReadonlySet<string> = new Set(["model", "provider"]);

type Row = Record<string, string | number | null>;
const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(v as string));
/** Nearest-rank percentile of a sorted array `s` of length `n`, p in whole percent: s[⌈p·n/100⌉]. */
const rank = (s: string, n: string, p: number) =>
  `if(${n} = 0, 0, ${s}[greatest(1, intDiv(${n} * ${p} + 99, 100))])`;

/**
 * Segment sums for several dimensions in one scan: each row is repeated once per dimension by an
 * ARRAY JOIN (18.16 has no GROUPING SETS), then grouped by (dimension, value).
 */
export async function segmentSets(
  ch: ChExec,
  events: string,
  filter: EventFilter,
  dims: readonly SegmentDimension[],
  withUsers: boolean,
): Promise<Record<SegmentDimension, SegmentRow[]>> {
  for (const d of dims) if (!SEGMENTABLE.has(d)) throw new Error(`not a segment dimension: ${d}`);
  const out = Object.fromEntries(dims.map((d) => [d, [] as SegmentRow[]])) as Record<
    SegmentDimension,
    SegmentRow[]
  >;
  if (!dims.length) return out;
  const rows = await ch.rows<Row>(
    `SELECT dim_i, dim_key, ${MODEL_REQUESTS} AS requests, ${MODEL_OK_REQUESTS} AS ok_requests, ${moneySum("cost_nanousd", "cost")},
            ${moneySum("cost_nanousd", "retry", "attempt > 1")}, ${moneySum("cost_nanousd", "error", "status != 'ok'")},
            ${withUsers ? "uniqExactIf(user_id, user_id != '')" : "0"} AS users, min(ts_start) AS first_ms
     FROM ${events}
     ARRAY JOIN [${dims.map((_, i) => i).join(", ")}] AS dim_i, [${dims.map((d) => `toString(${d})`).join(", ")}] AS dim_key
     WHERE ${whereSql(filter)} AND ${MODEL_CALL_OR_COSTED}
     GROUP BY dim_i, dim_key`,
  );
  for (const r of rows) {
    const dim = dims[Number(r.dim_i)]!;
    const key = r.dim_key as string;
    out[dim].push({
      key: key === "" && !NEVER_NONE.has(dim) ? null : key,
      requests: Number(r.requests),
      ok_requests: Number(r.ok_requests),
      cost_nanousd: moneyOf(r, "cost"),
      retry_cost_nanousd: moneyOf(r, "retry"),
      error_cost_nanousd: moneyOf(r, "error"),
      users: Number(r.users),
      first_seen: Number(r.first_ms),
    });
  }
  for (const d of dims) out[d].sort(byCostThenKey);
  return out;
}

/**
 * Per UTC day: spend, and nearest-rank percentiles and the top spenders over that day's users. The day's
 * total is summed exactly (moneySum); one user's day (c) is an Int64, as one call's cost is.
 */
export async function userDays(
  ch: ChExec,
  events: string,
  filter: EventFilter,
  top: number,
): Promise<UserDayRow[]> {
  const n = Math.max(1, Math.min(100, Math.trunc(top)));
  const rows = await ch.rows<Row & { top_users: [string, string][] }>(
    `SELECT d, sum(c_usd) AS cost_usd, sum(c_nano) AS cost_nano, countIf(u != '') AS users, sum(n) AS requests,
            arraySort(groupArrayIf(c, u != '')) AS s, length(s) AS cnt,
            ${rank("s", "cnt", 50)} AS p50, ${rank("s", "cnt", 90)} AS p90, ${rank("s", "cnt", 99)} AS p99,
            if(cnt = 0, 0, s[cnt]) AS max_c,
            arrayMap(x -> (x.1, toString(x.2)),
                     arraySlice(arraySort(x -> (-x.2, x.1), groupArrayIf((u, c), u != '')), 1, ${int(n)})) AS top_users
     FROM (SELECT toString(day) AS d, user_id AS u, sum(cost_nanousd) AS c, ${moneySum("cost_nanousd", "c")}, ${MODEL_REQUESTS} AS n
           FROM ${events} WHERE ${whereSql(filter)} AND ${MODEL_CALL_OR_COSTED} GROUP BY d, u)
     GROUP BY d ORDER BY d`,
  );
  return rows.map((r) => ({
    day: r.d as string,
    cost_nanousd: moneyOf(r, "cost"),
    users: Number(r.users),
    requests: Number(r.requests),
    p50_nanousd: big(r.p50),
    p90_nanousd: big(r.p90),
    p99_nanousd: big(r.p99),
    max_nanousd: big(r.max_c),
    top: r.top_users.map(([user_id, c]) => ({ user_id, cost_nanousd: big(c) })),
  }));
}

/**
 * Per agent_type: its runs (records sharing agent_run_id), their cost distribution, kills and call counts.
 * The costliest run is the smallest id among those tied on cost (argMax would name any, and another one
 * than DuckDB), as the embedded store does.
 */
export async function agentRuns(
  ch: ChExec,
  events: string,
  filter: EventFilter,
): Promise<AgentRunRollupRow[]> {
  const rows = await ch.rows<Row>(
    `SELECT agent_type, count() AS runs, sum(c_usd) AS cost_usd, sum(c_nano) AS cost_nano, arraySort(groupArray(c)) AS s, length(s) AS cnt,
            ${rank("s", "cnt", 50)} AS p50, ${rank("s", "cnt", 99)} AS p99, s[cnt] AS max_c,
            tupleElement(arraySort(x -> (-x.2, x.1), groupArray((run, c)))[1], 1) AS max_run,
            countIf(killed = 1) AS killed_runs, sum(llm) AS llm_calls, sum(tools) AS tool_calls
     FROM (SELECT agent_type, agent_run_id AS run, sum(cost_nanousd) AS c, ${moneySum("cost_nanousd", "c")}, ${COUNT_RUN_LLM_CALLS} AS llm,
                  countIf(kind = 'tool') AS tools, max(status = 'killed') AS killed
           FROM ${events} WHERE ${whereSql(filter)} AND agent_run_id != '' GROUP BY agent_type, run)
     GROUP BY agent_type`,
  );
  return rows
    .map((r) => ({
      agent_type: r.agent_type === "" ? null : (r.agent_type as string),
      runs: Number(r.runs),
      cost_nanousd: moneyOf(r, "cost"),
      p50_nanousd: big(r.p50),
      p99_nanousd: big(r.p99),
      max_nanousd: big(r.max_c),
      max_run_id: r.max_run as string,
      killed_runs: Number(r.killed_runs),
      llm_calls: Number(r.llm_calls),
      tool_calls: Number(r.tool_calls),
    }))
    .sort((a, b) => byCostNullsLast(a.cost_nanousd, a.agent_type, b.cost_nanousd, b.agent_type));
}

/** Values of `by` whose first call (within `filter`) is at or after `since`. */
export async function firstSeen(
  ch: ChExec,
  events: string,
  filter: EventFilter,
  by: SegmentDimension,
  since: number,
): Promise<{ key: string; first_seen: number }[]> {
  if (!SEGMENTABLE.has(by)) throw new Error(`not a segment dimension: ${by}`);
  const rows = await ch.rows<Row>(
    `SELECT toString(${by}) AS k, min(ts_start) AS first_ms FROM ${events}
     WHERE ${whereSql(filter)} AND ${MODEL_CALL_OR_COSTED} AND ${by} != '' GROUP BY k
     HAVING first_ms >= ${int(since)} ORDER BY first_ms, k`,
  );
  return rows.map((r) => ({ key: r.k as string, first_seen: Number(r.first_ms) }));
}
