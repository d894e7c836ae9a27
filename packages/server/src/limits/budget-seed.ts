import {
  type Budget,
  bucketValues,
  type CallRecord,
  eachFields,
  scopeMatches,
  windowSlots,
} from "@tollgate/core";
import type { LimitsStateStore, SumField } from "../store/types.js";
import type { ChargedBucket } from "./admission-plan.js";
import { budgetBucket, factsOfRecord, factsOfValues, fixedScope } from "./buckets.js";

/** Spend to seed into one slot of a bucket. */
export interface Seed {
  bucket: ChargedBucket;
  slot: string;
  spend: bigint;
}

const HOUR_MS = 3_600_000;

/** The slot a call made at `ts` counts in: its hour for a rolling window, else the window's one slot. */
const slotOf = (b: Budget, slots: readonly string[], ts: number) =>
  b.window.kind === "rolling" ? `h${Math.floor(ts / HOUR_MS)}` : slots[0]!;

/** The spend of budget `b`'s window in the store (of calls made before `before`, if given), by bucket and slot. */
export async function storedSpend(
  events: LimitsStateStore,
  ws: string,
  b: Budget,
  now: number,
  before?: number,
): Promise<Seed[]> {
  const win = windowSlots(b.window, now);
  if (before !== undefined && before <= win.start) return [];
  const by = eachFields(b.scope) as SumField[];
  const rolling = b.window.kind === "rolling";
  const rows = await events.sumCost(
    { workspaceId: ws, from: win.start, ...(before !== undefined ? { to: before } : {}), ...fixedScope(b) },
    by,
    rolling,
  );
  return rows.map((row) => {
    const values = row.values.map((v) => v ?? "");
    return {
      bucket: budgetBucket(b, values, factsOfValues(by, values), now, 0n),
      slot: rolling ? `h${row.hour}` : win.slots[0]!,
      spend: row.cost_nanousd,
    };
  });
}

/** Whether a call counts against budget `b` of workspace `ws` in its window as of `now`. */
export function inBudget(ws: string, b: Budget, now: number): (rec: CallRecord) => boolean {
  const start = windowSlots(b.window, now).start;
  return (rec) =>
    rec.workspace_id === ws && rec.ts_start >= start && scopeMatches(b.scope, factsOfRecord(rec));
}

/**
 * The spend of budget `b`'s window in `records` (calls not stored yet, in groups; one may repeat), but
 * `counted` ones; each with its call's id.
 */
export function unstoredSpend(
  records: Iterable<Iterable<CallRecord>>,
  ws: string,
  b: Budget,
  now: number,
  counted: ReadonlySet<string>,
): (Seed & { eventId: string })[] {
  const win = windowSlots(b.window, now);
  const applies = inBudget(ws, b, now);
  const seen = new Set(counted);
  const seeds: (Seed & { eventId: string })[] = [];
  for (const group of records)
    for (const rec of group) {
      if (seen.has(rec.event_id) || !applies(rec)) continue;
      seen.add(rec.event_id);
      const facts = factsOfRecord(rec);
      seeds.push({
        bucket: budgetBucket(b, bucketValues(b.scope, facts), facts, now, 0n),
        slot: slotOf(b, win.slots, rec.ts_start),
        spend: rec.cost_nanousd,
        eventId: rec.event_id,
      });
    }
  return seeds;
}
