import { daysUntilExhausted, roundHalfUp } from "@tollgate/core";
import type { SpendGuard } from "../limits/guard.js";
import {
  type AnalyticsStore,
  type EventStore,
  type FilterField,
  isFilterField,
  SEGMENT_DIMENSIONS,
  type SegmentDimension,
} from "../store/types.js";
import { DAY_MS, utcMidnight } from "../time.js";
import { money } from "./rollups.js";
import { rateDays, rateWindows } from "./run-rate.js";

/** model in a budget scope is the model as requested; the event filter's is the model as reported. */
const NOT_ESTIMATED = new Set(["tag", "model"]);
const isSegmentDimension = (f: string): f is SegmentDimension =>
  (SEGMENT_DIMENSIONS as readonly string[]).includes(f);

/** A bucket's spend over the days of its run rate, or why it has none. */
type RecentSpend = { spend: bigint; days: number } | string;

/**
 * For every budget bucket: what is left of it, the bucket's own spend rate (everything it counts: all
 * data modes and deployments, as the budget does) over the last 7 complete days, or over the days since
 * its first call when it had none the week before (the forecast's rule: run-rate.ts), and the days until
 * it is used up at that rate — and whether that comes before the window resets.
 */
export async function budgetBurnDown(
  guard: SpendGuard,
  store: Pick<EventStore, "spend"> & Pick<AnalyticsStore, "firstSeen">,
  workspaceId: string,
  now: number,
) {
  const today = utcMidnight(now);
  const out = [];
  for (const b of guard.registry.forWorkspace(workspaceId).budgets) {
    const buckets = await guard.budgetStatus(workspaceId, b);
    const recent = await recentSpend(store, workspaceId, today, b.scope, buckets);
    for (const s of buckets) {
      const r = recent(s.bucket);
      const left = s.limit - s.spend - s.reserved;
      const rate = typeof r === "string" ? null : r.days ? roundHalfUp(r.spend, BigInt(r.days)) : 0n;
      const days = rate === null ? null : daysUntilExhausted(left, rate);
      out.push({
        budget_id: b.id,
        bucket: s.bucket,
        state: s.state,
        limit: money(s.limit),
        remaining: money(left > 0n ? left : 0n),
        run_rate_per_day: rate === null ? null : money(rate),
        run_rate_days: typeof r === "string" ? null : r.days,
        days_until_exhausted: days,
        exhausted_before_reset:
          days === null || s.reset_at === null ? null : now + days * DAY_MS < s.reset_at,
        reset_at: s.reset_at === null ? null : new Date(s.reset_at).toISOString(),
        ...(typeof r === "string" ? { note: r } : {}),
      });
    }
  }
  return out;
}

/**
 * The recent spend of each bucket of one budget and the days it is over, or why it cannot be estimated. A
 * budget split by one dimension ("*" on customer_id, say) is read in one grouped query per window (the
 * trailing days' spend, and when each value was first called in them or the week before); any other,
 * bucket by bucket (its spend per day over both).
 */
async function recentSpend(
  store: Pick<EventStore, "spend"> & Pick<AnalyticsStore, "firstSeen">,
  workspaceId: string,
  today: number,
  scope: Record<string, string>,
  buckets: readonly { bucket: Record<string, string> }[],
): Promise<(bucket: Record<string, string>) => RecentSpend> {
  const fixed: Partial<Record<FilterField, string>> = {};
  const split: string[] = [];
  for (const [field, value] of Object.entries(scope)) {
    if (NOT_ESTIMATED.has(field) || !isFilterField(field)) return () => `no run rate for ${field} scopes yet`;
    if (value === "*") split.push(field);
    else fixed[field] = value;
  }
  const { trailing, before } = rateWindows(today);
  const lookBack = { workspaceId, from: before.from, to: today };
  const empty = "no run rate for the bucket of calls without a value";
  const only = split[0];
  if (split.length === 1 && isSegmentDimension(only!)) {
    const [spent, first] = await Promise.all([
      store.spend({ workspaceId, ...trailing, where: fixed }, only),
      store.firstSeen({ ...lookBack, where: fixed }, only, before.from),
    ]);
    const byKey = new Map(spent.map((r) => [r.key, r.cost_nanousd]));
    const firstBy = new Map(first.map((r) => [r.key, r.first_seen]));
    return (bucket) => {
      const key = bucket[only];
      if (!key) return empty;
      const firstCall = firstBy.get(key) ?? null;
      const days = rateDays(today, firstCall, firstCall !== null && firstCall < trailing.from);
      return { spend: byKey.get(key) ?? 0n, days };
    };
  }
  const perBucket = new Map<Record<string, string>, RecentSpend>();
  for (const { bucket } of buckets) {
    if (split.some((f) => !bucket[f])) perBucket.set(bucket, empty);
    else {
      const where = { ...fixed, ...Object.fromEntries(split.map((f) => [f, bucket[f]])) };
      const daily = (await store.spend({ ...lookBack, where }, "day")).map((r) => ({
        day: Date.parse(r.key ?? ""),
        cost: r.cost_nanousd,
      }));
      const recent = daily.filter((d) => d.day >= trailing.from);
      const firstCall = recent.length ? Math.min(...recent.map((d) => d.day)) : null;
      perBucket.set(bucket, {
        spend: recent.reduce((a, d) => a + d.cost, 0n),
        days: rateDays(
          today,
          firstCall,
          daily.some((d) => d.day < trailing.from),
        ),
      });
    }
  }
  return (bucket) => perBucket.get(bucket) ?? empty;
}
