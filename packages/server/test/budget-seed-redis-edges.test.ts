// Budgets added while running on Redis (SharedSeeds), at the edges the load test does not reach: the end
// of seeding (a call from before the instant counted live and by a last read of the store still to come),
// a budget that comes back (one counted live without an instant; one whose seeded totals expired), a
// replica whose refresh loop waited on the first seed of each budget it learned of, a budget added while
// Redis does not answer, the hard cap through the grace period (calls held until a read counts them), edits
// to another window kind; and known gaps, pinned: a limits file whose copies change apart, an edit back to a
// window kind the budget had.
// Replicas are SpendGuards of their own on one Redis and one event store (a fake: records in memory, summed
// as the stores sum them), with clocks of their own.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type CallRecord, PricingEngine } from "@tollgate/core";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SpendGuard } from "../src/limits/guard.js";
import { PolicyRegistry } from "../src/limits/policies.js";
import { RedisLimitStore } from "../src/limits/redis-store.js";
import { refreshPolicies } from "../src/runtime.js";
import type { CostSumRow, EventFilter, LimitsStateStore, PolicyRow, SumField } from "../src/store/types.js";
import { buildRecord } from "./conformance-data.js";
import { chatContext, validRecord } from "./helpers.js";
import { startRedis, type TestRedis } from "./redis-server.js";

/** Calls stored and policies, as the event store keeps them (sumCost: `from` inclusive, `to` exclusive). */
class FakeEvents {
  records: CallRecord[] = [];
  policies = new Map<string, PolicyRow>();
  /** How long each sumCost takes (a big store's scan). */
  sumDelayMs = 0;
  async listPolicies(): Promise<PolicyRow[]> {
    return [...this.policies.values()];
  }
  async putPolicy(row: PolicyRow): Promise<PolicyRow | null> {
    const k = `${row.workspace_id}\u0000${row.kind}\u0000${row.id}`;
    const before = this.policies.get(k) ?? null;
    this.policies.set(k, row);
    return before;
  }
  async deletePolicy(ws: string, kind: string, id: string): Promise<PolicyRow | null> {
    const k = `${ws}\u0000${kind}\u0000${id}`;
    const before = this.policies.get(k) ?? null;
    this.policies.delete(k);
    return before;
  }
  async policyAudit() {
    return [];
  }
  async appendLimitEvents() {}
  async limitEvents() {
    return [];
  }
  async runUsage() {
    return [];
  }
  async sumCost(filter: EventFilter & { tag?: string }, by: readonly SumField[], hourly: boolean) {
    if (this.sumDelayMs) await sleep(this.sumDelayMs);
    const field = (r: CallRecord, f: string) =>
      f === "model"
        ? (r.model_requested ?? r.model)
        : ((r as unknown as Record<string, string | null>)[f] ?? "");
    const rows = new Map<string, CostSumRow>();
    for (const r of this.records) {
      if (r.workspace_id !== filter.workspaceId) continue;
      if (filter.from !== undefined && r.ts_start < filter.from) continue;
      if (filter.to !== undefined && r.ts_start >= filter.to) continue;
      if (Object.entries(filter.where ?? {}).some(([f, v]) => field(r, f) !== v)) continue;
      const values = by.map((f) => field(r, f));
      const hour = hourly ? Math.floor(r.ts_start / 3_600_000) : null;
      const k = JSON.stringify([values, hour]);
      const row = rows.get(k) ?? { values, hour, cost_nanousd: 0n };
      row.cost_nanousd += r.cost_nanousd;
      rows.set(k, row);
    }
    return [...rows.values()];
  }
  async storedIds(ws: string, ids: readonly string[]): Promise<Set<string>> {
    const held = new Set(this.records.filter((r) => r.workspace_id === ws).map((r) => r.event_id));
    return new Set(ids.filter((id) => held.has(id)));
  }
  /** The store's spend of `user`'s calls. */
  spendOf(user: string): bigint {
    return this.records.filter((r) => r.user_id === user).reduce((s, r) => s + r.cost_nanousd, 0n);
  }
}

