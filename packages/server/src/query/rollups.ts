import { concentration, formatUsd, ratio, roundHalfUp } from "@tollgate/core";
import type { AnalyticsStore, EventFilter, SegmentDimension, SegmentRow } from "../store/types.js";
import { utcMonthStart } from "../time.js";

/** Money in answers: exact nano-USD as a string (int64 does not fit a JSON number) plus a USD rendering. */
export function money(nano: bigint): { nanousd: string; usd: string } {
  return { nanousd: nano.toString(), usd: formatUsd(nano) };
}

/** Shares and changes in answers: fractions to six decimals. */
export const FRACTION_DIGITS = 6;

/** Cost per request, rounded half-up to the nano-USD (null without requests). */
export function perRequest(cost: bigint, requests: number): bigint | null {
  return requests > 0 ? roundHalfUp(cost, BigInt(requests)) : null;
}

const moneyOrNull = (nano: bigint | null) => (nano === null ? null : money(nano));

/** One dimension's segments (distinct users only when asked). */
export async function segmentsOf(
  store: AnalyticsStore,
  filter: EventFilter,
  by: SegmentDimension,
  users = false,
): Promise<SegmentRow[]> {
  return (await store.segments(filter, [by], users))[by];
}

/** The window of the same length right before `filter`'s. */
export function previousWindow<F extends EventFilter & { from: number; to: number }>(filter: F): F {
  const span = filter.to - filter.from;
  return { ...filter, from: filter.from - span, to: filter.from };
}

/** Relative change as a fraction (0.25 = +25%), null when there is nothing to compare with. */
export function change(now: bigint, before: bigint): number | null {
  if (before === 0n) return null;
  return ratio(now - before, before, FRACTION_DIGITS);
}

export async function userDayRollup(store: AnalyticsStore, filter: EventFilter, top: number) {
  const days = await store.userDays(filter, top);
  return days.map((d) => ({
    day: d.day,
    cost: money(d.cost_nanousd),
    users: d.users,
    requests: d.requests,
    median: money(d.p50_nanousd),
    p90: money(d.p90_nanousd),
    p99: money(d.p99_nanousd),
    max: money(d.max_nanousd),
    top_users: d.top.map((t) => ({ user_id: t.user_id, cost: money(t.cost_nanousd) })),
  }));
}

/** Per feature: requests, spend and cost per request, with the trend against the previous window. */
export async function featureRollup(
  store: AnalyticsStore,
  filter: EventFilter & { from: number; to: number },
) {
  const [now, before] = await Promise.all([
    segmentsOf(store, filter, "feature"),
    segmentsOf(store, previousWindow(filter), "feature"),
  ]);
  const prev = new Map(before.map((s) => [s.key, s]));
  return now.map((s) => {
    const p = prev.get(s.key);
    const cpr = perRequest(s.cost_nanousd, s.requests);
    const prevCpr = p ? perRequest(p.cost_nanousd, p.requests) : null;
    return {
      feature: s.key,
      requests: s.requests,
      cost: money(s.cost_nanousd),
      cost_per_request: moneyOrNull(cpr),
      previous: p
        ? { requests: p.requests, cost: money(p.cost_nanousd), cost_per_request: moneyOrNull(prevCpr) }
        : null,
      cost_change: p ? change(s.cost_nanousd, p.cost_nanousd) : null,
      cost_per_request_change: cpr !== null && prevCpr !== null ? change(cpr, prevCpr) : null,
    };
  });
}

export async function agentRunRollup(store: AnalyticsStore, filter: EventFilter) {
  const rows = await store.agentRuns(filter);
  return rows.map((r) => ({
    agent_type: r.agent_type,
    runs: r.runs,
    cost: money(r.cost_nanousd),
    median: money(r.p50_nanousd),
    p99: money(r.p99_nanousd),
    max: money(r.max_nanousd),
    max_run_id: r.max_run_id,
    killed_runs: r.killed_runs,
    llm_calls_per_run: r.runs ? r.llm_calls / r.runs : 0,
    tool_calls_per_run: r.runs ? r.tool_calls / r.runs : 0,
  }));
}

