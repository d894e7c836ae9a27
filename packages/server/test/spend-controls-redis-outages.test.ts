// The Redis limit backend through a stall or a dropped connection: an admission that failed holds nothing
// once Redis answers again, and a settle, a lease's consumption or an ingested call's charge that failed
// still counts, once.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { PricingEngine, usdToNano } from "@tollgate/core";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type CallContext, type CallOutcome, SpendGuard, type Ticket } from "../src/limits/guard.js";
import { PolicyRegistry } from "../src/limits/policies.js";
import { RedisLimitStore } from "../src/limits/redis-store.js";
import type { LimitsStateStore } from "../src/store/types.js";
import { buildRecord } from "./conformance-data.js";
import { chatContext, validRecord } from "./helpers.js";
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
  findEvent: async () => null, // a duplicate in doubt is charged as sent
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
      "agents:",
      "  two-call-bot: { max_llm_calls: 2 }",
    ].join("\n"),
  );
  registry = await PolicyRegistry.open(events, limits);
  ({ store, guard } = await connectGuard());
});
afterAll(async () => {
  await guard?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  user = `u-${++seq}`;
  await until(held, () => true); // connected (after a test that dropped the connection)
});

/** A guard on a connection of its own to the test's Redis. */
async function connectGuard(log: (msg: string) => void = () => {}) {
  const s = await RedisLimitStore.connect(redis.url);
  return { store: s, guard: new SpendGuard(s, registry, events, new PricingEngine(), { log }) };
}

/** A gpt-4o-mini call of this test's user: a worst case of ~$0.0096 (16,000 output tokens). */
function call(maxTokens = 16_000): CallContext {
  return chatContext({ user_id: user, customer_id: user }, { maxTokens });
}
/** A call with a worst case (~$0.00006) small enough that both budgets grant leases: admitted locally. */
const leasedCall = () => call(100);
const COST = 100_000n; // $0.0001, the actual cost of each call
const outcome: CallOutcome = { cost: COST, tokens: 10, toolCalls: 0, eventId: null };

/** A call of this test's user recorded elsewhere (events API, SDK): its spend counts all the same. */
const ingested = () => buildRecord(validRecord({ user_id: user, customer_id: user }));
const INGESTED_COST = buildRecord(validRecord()).cost_nanousd;

/** The ticket of an admission that went through. */
function ticketOf(admission: Awaited<ReturnType<SpendGuard["admit"]>>): Ticket {
  if (!admission.ok || !admission.ticket) throw new Error("not admitted");
  return admission.ticket;
}

/** Spend and reservations of this test's buckets of both budgets. */
async function held(g = guard): Promise<{ spend: bigint; reserved: bigint }[]> {
  const budgets = registry.forWorkspace("default").budgets;
  const status = await Promise.all(budgets.map((b) => g.budgetStatus("default", b)));
  return status.map((s) => ({ spend: s[0]!.spend, reserved: s[0]!.reserved }));
}
const spends = async (g = guard) => (await held(g)).map((b) => b.spend);

/**
 * Stalls Redis for `ms` (a slow command, a fork, a paused VM): past the store's 1 s command timeout. Resolves
 * once the stall has begun, with its end (`over`).
 */
async function stallRedis(ms: number): Promise<{ over: Promise<void> }> {
  const blocker = new Redis(redis.url);
  const probe = new Redis(redis.url);
  await Promise.all([blocker.ping(), probe.ping()]);
  const busy = `local t = redis.call('TIME'); local e = t[1] * 1000 + t[2] / 1000 + ${ms}
    repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 > e; return 1`;
  const over = blocker.eval(busy, 0).then(() => blocker.disconnect());
  // Begun once a PING waits behind it: a fixed 50 ms was too short on a busy machine, where writes meant to
  // meet the stall went through before it.
  const answered = () =>
    Promise.race([
      probe.ping().then(
        () => true,
        () => true,
      ),
      sleep(200).then(() => false),
    ]);
  while (await answered()) await sleep(5);
  probe.disconnect();
  return { over };
}

/**
 * Drops every client connection but the admin's own (a failover, a network blip). With `unreachableMs`
 * Redis then pauses that long (in the same transaction): reconnections get no answer, so whatever the
 * store sends meanwhile fails at once and never runs.
 */
