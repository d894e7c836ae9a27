// The in-memory LimitStore keeps a budget bucket's state only as long as Redis keeps its keys: a gateway
// that runs for weeks sees a bucket for every customer or user a "*" budget ever counted, and must not hold
// them all once their windows have passed.
import { slotTtlMs, windowSlots } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { MemoryLimitStore } from "../src/limits/memory-store.js";
import type { BucketCharge } from "../src/limits/types.js";

const DAY_MS = 86_400_000;
const MONDAY = Date.UTC(2026, 10, 30, 9, 0, 0);

function bucket(key: string, window: Parameters<typeof slotTtlMs>[0], now: number): BucketCharge {
  return {
    key,
    slots: windowSlots(window, now).slots,
    steps: [1_000_000n],
    ttlMs: slotTtlMs(window),
    limit: 1_000_000n,
    enforce: true,
    amount: 100n,
    throttleRpm: null,
  };
}

/** One call charged to `b` at `now`: admitted, then settled to 40 nano-USD. */
async function charge(store: MemoryLimitStore, b: BucketCharge, now: number, id: string) {
  const req = { workspace: "w", id, now, expiresAt: now + 3_600_000, buckets: [b], rates: [], run: null };
  expect(await store.admit(req)).toEqual({ ok: true });
  await store.settle({
    workspace: "w",
    id,
    now,
    buckets: [{ ...b, reserved: b.amount, actual: 40n }],
    tokenRates: [],
    run: null,
  });
}

describe("MemoryLimitStore: bucket lifetimes", () => {
  it("a bucket nobody charges after its window has passed goes, as its Redis keys expire; live ones stay", async () => {
    const store = new MemoryLimitStore();
    const day = { kind: "day", tz: "UTC" } as const;
    const week = { kind: "week", tz: "UTC" } as const;
    // A thousand customers of a per-customer daily budget call on Monday, then never again.
    for (let i = 0; i < 1000; i++) await charge(store, bucket(`b:daily:c${i}`, day, MONDAY), MONDAY, `m${i}`);
    // The same Monday: a weekly and a lifetime budget's buckets, and a daily one charged again on Tuesday.
    await charge(store, bucket("b:weekly:c1", week, MONDAY), MONDAY, "week");
    await charge(store, bucket("b:lifetime:c1", { kind: "lifetime" }, MONDAY), MONDAY, "life");
    const tuesday = MONDAY + DAY_MS + 3_600_000;
    await charge(store, bucket("b:daily:c7", day, tuesday), tuesday, "again");
    expect(store.spendOf("w", () => true).size).toBe(1002);

    // Thursday's first call: Monday's daily buckets have outlived their slots; the rest are still live.
    const thursday = MONDAY + 3 * DAY_MS;
    await charge(store, bucket("b:daily:c1000", day, thursday), thursday, "thu");
    expect([...store.spendOf("w", () => true).keys()].sort()).toEqual([
      "b:daily:c1000",
      "b:daily:c7",
      "b:lifetime:c1",
      "b:weekly:c1",
    ]);
    // What is live still counts in full: the week's Monday spend, on Thursday.
    expect(await store.buckets("w", [bucket("b:weekly:c1", week, thursday)], thursday)).toEqual([
      { spend: 40n, reserved: 0n },
    ]);
  });
});