/** UTC month starts around `now`: this month's, last month's, and the same elapsed point of last month. */
export function monthWindows(now: number): {
  thisMonth: number;
  lastMonth: number;
  lastMonthSamePoint: number;
} {
  const thisMonth = utcMonthStart(now);
  const lastMonth = utcMonthStart(now, -1);
  // Same elapsed time into last month, but never past its end (31 March vs February).
  const lastMonthSamePoint = Math.min(lastMonth + (now - thisMonth), thisMonth);
  return { thisMonth, lastMonth, lastMonthSamePoint };
}

/**
 * The UTC month `end` falls in, from its start to `end`, and the same elapsed time of the month before
 * (never past its end). An `end` at a month's start closes the month before it: to=2026-12-01 is November.
 */
export function monthSoFar(end: number): { from: number; previousFrom: number; previousTo: number } {
  const from = utcMonthStart(end - 1);
  const previousFrom = utcMonthStart(end - 1, -1);
  return { from, previousFrom, previousTo: Math.min(previousFrom + (end - from), from) };
}

/** Per customer: spend, share, requests, users, cost per request; and month-to-date vs last month. */
export async function customerRollup(store: AnalyticsStore, filter: EventFilter, now: number) {
  const m = monthWindows(now);
  const [rows, mtd, lastToDate, lastMonth] = await Promise.all([
    segmentsOf(store, filter, "customer_id", true),
    segmentsOf(store, { ...filter, from: m.thisMonth, to: now }, "customer_id"),
    segmentsOf(store, { ...filter, from: m.lastMonth, to: m.lastMonthSamePoint }, "customer_id"),
    segmentsOf(store, { ...filter, from: m.lastMonth, to: m.thisMonth }, "customer_id"),
  ]);
  const total = rows.reduce((a, r) => a + r.cost_nanousd, 0n);
  const byKey = (xs: SegmentRow[]) => new Map(xs.map((x) => [x.key, x.cost_nanousd]));
  const [mtdBy, lastToDateBy, lastBy] = [byKey(mtd), byKey(lastToDate), byKey(lastMonth)];
  return rows.map((r) => {
    const now = mtdBy.get(r.key) ?? 0n;
    const then = lastToDateBy.get(r.key) ?? 0n;
    return {
      customer_id: r.key,
      cost: money(r.cost_nanousd),
      share: ratio(r.cost_nanousd, total, FRACTION_DIGITS),
      requests: r.requests,
      users: r.users,
      cost_per_request: moneyOrNull(perRequest(r.cost_nanousd, r.requests)),
      month_to_date: money(now),
      last_month_to_date: money(then),
      last_month: money(lastBy.get(r.key) ?? 0n),
      month_to_date_change: change(now, then),
    };
  });
}

export const OUTCOME_DIMENSIONS = [
  "feature",
  "model",
  "prompt_version",
] as const satisfies readonly SegmentDimension[];

/**
 * Spend per successful request (a request succeeded when one of its attempts has status ok). A row of spend
 * without requests (a tool's reported cost) has no success rate: null, as its cost per success is.
 */
export async function outcomeRollup(
  store: AnalyticsStore,
  filter: EventFilter,
  by: (typeof OUTCOME_DIMENSIONS)[number],
) {
  const rows = await segmentsOf(store, filter, by);
  return rows.map((r) => ({
    [by]: r.key,
    requests: r.requests,
    ok_requests: r.ok_requests,
    success_rate: r.requests ? r.ok_requests / r.requests : null,
    cost: money(r.cost_nanousd),
    cost_per_success: moneyOrNull(perRequest(r.cost_nanousd, r.ok_requests)),
  }));
}

/** Tenant concentration of a segment list (top-N share and HHI). */
export function tenantConcentration(rows: readonly SegmentRow[], topN = 5) {
  const c = concentration(
    rows.filter((r) => r.key !== null).map((r) => r.cost_nanousd),
    topN,
  );
  return { tenants: c.tenants, top_n: c.top_n, top_share: c.top_share, hhi: c.hhi };
}
