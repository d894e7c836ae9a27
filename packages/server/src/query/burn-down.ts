import { daysUntilExhausted, roundHalfUp } from "@tollgate/core";
import type { SpendGuard } from "../limits/guard.js";
import {
  type EventStore,
  type FilterField,
  isFilterField,
  SPEND_DIMENSIONS,
  type SpendDimension,
} from "../store/types.js";
import { DAY_MS, utcMidnight } from "../time.js";
import { money } from "./rollups.js";
import { rateDays, rateWindows, TRAILING_DAYS } from "./run-rate.js";

/** model in a budget scope is the model as requested; the event filter's is the model as reported. */
const NOT_ESTIMATED = new Set(["tag", "model"]);
const isSpendDimension = (f: string): f is SpendDimension =>
  (SPEND_DIMENSIONS as readonly string[]).includes(f);

/** A bucket's spend over the days of its run rate, or why it has none. */
const NO_COMPLETE_DAY = "no run rate before a complete day of calls: none in the 14 days before today";

type RecentSpend = { spend: bigint; days: number } | string;

/**
 * For every budget bucket: what is left of it, the bucket's own spend rate (everything it counts: all
 * data modes and deployments, as the budget does) over the last 7 complete days, or over the days since
 * its first call when it had none the week before (the forecast's rule: run-rate.ts), and the days until
 * it is used up at that rate — and whether that comes before the window resets.
 */
export async function budgetBurnDown(
  guard: SpendGuard,
  store: Pick<EventStore, "spend">,
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
      // No complete day of calls (its first came today, or none in the fortnight): no rate to go by, not
      // $0 a day, which would read as a budget in no danger whatever it spent today.
      const rate = typeof r === "string" || r.days === 0 ? null : roundHalfUp(r.spend, BigInt(r.days));
      const note = typeof r === "string" ? r : r.days === 0 ? NO_COMPLETE_DAY : null;
      const days = rate === null ? null : daysUntilExhausted(left, rate);
      out.push({
        budget_id: b.id,
        // What the bucket counts beside its own values (a fixed feature=summarize): a label names it.
        scope: b.scope,
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
        ...(note === null ? {} : { note }),
      });
    }
  }
  return out;
}

/**
 * The recent spend of each bucket of one budget and the days it is over, or why it cannot be estimated. A
 * budget split by one dimension ("*" on customer_id, say) is read in grouped queries (the week before,
 * and each of the trailing days); any other, bucket by bucket (its spend per day over both).
 */
async function recentSpend(
  store: Pick<EventStore, "spend">,
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
  if (split.length === 1 && isSpendDimension(only!)) {
    // Day by day, as spend() reads them: purged days from the daily summary (firstSeen reads raw calls only,
    // and past the raw horizon took a value called every day for one new since it).
    const days = Array.from({ length: TRAILING_DAYS }, (_, i) => trailing.from + i * DAY_MS);
    const [earlier, ...daily] = await Promise.all([
      store.spend({ workspaceId, ...before, where: fixed }, only),
      ...days.map((from) => store.spend({ workspaceId, from, to: from + DAY_MS, where: fixed }, only)),
    ]);
    const calledBefore = new Set(earlier.map((r) => r.key));
    const spent = new Map<string | null, bigint>();
    const firstDay = new Map<string | null, number>();
    daily.forEach((rows, i) => {
      for (const r of rows) {
        spent.set(r.key, (spent.get(r.key) ?? 0n) + r.cost_nanousd);
        if (!firstDay.has(r.key)) firstDay.set(r.key, days[i]!);
      }
    });
    return (bucket) => {
      const key = bucket[only];
      if (!key) return empty;
      return {
        spend: spent.get(key) ?? 0n,
        days: rateDays(today, firstDay.get(key) ?? null, calledBefore.has(key)),
      };
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
