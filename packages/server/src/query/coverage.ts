import type { Retention } from "../store/types.js";
import { DAY_MS, utcMidnight, utcMonthStart } from "../time.js";

/**
 * What part of an asked window an answer could see. `truncated` is true when part of it is gone: older
 * than the raw horizon and either not answerable from summaries (`fromSummaries` false) or older than the
 * summary horizon too.
 */
export function coverageOf(r: Retention, from: number | undefined, fromSummaries: boolean) {
  const start = from ?? Number.NEGATIVE_INFINITY;
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  const beforeRaw = r.raw_available_from !== null && start < r.raw_available_from;
  const beforeSummary = r.summary_available_from !== null && start < r.summary_available_from;
  return {
    raw_available_from: iso(r.raw_available_from),
    summary_available_from: iso(r.summary_available_from),
    truncated: beforeRaw && (!fromSummaries || beforeSummary),
  };
}

/** Purge horizons for retention settings, as UTC midnights (null keeps that kind of data). */
export function purgeHorizons(now: number, rawDays: number | null, summaryMonths: number | null) {
  return {
    rawBefore: rawDays === null ? null : utcMidnight(now) - rawDays * DAY_MS,
    summaryBefore: summaryMonths === null ? null : utcMonthStart(now, -summaryMonths),
  };
}
