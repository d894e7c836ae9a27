import { daysUntilExhausted, roundHalfUp } from "@tollgate/core";
import type { SpendGuard } from "../limits/guard.js";
import { type EventFilter, type EventStore, type FilterField, isFilterField } from "../store/types.js";
import { DAY_MS, utcMidnight } from "../time.js";
import { money } from "./rollups.js";

/** model in a budget scope is the model as requested; the event filter's is the model as reported. */
const NOT_ESTIMATED = new Set(["tag", "model"]);

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
  const out = [];
  for (const b of guard.registry.forWorkspace(workspaceId).budgets) {
    for (const s of await guard.budgetStatus(workspaceId, b)) {
      const where: Partial<Record<FilterField, string>> = {};
      let why: string | null = null;
      for (const [field, value] of Object.entries(b.scope)) {
        const v = value === "*" ? s.bucket[field] : value;
        if (NOT_ESTIMATED.has(field) || !isFilterField(field)) why = `no run rate for ${field} scopes yet`;
        else if (!v) why = "no run rate for the bucket of calls without a value";
        else where[field as FilterField] = v;
      }
      const left = s.limit - s.spend - s.reserved;
      let rate: bigint | null = null;
      if (why === null) {
        const filter: EventFilter = { workspaceId, from: today - 7 * DAY_MS, to: today, where };
        const week = (await store.spend(filter, "day")).reduce((a, r) => a + r.cost_nanousd, 0n);
        rate = roundHalfUp(week, 7n);
      }
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
        ...(why ? { note: why } : {}),
      });
    }
  }
  return out;
}
