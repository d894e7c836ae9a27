// A call settled days after its admission (a background response polled late) is charged to the window it
// was admitted in, long over by then, whose bucket the limit store has dropped meanwhile (memory: once its
// lifetime has passed; Redis: its keys expired, 2 days on). Its alerts must not fire again for that window.
// One settled just after its window ended, its bucket surely kept still, warns as any.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PricingEngine } from "@tollgate/core";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpendGuard } from "../src/limits/guard.js";
import { MemoryLimitStore } from "../src/limits/memory-store.js";
import { PolicyRegistry } from "../src/limits/policies.js";
import { RedisLimitStore } from "../src/limits/redis-store.js";
import type { LimitStore } from "../src/limits/types.js";
import type { LimitEventRow, LimitsStateStore } from "../src/store/types.js";
import { chatContext } from "./helpers.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const DAY_MS = 86_400_000;
const MONDAY = Date.UTC(2026, 10, 30, 10, 0);
const USD = 1_000_000_000n;

let redis: TestRedis;
let dir: string;
beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "tollgate-past-window-"));
});
afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** An event store that holds no calls, and keeps the limit events written. */
function eventsKeeping(rows: LimitEventRow[]): LimitsStateStore {
  return {
    listPolicies: async () => [],
    appendLimitEvents: async (more: LimitEventRow[]) => void rows.push(...more),
    limitEvents: async () => [],
    runUsage: async () => [],
    sumCost: async () => [],
  } as unknown as LimitsStateStore;
}

describe.each(["memory", "redis"])("a settle into a window long over (%s)", (name) => {
  it("fires none of that window's alerts again, its bucket dropped meanwhile", async () => {
    const limitsPath = join(dir, `${name}.yaml`);
    writeFileSync(
      limitsPath,
      `budgets:\n  - { id: daily, scope: { user_id: u1 }, window: day, limit_usd: "10", warn_at: [0.5] }\n`,
    );
    const events: LimitEventRow[] = [];
    const state = eventsKeeping(events);
    const registry = await PolicyRegistry.open(state, limitsPath);
    const store: LimitStore =
      name === "memory" ? new MemoryLimitStore() : await RedisLimitStore.connect(redis.url);
    let now = MONDAY;
    const guard = new SpendGuard(store, registry, state, new PricingEngine(), {
      now: () => now,
      log: () => {},
    });
    await guard.rebuild(["default"]);
    const admit = async () => {
      const a = await guard.admit(chatContext({ user_id: "u1" }));
      if (!a.ok) throw new Error("refused");
      return a.ticket;
    };
    const settle = (ticket: Awaited<ReturnType<typeof admit>>, usd: bigint, eventId: string) =>
      guard.settle(ticket, { cost: usd * USD, tokens: 10, toolCalls: 0, eventId });
    const alerts = () => events.filter((e) => e.type === "budget_state").map((e) => [e.to_state, e.event_id]);
    try {
      // Monday: a background response is submitted; another call takes the day past its warning.
      const background = await admit();
      await settle(await admit(), 6n, "monday");
      expect(alerts()).toEqual([["warning", "monday"]]);

      // Thursday: the user calls again; Monday's bucket is gone by then (on Redis, its keys have expired).
      now = MONDAY + 3 * DAY_MS;
      if (store instanceof RedisLimitStore) {
        const client = new Redis(redis.url);
        const keys = await client.keys("tg:{default}:*");
        if (keys.length) await client.del(...keys);
        client.disconnect();
      }
      await settle(await admit(), 1n, "thursday");
      // The response, polled only now, settles into Monday's window: its spend, but no warning again.
      await settle(background, 6n, "late");
      expect(alerts()).toEqual([["warning", "monday"]]);
      // Thursday's window is none the worse.
      const daily = registry.forWorkspace("default").budgets[0]!;
      expect(await guard.budgetStatus("default", daily)).toMatchObject([{ spend: USD, state: "ok" }]);
    } finally {
      await guard.close();
    }
  });

  it("fires the warning of a window that has just passed, its bucket still kept", async () => {
    const limitsPath = join(dir, `${name}-boundary.yaml`);
    writeFileSync(
      limitsPath,
      `budgets:\n  - { id: nightly, scope: { user_id: u2 }, window: day, limit_usd: "10", warn_at: [0.5] }\n`,
    );
    const events: LimitEventRow[] = [];
    const state = eventsKeeping(events);
    const registry = await PolicyRegistry.open(state, limitsPath);
    const store: LimitStore =
      name === "memory" ? new MemoryLimitStore() : await RedisLimitStore.connect(redis.url);
    const midnight = MONDAY - 10 * 3_600_000 + DAY_MS;
    let now = midnight - 1_000;
    const guard = new SpendGuard(store, registry, state, new PricingEngine(), {
      now: () => now,
      log: () => {},
    });
    await guard.rebuild(["default"]);
    try {
      // Sent a second before Monday ends, answered a second after: Monday's spend, past its warning.
      const a = await guard.admit(chatContext({ user_id: "u2" }));
      if (!a.ok) throw new Error("refused");
      now = midnight + 1_000;
      await guard.settle(a.ticket, { cost: 6n * USD, tokens: 10, toolCalls: 0, eventId: "late-evening" });
      expect(events.filter((e) => e.type === "budget_state").map((e) => [e.to_state, e.event_id])).toEqual([
        ["warning", "late-evening"],
      ]);
    } finally {
      await guard.close();
    }
  });
});
