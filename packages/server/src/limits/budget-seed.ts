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
 * The spend of budget `b`'s window in calls not stored yet, taken a group at a time (a call may repeat,
 * within a group or across them), but `counted` ones. What it keeps is bounded by the budget's buckets and
 * slots (the sums), plus the id of each call it took (to take it once), not the calls themselves: a seed
 * reads a large spool a file at a time.
 */
export class UnstoredSpend {
  readonly #applies: (rec: CallRecord) => boolean;
  readonly #slots: readonly string[];
  readonly #seen: Set<string>;
  readonly #sums = new Map<string, Seed>();

  constructor(
    ws: string,
    private readonly b: Budget,
    private readonly now: number,
    counted: ReadonlySet<string>,
  ) {
    this.#applies = inBudget(ws, b, now);
    this.#slots = windowSlots(b.window, now).slots;
    this.#seen = new Set(counted);
  }

  /** The calls of `group` in the window not taken before, each with its seed and id: `add` the ones to count. */
  take(group: Iterable<CallRecord>): (Seed & { eventId: string })[] {
    const out: (Seed & { eventId: string })[] = [];
    for (const rec of group) {
      if (this.#seen.has(rec.event_id) || !this.#applies(rec)) continue;
      this.#seen.add(rec.event_id);
      const facts = factsOfRecord(rec);
      out.push({
        bucket: budgetBucket(this.b, bucketValues(this.b.scope, facts), facts, this.now, 0n),
        slot: slotOf(this.b, this.#slots, rec.ts_start),
        spend: rec.cost_nanousd,
        eventId: rec.event_id,
      });
    }
    return out;
  }

  add(seed: Seed): void {
    const key = `${seed.bucket.key}\u0000${seed.slot}`;
    const sum = this.#sums.get(key);
    if (sum) sum.spend += seed.spend;
    else this.#sums.set(key, { bucket: seed.bucket, slot: seed.slot, spend: seed.spend });
  }

  /** The spend added, one seed per bucket and slot. */
  seeds(): Seed[] {
    return [...this.#sums.values()];
  }
}