const GRACE = 1_000;
const PASSES = [100, 600];
const END = PASSES[PASSES.length - 1]!;
/** Real time for the seeding ticks (every 500 ms) to run every pass due. */
const TICKS_MS = (PASSES.length + 1) * 600;

let redis: TestRedis;
let admin: Redis;
let seq = 0;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});
afterEach(async () => {
  for (const g of open.splice(0)) await g.close();
});

/** A shared test clock; each replica reads it with its own skew. */
const clock = { now: Date.now() };

/** One gateway replica: its own policy registry, limit store connection and clock (skewed by `skewMs`). */
async function replica(
  events: FakeEvents,
  opts: { skewMs?: number; limitsFile?: string; graceMs?: number; realClock?: boolean } = {},
) {
  const registry = await PolicyRegistry.open(events as unknown as LimitsStateStore, opts.limitsFile ?? null);
  const store = await RedisLimitStore.connect(redis.url);
  const now = opts.realClock ? Date.now : () => clock.now + (opts.skewMs ?? 0);
  const guard = new SpendGuard(store, registry, events as unknown as LimitsStateStore, new PricingEngine(), {
    now,
    sharedSeed: { graceMs: opts.graceMs ?? GRACE, passesMs: PASSES },
    log: () => {},
  });
  await guard.rebuild(["default"]);
  open.push(guard);
  return { guard, registry, now };
}

/** A budget on one user's calls (lifetime: every call counts). */
const budgetSpec = (id: string, user: string, limitUsd = "1000") => ({
  id,
  scope: { user_id: user },
  window: "lifetime",
  limit_usd: limitUsd,
});

/** Creates or edits an API budget through `r` as the API does (stored, then seeded if it is to be). */
async function createBudget(r: Awaited<ReturnType<typeof replica>>, spec: ReturnType<typeof budgetSpec>) {
  const { seed } = await r.registry.put("default", "budget", null, spec, "test");
  if (seed) await r.guard.budgetAdded("default", spec.id);
}

/** A call of `user` made at `ts`: $0.15 (1M gpt-4o-mini input tokens) unless `tokens` says otherwise. */
const record = (user: string, ts: number, tokens = 1_000_000) =>
  buildRecord(validRecord({ user_id: user, ts_start: ts, input_uncached_tokens: tokens }));

/** A call recorded elsewhere (events API, SDK): stored, then counted (as IngestService does). */
async function ingest(events: FakeEvents, guard: SpendGuard, rec: CallRecord) {
  events.records.push(rec);
  await guard.observe([rec]);
}

/** A gateway call of `user` made now on `r`: admitted, settled with its record's cost, its record stored. */
async function gatewayCall(
  events: FakeEvents,
  r: Awaited<ReturnType<typeof replica>>,
  user: string,
  tokens = 1_000_000,
): Promise<boolean> {
  const admission = await r.guard.admit(chatContext({ user_id: user }));
  if (!admission.ok) return false;
  const rec = record(user, r.now(), tokens);
  events.records.push(rec);
  await r.guard.settle(admission.ticket, {
    cost: rec.cost_nanousd,
    tokens: 0,
    toolCalls: 0,
    eventId: rec.event_id,
    tsStart: rec.ts_start,
  });
  return true;
}

async function spendOf(guard: SpendGuard, id: string): Promise<bigint> {
  const b = guard.registry.forWorkspace("default").budgets.find((x) => x.id === id)!;
  return (await guard.budgetStatus("default", b))[0]!.spend;
}

const fresh = () => `edge-${process.pid}-${++seq}`;

