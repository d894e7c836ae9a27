// A record that may be made again (a background response's: CallOutcome.recurs) is charged once per event id
// by a marker the limits backend keeps a week: in memory, of the last 100,000 charges, and not across a
// restart. Past what it may have forgotten, a record made again would count again in the windows still
// holding its call (a month's, a lifetime), so the gateway asks the event store first
// (gateway-background-charged-once.test.ts); for a call made since, it need not.
import { PricingEngine } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpendGuard } from "../src/limits/guard.js";
import { MemoryLimitStore } from "../src/limits/memory-store.js";
import { PolicyRegistry } from "../src/limits/policies.js";
import { RedisLimitStore } from "../src/limits/redis-store.js";
import type { LimitStore } from "../src/limits/types.js";
import type { LimitsStateStore } from "../src/store/types.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const DAY_MS = 86_400_000;
const START = Date.UTC(2026, 10, 2, 9, 0);

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** An event store holding nothing: the guard never needs it here. */
const noEvents = {
  listPolicies: async () => [],
  limitEvents: async () => [],
  runUsage: async () => [],
  sumCost: async () => [],
} as unknown as LimitsStateStore;

async function guardOn(store: LimitStore, clock: { now: number }): Promise<SpendGuard> {
  const registry = await PolicyRegistry.open(noEvents, null);
  return new SpendGuard(store, registry, noEvents, new PricingEngine(), {
    now: () => clock.now,
    log: () => {},
  });
}

/** Charges one call of its own under `eventId`, at `now`, counted nowhere (its marker is all it leaves). */
const charge = (store: LimitStore, eventId: string, now: number) =>
  store.charge({ workspace: "w", eventId, now, buckets: [], tokenRates: [], run: null });

describe("SpendGuard.chargeMayBeForgotten", () => {
  it("memory: past a week, past the last 100,000 charges, and for a call made before a restart", async () => {
    const clock = { now: START };
    const store = new MemoryLimitStore();
    const guard = await guardOn(store, clock);
    clock.now = START + 60_000;
    expect(guard.chargeMayBeForgotten(START)).toBe(false); // charged since it was made, known

    // Made a week and more ago: charged no earlier, its marker has lapsed.
    clock.now = START + 7 * DAY_MS;
    expect(guard.chargeMayBeForgotten(START)).toBe(true);
    expect(guard.chargeMayBeForgotten(START + 1)).toBe(false);

    // 100,000 charges later (busy minutes of ingest), the oldest marker has been let go.
    clock.now = START + 60_000;
    await charge(store, "first", clock.now);
    clock.now += 600_000;
    for (let i = 0; i < 99_999; i++) await charge(store, `other-${i}`, clock.now);
    expect(guard.chargeMayBeForgotten(START + 60_000)).toBe(false); // 100,000 kept, "first" among them
    await charge(store, "one-more", clock.now);
    expect(guard.chargeMayBeForgotten(START + 60_000)).toBe(true); // "first" let go
    expect(guard.chargeMayBeForgotten(START + 60_001)).toBe(false); // charged after it: kept

    // Restarted: the markers went with the last process.
    const restarted = await guardOn(new MemoryLimitStore(), clock);
    expect(restarted.chargeMayBeForgotten(clock.now - 1)).toBe(true);
    expect(restarted.chargeMayBeForgotten(clock.now)).toBe(false);
  });

  it("redis: past a week only (its markers outlive a restart, and none is let go before it lapses)", async () => {
    const clock = { now: START + 60_000 };
    const store = await RedisLimitStore.connect(redis.url);
    try {
      const guard = await guardOn(store, clock);
      expect(guard.chargeMayBeForgotten(START)).toBe(false); // made before this process started
      clock.now = START + 7 * DAY_MS;
      expect(guard.chargeMayBeForgotten(START)).toBe(true);
      expect(guard.chargeMayBeForgotten(START + 1)).toBe(false);
    } finally {
      await store.close();
    }
  });
});
