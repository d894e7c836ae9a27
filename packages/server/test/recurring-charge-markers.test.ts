// A record that may be made again (a background response's: CallOutcome.recurs) is charged once per event id
// by a marker the limits backend keeps a week: in memory, of the last 100,000 charges, and not across a
// restart. Past what it may have forgotten, a record made again would count again in the windows still
// holding its call (a month's, a lifetime), so the gateway asks the event store first
// (gateway-background-charged-once.test.ts); for a call made since, it need not.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpendGuard } from "../src/limits/guard.js";
import { MemoryLimitStore } from "../src/limits/memory-store.js";
import { PolicyRegistry } from "../src/limits/policies.js";
import { RedisLimitStore } from "../src/limits/redis-store.js";
import type { LimitStore } from "../src/limits/types.js";
import { openRuntime } from "../src/runtime.js";
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

describe("SpendGuard.chargeMayBeForgotten, a budget added while running (in memory)", () => {
  it("says so for a call made before the budget's seed: charged under no limit, it left no marker, and the seed counted it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tg-recurring-seeded-"));
    const rt = await openRuntime({ dataDir: join(dir, "data"), pricebookPath: null });
    try {
      await new Promise((r) => setTimeout(r, 5));
      const built = buildCallRecord(
        {
          event_id: uuidv7(),
          ts_start: Date.now(), // made since this process started
          provider: "openai",
          api: "openai.responses",
          model: "gpt-4o",
          input_uncached_tokens: 10_000,
          output_tokens: 1_000,
          feature: "added-later",
        },
        { workspaceId: "default", engine: new PricingEngine() },
      );
      if (!built.ok) throw new Error(JSON.stringify(built.errors));
      const rec = built.record;
      // A background response found finished, recorded and observed as the gateway does: no limit counts
      // it yet, so nothing is charged, and no marker is set.
      await rt.store.append([rec]);
      await rt.guard.observe([rec], { countCalls: false, recurs: true });
      // A budget over it appears: its seed counts it from the store.
      const budget = {
        id: "added-later",
        scope: { feature: "added-later" },
        window: "lifetime",
        limit_usd: "100",
      };
      const admin = (method: string, body?: unknown) =>
        rt.app.request(method === "POST" ? "/api/budgets" : "/api/budgets/added-later", {
          method,
          headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      expect((await admin("POST", budget)).status).toBe(201);
      const spend = async () =>
        ((await (await admin("GET")).json()) as { spend_nanousd: string }).spend_nanousd;
      expect(await spend()).toBe(String(rec.cost_nanousd));
      // Made again (a poll whose lookup missed), it would count again: no marker says it was charged.
      expect(rt.guard.chargeMayBeForgotten(rec.ts_start)).toBe(true);
      await rt.guard.observe([rec], { countCalls: false, recurs: true });
      expect(await spend()).toBe(String(2n * rec.cost_nanousd)); // why the gateway must look it up first
    } finally {
      await rt.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