describe("the end of seeding", () => {
  it("a call from before the instant, stored once seeding has ended by the clock but before the last pass read the store, counts once", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    events.records.push(record(user, clock.now - 60_000)); // stored before the budget: its seed
    await createBudget(a, budgetSpec(user, user));
    // Seeding is over by the clock (its instant + the last pass); the tick has not run the passes yet.
    clock.now += GRACE + END + 1;
    // A call made an hour before the instant (a backfill, a call spooled through an outage) comes in now.
    await ingest(events, a.guard, record(user, clock.now - 3_600_000));
    await sleep(TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // was 3 calls' worth of 2
  });

  it("…on another replica than the one whose last pass reads the store later (its clock 1.5 s behind)", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events, { skewMs: -1_500 });
    const b = await replica(events);
    const user = fresh();
    events.records.push(record(user, clock.now - 60_000));
    await createBudget(a, budgetSpec(user, user));
    for (const x of await b.registry.refresh()) await b.guard.budgetAdded(x.workspace, x.id);
    // The instant is A's (its clock + the grace). B's clock is past the last pass, A's not yet: B has
    // finished seeding, A's last read is to come.
    clock.now += 1_000;
    await sleep(TICKS_MS);
    await ingest(events, b.guard, record(user, clock.now - 3_600_000)); // made before the instant
    clock.now += 1_000; // A's last pass now
    await sleep(TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // was 3 calls' worth of 2
  });
});

describe("a budget that comes back", () => {
  let dir = "";
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = "";
  });

  it("(a limits-file budget counted live since start, dropped from the file and restored) counts its window once", async () => {
    clock.now = Date.now();
    dir = mkdtempSync(join(tmpdir(), "tg-seed-edges-"));
    const file = join(dir, "limits.yaml");
    const user = fresh();
    const withBudget = `budgets:\n  - { id: ${user}, scope: { user_id: ${user} }, window: lifetime, limit_usd: "1000" }\n`;
    writeFileSync(file, withBudget);
    const events = new FakeEvents();
    const a = await replica(events, { limitsFile: file });
    // New at this start (no instant yet): seeded, then counted live once its seeding is over.
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    await ingest(events, a.guard, record(user, clock.now - 1_000));
    await ingest(events, a.guard, record(user, clock.now));
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user));
    writeFileSync(file, "budgets: []\n");
    a.registry.reloadFile();
    writeFileSync(file, withBudget);
    for (const x of a.registry.reloadFile().newBudgets) await a.guard.budgetAdded(x.workspace, x.id);
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // was twice its spend
  });

  it("(an API budget deleted, created again once its seeded totals expired, 48 h on) keeps its counters", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    events.records.push(record(user, clock.now - 60_000));
    await createBudget(a, budgetSpec(user, user));
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user));
    await a.registry.delete("default", "budget", user, "test");
    clock.now += 49 * 3_600_000;
    await admin.del(`tg:{default}:seeded:${user}#lifetime`); // its 48 h TTL (Redis's clock is not the test's)
    await createBudget(a, budgetSpec(user, user));
    await sleep(TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // was twice its spend
  });
});

describe("a budget added to the limits file of every replica", () => {
  let dir = "";
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = "";
  });

  // Known gap (not fixed here): the grace period is two policy refreshes, but replicas learn of a limits
  // file's budget when their own copy of the file changes (a ConfigMap reaches pods a minute or more
  // apart), not at a refresh. A replica whose file changes after the instant counts none of the calls it
  // answered until then.
  it.fails("counts the calls of a replica whose file changed after the instant", async () => {
    clock.now = Date.now();
    dir = mkdtempSync(join(tmpdir(), "tg-seed-edges-"));
    const [fa, fb] = [join(dir, "a.yaml"), join(dir, "b.yaml")];
    for (const f of [fa, fb]) writeFileSync(f, "budgets: []\n");
    const events = new FakeEvents();
    const a = await replica(events, { limitsFile: fa });
    const b = await replica(events, { limitsFile: fb });
    const user = fresh();
    const withBudget = `budgets:\n  - { id: ${user}, scope: { user_id: ${user} }, window: lifetime, limit_usd: "1000" }\n`;
    writeFileSync(fa, withBudget);
    for (const x of a.registry.reloadFile().newBudgets) await a.guard.budgetAdded(x.workspace, x.id);
    clock.now += 3 * GRACE; // B's copy of the file changes later
    for (let i = 0; i < 3; i++) await gatewayCall(events, b, user);
    writeFileSync(fb, withBudget);
    for (const x of b.registry.reloadFile().newBudgets) await b.guard.budgetAdded(x.workspace, x.id);
    clock.now += END + 1;
    await sleep(TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // B's 3 calls missing
  });
});