async function dropConnections(unreachableMs = 0): Promise<void> {
  const admin = new Redis(redis.url);
  const tx = admin.multi().client("KILL", "TYPE", "normal", "SKIPME", "yes");
  if (unreachableMs) tx.client("PAUSE", unreachableMs, "ALL");
  await tx.exec();
  admin.disconnect();
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
    const stalled = (await stallRedis(1500)).over;
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

  it("a run's holds that a timed-out admission took leave no keys behind once given back", async () => {
    // Turned away (its budget fails closed), the call is never settled: only the give-back takes them back.
    const w = `holds-${user}`;
    const now = Date.now();
    const req = {
      workspace: w,
      id: `res-${user}`,
      now,
      expiresAt: now + 60_000,
      buckets: [],
      rates: [],
      run: {
        key: "r:stalled",
        ceilings: { cost_nanousd: 1000n, total_tokens: 100 },
        depth: 1,
        retry: false,
        hold: { cost_nanousd: 300n, total_tokens: 30 },
      },
    };
    const stalled = (await stallRedis(1500)).over;
    await expect(store.admit(req)).rejects.toThrow(); // times out at 1 s; Redis runs it at 1.5 s
    await stalled;
    // The ADMIT ran late (the call counts), and its holds went back.
    const counted = await until(
      () => store.run(w, "r:stalled"),
      (r) => r?.usage.llm_calls === 1,
    );
    expect(counted?.usage.llm_calls).toBe(1);
    const client = new Redis(redis.url);
    const holdKeys = () => client.keys(`tg:{${w}}:hr:*`);
    expect(await until(holdKeys, (k) => k.length === 0)).toEqual([]);
    client.disconnect();
  });

  it("a settle that timed out but ran is counted once, though it is retried", async () => {
    const admitted = await guard.admit(call());
    expect(admitted.ok).toBe(true);
    const stalled = (await stallRedis(1500)).over;
    if (admitted.ok) await guard.settle(admitted.ticket, outcome); // times out at 1 s; Redis runs it at 1.5 s
    await stalled;
    await sleep(500); // the retries after it have run by now
    expect(await held()).toEqual([
      { spend: COST, reserved: 0n },
      { spend: COST, reserved: expect.any(BigInt) }, // the lease's unused allowance, until given back
    ]);
  });
});

describe("Redis drops the connection", () => {
  it("a run's call let through while Redis was unreachable (its ADMIT never ran), never sent, takes back no LLM call: max_llm_calls holds", async () => {
    const runId = `run-${user}`;
    const ofRun = () =>
      chatContext({ user_id: user, customer_id: user, agent_run_id: runId, agent_type: "two-call-bot" });
    const unsent: CallOutcome = { cost: 0n, tokens: 0, toolCalls: 0, eventId: null, unsent: true };
    await guard.settle(ticketOf(await guard.admit(ofRun())), outcome); // the run's first call, sent
    await dropConnections(500); // Redis answers no one for 500 ms: the ADMIT below never runs
    const blind = ticketOf(await guard.admit(ofRun())); // fails at once: fail_open lets it through
    await guard.settle(blind, unsent); // its client left before it went upstream; retried until Redis answers
    const client = new Redis(redis.url);
    await until(
      () => client.exists(`tg:{default}:settled:${blind.id}`),
      (n) => n === 1,
    );
    client.disconnect();
    // The one call its run counted stays counted: one more fits under max_llm_calls, not two.
    expect((await store.run("default", `r:${runId}`))?.usage.llm_calls).toBe(1);
    await guard.settle(ticketOf(await guard.admit(ofRun())), outcome);
    const third = await guard.admit(ofRun());
    expect(third.ok ? "admitted" : third.error.code).toBe("agent_run_killed");
  });

  it("a call let through while Redis was unreachable (its ADMIT never ran), never sent, takes back no throttle count: throttle_rpm holds", async () => {
    const limits = join(dir, "throttle.yaml");
    writeFileSync(
      limits,
      [
        "budgets:",
        '  - { id: slow, scope: { user_id: "*" }, window: day, limit_usd: "0.00001", action: throttle, throttle_rpm: 2 }',
      ].join("\n"),
    );
    const throttled = new SpendGuard(
      store,
      await PolicyRegistry.open(events, limits),
      events,
      new PricingEngine(),
    );
    const unsent: CallOutcome = { cost: 0n, tokens: 0, toolCalls: 0, eventId: null, unsent: true };
    await throttled.settle(ticketOf(await throttled.admit(call())), outcome); // spends past the cap
    await throttled.settle(ticketOf(await throttled.admit(call())), outcome); // throttled: 1 of 2 this minute
    await dropConnections(500); // Redis answers no one for 500 ms: the ADMIT below never runs
    const blind = ticketOf(await throttled.admit(call())); // fails at once: fail_open lets it through
    await throttled.settle(blind, unsent); // its client left before it went upstream; retried until Redis answers
    const client = new Redis(redis.url);
    await until(
      () => client.exists(`tg:{default}:settled:${blind.id}`),
      (n) => n === 1,
    );
    client.disconnect();
    // The one call its throttle counted stays counted: one more passes this minute, not two.
    const admitted = async () => (await throttled.admit(call())).ok;
    expect([await admitted(), await admitted()]).toEqual([true, false]);
  });

  it("a call's spend is not lost to a connection dropped at its settle: a $1.00 cap still holds", async () => {
    const big = { cost: usdToNano("0.995"), tokens: 10, toolCalls: 0, eventId: null };
    const first = await guard.admit(call());
    expect(first.ok).toBe(true);
    await dropConnections(); // while the call runs
    if (first.ok) await guard.settle(first.ticket, big); // fails at once: no offline queue, no resend
    const [tight] = await until(held, (h) => h[0]!.spend > 0n);
    expect(tight).toEqual({ spend: usdToNano("0.995"), reserved: 0n });
    // spend + the next call's worst case no longer fit under the cap
    const second = await guard.admit(call());
    expect(second.ok ? "admitted" : second.error.code).toBe("budget_exceeded");
  });

  it("a call admitted while Redis was unreachable (its ADMIT never ran) is charged once it answers", async () => {
    await dropConnections();
    const admitted = await guard.admit(call()); // fails at once: fail_open lets it through
    expect(admitted.ok).toBe(true);
    if (admitted.ok) await guard.settle(admitted.ticket, outcome);
    const h = await until(held, (x) => x[0]!.spend > 0n);
    expect(h).toEqual([
      { spend: COST, reserved: 0n },
      { spend: COST, reserved: 0n },
    ]);
  });
});

