import type { DuckDBConnection, DuckDBValue } from "@duckdb/node-api";
import { type CallRecord, isInferenceKind } from "@tollgate/core";
import { DAY_MS, utcMidnight } from "../../time.js";
import type { EventFilter, SegmentDimension, SegmentRow } from "../types.js";
import { appendWith } from "./appender.js";
import { MODEL_CALL_OR_COSTED, MODEL_OK_REQUESTS, MODEL_REQUESTS } from "./sql.js";

/**
 * Segment sums of closed UTC days. Every record analytics read (MODEL_CALL_OR_COSTED) of a day before
 * `closed_before` is summed into `segment_days` by its segment key (everything a variance or segment rollup
 * groups or filters by, except the user): a few thousand rows a day instead of every call. Whole past days
 * of a segment query are read from here and the partial days at its edges, and the days still open, from
 * the raw calls, so answers stay exact. A call arriving late for a closed day is added to its row in the
 * transaction that stores it.
 */
export const SEGMENT_KEYS = [
  "deployment",
  "data_mode",
  "feature",
  "customer_id",
  "model",
  "prompt_version",
  "provider",
  "agent_type",
] as const;
const KEYS: ReadonlySet<string> = new Set(SEGMENT_KEYS);
/** Keys stored as '' for none; model, provider and data_mode are never null (a tool's record has ""). */
const NULLABLE: ReadonlySet<string> = new Set([
  "deployment",
  "feature",
  "customer_id",
  "prompt_version",
  "agent_type",
]);
const keyColumn = (k: string) => (NULLABLE.has(k) ? `coalesce(${k}, '')` : k);
const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(v as bigint));

/** Whether segment sums of `dims` under `filter` can come from segment_days (no users, no other filters). */
export function daysCanServe(
  filter: EventFilter,
  dims: readonly SegmentDimension[],
  users: boolean,
): boolean {
  return (
    !users &&
    dims.every((d) => KEYS.has(d)) &&
    Object.entries(filter.where ?? {}).every(([k, v]) => v === undefined || KEYS.has(k))
  );
}

const USER_KEYS: ReadonlySet<string> = new Set(["deployment", "data_mode", "user_id"]);

/** Whether the user-day rollup under `filter` can come from user_days (filters on its keys only). */
export function userDaysCanServe(filter: EventFilter): boolean {
  return Object.entries(filter.where ?? {}).every(([k, v]) => v === undefined || USER_KEYS.has(k));
}

/** Rows of (day, user_id or NULL, cost c, requests n) of whole closed days, for userDaysOf. */
export function userDaysSource(filter: EventFilter, fromDay: number | null, toDay: number) {
  const { sql, params } = whereDays(filter, fromDay, toDay, USER_KEYS);
  return {
    sql: `SELECT strftime(day, '%Y-%m-%d') AS day, nullif(user_id, '') AS user_id, sum(cost_nanousd)::HUGEINT AS c,
                 sum(requests)::BIGINT AS n
          FROM user_days WHERE ${sql} GROUP BY day, user_id`,
    params,
  };
}

/** A window cut into whole closed days (from segment_days) and the raw parts around them. */
export interface DayPlan {
  fromDay: number | null;
  toDay: number;
  raw: EventFilter[];
}

/** How to answer `filter` with days closed before `closedBefore`; null when no whole closed day is in it. */
export function planDays(filter: EventFilter, closedBefore: number | null): DayPlan | null {
  if (closedBefore === null) return null;
  const fromDay = filter.from === undefined ? null : Math.ceil(filter.from / DAY_MS) * DAY_MS;
  const toDay = Math.min(closedBefore, filter.to === undefined ? closedBefore : utcMidnight(filter.to));
  if (fromDay !== null && fromDay >= toDay) return null;
  const raw: EventFilter[] = [];
  if (filter.from !== undefined && fromDay !== null && filter.from < fromDay)
    raw.push({ ...filter, to: fromDay });
  if (filter.to === undefined || filter.to > toDay) raw.push({ ...filter, from: toDay });
  return { fromDay, toDay, raw };
}

function whereDays(filter: EventFilter, fromDay: number | null, toDay: number, keys = KEYS) {
  const params: DuckDBValue[] = [filter.workspaceId, toDay];
  const parts = ["workspace_id = $1", "day < make_timestamp($2::BIGINT * 1000)::DATE"];
  if (fromDay !== null) parts.push(`day >= make_timestamp($${params.push(fromDay)}::BIGINT * 1000)::DATE`);
  if (filter.deploymentOrUnset !== undefined)
    parts.push(`deployment IN ($${params.push(filter.deploymentOrUnset)}, '')`);
  for (const [k, v] of Object.entries(filter.where ?? {})) {
    if (v === undefined) continue;
    if (!keys.has(k)) throw new Error(`summed days cannot be filtered by ${k}`);
    parts.push(`${k} = $${params.push(v)}`);
  }
  return { sql: parts.join(" AND "), params };
}

const keyOf = (dim: string, v: unknown): string | null =>
  NULLABLE.has(dim) && v === "" ? null : ((v as string | null) ?? null);