describe("the grace period", () => {
  // From a budget's appearance to its instant, and until a read of the store after each call, the calls
  // made are counted by no one yet: each one's reservation is kept past its settle until a pass has read
  // the store holding it, so the cap holds their worst cases meanwhile. Before, it was taken back at the
  // settle: 200 of 200 calls were admitted where 6 fitted, the cap 3% over.
  it("a hard cap holds for the calls made between a budget's appearance and its instant", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    // $0.999 of a $1.00 cap spent before it appears.
    events.records.push(record(user, clock.now - 60_000, 6_660_000));
    await createBudget(a, budgetSpec(user, user, "1.00"));
    const seeded = await spendOf(a.guard, user);
    let admitted = 0;
    // Each call costs $0.000045 (300 input tokens), under its reservation's worst case ($0.0000726).
    for (let i = 0; i < 200; i++) if (await gatewayCall(events, a, user, 300)) admitted++;
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    const spend = await spendOf(a.guard, user);
    console.log(
      `grace: seeded ${seeded}, admitted ${admitted} of 200, spend ${spend} (store ${events.spendOf(user)}) of a 1000000000 cap`,
    );
    expect(spend).toBeLessThanOrEqual(1_000_000_000n);
  });
});

describe("a replica that learns of budgets through its policy refresh", () => {
  it("fixes each one's instant before it passes, however long the first seeds of the others take", async () => {
    const events = new FakeEvents();
    // Real clocks here (the refresh runs on a timer): a refresh every 100 ms, a grace period of two.
    const a = await replica(events, { realClock: true, graceMs: 200 });
    const slow = new FakeEvents();
    slow.records = events.records;
    slow.policies = events.policies;
    slow.sumDelayMs = 300; // B's store reads are slow (a big store)
    const b = await replica(slow, { realClock: true, graceMs: 200 });
    const stop = refreshPolicies(b.guard, 100);
    try {
      const users = [fresh(), fresh(), fresh(), fresh()];
      for (const u of users) await createBudget(a, budgetSpec(u, u)); // one script creating budgets
      const last = users[users.length - 1]!;
      const until = Date.now() + 1_500;
      let calls = 0;
      while (Date.now() < until) {
        await gatewayCall(events, b, last, 1_000); // traffic through B all along
        calls++;
        await sleep(20);
      }
      await sleep(END + TICKS_MS);
      const spend = await spendOf(a.guard, last);
      console.log(`refresh: ${calls} calls through B, budget counts ${spend} of ${events.spendOf(last)}`);
      expect(spend).toBe(events.spendOf(last));
    } finally {
      stop();
    }
  });
});

describe("a budget added while the limit store does not answer", () => {
  it("gets its instant and its seed once it answers again (not: counted live, never seeded)", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    events.records.push(record(user, clock.now - 60_000)); // its window's spend before it appears
    const countFrom = a.guard.store.countFrom.bind(a.guard.store);
    let fails = 1; // a blip: the first countFrom fails
    a.guard.store.countFrom = (...args) =>
      fails-- > 0 ? Promise.reject(new Error("Command timed out")) : countFrom(...args);
    await createBudget(a, budgetSpec(user, user));
    await gatewayCall(events, a, user);
    clock.now += GRACE + END + 1;
    await sleep(2 * TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // was the live call's only
  });
});