it("a repeated settle of a reservation (its first reply lost) counts once", async () => {
  const admitted = await guard.admit(call());
  if (!admitted.ok) throw new Error("refused");
  const t = admitted.ticket!;
  const req = {
    workspace: "default",
    id: t.id,
    now: Date.now(),
    buckets: t.buckets.map((b) => ({ ...b, actual: COST })),
    tokenRates: [],
    run: null,
  };
  await store.settle(req);
  await store.settle(req);
  expect((await held()).map((b) => b.spend)).toEqual([COST, COST]);
});

describe("lease consumption (the summed costs of calls admitted from leases) that Redis missed", () => {
  it("is retried until Redis answers, and counted once: one write that never reached it, one that ran late", async () => {
    // the first call goes to Redis and brings back a lease on each budget; the next two are admitted from them
    const first = ticketOf(await guard.admit(leasedCall()));
    await guard.settle(first, outcome);
    const trips = store.admitRoundTrips;
    const [lost, late] = [
      ticketOf(await guard.admit(leasedCall())),
      ticketOf(await guard.admit(leasedCall())),
    ];
    expect(store.admitRoundTrips).toBe(trips);

    await dropConnections(1500);
    // its consumption is written 20 ms later and fails at once (before: dropped for good)
    await guard.settle(lost, outcome);
    expect(await until(spends, () => true)).toEqual([2n * COST, 2n * COST]);

    const stalled = (await stallRedis(1500)).over;
    // written 20 ms later, it times out at 1 s and is retried at 1.1 s; Redis runs both at 1.5 s
    await guard.settle(late, outcome);
    await stalled;
    // once the leases go back (unused after 2 s) nothing is held: their consumption was counted once
    expect(await until(held, (h) => h.every((b) => b.reserved === 0n))).toEqual([
      { spend: 3n * COST, reserved: 0n },
      { spend: 3n * COST, reserved: 0n },
    ]);
  });
});