/** Segment sums per dimension over whole closed days [fromDay, toDay), in one scan. */
export async function segmentsFromDays(
  conn: DuckDBConnection,
  filter: EventFilter,
  dims: readonly SegmentDimension[],
  fromDay: number | null,
  toDay: number,
): Promise<Record<SegmentDimension, SegmentRow[]>> {
  const { sql, params } = whereDays(filter, fromDay, toDay);
  const res = await conn.runAndReadAll(
    `SELECT ${dims.map((d) => `grouping(${d})`).join(", ")}, ${dims.join(", ")},
            sum(requests)::BIGINT, sum(ok_requests)::BIGINT, sum(cost_nanousd)::HUGEINT,
            sum(retry_cost_nanousd)::HUGEINT, sum(error_cost_nanousd)::HUGEINT, min(first_ms)
     FROM segment_days WHERE ${sql}
     GROUP BY GROUPING SETS (${dims.map((d) => `(${d})`).join(", ")})`,
    params,
  );
  const out = Object.fromEntries(dims.map((d) => [d, [] as SegmentRow[]])) as Record<
    SegmentDimension,
    SegmentRow[]
  >;
  const n = dims.length;
  for (const r of res.getRowsJS()) {
    const i = dims.findIndex((_, k) => Number(r[k]) === 0);
    const dim = dims[i]!;
    out[dim].push({
      key: keyOf(dim, r[n + i]),
      requests: Number(r[2 * n]),
      ok_requests: Number(r[2 * n + 1]),
      cost_nanousd: big(r[2 * n + 2]),
      retry_cost_nanousd: big(r[2 * n + 3]),
      error_cost_nanousd: big(r[2 * n + 4]),
      users: 0,
      first_seen: Number(r[2 * n + 5]),
    });
  }
  return out;
}

/** First call per value of `by` over whole closed days [fromDay, toDay). */
export async function firstSeenFromDays(
  conn: DuckDBConnection,
  filter: EventFilter,
  by: SegmentDimension,
  fromDay: number | null,
  toDay: number,
): Promise<{ key: string; first_seen: number }[]> {
  const { sql, params } = whereDays(filter, fromDay, toDay);
  const res = await conn.runAndReadAll(
    `SELECT ${by}, min(first_ms) FROM segment_days WHERE ${sql} AND ${by} <> '' GROUP BY ${by}`,
    params,
  );
  return res.getRowsJS().map((r) => ({ key: r[0] as string, first_seen: Number(r[1]) }));
}

/** Rows of the same key summed (first seen: the earliest), per dimension. */
export function mergeSegments(
  parts: Record<SegmentDimension, SegmentRow[]>[],
  dims: readonly SegmentDimension[],
): Record<SegmentDimension, SegmentRow[]> {
  const out = {} as Record<SegmentDimension, SegmentRow[]>;
  for (const d of dims) {
    const m = new Map<string | null, SegmentRow>();
    for (const p of parts)
      for (const r of p[d]) {
        const x = m.get(r.key);
        if (!x) m.set(r.key, { ...r });
        else {
          x.requests += r.requests;
          x.ok_requests += r.ok_requests;
          x.cost_nanousd += r.cost_nanousd;
          x.retry_cost_nanousd += r.retry_cost_nanousd;
          x.error_cost_nanousd += r.error_cost_nanousd;
          x.first_seen = Math.min(x.first_seen, r.first_seen);
        }
      }
    out[d] = [...m.values()];
  }
  return out;
}

/** The first day not closed yet (epoch ms of its midnight), or null when none is. */
export async function closedBefore(conn: DuckDBConnection): Promise<number | null> {
  const res = await conn.runAndReadAll(
    "SELECT epoch_ms(closed_before::TIMESTAMP) FROM segment_days_state WHERE id = 1",
  );
  const v = res.getRowsJS()[0]?.[0];
  return v == null ? null : Number(v);
}

/** Sums the records of [from, before) (from null: all earlier ones) into segment_days, in one transaction. */
export async function closeDays(conn: DuckDBConnection, from: number | null, before: number): Promise<void> {
  const params: DuckDBValue[] = [before];
  const since = from === null ? "" : `AND ts_start >= make_timestamp($${params.push(from)}::BIGINT * 1000)`;
  await conn.run("BEGIN TRANSACTION");
  try {
    await conn.run(
      `INSERT INTO segment_days
         SELECT workspace_id, ts_start::DATE, ${SEGMENT_KEYS.map(keyColumn).join(", ")}, ${MODEL_REQUESTS}, ${MODEL_OK_REQUESTS},
                sum(cost_nanousd), coalesce(sum(cost_nanousd) FILTER (WHERE attempt > 1), 0),
                coalesce(sum(cost_nanousd) FILTER (WHERE status <> 'ok'), 0), epoch_ms(min(ts_start))
         FROM events WHERE ${MODEL_CALL_OR_COSTED} AND ts_start < make_timestamp($1::BIGINT * 1000) ${since}
         GROUP BY ALL`,
      params,
    );
    await conn.run(
      `INSERT INTO user_days
         SELECT workspace_id, ts_start::DATE, coalesce(deployment, ''), data_mode, coalesce(user_id, ''),
                sum(cost_nanousd), ${MODEL_REQUESTS}
         FROM events WHERE ${MODEL_CALL_OR_COSTED} AND ts_start < make_timestamp($1::BIGINT * 1000) ${since}
         GROUP BY ALL`,
      params,
    );
    await conn.run(
      "INSERT OR REPLACE INTO segment_days_state VALUES (1, make_timestamp($1::BIGINT * 1000)::DATE)",
      [before],
    );
    await conn.run("COMMIT");
  } catch (e) {
    await conn.run("ROLLBACK").catch(() => {});
    throw e;
  }
}

