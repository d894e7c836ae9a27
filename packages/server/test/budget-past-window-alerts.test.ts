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
  /** A guard on this store with one budget (YAML), its clock `clock.now`, the alerts it writes. */
  async function guardWith(file: string, budget: string, clock: { now: number }) {
    const limitsPath = join(dir, `${name}-${file}.yaml`);
    writeFileSync(limitsPath, `budgets:\n  - ${budget}\n`);
    const events: LimitEventRow[] = [];
    const state = eventsKeeping(events);
    const registry = await PolicyRegistry.open(state, limitsPath);
    const store: LimitStore =
      name === "memory" ? new MemoryLimitStore() : await RedisLimitStore.connect(redis.url);
    const guard = new SpendGuard(store, registry, state, new PricingEngine(), {
      now: () => clock.now,
      log: () => {},
    });
    await guard.rebuild(["default"]);
    const admit = async (user: string) => {
      const a = await guard.admit(chatContext({ user_id: user }));
      if (!a.ok) throw new Error("refused");
      return a.ticket;
    };
    const settle = (ticket: Awaited<ReturnType<typeof admit>>, usd: bigint, eventId: string) =>
      guard.settle(ticket, { cost: usd * USD, tokens: 10, toolCalls: 0, eventId });
    const alerts = () => events.filter((e) => e.type === "budget_state").map((e) => [e.to_state, e.event_id]);
    return { guard, store, registry, admit, settle, alerts };
  }

  it("fires none of that window's alerts again, its bucket dropped meanwhile", async () => {
    const clock = { now: MONDAY };
    const { guard, store, registry, admit, settle, alerts } = await guardWith(
      "daily",
      `{ id: daily, scope: { user_id: u1 }, window: day, limit_usd: "10", warn_at: [0.5] }`,
      clock,
    );
    try {
      // Monday: a background response is submitted; another call takes the day past its warning.
      const background = await admit("u1");
      await settle(await admit("u1"), 6n, "monday");
      expect(alerts()).toEqual([["warning", "monday"]]);

      // Thursday: the user calls again; Monday's bucket is gone by then (on Redis, its keys have expired).
      clock.now = MONDAY + 3 * DAY_MS;
      if (store instanceof RedisLimitStore) {
        const client = new Redis(redis.url);
        const keys = await client.keys("tg:{default}:*");
        if (keys.length) await client.del(...keys);
        client.disconnect();
      }
      await settle(await admit("u1"), 1n, "thursday");
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
    const midnight = MONDAY - 10 * 3_600_000 + DAY_MS;
    const clock = { now: midnight - 1_000 };
    const { guard, admit, settle, alerts } = await guardWith(
      "boundary",
      `{ id: nightly, scope: { user_id: u2 }, window: day, limit_usd: "10", warn_at: [0.5] }`,
      clock,
    );
    try {
      // Sent a second before Monday ends, answered a second after: Monday's spend, past its warning.
      const ticket = await admit("u2");
      clock.now = midnight + 1_000;
      await settle(ticket, 6n, "late-evening");
      expect(alerts()).toEqual([["warning", "late-evening"]]);
    } finally {
      await guard.close();
    }
  });

  it("fires none for a 23-hour day (DST) passed two windows ago, its counters gone from memory", async () => {
    // New York springs forward on Sunday 8 March 2026: that day starts 05:00 UTC and lasts 23 hours, so the
    // day after next starts 47 hours on, an hour before its bucket's 2 days are up.
    const sunday = Date.UTC(2026, 2, 8, 5, 0);
    const clock = { now: sunday + 7 * 3_600_000 };
    const { guard, admit, settle, alerts } = await guardWith(
      "dst",
      `{ id: ny, scope: { user_id: u3 }, window: day, timezone: America/New_York, limit_usd: "10", warn_at: [0.5] }`,
      clock,
    );
    try {
      const background = await admit("u3");
      await settle(await admit("u3"), 6n, "sunday");
      clock.now = sunday + 31 * 3_600_000; // Monday
      await settle(await admit("u3"), 6n, "monday");
      clock.now = sunday + 47 * 3_600_000 + 1_800_000; // Tuesday, 00:30 in New York
      await settle(await admit("u3"), 6n, "tuesday");
      await admit("u3");
      // Sunday's response, polled only now: Sunday's window warned already.
      await settle(background, 6n, "late");
      expect(alerts()).toEqual([
        ["warning", "sunday"],
        ["warning", "monday"],
        ["warning", "tuesday"],
      ]);
    } finally {
      await guard.close();
    }
  });

  it.each([
    ["warns once, the late call's hours taking its level down", 1n],
    ["misses no warning, the late call's hours taking its level up", 7n],
  ])("leaves a rolling window's level as its current hours set it: %s", async (_, lateUsd) => {
    const user = `u4-${lateUsd}`;
    const clock = { now: MONDAY };
    const { guard, admit, settle, alerts } = await guardWith(
      `rolling-${lateUsd}`,
      `{ id: last-day-${lateUsd}, scope: { user_id: ${user} }, window: 24h, limit_usd: "10", warn_at: [0.5] }`,
      clock,
    );
    try {
      const background = await admit(user);
      // A day and more on, a response admitted 30 hours ago is polled only now: its hours have left the
      // window. Around it, the last 24 hours pass their warning, then spend on.
      clock.now = MONDAY + 30 * 3_600_000;
      const current = [await admit(user), await admit(user)] as const;
      if (lateUsd === 1n) await settle(current[0], 6n, "now");
      await settle(background, lateUsd, "late");
      if (lateUsd === 7n) await settle(current[0], 6n, "now");
      await settle(current[1], 1n, "after");
      expect(alerts()).toEqual([["warning", "now"]]);
    } finally {
      await guard.close();
    }
  });
});