describe("a budget edited", () => {
  // An edit to another window kind is seeded as a new budget is (its instant and seed are the kind's own).
  // Before, its new slots started empty: the month after a day window read $0.
  it("(its window, day to month, once seeded) counts what its new window holds", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    events.records.push(record(user, clock.now - 1_000));
    const spec = { ...budgetSpec(user, user), window: "day" };
    await createBudget(a, spec);
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user));
    await createBudget(a, { ...spec, window: "month" });
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // 0
  });

  it("(day to month on A) counts once the calls through B, which learns of the edit at its refresh", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const b = await replica(events, { skewMs: -300 });
    const user = fresh();
    const spec = { ...budgetSpec(user, user), window: "day" };
    await createBudget(a, spec);
    for (const x of await b.registry.refresh()) await b.guard.budgetAdded(x.workspace, x.id);
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    for (let i = 0; i < 2; i++) await gatewayCall(events, b, user); // counted in the day's slot
    await createBudget(a, { ...spec, window: "month" });
    for (let i = 0; i < 2; i++) await gatewayCall(events, b, user); // B still counts the day
    for (const x of await b.registry.refresh()) await b.guard.budgetAdded(x.workspace, x.id);
    for (let i = 0; i < 2; i++) await gatewayCall(events, b, user); // the month, before its instant
    clock.now += GRACE;
    for (let i = 0; i < 2; i++) await gatewayCall(events, b, user); // the month, counted live
    clock.now += END + 1;
    await sleep(TICKS_MS);
    expect(events.spendOf(user)).toBe(8n * 150_012_000n);
    for (const r of [a, b]) expect(await spendOf(r.guard, user)).toBe(events.spendOf(user));
  });

  it("(a rolling window widened, 24 h to 48 h) keeps its counters: its hour slots are the same", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    events.records.push(record(user, clock.now - 1_000));
    const spec = { ...budgetSpec(user, user), window: "24h" };
    await createBudget(a, spec);
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    await gatewayCall(events, a, user);
    await createBudget(a, { ...spec, window: "48h" });
    await gatewayCall(events, a, user);
    await sleep(TICKS_MS);
    expect(events.records).toHaveLength(3);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // not seeded on top of them
  });

  // Known gap (Redis): an edit back to a kind the budget had (day, month, day) finds that kind's seed done
  // long ago, and its slots without what the other kind counted meanwhile.
  it.fails("(day, month, day again) counts the calls made under the month", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    const spec = { ...budgetSpec(user, user), window: "day" };
    await createBudget(a, spec);
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    await createBudget(a, { ...spec, window: "month" });
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    await gatewayCall(events, a, user);
    await createBudget(a, spec);
    expect(await spendOf(a.guard, user)).toBe(events.spendOf(user)); // 0: the month's call is missing
  });
});

describe("held reservations (review)", () => {
  /** A gateway call of `user` admitted now on `r`, its settle left to the caller. */
  async function admitOnly(r: Awaited<ReturnType<typeof replica>>, user: string, tokens = 300) {
    const admission = await r.guard.admit(chatContext({ user_id: user }));
    if (!admission.ok) throw new Error("refused");
    const rec = record(user, r.now(), tokens);
    const settle = () =>
      r.guard.settle(admission.ticket, {
        cost: rec.cost_nanousd,
        tokens: 0,
        toolCalls: 0,
        eventId: rec.event_id,
        tsStart: rec.ts_start,
      });
    return { rec, settle };
  }

  async function reservedOf(guard: SpendGuard, id: string): Promise<bigint> {
    const b = guard.registry.forWorkspace("default").budgets.find((x) => x.id === id)!;
    return (await guard.budgetStatus("default", b))[0]!.reserved;
  }

  it("a replica shut down during the grace period leaves no reservation held for an hour", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const b = await replica(events);
    const user = fresh();
    await createBudget(a, budgetSpec(user, user));
    for (const x of await b.registry.refresh()) await b.guard.budgetAdded(x.workspace, x.id);
    await gatewayCall(events, a, user, 300); // before the instant: held on A until a pass reads it
    expect(await reservedOf(b.guard, user)).toBeGreaterThan(0n);
    await a.guard.close(); // a rolling deploy: A goes away before its first pass
    open.splice(open.indexOf(a.guard), 1);
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    expect(await spendOf(b.guard, user)).toBe(events.spendOf(user));
    expect(await reservedOf(b.guard, user)).toBe(0n); // was the call's worst case, until its 1 h TTL
  });

  it("a call settled while the last pass gives its holds back is not held for good", async () => {
    clock.now = Date.now();
    const events = new FakeEvents();
    const a = await replica(events);
    const user = fresh();
    await createBudget(a, budgetSpec(user, user));
    const late = await admitOnly(a, user); // in flight across the last pass
    const early = await admitOnly(a, user); // settled now, its record stored after the first pass
    await early.settle();
    clock.now += GRACE + PASSES[0]! + 1;
    await sleep(TICKS_MS); // the first pass: the early call is still held
    events.records.push(early.rec);
    const store = a.guard.store;
    const release = store.releaseHolds.bind(store);
    let during: Promise<void> | null = null;
    store.releaseHolds = async (ws, holds) => {
      await release(ws, holds);
      // The give-back's round trip: the call in flight settles meanwhile.
      if (!during) {
        events.records.push(late.rec);
        during = late.settle();
        await during;
      }
    };
    clock.now += END;
    await sleep(TICKS_MS);
    expect(during).not.toBeNull();
    clock.now += 10_000;
    await sleep(TICKS_MS);
    // (Its cost is counted by no one: settled before the instant's end, stored after the last read: a
    // separate, pre-existing gap, not asserted here.)
    expect(await reservedOf(a.guard, user)).toBe(0n); // was the late call's worst case, for an hour
  });
});