/** Whether a record is summed into the closed days: what MODEL_CALL_OR_COSTED reads. */
export const summedInDays = (r: CallRecord): boolean => isInferenceKind(r.kind) || r.cost_nanousd !== 0n;

/** Adds newly stored records of closed days (summedInDays) to their rows (inside the caller's transaction). */
export async function addLateCalls(conn: DuckDBConnection, records: readonly CallRecord[]): Promise<void> {
  const segments = new Map<string, (string | number | bigint)[]>();
  const users = new Map<string, (string | number | bigint)[]>();
  // Measures start at index `from` of a row; each record adds its own values to them.
  const add = (
    m: Map<string, (string | number | bigint)[]>,
    key: string[],
    measures: (number | bigint)[],
    first?: number,
  ) => {
    const id = key.join("\u0000");
    const row = m.get(id);
    if (!row) m.set(id, [...key, ...measures, ...(first === undefined ? [] : [first])]);
    else {
      measures.forEach((v, i) => {
        row[key.length + i] = (row[key.length + i] as bigint) + (v as bigint);
      });
      if (first !== undefined) row[row.length - 1] = Math.min(row[row.length - 1] as number, first);
    }
  };
  for (const r of records) {
    const day = new Date(utcMidnight(r.ts_start)).toISOString().slice(0, 10);
    const cost = r.cost_nanousd;
    // As MODEL_REQUESTS and MODEL_OK_REQUESTS count them: a hosted tool's model call is its response's
    // request, and a tool's costed record is none.
    const own = r.parent_event_id === null && isInferenceKind(r.kind);
    const first = own && r.attempt === 1 ? 1n : 0n;
    const ok = own && r.status === "ok" ? 1n : 0n;
    add(
      segments,
      [r.workspace_id, day, ...SEGMENT_KEYS.map((k) => (r[k] as string | null) ?? "")],
      [first, ok, cost, r.attempt > 1 ? cost : 0n, r.status !== "ok" ? cost : 0n],
      r.ts_start,
    );
    add(users, [r.workspace_id, day, r.deployment ?? "", r.data_mode, r.user_id ?? ""], [cost, first]);
  }
  const sum = (table: string, ms: string[]) =>
    ms.map((m) => `${m} = ${table}.${m} + excluded.${m}`).join(", ");
  await upsert(
    conn,
    "segment_days",
    [...segments.values()],
    `${sum("segment_days", ["requests", "ok_requests", "cost_nanousd", "retry_cost_nanousd", "error_cost_nanousd"])},
     first_ms = least(segment_days.first_ms, excluded.first_ms)`,
  );
  await upsert(conn, "user_days", [...users.values()], sum("user_days", ["cost_nanousd", "requests"]));
}

/**
 * Adds rows (in column order; day second) to `table`, summing into the rows whose key is already there by
 * `set`. The rows go through the table's staging twin (STAGING_SUMMARY_DDL) by Appender, which casts the
 * texts to the columns' types, and one INSERT … SELECT … ON CONFLICT: a VALUES list of thousands of bound
 * parameters took DuckDB most of a late-heavy import's time.
 */
async function upsert(
  conn: DuckDBConnection,
  table: string,
  rows: (string | number | bigint)[][],
  set: string,
): Promise<void> {
  if (!rows.length) return;
  const staging = `staging_${table}`;
  await appendWith(
    conn,
    staging,
    (a) => {
      for (const row of rows) {
        for (const v of row) a.appendVarchar(String(v));
        a.endRow();
      }
    },
    { schema: "main", catalog: "temp" },
  );
  await conn.run(`INSERT INTO ${table} SELECT * FROM ${staging} ON CONFLICT DO UPDATE SET ${set}`);
  await conn.run(`DELETE FROM ${staging}`);
}

/** Per-connection staging twins of the closed-day summaries, created with each writer connection. */
export const STAGING_SUMMARY_DDL = ["segment_days", "user_days"].map(
  (t) => `CREATE TEMP TABLE staging_${t} AS SELECT * FROM ${t} LIMIT 0`,
);

/** Drops segment and user days before `before` (raw retention: these answers read raw-covered days only). */
export async function purgeSegmentDays(conn: DuckDBConnection, before: number): Promise<void> {
  for (const table of ["segment_days", "user_days"])
    await conn.run(`DELETE FROM ${table} WHERE day < make_timestamp($1::BIGINT * 1000)::DATE`, [before]);
}
