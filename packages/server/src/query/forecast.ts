import { apportion, FORECAST_METHOD, keyOrder, project, projectedDays } from "@tollgate/core";
import type { AnalyticsStore, EventFilter, SegmentDimension, SegmentRow } from "../store/types.js";
import { DAY_MS, utcMidnight, utcMonthStart } from "../time.js";
import { money, monthWindows } from "./rollups.js";
import { rateDays, rateWindows } from "./run-rate.js";

export const FORECAST_DIMENSIONS = ["customer_id", "feature"] as const satisfies readonly SegmentDimension[];

/**
 * The earliest time a forecast at `now` reads: the week before its trailing days (whether their quiet
 * opening days count) or its month, whichever starts first.
 */
export function forecastFrom(now: number): number {
  return Math.min(monthWindows(now).thisMonth, rateWindows(utcMidnight(now)).before.from);
}

/**
 * Month-end projection (UTC month) for the workspace, with a 90% interval from its daily spend, and per
 * customer and feature from each one's trailing run rate (no interval: one run rate each). A dimension's
 * rows add up to the workspace's spend and rate; their projections can add up to more, each row's today
 * floored at its own spend so far (README, Forecast).
 */
export async function forecastMonth(store: AnalyticsStore, filter: EventFilter, now: number) {
  const { thisMonth } = monthWindows(now);
  const today = utcMidnight(now);
  const daysLeft = Math.round((utcMonthStart(now, 1) - today) / DAY_MS);
  const windows = rateWindows(today);
  const trailing = { ...filter, ...windows.trailing };
  // Daily spend as the per-segment rows below and every analytics answer count it: the user-day rollup's
  // day totals (model calls and any other record's reported cost, the same money spend() sums).
  const [daily, toDate, older] = await Promise.all([
    store.userDays(trailing, 1),
    store.userDays({ ...filter, from: thisMonth, to: now }, 1),
    // The week before the 7: as cheap as them on every store (all history is a full scan on ClickHouse).
    store.segments({ ...filter, ...windows.before }, ["feature"], false),
  ]);
  const todayKey = new Date(today).toISOString().slice(0, 10);
  // Days without spend count as zero, over the days the run rate's rule (run-rate.ts) gives.
  const byDay = new Map(daily.map((r) => [r.day, r.cost_nanousd]));
  const firstDay = daily.length ? Math.min(...daily.map((r) => Date.parse(r.day))) : null;
  const n = rateDays(today, firstDay, older.feature.length > 0);
  const days = Array.from({ length: n }, (_, i) => {
    const day = new Date(today - (n - i) * DAY_MS).toISOString().slice(0, 10);
    return { day, cost_nanousd: byDay.get(day) ?? 0n };
  });
  const spent = toDate.reduce((a, r) => a + r.cost_nanousd, 0n);
  // Today is projected at the run rate like the days after it (at no less than its spend so far), so its
  // spend so far is not counted twice.
  const completeDays = toDate.reduce((a, r) => (r.day === todayKey ? a : a + r.cost_nanousd), 0n);
  const p = project(days, completeDays, daysLeft, spent - completeDays);
  // One scan per window for both dimensions.
  const [recent, mtd, complete] = await Promise.all([
    store.segments({ ...trailing, from: today - days.length * DAY_MS }, FORECAST_DIMENSIONS, false),
    store.segments({ ...filter, from: thisMonth, to: now }, FORECAST_DIMENSIONS, false),
    store.segments({ ...filter, from: thisMonth, to: today }, FORECAST_DIMENSIONS, false),
  ]);
  const segments = FORECAST_DIMENSIONS.map(
    (by) => [by, projectSegments(recent[by], mtd[by], complete[by], days.length, daysLeft)] as const,
  );
  return {
    month: new Date(thisMonth).toISOString().slice(0, 7),
    method: FORECAST_METHOD,
    workspace: {
      to_date: money(spent),
      complete_days_to_date: money(p.to_date_nanousd),
      run_rate_per_day: money(p.run_rate_nanousd),
      projected: money(p.projected_nanousd),
      low: money(p.low_nanousd),
      high: money(p.high_nanousd),
      window_days: p.window_days,
      days_left: p.days_left,
    },
    ...Object.fromEntries(segments),
  };
}

/**
 * Per segment: spend so far, its trailing run rate over the workspace's days, and complete days + run rate
 * × days left (today at no less than its spend so far). The rates are the segments' means rounded so that
 * they add up to the workspace's (largest remainder: each within 1 nano-USD of its own mean).
 */
function projectSegments(
  recent: SegmentRow[],
  mtd: SegmentRow[],
  complete: SegmentRow[],
  windowDays: number,
  daysLeft: number,
) {
  // In key order: a tie between remainders goes the same way whatever order a store gave the rows in.
  const byKey = [...recent].sort((a, b) => keyOrder(a.key, b.key));
  const rates = windowDays
    ? apportion(
        byKey.map((r) => r.cost_nanousd),
        BigInt(windowDays),
      ).parts
    : byKey.map(() => 0n);
  const rate = new Map(byKey.map((r, i) => [r.key, rates[i]!]));
  const mtdBy = new Map(mtd.map((r) => [r.key, r.cost_nanousd]));
  const completeBy = new Map(complete.map((r) => [r.key, r.cost_nanousd]));
  const rows = [...new Set([...mtdBy.keys(), ...rate.keys()])].map((key) => {
    const r = rate.get(key) ?? 0n;
    const toDate = mtdBy.get(key) ?? 0n;
    const complete = completeBy.get(key) ?? 0n;
    return { key, toDate, rate: r, projected: complete + projectedDays(r, daysLeft, toDate - complete) };
  });
  // Largest projection first; ties by key, so every run gives one order.
  rows.sort((a, b) =>
    a.projected === b.projected ? keyOrder(a.key, b.key) : a.projected > b.projected ? -1 : 1,
  );
  return rows.map((r) => ({
    key: r.key,
    to_date: money(r.toDate),
    run_rate_per_day: money(r.rate),
    projected: money(r.projected),
  }));
}