describe("the move of a call's hold apart from its leases (a background response running on) that Redis missed", () => {
  /** A call admitted from the leases a first one brought back, as a background submission is. */
  async function leasedSubmission(): Promise<Ticket> {
    await guard.settle(ticketOf(await guard.admit(leasedCall())), outcome);
    const trips = store.admitRoundTrips;
    const running = ticketOf(await guard.admit(leasedCall()));
    expect(store.admitRoundTrips).toBe(trips);
    return running;
  }

  it("ran late and once more (its first reply lost): moved once; the leases go back without it", async () => {
    const running = await leasedSubmission();
    const stalled = (await stallRedis(1500)).over;
    await guard.holdApart(running); // times out at 1 s and is retried at 1.1 s; Redis runs both at 1.5 s
    await stalled;
    // once the leases go back (unused after 2 s), the running call's worst case is what is held, once
    const worst = running.buckets[0]!.reserved;
    expect(await until(held, (h) => h.every((b) => b.reserved === worst))).toEqual([
      { spend: COST, reserved: worst },
      { spend: COST, reserved: worst },
    ]);
    await guard.settle(running, outcome);
    expect(await until(held, (h) => h.every((b) => b.reserved === 0n))).toEqual([
      { spend: 2n * COST, reserved: 0n },
      { spend: 2n * COST, reserved: 0n },
    ]);
  });

  it("retried after the call's settle landed: it moves nothing, and the settle counts once", async () => {
    const running = await leasedSubmission();
    await dropConnections(1800);
    await guard.holdApart(running); // fails at once: retried at 0.1, 0.3, 0.7, 1.5, 3.1 s
    await until(held, () => true); // Redis answers again (1.8 s): the next retry is a second away
    const other = await connectGuard(); // the call found finished meanwhile, settled through another connection
    await other.guard.settle(running, outcome);
    await other.guard.close();
    expect(await until(held, (h) => h.every((b) => b.reserved === 0n))).toEqual([
      { spend: 2n * COST, reserved: 0n },
      { spend: 2n * COST, reserved: 0n },
    ]);
  });
});

describe("the charge of an ingested call that Redis missed", () => {
  it("is retried until Redis answers, and counted once: one that never reached it, one that ran late", async () => {
    await dropConnections(1500);
    await guard.observe([ingested()]); // fails at once (before: logged and forgotten)
    expect(await until(held, (h) => h[0]!.spend > 0n)).toEqual([
      { spend: INGESTED_COST, reserved: 0n },
      { spend: INGESTED_COST, reserved: 0n },
    ]);

    const stalled = (await stallRedis(1500)).over;
    await guard.observe([ingested()]); // times out at 1 s and is retried at 1.1 s; Redis runs both at 1.5 s
    await stalled;
    await sleep(200);
    expect(await spends()).toEqual([2n * INGESTED_COST, 2n * INGESTED_COST]);
  });

  it("a repeated charge of one event (a retry, its first reply lost) counts once", async () => {
    const rec = ingested();
    await guard.observe([rec]);
    await guard.observe([rec]);
    expect(await spends()).toEqual([INGESTED_COST, INGESTED_COST]);
  });
});

describe("the doubt of a failed write that Redis missed", () => {
  it("comes first: the retry's duplicates, charged behind it once Redis answers, count once", async () => {
    const recs = [ingested(), ingested()];
    await dropConnections(1500);
    await guard.doubt(recs); // fails at once: retried
    await guard.observeDuplicates(recs); // waits behind it
    const twice = [2n * INGESTED_COST, 2n * INGESTED_COST];
    expect(await until(spends, (s) => s[0] === twice[0])).toEqual(twice);
    await guard.observeDuplicates(recs); // once more (its answer lost): out of doubt, nothing more counts
    expect(await spends()).toEqual(twice);
  });
});

describe("SpendGuard.close()", () => {
  it("writes the lease consumption and charges still waiting to be retried", async () => {
    const own = await connectGuard();
    const first = ticketOf(await own.guard.admit(leasedCall()));
    await own.guard.settle(first, outcome);
    const leased = ticketOf(await own.guard.admit(leasedCall()));
    expect(own.store.admitRoundTrips).toBe(1);

    await dropConnections(1800);
    const settled = own.guard.settle(leased, outcome); // its consumption fails: retried at 0.1, 0.3, 0.7, 1.5, 3.1 s
    await own.guard.observe([ingested()]); // fails: retried at the same times
    // once Redis answers again (1.8 s) only the first call counts: the next retries are a second away
    expect(
      await until(
        () => spends(own.guard),
        () => true,
      ),
    ).toEqual([COST, COST]);

    await own.guard.close();
    await settled;
    expect(await spends()).toEqual([2n * COST + INGESTED_COST, 2n * COST + INGESTED_COST]);
  });

  it("stops at the first write Redis does not take instead of waiting for each, and says what it gave up", async () => {
    const log: string[] = [];
    const own = await connectGuard((m) => log.push(m));
    const stalled = (await stallRedis(5000)).over;
    // the first times out at 1 s; the others queue behind it without being tried
    await own.guard.observe(Array.from({ length: 8 }, () => ingested()));
    const closing = Date.now();
    await own.guard.close(); // one more try (1 s), then the store's connection closes (1 s)
    expect(Date.now() - closing).toBeLessThan(3500); // not 8 × 1 s
    expect(log).toContain("limits: gave up on 8 writes the backend never took");
    await stalled;
  });
});
