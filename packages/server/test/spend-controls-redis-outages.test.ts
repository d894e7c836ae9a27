// The Redis limit backend through a stall: an admission that failed holds nothing once Redis answers again.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { PricingEngine } from "@tollgate/core";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type CallContext, type CallOutcome, SpendGuard } from "../src/limits/guard.js";
import { PolicyRegistry } from "../src/limits/policies.js";
import { RedisLimitStore } from "../src/limits/redis-store.js";
import type { LimitsStateStore } from "../src/store/types.js";
import { startRedis, type TestRedis } from "./redis-server.js";

let redis: TestRedis;
let dir: string;
let store: RedisLimitStore;
let guard: SpendGuard;
let registry: PolicyRegistry;
/** Each test's own user (and customer): its own buckets. */
let user = "";
let seq = 0;

// No event store: a budget's status lists the current test's bucket.
const events = {
  listPolicies: async () => [],
  appendLimitEvents: async () => {},
  sumCost: async () => [{ values: [user], cost_nanousd: 0n, hour: 0 }],
} as unknown as LimitsStateStore;

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "tg-redis-outage-"));
  const limits = join(dir, "limits.yaml");
  writeFileSync(
    limits,
    [
      "budgets:",
      '  - { id: tight, scope: { user_id: "*" }, window: day, limit_usd: "1.00" }',
      // roomy enough that Redis grants leases on it
      '  - { id: roomy, scope: { customer_id: "*" }, window: day, limit_usd: "100.00" }',
    ].join("\n"),
  );
  registry = await PolicyRegistry.open(events, limits);
  store = await RedisLimitStore.connect(redis.url);
  guard = new SpendGuard(store, registry, events, new PricingEngine(), { log: () => {} });
});
afterAll(async () => {
  await store?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  user = `u-${++seq}`;
  await until(held, () => true); // connected (after a test that dropped the connection)
});

/** A gpt-4o-mini call of this test's user: a worst case of ~$0.0096 (16,000 output tokens). */
function call(): CallContext {
  const body = { model: "gpt-4o-mini", max_tokens: 16_000, messages: [{ role: "user", content: "hi" }] };
  return {
    workspace: "default",
    facts: { user_id: user, customer_id: user },
    api: "openai.chat",
    provider: "openai",
    model: "gpt-4o-mini",
    body,
    raw: Buffer.from(JSON.stringify(body)),
    requestId: `req-${++seq}`,
    attempt: 1,
    depth: 1,
  };
}
const COST = 100_000n; // $0.0001, the actual cost of each call
const outcome: CallOutcome = { cost: COST, tokens: 10, toolCalls: 0, eventId: null };

/** Spend and reservations of this test's buckets of both budgets. */
async function held(): Promise<{ spend: bigint; reserved: bigint }[]> {
  const budgets = registry.forWorkspace("default").budgets;
  const status = await Promise.all(budgets.map((b) => guard.budgetStatus("default", b)));
  return status.map((s) => ({ spend: s[0]!.spend, reserved: s[0]!.reserved }));
}

/** Stalls Redis for `ms` (a slow command, a fork, a paused VM): past the store's 1 s command timeout. */
function stallRedis(ms: number): Promise<void> {
  const blocker = new Redis(redis.url);
  const busy = `local t = redis.call('TIME'); local e = t[1] * 1000 + t[2] / 1000 + ${ms}
    repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 > e; return 1`;
  return blocker.eval(busy, 0).then(() => blocker.disconnect());
}

/** `read`, once `done` says so (failures while the store reconnects are waited out), or after 5 s. */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await read().catch(() => null);
    if (v !== null && done(v)) return v;
    await sleep(50);
  }
  return read();
}

describe("Redis stalls past the command timeout", () => {
  it("admissions that timed out (let through, fail_open) hold nothing once Redis runs them late", async () => {
    const stalled = stallRedis(1500);
    await sleep(50);
    // 110 calls arrive during the stall: their ADMITs time out, then run when Redis catches up, reserving
    // each call's worst case (~$1.05 in all on the $1.00 cap) and leases on the roomy budget
    const admissions = await Promise.all(Array.from({ length: 110 }, () => guard.admit(call())));
    expect(admissions.every((a) => a.ok)).toBe(true);
    await Promise.all(admissions.map((a) => (a.ok ? guard.settle(a.ticket, outcome) : null)));
    await stalled;
    const spend = 110n * COST;
    expect(await until(held, (h) => h.every((b) => b.reserved === 0n))).toEqual([
      { spend, reserved: 0n },
      { spend, reserved: 0n },
    ]);
    // the user's $0.989 left is there to spend
    const next = await guard.admit(call());
    expect(next.ok).toBe(true);
    if (next.ok) await guard.settle(next.ticket, outcome);
  });
});
