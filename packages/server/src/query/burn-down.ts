import { daysUntilExhausted, roundHalfUp } from "@tollgate/core";
import type { SpendGuard } from "../limits/guard.js";
import {
  type EventFilter,
  type EventStore,
  type FilterField,
  isFilterField,
  SPEND_DIMENSIONS,
  type SpendDimension,
} from "../store/types.js";
import { DAY_MS, utcMidnight } from "../time.js";
import { money } from "./rollups.js";

/** model in a budget scope is the model as requested; the event filter's is the model as reported. */
const NOT_ESTIMATED = new Set(["tag", "model"]);
const isSpendDimension = (f: string): f is SpendDimension =>
  (SPEND_DIMENSIONS as readonly string[]).includes(f);

/**
 * For every budget bucket: what is left of it, the bucket's own spend rate over the last 7 complete days
 * (everything it counts: all data modes and deployments, as the budget does), and the days until it is
 * used up at that rate — and whether that comes before the window resets.
 */
export async function budgetBurnDown(
  guard: SpendGuard,
  store: Pick<EventStore, "spend">,
  workspaceId: string,
  now: number,
) {
  const today = utcMidnight(now);
  const week: EventFilter = { workspaceId, from: today - 7 * DAY_MS, to: today };
  const out = [];
  for (const b of guard.registry.forWorkspace(workspaceId).budgets) {
    const buckets = await guard.budgetStatus(workspaceId, b);
    const weekly = await weeklySpend(store, week, b.scope, buckets);
    for (const s of buckets) {
      const w = weekly(s.bucket);
      const left = s.limit - s.spend - s.reserved;
      const rate = typeof w === "bigint" ? roundHalfUp(w, 7n) : null;
      const days = rate === null ? null : daysUntilExhausted(left, rate);
      out.push({
        budget_id: b.id,
        bucket: s.bucket,
        state: s.state,
        limit: money(s.limit),
        remaining: money(left > 0n ? left : 0n),
        run_rate_per_day: rate === null ? null : money(rate),
        days_until_exhausted: days,
        exhausted_before_reset:
          days === null || s.reset_at === null ? null : now + days * DAY_MS < s.reset_at,
        reset_at: s.reset_at === null ? null : new Date(s.reset_at).toISOString(),
        ...(typeof w === "string" ? { note: w } : {}),
      });
    }
  }
  return out;
}

/**
 * The week's spend of each bucket of one budget, or why it cannot be estimated. A budget split by one
 * spend dimension ("*" on customer_id, say) is summed in one grouped query; any other, bucket by bucket.
 */
async function weeklySpend(
  store: Pick<EventStore, "spend">,
  week: EventFilter,
  scope: Record<string, string>,
  buckets: readonly { bucket: Record<string, string> }[],
): Promise<(bucket: Record<string, string>) => bigint | string> {
  const fixed: Partial<Record<FilterField, string>> = {};
  const split: string[] = [];
  for (const [field, value] of Object.entries(scope)) {
    if (NOT_ESTIMATED.has(field) || !isFilterField(field)) return () => `no run rate for ${field} scopes yet`;
    if (value === "*") split.push(field);
    else fixed[field] = value;
  }
  const sum = async (where: Partial<Record<FilterField, string>>, by: SpendDimension) =>
    store.spend({ ...week, where }, by);
  const empty = "no run rate for the bucket of calls without a value";
  const only = split[0];
  if (split.length === 1 && isSpendDimension(only!)) {
    const byKey = new Map((await sum(fixed, only)).map((r) => [r.key, r.cost_nanousd]));
    return (bucket) => (bucket[only] ? (byKey.get(bucket[only]) ?? 0n) : empty);
  }
  const perBucket = new Map<Record<string, string>, bigint | string>();
  for (const { bucket } of buckets) {
    if (split.some((f) => !bucket[f])) perBucket.set(bucket, empty);
    else {
      const where = { ...fixed, ...Object.fromEntries(split.map((f) => [f, bucket[f]])) };
      perBucket.set(
        bucket,
        (await sum(where, "day")).reduce((a, r) => a + r.cost_nanousd, 0n),
      );
    }
  }
  return (bucket) => perBucket.get(bucket) ?? empty;
}