describe("a budget new in the limits file at a replica's start (a deploy that brings it)", () => {
  let dir = "";
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = "";
  });

  it("counts its window's spend before it, once (before: none of it, ever)", async () => {
    clock.now = Date.now();
    dir = mkdtempSync(join(tmpdir(), "tg-seed-edges-"));
    const file = join(dir, "limits.yaml");
    writeFileSync(file, "budgets: []\n");
    const events = new FakeEvents();
    const user = fresh();
    const before = await replica(events, { limitsFile: file }); // a replica of the deploy before
    for (let i = 0; i < 2; i++) await gatewayCall(events, before, user);
    writeFileSync(
      file,
      `budgets:\n  - { id: ${user}, scope: { user_id: ${user} }, window: lifetime, limit_usd: "1000" }\n`,
    );
    const after = await replica(events, { limitsFile: file }); // the new deploy's
    expect(await spendOf(after.guard, user)).toBe(events.spendOf(user)); // its first read, at start
    await gatewayCall(events, after, user); // before its instant: the seed counts it
    clock.now += GRACE;
    await gatewayCall(events, after, user); // after: counted live
    clock.now += END + 1;
    await sleep(TICKS_MS);
    expect(events.spendOf(user)).toBe(4n * 150_012_000n);
    expect(await spendOf(after.guard, user)).toBe(events.spendOf(user));
  });

  it("…except at the first start of a seeding replica on this Redis: its budgets were counted live before", async () => {
    clock.now = Date.now();
    dir = mkdtempSync(join(tmpdir(), "tg-seed-edges-"));
    const file = join(dir, "limits.yaml");
    const user = fresh();
    writeFileSync(
      file,
      `budgets:\n  - { id: ${user}, scope: { user_id: ${user} }, window: lifetime, limit_usd: "1000" }\n`,
    );
    const events = new FakeEvents();
    // A replica from before seeding counted this call live (its bucket on Redis), and stored it.
    const old = await replica(events, { limitsFile: file });
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    await gatewayCall(events, old, user); // counted live
    await old.guard.close();
    // What a Redis from before seeding holds: the counters, no instants.
    await admin.del(
      `tg:{default}:from:${user}#lifetime`,
      `tg:{default}:seeded:${user}#lifetime`,
      "tg:{default}:from:#started",
    );
    const upgraded = await replica(events, { limitsFile: file });
    clock.now += GRACE + END + 1;
    await sleep(TICKS_MS);
    expect(await spendOf(upgraded.guard, user)).toBe(events.spendOf(user)); // not twice
  });
});
