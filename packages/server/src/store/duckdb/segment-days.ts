import type { DuckDBConnection, DuckDBValue } from "@duckdb/node-api";
import type { CallRecord } from "@tollgate/core";
import { DAY_MS, utcMidnight } from "../../time.js";
import type { EventFilter, SegmentDimension, SegmentRow } from "../types.js";
import { MODEL_CALL, OK_REQUESTS, REQUESTS } from "./sql.js";

/**
 * Segment sums of closed UTC days. Every model call of a day before `closed_before` is summed into
 * `segment_days` by its segment key (everything a variance or segment rollup groups or filters by, except
 * the user): a few thousand rows a day instead of every call. Whole past days of a segment query are read
 * from here and the partial days at its edges, and the days still open, from the raw calls, so answers
 * stay exact. A call arriving late for a closed day is added to its row in the transaction that stores it.
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
/** Keys stored as '' for none; model, provider and data_mode are never none on model calls. */
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

function whereDays(filter: EventFilter, fromDay: number | null, toDay: number) {
  const params: DuckDBValue[] = [filter.workspaceId, toDay];
  const parts = ["workspace_id = $1", "day < make_timestamp($2::BIGINT * 1000)::DATE"];
  if (fromDay !== null) parts.push(`day >= make_timestamp($${params.push(fromDay)}::BIGINT * 1000)::DATE`);
  if (filter.deploymentOrUnset !== undefined)
    parts.push(`deployment IN ($${params.push(filter.deploymentOrUnset)}, '')`);
  for (const [k, v] of Object.entries(filter.where ?? {})) {
    if (v === undefined) continue;
    if (!KEYS.has(k)) throw new Error(`segment_days cannot filter by ${k}`);
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

/** Sums the model calls of [from, before) (from null: all earlier calls) into segment_days, in one transaction. */
export async function closeDays(conn: DuckDBConnection, from: number | null, before: number): Promise<void> {
  const params: DuckDBValue[] = [before];
  const since = from === null ? "" : `AND ts_start >= make_timestamp($${params.push(from)}::BIGINT * 1000)`;
  await conn.run("BEGIN TRANSACTION");
  try {
    await conn.run(
      `INSERT INTO segment_days
         SELECT workspace_id, ts_start::DATE, ${SEGMENT_KEYS.map(keyColumn).join(", ")}, ${REQUESTS}, ${OK_REQUESTS},
                sum(cost_nanousd), coalesce(sum(cost_nanousd) FILTER (WHERE attempt > 1), 0),
                coalesce(sum(cost_nanousd) FILTER (WHERE status <> 'ok'), 0), epoch_ms(min(ts_start))
         FROM events WHERE ${MODEL_CALL} AND ts_start < make_timestamp($1::BIGINT * 1000) ${since}
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

/** Adds newly stored model calls of closed days to their rows (inside the caller's transaction). */
export async function addLateCalls(conn: DuckDBConnection, records: readonly CallRecord[]): Promise<void> {
  const rows = new Map<
    string,
    { key: string[]; req: number; ok: number; cost: bigint; retry: bigint; err: bigint; first: number }
  >();
  for (const r of records) {
    const key = [
      r.workspace_id,
      new Date(utcMidnight(r.ts_start)).toISOString().slice(0, 10),
      ...SEGMENT_KEYS.map((k) => (r[k] as string | null) ?? ""),
    ];
    const id = key.join("\u0000");
    let x = rows.get(id);
    if (!x) {
      x = { key, req: 0, ok: 0, cost: 0n, retry: 0n, err: 0n, first: r.ts_start };
      rows.set(id, x);
    }
    if (r.attempt === 1) x.req++;
    if (r.status === "ok") x.ok++;
    x.cost += r.cost_nanousd;
    if (r.attempt > 1) x.retry += r.cost_nanousd;
    if (r.status !== "ok") x.err += r.cost_nanousd;
    x.first = Math.min(x.first, r.ts_start);
  }
  const add = ["requests", "ok_requests", "cost_nanousd", "retry_cost_nanousd", "error_cost_nanousd"]
    .map((m) => `${m} = segment_days.${m} + excluded.${m}`)
    .join(", ");
  const width = 2 + SEGMENT_KEYS.length + 6;
  const all = [...rows.values()];
  for (let off = 0; off < all.length; off += 500) {
    const chunk = all.slice(off, off + 500);
    const values = chunk.map((_, i) => {
      const p = (k: number) => `$${i * width + k + 1}`;
      const keys = SEGMENT_KEYS.map((_, k) => p(k + 2)).join(", ");
      const m = (k: number) => p(2 + SEGMENT_KEYS.length + k);
      return `(${p(0)}, ${p(1)}::DATE, ${keys}, ${m(0)}, ${m(1)}, ${m(2)}::HUGEINT, ${m(3)}::HUGEINT, ${m(4)}::HUGEINT, ${m(5)})`;
    });
    await conn.run(
      `INSERT INTO segment_days VALUES ${values.join(", ")}
       ON CONFLICT DO UPDATE SET ${add}, first_ms = least(segment_days.first_ms, excluded.first_ms)`,
      chunk.flatMap((x) => [...x.key, x.req, x.ok, String(x.cost), String(x.retry), String(x.err), x.first]),
    );
  }
}

/** Drops segment days before `before` (raw retention: segment answers read raw-covered days only). */
export async function purgeSegmentDays(conn: DuckDBConnection, before: number): Promise<void> {
  await conn.run("DELETE FROM segment_days WHERE day < make_timestamp($1::BIGINT * 1000)::DATE", [before]);
}
