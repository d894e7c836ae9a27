// One conformance suite for every LimitStore: the in-memory default and Redis (a real redis-server).

import { setTimeout as sleep } from "node:timers/promises";
import { type Ceilings, emptyRunUsage, type RunHold } from "@tollgate/core";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { throttleKey } from "../src/limits/admission-plan.js";
import { MemoryLimitStore } from "../src/limits/memory-store.js";
import { LEASE_CALLS } from "../src/limits/redis-leases.js";
import { RedisLimitStore } from "../src/limits/redis-store.js";
import type { AdmitRequest, BucketCharge, LimitStore } from "../src/limits/types.js";
import { startRedis, type TestRedis } from "./redis-server.js";

let redis: TestRedis;
const stores: Record<string, LimitStore> = {};

beforeAll(async () => {
  redis = await startRedis();
  stores.memory = new MemoryLimitStore();
  stores.redis = await RedisLimitStore.connect(redis.url);
});
afterAll(async () => {
  for (const s of Object.values(stores)) await s.close();
  await redis?.stop();
});

let seq = 0;
const ws = () => `ws-${++seq}`;
const NOW = Date.UTC(2026, 11, 1, 12, 0, 30);

function bucket(over: Partial<BucketCharge> = {}): BucketCharge {
  return {
    key: "b:cap:-",
    slots: ["d2026-12-01"],
    steps: [1000n],
    ttlMs: 86_400_000,
    limit: 1000n,
    enforce: true,
    amount: 100n,
    throttleRpm: null,
    ...over,
  };
}
function admitReq(w: string, over: Partial<AdmitRequest> = {}): AdmitRequest {
  return {
    workspace: w,
    id: `res-${++seq}`,
    now: NOW,
    expiresAt: NOW + 60_000,
    buckets: [bucket()],
    rates: [],
    run: null,
    ...over,
  };
}
const settleOf = (req: AdmitRequest, actual: bigint) => ({
  workspace: req.workspace,
  id: req.id,
  now: req.now,
  buckets: req.buckets.map((b) => ({ ...b, reserved: b.amount, actual })),
  tokenRates: [],
  run: null,
});

describe.each(["memory", "redis"])("LimitStore conformance: %s", (name) => {
  const store = () => stores[name]!;

  it("admit reserves; settle turns the reservation into the actual spend", async () => {
    const w = ws();
    const req = admitReq(w);
    expect(await store().admit(req)).toEqual({ ok: true });
    expect(await store().buckets(w, [bucket()], NOW)).toEqual([{ spend: 0n, reserved: 100n }]);
    await store().settle(settleOf(req, 37n));
    expect(await store().buckets(w, [bucket()], NOW)).toEqual([{ spend: 37n, reserved: 0n }]);
  });

  it("300 concurrent admissions never reserve past the cap (exactly limit / amount get in)", async () => {
    const w = ws();
    const results = await Promise.all(
      Array.from({ length: 300 }, () =>
        store().admit(admitReq(w, { buckets: [bucket({ limit: 1_000_000_000n, amount: 30_000_000n })] })),
      ),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(33); // 33 × $0.03 ≤ $1.00 < 34 × $0.03
    const refused = results.find((r) => !r.ok);
    expect(refused).toEqual({
      ok: false,
      refusal: { kind: "budget", index: 0, spend: 0n, reserved: 990_000_000n },
    });
  });

  it("all or nothing: a refusal by the second budget reserves nothing on the first", async () => {
    const w = ws();
    const first = bucket({ key: "b:a:-" });
    const second = bucket({ key: "b:b:-", limit: 50n });
    const r = await store().admit(admitReq(w, { buckets: [first, second] }));
    expect(r).toMatchObject({ ok: false, refusal: { kind: "budget", index: 1 } });
    expect(await store().buckets(w, [first, second], NOW)).toEqual([
      { spend: 0n, reserved: 0n },
      { spend: 0n, reserved: 0n },
    ]);
  });

  it("non-enforcing budgets (alert_only) reserve and count but never refuse", async () => {
    const w = ws();
    const b = bucket({ enforce: false, limit: 10n });
    expect(await store().admit(admitReq(w, { buckets: [b] }))).toEqual({ ok: true });
    expect(await store().admit(admitReq(w, { buckets: [b] }))).toEqual({ ok: true });
  });

  it("a reservation nobody settles (its gateway died) stops counting when it expires", async () => {
    const w = ws();
    expect(
      (await store().admit(admitReq(w, { buckets: [bucket({ amount: 900n })], expiresAt: NOW + 1000 }))).ok,
    ).toBe(true);
    expect((await store().admit(admitReq(w, { buckets: [bucket({ amount: 900n })] }))).ok).toBe(false);
    expect(
      (
        await store().admit(
          admitReq(w, { now: NOW + 1001, expiresAt: NOW + 60_000, buckets: [bucket({ amount: 900n })] }),
        )
      ).ok,
    ).toBe(true);
    // a late settle of the expired one adds its spend but releases nothing twice
    const late = admitReq(w, { buckets: [bucket({ amount: 900n })] });
    await store().settle({ ...settleOf(late, 5n), id: "never-admitted" });
    expect(await store().buckets(w, [bucket()], NOW + 1001)).toEqual([{ spend: 5n, reserved: 900n }]);
  });

  it("a call admitted before midnight and settled after it keeps the new day's spend intact", async () => {
    const w = ws();
    const day1 = bucket({ slots: ["d2026-12-01"] });
    const day2 = bucket({ slots: ["d2026-12-02"] });
    const late = admitReq(w, { buckets: [day1] });
    await store().admit(late);
    const early = admitReq(w, { buckets: [day2], now: NOW + 86_400_000 });
    await store().admit(early);
    await store().settle({ ...settleOf(early, 90n), now: NOW + 86_400_000 });
    await store().settle({ ...settleOf(late, 30n), now: NOW + 86_400_000 });
    expect(await store().buckets(w, [day2], NOW + 86_400_000)).toEqual([{ spend: 90n, reserved: 0n }]);
  });

  it("settle reports each threshold step once (ok → warning → exceeded)", async () => {
    const w = ws();
    const b = bucket({ steps: [500n, 800n, 1000n], amount: 0n });
    const step = async (actual: bigint) => {
      const req = admitReq(w, { buckets: [b] });
      await store().admit(req);
      return (await store().settle(settleOf(req, actual))).changes;
    };
    expect(await step(400n)).toEqual([]);
    expect(await step(150n)).toEqual([{ index: 0, from: 0, to: 1, spend: 550n }]);
    expect(await step(10n)).toEqual([]);
    expect(await step(500n)).toEqual([{ index: 0, from: 1, to: 3, spend: 1060n }]);
  });

  it("a call admitted before midnight and settled after the new day's first calls still finds its day's spend", async () => {
    const w = ws();
    const day = (slot: string) => bucket({ slots: [slot], steps: [500n, 1000n], amount: 0n });
    const [yesterday, today] = [day("d2026-11-30"), day("d2026-12-01")];
    const admit = async (b: BucketCharge) => {
      const req = admitReq(w, { buckets: [b] });
      await store().admit(req);
      return req;
    };
    const first = await admit(yesterday);
    expect((await store().settle(settleOf(first, 600n))).changes).toEqual([
      { index: 0, from: 0, to: 1, spend: 600n },
    ]);
    const late = await admit(yesterday); // in flight over midnight
    const next = await admit(today);
    expect((await store().settle(settleOf(next, 600n))).changes).toEqual([
      { index: 0, from: 0, to: 1, spend: 600n },
    ]);
    // Its day holds 601 now: still a warning, no step back to ok.
    expect((await store().settle(settleOf(late, 1n))).changes).toEqual([]);
    await admit(today); // the new day goes on
    const later = await admit(yesterday);
    // Nor a second warning: the day's spend (601) and level are still known.
    expect((await store().settle(settleOf(later, 1n))).changes).toEqual([]);
    expect((await store().buckets(w, [today], NOW))[0]!.spend).toBe(600n);
  });

  it("rolling windows sum their hour slots; old hours drop out", async () => {
    const w = ws();
    const at = (h: number) => ({
      ...bucket({ key: "b:roll:-", amount: 0n }),
      slots: [`h${h - 2}`, `h${h - 1}`, `h${h}`],
    });
    const charge = (h: number, actual: bigint) =>
      store().charge({
        workspace: w,
        eventId: `ev-${++seq}`,
        now: NOW,
        buckets: [{ ...at(h), reserved: 0n, actual }],
        tokenRates: [],
        run: null,
      });
    await charge(100, 300n);
    await charge(101, 200n);
    expect((await store().buckets(w, [at(102)], NOW))[0]!.spend).toBe(500n);
    expect((await store().buckets(w, [at(103)], NOW))[0]!.spend).toBe(200n);
  });

  it("rate limits: a sliding minute, counted at admission; token counters grow at settle", async () => {
    const w = ws();
    const rpm = { key: "q:rpm:-", limit: 2, cost: 1 };
    const adm = () => store().admit(admitReq(w, { buckets: [], rates: [rpm] }));
    expect([(await adm()).ok, (await adm()).ok, (await adm()).ok]).toEqual([true, true, false]);
    // 30 s into the next minute half of the previous minute still counts: 1 left
    const next = (now: number) => store().admit(admitReq(w, { now, buckets: [], rates: [rpm] }));
    expect((await next(NOW + 60_000)).ok).toBe(true);
    expect((await next(NOW + 60_000)).ok).toBe(false);
    const tpm = { key: "t:tpm:-", limit: 100, cost: 0 };
    expect((await store().admit(admitReq(w, { buckets: [], rates: [tpm] }))).ok).toBe(true);
    await store().charge({
      workspace: w,
      eventId: `ev-${++seq}`,
      now: NOW,
      buckets: [],
      tokenRates: [{ key: "t:tpm:-", tokens: 100 }],
      run: null,
    });
    expect(await store().admit(admitReq(w, { buckets: [], rates: [tpm] }))).toEqual({
      ok: false,
      // the two minutes it is made of: when it clears depends on both (the retry-after)
      refusal: { kind: "rate", index: 0, count: 100, previous: 0, current: 100 },
    });
  });

  it("token counters: a call's hold counts while it is in flight; its tokens replace the hold at settle", async () => {
    const w = ws();
    const tpm = (cost: number) => ({ key: "t:tpm:-", limit: 1000, cost });
    const a = admitReq(w, { buckets: [], rates: [tpm(400)] });
    const b = admitReq(w, { buckets: [], rates: [tpm(400)] });
    expect((await store().admit(a)).ok).toBe(true);
    expect((await store().admit(b)).ok).toBe(true);
    // two holds in flight leave room for 200 more
    expect(await store().admit(admitReq(w, { buckets: [], rates: [tpm(400)] }))).toEqual({
      ok: false,
      refusal: { kind: "rate", index: 0, count: 800, previous: 0, current: 800 },
    });
    const settle = (req: AdmitRequest, tokens: number, now: number) =>
      store().settle({
        ...settleOf(req, 0n),
        now,
        tokenRates: [{ key: "t:tpm:-", tokens, held: { tokens: 400, at: req.now } }],
      });
    await settle(a, 150, NOW + 1_000); // used less than it held
    expect((await store().admit(admitReq(w, { buckets: [], rates: [tpm(400)] }))).ok).toBe(true);
    // b settles in the next minute: its admission minute (now the previous) is corrected, not the new one
    await settle(b, 100, NOW + 60_000);
    const next = admitReq(w, { now: NOW + 60_000, buckets: [], rates: [tpm(1000)] });
    // previous minute: 150 + 400 (the third hold) + 100 = 650, half of it in the window at :30
    expect(await store().admit(next)).toEqual({
      ok: false,
      refusal: { kind: "rate", index: 0, count: 325, previous: 650, current: 0 },
    });
  });

  it("token counters: a settle long after its admission counts only the tokens beyond its hold, never below 0", async () => {
    const w = ws();
    const tpm = { key: "t:tpm:-", limit: 1000, cost: 300 };
    const a = admitReq(w, { buckets: [], rates: [tpm] });
    expect((await store().admit(a)).ok).toBe(true);
    const later = NOW + 180_000;
    await store().settle({
      ...settleOf(a, 0n),
      now: later,
      tokenRates: [{ key: "t:tpm:-", tokens: 700, held: { tokens: 300, at: NOW } }],
    });
    const probe = (now: number) =>
      store().admit(admitReq(w, { now, buckets: [], rates: [{ ...tpm, cost: 700 }] }));
    // 400 beyond the hold counted in the settle's minute: 700 more do not fit
    expect(await probe(later)).toMatchObject({ ok: false, refusal: { count: 400 } });
    // a settle taking back more than its minute holds (its hold was never counted: admitted failing open)
    // leaves 0, not less
    const c = admitReq(w, { now: NOW + 600_000, buckets: [], rates: [{ ...tpm, cost: 0 }] });
    expect((await store().admit(c)).ok).toBe(true);
    await store().settle({
      ...settleOf(c, 0n),
      now: c.now,
      tokenRates: [{ key: "t:tpm:-", tokens: 5, held: { tokens: 300, at: c.now } }],
    });
    expect(
      await store().admit(admitReq(w, { now: c.now, buckets: [], rates: [{ ...tpm, cost: 995 }] })),
    ).toEqual({
      ok: true,
    });
    expect(await probe(c.now)).toMatchObject({ ok: false, refusal: { count: 995 } });
  });

  it("request counters: a request never sent gives its count back in the minute it was admitted", async () => {
    const w = ws();
    const rpm = { key: "q:rpm:-", limit: 2, cost: 1 };
    const admit = (now: number) => store().admit(admitReq(w, { now, buckets: [], rates: [rpm] }));
    const gone = admitReq(w, { buckets: [], rates: [rpm] });
    expect(await store().admit(gone)).toEqual({ ok: true });
    // Its client left before it went upstream: 0 requests in place of the 1 counted, a minute on.
    await store().settle({
      ...settleOf(gone, 0n),
      now: NOW + 60_000,
      tokenRates: [{ key: rpm.key, tokens: 0, held: { tokens: 1, at: NOW } }],
    });
    expect([(await admit(NOW)).ok, (await admit(NOW)).ok, (await admit(NOW)).ok]).toEqual([
      true,
      true,
      false,
    ]);
  });

  it("throttle: past its limit a bucket admits throttleRpm calls a minute", async () => {
    const w = ws();
    const b = bucket({ enforce: false, throttleRpm: 2, amount: 0n, limit: 10n });
    await store().charge({
      workspace: w,
      eventId: `ev-${++seq}`,
      now: NOW,
      buckets: [{ ...b, reserved: 0n, actual: 10n }],
      tokenRates: [],
      run: null,
    });
    const adm = () => store().admit(admitReq(w, { buckets: [b] }));
    expect([(await adm()).ok, (await adm()).ok]).toEqual([true, true]);
    expect(await adm()).toEqual({ ok: false, refusal: { kind: "throttle", index: 0, count: 2, spend: 10n } });
  });

  it("throttle: an admission names the buckets whose throttle counted it; a call never sent gives that count back", async () => {
    const w = ws();
    const past = bucket({ key: "b:past:-", enforce: false, throttleRpm: 2, amount: 0n, limit: 10n });
    const under = bucket({ key: "b:under:-", enforce: false, throttleRpm: 2, amount: 0n, limit: 1000n });
    await store().charge({
      workspace: w,
      eventId: `ev-${++seq}`,
      now: NOW,
      buckets: [{ ...past, reserved: 0n, actual: 10n }],
      tokenRates: [],
      run: null,
    });
    const gone = admitReq(w, { buckets: [under, past] });
    // Only the bucket past its limit throttles: its counter counted the call, the other's did not.
    expect(await store().admit(gone)).toEqual({ ok: true, throttled: [1] });
    const later = NOW + 10_000;
    // Its client left before it went upstream: 0 calls in place of the 1 counted.
    await store().settle({
      ...settleOf(gone, 0n),
      now: later,
      tokenRates: [{ key: throttleKey(past.key), tokens: 0, held: { tokens: 1, at: NOW } }],
    });
    const adm = () => store().admit(admitReq(w, { now: later, buckets: [past] }));
    expect(await adm()).toEqual({ ok: true, throttled: [0] });
    expect(await adm()).toEqual({ ok: true, throttled: [0] });
    expect(await adm()).toMatchObject({ ok: false, refusal: { kind: "throttle", count: 2 } });
  });

  it("runs: the call past max_llm_calls is refused and kills the run; a cost ceiling kills at the settle that crosses it", async () => {
    const w = ws();
    const run = { key: "r:run-1", ceilings: { llm_calls: 2, cost_nanousd: 1000n }, depth: 1, retry: false };
    const adm = () => store().admit(admitReq(w, { buckets: [], run }));
    expect((await adm()).ok).toBe(true);
    expect((await adm()).ok).toBe(true);
    const third = await adm();
    expect(third).toMatchObject({
      ok: false,
      refusal: { kind: "run", newlyKilled: true, kill: { ceiling: "llm_calls", value: "3", limit: "2" } },
    });
    expect(await adm()).toMatchObject({ ok: false, refusal: { kind: "run", newlyKilled: false } });

    const run2 = { key: "r:run-2", ceilings: { cost_nanousd: 1000n }, depth: 1, retry: false };
    const settle = (cost: bigint) =>
      store().settle({
        workspace: w,
        id: `x-${++seq}`, // three calls' settles (one reservation's settle applies once)
        now: NOW,
        buckets: [],
        tokenRates: [],
        run: {
          key: run2.key,
          ceilings: run2.ceilings,
          cost,
          tokens: 10,
          toolCalls: 1,
          llmCalls: 0,
          retries: 0,
        },
      });
    await store().admit(admitReq(w, { buckets: [], run: run2 }));
    expect((await settle(999n)).killed).toBeNull();
    expect((await settle(1n)).killed).toMatchObject({
      ceiling: "cost_nanousd",
      value: "1000",
      limit: "1000",
    });
    expect((await settle(1n)).killed).toBeNull(); // reported once
    const status = await store().run(w, run2.key);
    expect(status?.usage).toMatchObject({
      cost_nanousd: 1001n,
      total_tokens: 30,
      llm_calls: 1,
      tool_calls: 3,
    });
    expect(status?.killed?.ceiling).toBe("cost_nanousd");
  });

  it("runs: a call that never went out gives back the LLM call and retry its admission counted, never below 0", async () => {
    const w = ws();
    const run = { key: "r:unsent", ceilings: { llm_calls: 5 }, depth: 1, retry: true };
    const req = admitReq(w, { buckets: [], run });
    expect(await store().admit(req)).toEqual({ ok: true });
    expect((await store().run(w, run.key))?.usage).toMatchObject({ llm_calls: 1, retries: 1 });
    const giveBack = (id: string) =>
      store().settle({
        workspace: w,
        id,
        now: NOW,
        buckets: [],
        tokenRates: [],
        run: {
          key: run.key,
          ceilings: run.ceilings,
          cost: 0n,
          tokens: 0,
          toolCalls: 0,
          llmCalls: -1,
          retries: -1,
        },
      });
    await giveBack(req.id);
    expect((await store().run(w, run.key))?.usage).toMatchObject({ llm_calls: 0, retries: 0 });
    // One whose count is gone already (an unkill started the run over meanwhile): nothing goes below 0.
    await giveBack(`res-${++seq}`);
    expect((await store().run(w, run.key))?.usage).toMatchObject({ llm_calls: 0, retries: 0 });
  });

  it("runs: span depth is the deepest call that went out, counted at its settle: one never sent counts none", async () => {
    const w = ws();
    const ceilings = { span_depth: 5 };
    const admit = (depth: number) =>
      admitReq(w, { buckets: [], run: { key: "r:depth", ceilings, depth, retry: false } });
    const settle = (req: AdmitRequest, sent: boolean) =>
      store().settle({
        workspace: w,
        id: req.id,
        now: NOW,
        buckets: [],
        tokenRates: [],
        run: {
          key: "r:depth",
          ceilings,
          cost: 0n,
          tokens: 0,
          toolCalls: 0,
          llmCalls: sent ? 0 : -1,
          retries: 0,
          depth: sent ? req.run!.depth : undefined,
        },
      });
    const [deep, shallow] = [admit(4), admit(2)];
    expect([await store().admit(deep), await store().admit(shallow)]).toEqual([{ ok: true }, { ok: true }]);
    await settle(deep, false); // its client left before it went upstream
    await settle(shallow, true);
    expect((await store().run(w, "r:depth"))?.usage).toMatchObject({ llm_calls: 1, span_depth: 2 });
  });

  it("runs: calls in flight hold their worst case against a cost ceiling; a call waits while spend + holds reach it", async () => {
    const w = ws();
    const ceilings = { cost_nanousd: 1000n };
    const admit = (cost: bigint, over: Partial<AdmitRequest> = {}) =>
      admitReq(w, {
        buckets: [],
        run: {
          key: "r:held",
          ceilings,
          depth: 1,
          retry: false,
          hold: { cost_nanousd: cost, total_tokens: 0 },
        },
        ...over,
      });
    const settle = (req: AdmitRequest, cost: bigint) =>
      store().settle({
        workspace: w,
        id: req.id,
        now: NOW,
        buckets: [],
        tokenRates: [],
        run: {
          key: "r:held",
          ceilings,
          cost,
          tokens: 0,
          toolCalls: 0,
          llmCalls: 0,
          retries: 0,
          held: req.run!.hold!,
        },
      });
    // Nothing held: a call may hold past the ceiling (the call that crosses it is the run's last).
    const a = admit(600n);
    const b = admit(600n);
    expect(await store().admit(a)).toEqual({ ok: true });
    expect(await store().admit(b)).toEqual({ ok: true }); // 0 + 600 < 1000
    const c = admit(1n);
    expect(await store().admit(c)).toEqual({
      ok: false,
      refusal: {
        kind: "run_held",
        held: { ceiling: "cost_nanousd", used: "0", held: "1200", limit: "1000" },
      },
    });
    // A wait, not a kill; refused calls neither count nor hold.
    expect(await store().run(w, "r:held")).toMatchObject({ killed: null, usage: { llm_calls: 2 } });
    expect((await settle(a, 150n)).killed).toBeNull();
    expect(await store().admit(admit(1n))).toEqual({ ok: true }); // 150 + 600 < 1000
    expect(await store().admit(admit(1n))).toEqual({ ok: true }); // 150 + 601 < 1000
    expect(await store().admit(c)).toMatchObject({ ok: true });
    // b ends up costing more than what was left: the settle that crosses kills, as without holds.
    expect((await settle(b, 900n)).killed).toMatchObject({ ceiling: "cost_nanousd", value: "1050" });
    // Holds past their expiry (a gateway died with its calls in flight) stop counting.
    const w2 = ws();
    const stuck = admitReq(w2, {
      buckets: [],
      expiresAt: NOW + 1000,
      run: {
        key: "r:held",
        ceilings,
        depth: 1,
        retry: false,
        hold: { cost_nanousd: 2000n, total_tokens: 0 },
      },
    });
    const next = (now: number) => ({ ...stuck, id: `res-${++seq}`, now, expiresAt: now + 60_000 });
    expect(await store().admit(stuck)).toEqual({ ok: true });
    expect(await store().admit(next(NOW + 999))).toMatchObject({ ok: false, refusal: { kind: "run_held" } });
    expect(await store().admit(next(NOW + 1000))).toEqual({ ok: true });
  });

  it("a reservation whose id starts with L (as a process's random prefix may) expires as any other, not as a lease", async () => {
    // Reservation ids are "<random base64url prefix>.<n>": 1 process in 64 has a prefix starting with L.
    const w = ws();
    const short = { expiresAt: NOW + 1000 };
    expect(await store().admit(admitReq(w, { id: "Lq3x.1", ...short }))).toEqual({ ok: true });
    expect(await store().buckets(w, [bucket()], NOW + 2000)).toEqual([{ spend: 0n, reserved: 0n }]);
    const ceilings = { cost_nanousd: 1000n };
    const held = (id: string, now: number) =>
      admitReq(w, {
        id,
        now,
        expiresAt: now + 1000,
        buckets: [],
        run: {
          key: "r:l-held",
          ceilings,
          depth: 1,
          retry: false,
          hold: { cost_nanousd: 2000n, total_tokens: 0 },
        },
      });
    expect(await store().admit(held("Lq3x.2", NOW))).toEqual({ ok: true });
    // Its gateway died: past its expiry the hold stops counting, and the run goes on.
    expect(await store().admit(held("Lq3x.3", NOW + 2000))).toEqual({ ok: true });
  });

  it("runs: a token ceiling counts the holds of calls in flight; a run without cost or token ceilings holds nothing", async () => {
    const w = ws();
    const run = (key: string, ceilings: Ceilings, tokens: number) => ({
      buckets: [],
      run: { key, ceilings, depth: 1, retry: false, hold: { cost_nanousd: 5n, total_tokens: tokens } },
    });
    const tokens = { total_tokens: 100 };
    expect(await store().admit(admitReq(w, run("r:tok", tokens, 99)))).toEqual({ ok: true });
    expect(await store().admit(admitReq(w, run("r:tok", tokens, 1)))).toEqual({ ok: true });
    expect(await store().admit(admitReq(w, run("r:tok", tokens, 1)))).toEqual({
      ok: false,
      refusal: { kind: "run_held", held: { ceiling: "total_tokens", used: "0", held: "100", limit: "100" } },
    });
    const calls = { llm_calls: 10 };
    for (let i = 0; i < 10; i++)
      expect(await store().admit(admitReq(w, run("r:calls", calls, 1_000_000)))).toEqual({ ok: true });
  });

  it("runs: a call leaves room for an earlier call of its run waiting to go: admitted only while that call would still find room after it; nothing is held for it", async () => {
    const w = ws();
    const run = (key: string, ceilings: Ceilings, hold: RunHold, leave?: RunHold) => ({
      buckets: [],
      run: { key, ceilings, depth: 1, retry: false, hold, leave },
    });
    const cost = (n: bigint): RunHold => ({ cost_nanousd: n, total_tokens: 0 });
    const ceilings = { cost_nanousd: 1000n };
    const admit = (hold: bigint, leave?: bigint) =>
      store().admit(
        admitReq(w, run("r:leave", ceilings, cost(hold), leave === undefined ? undefined : cost(leave))),
      );
    expect(await admit(400n, 600n)).toEqual({ ok: true }); // 400 held after it: the earlier call still goes
    // 400 held: under the ceiling (a call without room to leave goes), but with this one's 600 the holds
    // would reach it, and the earlier call would be held back.
    expect(await admit(600n, 300n)).toEqual({
      ok: false,
      refusal: {
        kind: "run_held",
        held: { ceiling: "cost_nanousd", used: "0", held: "400", limit: "1000", kept: "300" },
      },
    });
    expect(await admit(500n, 400n)).toEqual({ ok: true }); // 900 held after it: just under the ceiling
    // Nothing was held for the calls left room for, nor for the refused one: 900 held.
    expect(await admit(100n)).toEqual({ ok: true });
    // The holds reach the ceiling: refused as without room to leave.
    expect(await admit(1n, 1n)).toEqual({
      ok: false,
      refusal: {
        kind: "run_held",
        held: { ceiling: "cost_nanousd", used: "0", held: "1000", limit: "1000" },
      },
    });
    expect(await store().run(w, "r:leave")).toMatchObject({ killed: null, usage: { llm_calls: 3 } });
    // A token ceiling: the same, in tokens; room to leave where the run has no ceiling holds nothing back.
    const tokens = { total_tokens: 100 };
    const both: RunHold = { cost_nanousd: 50n, total_tokens: 50 };
    expect(await store().admit(admitReq(w, run("r:leave-tok", tokens, both, both)))).toEqual({ ok: true });
    expect(
      await store().admit(
        admitReq(w, run("r:leave-tok", tokens, { cost_nanousd: 0n, total_tokens: 50 }, both)),
      ),
    ).toEqual({
      ok: false,
      refusal: {
        kind: "run_held",
        held: { ceiling: "total_tokens", used: "0", held: "50", limit: "100", kept: "50" },
      },
    });
    const calls = { llm_calls: 10 };
    expect(await store().admit(admitReq(w, run("r:leave-calls", calls, both, both)))).toEqual({ ok: true });
  });

  it("runs: an earlier call that holds nothing of a ceiling (its model unpriced or free) is still left room under it: it is turned away by what is held there all the same", async () => {
    const w = ws();
    const ceilings = { cost_nanousd: 1000n };
    const free: RunHold = { cost_nanousd: 0n, total_tokens: 0 };
    const admit = (hold: bigint, leave: RunHold) =>
      store().admit(
        admitReq(w, {
          buckets: [],
          run: {
            key: "r:leave-free",
            ceilings,
            depth: 1,
            retry: false,
            hold: { cost_nanousd: hold, total_tokens: 0 },
            leave,
          },
        }),
      );
    expect(await admit(999n, free)).toEqual({ ok: true }); // 999 held after it: the earlier call still goes
    // With this one's 1 on the 999 held, the holds reach the ceiling: the earlier call would be held back.
    expect(await admit(1n, free)).toEqual({
      ok: false,
      refusal: {
        kind: "run_held",
        held: { ceiling: "cost_nanousd", used: "0", held: "999", limit: "1000", kept: "0" },
      },
    });
  });

  it("runs: an ingested call's retry counts, as a rebuild counts it, and kills past max_retries", async () => {
    const w = ws();
    const ceilings = { retries: 1 };
    const charge = (retries: number) =>
      store().charge({
        workspace: w,
        eventId: `ev-${++seq}`,
        now: NOW,
        buckets: [],
        tokenRates: [],
        run: { key: "r:ingested", ceilings, cost: 1n, tokens: 1, toolCalls: 0, llmCalls: 1, retries },
      });
    expect((await charge(0)).killed).toBeNull();
    expect((await charge(1)).killed).toBeNull();
    expect((await charge(1)).killed).toMatchObject({ ceiling: "retries", value: "2", limit: "1" });
    expect((await store().run(w, "r:ingested"))?.usage).toMatchObject({ llm_calls: 3, retries: 2 });
  });

  it("runs: an ingested call starts its run when it was made, however late it arrives; never before an unkill", async () => {
    const w = ws();
    const HOUR = 3_600_000;
    const ceilings = { wall_time_ms: 3 * HOUR };
    const charge = (startedAt: number, now = NOW, key = "r:late") =>
      store().charge({
        workspace: w,
        eventId: `ev-${++seq}`,
        now,
        buckets: [],
        tokenRates: [],
        run: { key, ceilings, cost: 1n, tokens: 1, toolCalls: 0, llmCalls: 1, retries: 0, startedAt },
      });
    const started = async (key = "r:late") => (await store().run(w, key))?.usage.started_at;
    // A batch of the run's calls ingested an hour after they were made.
    expect((await charge(NOW - HOUR)).killed).toBeNull();
    expect(await started()).toBe(NOW - HOUR);
    expect((await charge(NOW - HOUR / 2)).killed).toBeNull(); // a later call: the start stays
    expect(await started()).toBe(NOW - HOUR);
    // An earlier call arriving last moves the start back: the run has been going for 4 hours, past its 3.
    expect((await charge(NOW - 4 * HOUR)).killed).toMatchObject({
      ceiling: "wall_time_ms",
      value: String(4 * HOUR),
    });
    expect(await started()).toBe(NOW - 4 * HOUR);
    // Unkilled, it starts over: a straggler made before the unkill does not move its start back.
    await store().unkill(w, "r:late", NOW + 1000);
    expect((await charge(NOW - 5 * HOUR, NOW + 2000)).killed).toBeNull();
    expect(await started()).toBe(NOW + 1000);
    // A run an admission started (a gateway call) starts earlier too when an earlier call is ingested.
    await store().admit(
      admitReq(w, { buckets: [], run: { key: "r:mixed", ceilings, depth: 1, retry: false } }),
    );
    await charge(NOW - 5000, NOW, "r:mixed");
    expect(await started("r:mixed")).toBe(NOW - 5000);
  });

  it("runs: a call made before an unkill, ingested after it, does not count on the run started over", async () => {
    const w = ws();
    const ceilings = { cost_nanousd: 100n };
    const charge = (startedAt: number, now: number) =>
      store().charge({
        workspace: w,
        eventId: `ev-${++seq}`,
        now,
        buckets: [],
        tokenRates: [],
        run: {
          key: "r:over",
          ceilings,
          cost: 150n,
          tokens: 5,
          toolCalls: 1,
          llmCalls: 1,
          retries: 1,
          startedAt,
        },
      });
    expect((await charge(NOW - 1000, NOW)).killed).toMatchObject({ ceiling: "cost_nanousd" });
    await store().unkill(w, "r:over", NOW + 1000);
    // Its exporter sends a call the killed run made just before the kill: the run rebuilt after a restart
    // counts from the unkill, so that call is not the new run's (nor does it kill it again).
    expect((await charge(NOW - 500, NOW + 2000)).killed).toBeNull();
    expect((await store().run(w, "r:over"))?.usage).toEqual(emptyRunUsage(NOW + 1000));
    // A call made since counts.
    expect((await charge(NOW + 1500, NOW + 3000)).killed).toMatchObject({ ceiling: "cost_nanousd" });
    expect((await store().run(w, "r:over"))?.usage).toMatchObject({ cost_nanousd: 150n, llm_calls: 1 });
    // Killed again, it still counts from its unkill (memory's restartedAt, Redis's "from"): a straggler of
    // the old run counts on neither.
    await charge(NOW - 400, NOW + 4000);
    expect((await store().run(w, "r:over"))?.usage).toMatchObject({
      cost_nanousd: 150n,
      llm_calls: 1,
      started_at: NOW + 1000,
    });
  });

  it("runs: retries and span depth count against their ceilings; kill and unkill by hand", async () => {
    const w = ws();
    const run = (retry: boolean, depth: number) => ({
      key: "r:deep",
      ceilings: { retries: 1, span_depth: 3 },
      depth,
      retry,
    });
    expect((await store().admit(admitReq(w, { buckets: [], run: run(true, 1) }))).ok).toBe(true);
    expect(await store().admit(admitReq(w, { buckets: [], run: run(false, 4) }))).toMatchObject({
      ok: false,
      refusal: { kill: { ceiling: "span_depth" } },
    });
    expect(await store().unkill(w, "r:deep", NOW)).toBe(true);
    expect(await store().admit(admitReq(w, { buckets: [], run: run(true, 1) }))).toEqual({ ok: true });
    expect(await store().admit(admitReq(w, { buckets: [], run: run(true, 1) }))).toMatchObject({
      ok: false,
      refusal: { kill: { ceiling: "retries", value: "2", limit: "1" } },
    });
    await store().unkill(w, "r:deep", NOW);
    await store().kill(w, "r:deep", { ceiling: "manual", value: "stop", limit: "-", at: NOW, by: "ops" });
    expect(await store().admit(admitReq(w, { buckets: [], run: run(false, 1) }))).toMatchObject({
      ok: false,
      refusal: { kill: { ceiling: "manual", by: "ops" } },
    });
    expect((await store().run(w, "r:deep"))?.usage).toMatchObject({
      ...emptyRunUsage(NOW),
      cost_nanousd: 0n,
      started_at: NOW,
    });
  });

  it("claims: of 20 concurrent claims of a key one wins, per workspace, until the claim ends", async () => {
    const [w, other] = [ws(), ws()];
    const wins = await Promise.all(
      Array.from({ length: 20 }, () => store().claim(w, "bg:resp_1", NOW + 60, NOW)),
    );
    expect(wins.filter(Boolean)).toHaveLength(1);
    expect(await store().claim(other, "bg:resp_1", NOW + 60, NOW)).toBe(true);
    expect(await store().claim(w, "bg:resp_2", NOW + 60, NOW)).toBe(true);
    // Redis ends a claim by its own clock: the time left at claiming (60 ms) has to pass.
    await new Promise((r) => setTimeout(r, 120));
    expect(await store().claim(w, "bg:resp_1", NOW + 60_000, NOW + 120)).toBe(true);
    expect(await store().claim(w, "bg:resp_1", NOW + 60_000, NOW + 130)).toBe(false);
  });

  it("releaseHolds: a reservation a settle kept is taken back, once", async () => {
    const w = ws();
    const req = admitReq(w);
    await store().admit(req);
    // Settled at 0 without its reservation: a seed is to count the call, its worst case held meanwhile.
    await store().settle({
      ...settleOf(req, 0n),
      buckets: req.buckets.map((b) => ({ ...b, reserved: 0n, actual: 0n })),
    });
    expect(await store().buckets(w, [bucket()], NOW)).toEqual([{ spend: 0n, reserved: 100n }]);
    const hold = { key: bucket().key, id: req.id, amount: 100n };
    await store().releaseHolds(w, [hold]);
    await store().releaseHolds(w, [hold]);
    expect(await store().buckets(w, [bucket()], NOW)).toEqual([{ spend: 0n, reserved: 0n }]);
  });

  it("countFrom: the first instant proposed is kept, per workspace and budget; null only reads it", async () => {
    const [w, other] = [ws(), ws()];
    expect(await store().countFrom(w, "cap", null)).toBeNull();
    const all = await Promise.all([1000, 2000, 3000].map((t) => store().countFrom(w, "cap", NOW + t)));
    expect(new Set(all).size).toBe(1);
    expect(await store().countFrom(w, "cap", NOW + 9000)).toBe(all[0]);
    expect(await store().countFrom(w, "cap", null)).toBe(all[0]);
    expect(await store().countFrom(w, "other", NOW)).toBe(NOW);
    expect(await store().countFrom(other, "cap", null)).toBeNull();
  });

  it("seedTotals: a slot is raised to each total once, never lowered; live spend stays on top", async () => {
    const w = ws();
    const [day, rolling] = [bucket(), bucket({ key: "b:hours:-", slots: ["h10", "h11"] })];
    const req = admitReq(w);
    await store().admit(req);
    await store().settle(settleOf(req, 5n)); // counted live
    const seed = (a: bigint, b: bigint) =>
      store().seedTotals(w, "cap", [
        { bucket: day, slot: day.slots[0]!, total: a },
        { bucket: rolling, slot: "h10", total: b },
      ]);
    await seed(100n, 7n);
    await Promise.all([seed(100n, 7n), seed(100n, 7n)]); // read again, or by two replicas at once
    expect(await store().buckets(w, [day, rolling], NOW)).toEqual([
      { spend: 105n, reserved: 0n },
      { spend: 7n, reserved: 0n },
    ]);
    await seed(150n, 6n); // more of its calls stored since; a total read lower changes nothing
    expect(await store().buckets(w, [day, rolling], NOW)).toEqual([
      { spend: 155n, reserved: 0n },
      { spend: 7n, reserved: 0n },
    ]);
    // The last seed closes it: one after (a replica whose clock is behind) changes nothing.
    await store().seedTotals(w, "cap", [{ bucket: day, slot: day.slots[0]!, total: 160n }], true);
    await store().seedTotals(w, "cap", [{ bucket: day, slot: day.slots[0]!, total: 200n }]);
    await store().seedTotals(w, "cap", [{ bucket: day, slot: day.slots[0]!, total: 300n }], true);
    expect((await store().buckets(w, [day], NOW))[0]!.spend).toBe(165n);
  });

  it("doubt: a doubted charge counts once, and only a call in doubt; any charge takes it out of doubt", async () => {
    const w = ws();
    const b = bucket({ amount: 0n });
    const charge = (eventId: string, doubted: boolean, actual: bigint, now = NOW) =>
      store().charge({
        workspace: w,
        eventId,
        doubted,
        now,
        buckets: [{ ...b, reserved: 0n, actual }],
        tokenRates: [],
        run: null,
      });
    const spend = async () => (await store().buckets(w, [b], NOW))[0]!.spend;
    // Writes that failed: the store may hold their calls, nobody charged them.
    await store().doubt(w, ["lost", "retried"], NOW + 60_000, NOW);
    await charge("counted", true, 1n); // a duplicate of a call counted when it was stored
    expect(await spend()).toBe(0n);
    await charge("lost", true, 10n); // the retry is a duplicate: the write that failed stored it
    await charge("lost", true, 10n); // and so is the next
    expect(await spend()).toBe(10n);
    await charge("retried", false, 20n); // the retry stored it
    await charge("retried", true, 20n); // then a duplicate
    expect(await spend()).toBe(30n);
    // A doubt lapses.
    await store().doubt(w, ["stale"], NOW + 50, NOW);
    await sleep(100);
    await charge("stale", true, 40n, NOW + 100);
    expect(await spend()).toBe(30n);
    // A doubt after its call's charge (the write that failed was a retry of calls stored and counted
    // before): its duplicates count nothing more.
    await charge("counted-first", false, 100n);
    await store().doubt(w, ["counted-first", "fresh"], NOW + 60_000, NOW);
    await charge("counted-first", true, 100n);
    await charge("fresh", true, 1000n);
    expect(await spend()).toBe(1130n);
  });

  it("doubt: a call charged before the write that failed (sent again, its answer lost) is not charged again", async () => {
    const w = ws();
    const b = bucket({ amount: 0n });
    const charge = (eventId: string, doubted: boolean) =>
      store().charge({
        workspace: w,
        eventId,
        doubted,
        now: NOW,
        buckets: [{ ...b, reserved: 0n, actual: 10n }],
        tokenRates: [],
        run: null,
      });
    const spend = async () => (await store().buckets(w, [b], NOW))[0]!.spend;
    await charge("resent", false); // its first write stored it
    await store().doubt(w, ["resent"], NOW + 60_000, NOW); // sent again: that write failed
    await charge("resent", true); // and its retry is answered duplicate
    expect(await spend()).toBe(10n);
    // Charged as a doubted duplicate, then sent in a write that fails once more: still counted once.
    await store().doubt(w, ["twice"], NOW + 60_000, NOW);
    await charge("twice", true);
    await store().doubt(w, ["twice"], NOW + 60_000, NOW);
    await charge("twice", true);
    expect(await spend()).toBe(20n);
  });
  it("a settle naming its call's record counts it once per event id, with the record's charges; a repeat only gives back what it held", async () => {
    const w = ws();
    const b = bucket({ steps: [100n, 1000n], amount: 50n });
    const tpm = { key: "t:tpm:-", limit: 1000, cost: 30 };
    const run = { key: "r:recorded", ceilings: { cost_nanousd: 1000n }, depth: 1, retry: false };
    /** A background response recorded by a poll holding its submission's reservation: 120 spent, 40 tokens. */
    const recorded = async (eventId: string, chargedUntil: number, now = NOW) => {
      const req = admitReq(w, { buckets: [b], rates: [tpm], run });
      expect((await store().admit(req)).ok).toBe(true);
      return store().settle({
        ...settleOf(req, 120n),
        now,
        eventId,
        chargedUntil,
        tokenRates: [{ key: tpm.key, tokens: 40, held: { tokens: tpm.cost, at: NOW } }],
        run: {
          key: run.key,
          ceilings: run.ceilings,
          cost: 120n,
          tokens: 40,
          toolCalls: 0,
          llmCalls: 0,
          retries: 0,
        },
      });
    };
    const charged = (eventId: string, chargedUntil: number) =>
      store().charge({
        workspace: w,
        eventId,
        now: NOW,
        chargedUntil,
        buckets: [{ ...b, reserved: 0n, actual: 120n }],
        tokenRates: [],
        run: null,
      });
    const state = async () => ({
      bucket: (await store().buckets(w, [b], NOW))[0],
      run: (await store().run(w, run.key))?.usage.cost_nanousd,
    });
    /** The tokens counted this minute: what an admission of the whole limit finds. */
    const tokens = async () => {
      const r = await store().admit(admitReq(w, { buckets: [], rates: [{ ...tpm, cost: tpm.limit }] }));
      return r.ok ? 0 : (r.refusal as { current: number }).current;
    };
    const WEEK = NOW + 7 * 86_400_000;
    expect((await recorded("resp", WEEK)).changes).toEqual([{ index: 0, from: 0, to: 1, spend: 120n }]);
    // Recorded again, its store's lookup timed out: its hold goes back, nothing more is spent, no alert.
    expect((await recorded("resp", WEEK)).changes).toEqual([]);
    expect(await state()).toEqual({ bucket: { spend: 120n, reserved: 0n }, run: 120n });
    expect(await tokens()).toBe(40);
    // Nor by a charge of it (a poll through a replica without its submission), nor past an hour.
    expect((await charged("resp", WEEK)).changes).toEqual([]);
    await recorded("resp", WEEK, NOW + 2 * 3_600_000);
    expect(await state()).toEqual({ bucket: { spend: 120n, reserved: 0n }, run: 120n });
    // Charged first, then settled naming it: counted once too.
    await charged("polled", WEEK);
    await recorded("polled", WEEK);
    expect(await state()).toEqual({ bucket: { spend: 240n, reserved: 0n }, run: 120n });
    // Known as charged until it says.
    await recorded("brief", NOW + 50);
    await sleep(100);
    await store().settle({
      ...settleOf(admitReq(w, { buckets: [b] }), 120n),
      now: NOW + 100,
      eventId: "brief",
    });
    expect((await state()).bucket).toEqual({ spend: 480n, reserved: 0n });
  });

  it("a settle of spend only counts its spend, but neither reads nor sets its window's level", async () => {
    const w = ws();
    const b = bucket({ steps: [100n, 1000n], enforce: false });
    const settled = async (actual: bigint, spendOnly?: boolean) => {
      const req = admitReq(w, { buckets: [b] });
      expect((await store().admit(req)).ok).toBe(true);
      const settle = settleOf(req, actual);
      return store().settle({ ...settle, buckets: settle.buckets.map((x) => ({ ...x, spendOnly })) });
    };
    expect((await settled(150n)).changes).toEqual([{ index: 0, from: 0, to: 1, spend: 150n }]);
    expect((await settled(900n, true)).changes).toEqual([]);
    expect(await store().buckets(w, [b], NOW)).toEqual([{ spend: 1050n, reserved: 0n }]);
    // The level stayed where the last counted settle set it.
    expect((await settled(10n)).changes).toEqual([{ index: 0, from: 1, to: 2, spend: 1060n }]);
  });

  it("inDoubt: which calls are in doubt, and since when; asking changes nothing", async () => {
    const w = ws();
    const inDoubt = (ids: string[], now = NOW + 10) => store().inDoubt(w, ids, now);
    expect(await inDoubt(["a"])).toEqual(new Map());
    await store().doubt(w, ["a", "b"], NOW + 60_000, NOW);
    await store().doubt(w, ["c"], NOW + 60_000, NOW + 5);
    expect(await inDoubt(["a", "c", "d"])).toEqual(
      new Map([
        ["a", NOW],
        ["c", NOW + 5],
      ]),
    );
    expect(await inDoubt(["a"])).toEqual(new Map([["a", NOW]]));
    expect(await store().inDoubt(ws(), ["a"], NOW + 10)).toEqual(new Map()); // another workspace's
    // A charge takes its call out of doubt.
    await store().charge({
      workspace: w,
      eventId: "a",
      doubted: true,
      now: NOW + 10,
      buckets: [{ ...bucket({ amount: 0n }), reserved: 0n, actual: 10n }],
      tokenRates: [],
      run: null,
    });
    expect(await inDoubt(["a", "b"])).toEqual(new Map([["b", NOW]]));
    // A doubt lapses.
    await store().doubt(w, ["stale"], NOW + 50, NOW);
    await sleep(100);
    expect(await inDoubt(["stale"], NOW + 100)).toEqual(new Map());
  });
});

describe("Redis doubts", () => {
  it("a call one replica put in doubt is charged once by another replica's doubted charges", async () => {
    const replica = await RedisLimitStore.connect(redis.url);
    try {
      const w = ws();
      const b = bucket({ amount: 0n });
      await stores.redis!.doubt(w, ["e1"], Date.now() + 60_000, Date.now());
      const charge = () =>
        replica.charge({
          workspace: w,
          eventId: "e1",
          doubted: true,
          now: NOW,
          buckets: [{ ...b, reserved: 0n, actual: 10n }],
          tokenRates: [],
          run: null,
        });
      await Promise.all([charge(), charge()]);
      expect((await replica.buckets(w, [b], NOW))[0]!.spend).toBe(10n);
    } finally {
      await replica.close();
    }
  });

  it("a doubt that comes after its call was charged (another replica stored it meanwhile) is not kept", async () => {
    const store = stores.redis as RedisLimitStore;
    const w = ws();
    await store.charge({
      workspace: w,
      eventId: "e1",
      now: NOW,
      buckets: [{ ...bucket(), reserved: 0n, actual: 10n }],
      tokenRates: [],
      run: null,
    });
    await store.doubt(w, ["e1", "e2"], Date.now() + 60_000, Date.now());
    const client = new Redis(redis.url);
    try {
      // Kept, it would outlive the charge's marker (an hour) and let a duplicate count a second time.
      expect(await client.exists(`tg:{${w}}:doubt:e1`)).toBe(0);
      expect(await client.exists(`tg:{${w}}:doubt:e2`)).toBe(1);
    } finally {
      client.disconnect();
    }
  });
});

describe("Redis run holds", () => {
  it("a run's hold keys go once its last call in flight settles (runs are many, and short)", async () => {
    const store = stores.redis as RedisLimitStore;
    const w = ws();
    const ceilings = { cost_nanousd: 1000n, total_tokens: 100 };
    const hold = { cost_nanousd: 300n, total_tokens: 30 };
    const reqs = [1, 2].map(() =>
      admitReq(w, { buckets: [], run: { key: "r:short", ceilings, depth: 1, retry: false, hold } }),
    );
    for (const r of reqs) expect(await store.admit(r)).toEqual({ ok: true });
    const client = new Redis(redis.url);
    const holdKeys = () => client.keys(`tg:{${w}}:hr:*`);
    expect((await holdKeys()).length).toBeGreaterThan(0);
    for (const r of reqs)
      await store.settle({
        workspace: w,
        id: r.id,
        now: NOW,
        buckets: [],
        tokenRates: [],
        run: {
          key: "r:short",
          ceilings,
          cost: 10n,
          tokens: 1,
          toolCalls: 0,
          llmCalls: 0,
          retries: 0,
          held: hold,
        },
      });
    expect(await holdKeys()).toEqual([]);
    expect((await store.run(w, "r:short"))?.usage).toMatchObject({ cost_nanousd: 20n, total_tokens: 2 });
    client.disconnect();
  });

  it("a run's hold keys go once its holds expire, at its next admission (a refused one too)", async () => {
    const store = stores.redis as RedisLimitStore;
    const w = ws();
    const ceilings = { cost_nanousd: 1000n, total_tokens: 100 };
    const hold = { cost_nanousd: 300n, total_tokens: 30 };
    const run = { key: "r:dead", ceilings, depth: 1, retry: false, hold };
    // Its gateway died with the call in flight: nobody settles it.
    expect(await store.admit(admitReq(w, { buckets: [], expiresAt: NOW + 1000, run }))).toEqual({ ok: true });
    // The run's next call comes after the hold's expiry, and a budget turns it away.
    const refused = admitReq(w, { now: NOW + 2000, buckets: [bucket({ amount: 2000n })], run });
    expect(await store.admit(refused)).toMatchObject({ ok: false, refusal: { kind: "budget" } });
    const client = new Redis(redis.url);
    expect(await client.keys(`tg:{${w}}:hr:*`)).toEqual([]);
    client.disconnect();
  });

  it("a run's hold keys go once its holds expire, even if the run never calls again", async () => {
    const store = stores.redis as RedisLimitStore;
    const w = ws();
    const ceilings = { cost_nanousd: 1000n, total_tokens: 100 };
    const hold = { cost_nanousd: 300n, total_tokens: 30 };
    const run = { key: "r:ended", ceilings, depth: 1, retry: false, hold };
    // Its gateway died with the run's last calls in flight: one holds for 1 s, the next for 0.2 s.
    expect(await store.admit(admitReq(w, { buckets: [], expiresAt: NOW + 1000, run }))).toEqual({ ok: true });
    expect(await store.admit(admitReq(w, { buckets: [], expiresAt: NOW + 200, run }))).toEqual({ ok: true });
    const client = new Redis(redis.url);
    const holdKeys = () => client.keys(`tg:{${w}}:hr:*`);
    await new Promise((r) => setTimeout(r, 400));
    expect(await holdKeys()).toHaveLength(4); // the longer holds still count
    const deadline = Date.now() + 3000;
    while ((await holdKeys()).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await holdKeys()).toEqual([]);
    client.disconnect();
  });
});

describe("Redis leases: calls admitted without a round trip, caps still exact across replicas", () => {
  it("far from the cap calls are admitted from a lease; spend and reservations add up after settling", async () => {
    const replica = await RedisLimitStore.connect(redis.url);
    try {
      const w = ws();
      const b = bucket({ limit: 10_000_000n, amount: 100n });
      const perLease = Number(LEASE_CALLS);
      const reqs = Array.from({ length: perLease + 4 }, () => admitReq(w, { buckets: [b] }));
      for (const r of reqs) expect(await replica.admit(r)).toEqual({ ok: true });
      // the first went to Redis and brought back a lease for LEASE_CALLS worst cases; the one after those needed a new one
      expect(replica.admitRoundTrips).toBe(2);
      await Promise.all(reqs.map((r) => replica.settle(settleOf(r, 40n)))); // one batched write
      const [status] = await replica.buckets(w, [b], NOW);
      expect(status!.spend).toBe(40n * BigInt(perLease + 4));
      // the first lease was retired when a call fetched a second one, and given back once its calls
      // settled; what stays reserved is the live lease's unused allowance (less its two calls)
      expect(status!.reserved).toBe(LEASE_CALLS * 100n - 2n * 40n);
    } finally {
      await replica.close(); // gives the leases back
    }
  });

  it("two replicas hammering one cap: never more admitted than fits, and the cap is used up", async () => {
    const [a, b] = [await RedisLimitStore.connect(redis.url), await RedisLimitStore.connect(redis.url)];
    try {
      const w = ws();
      const cap = bucket({ key: "b:shared:-", limit: 400_000n, amount: 100n });
      let admitted = 0;
      let refused = 0;
      let spent = 0n;
      const worker = async (store: RedisLimitStore) => {
        for (let i = 0; i < 1700; i++) {
          const req = admitReq(w, { buckets: [cap] });
          const r = await store.admit(req);
          if (!r.ok) {
            refused++;
            continue;
          }
          admitted++;
          const actual = 60n + BigInt(i % 40); // actual cost below the worst case, as for real calls
          spent += actual;
          void store.settle(settleOf(req, actual)); // settled after the reply, as the gateway does
        }
      };
      await Promise.all([worker(a), worker(b), worker(a), worker(b)]);
      await a.close(); // flushes the batched settles and gives the leases back
      await b.close();
      const [status] = await stores.redis!.buckets(w, [cap], NOW);
      expect(status).toEqual({ spend: spent, reserved: 0n });
      expect(spent <= 400_000n).toBe(true);
      expect(admitted).toBeGreaterThan(4000);
      // leases did most of the work: refusals always ask Redis, admissions mostly did not
      expect(a.admitRoundTrips + b.admitRoundTrips - refused).toBeLessThan(admitted / 4);
    } finally {
      await a.close().catch(() => {});
      await b.close().catch(() => {});
    }
  });

  it("a limit lowered while a lease is live: no call is admitted from the lease past the new limit", async () => {
    const replica = await RedisLimitStore.connect(redis.url);
    try {
      const w = ws();
      const wide = bucket({ key: "b:lowered:-", limit: 10_000_000n, amount: 100n });
      const first = admitReq(w, { buckets: [wide] });
      expect(await replica.admit(first)).toEqual({ ok: true }); // brings back a lease of LEASE_CALLS calls
      await replica.settle(settleOf(first, 40n));
      // The budget is edited down to room for one more worst case (an admin stopping a runaway).
      const lowered = { ...wide, limit: 200n };
      let admitted = 0;
      for (let i = 0; i < 10; i++)
        if ((await replica.admit(admitReq(w, { buckets: [lowered] }))).ok) admitted++;
      expect(admitted).toBe(1); // was 10: all from the lease granted under the old limit
      const [status] = await stores.redis!.buckets(w, [lowered], NOW);
      expect(status!.spend + status!.reserved <= 200n).toBe(true);
    } finally {
      await replica.close();
    }
  });

  it("a call held apart from its lease keeps its whole worst case on its own, though the lease's other calls spent past theirs", async () => {
    const replica = await RedisLimitStore.connect(redis.url);
    try {
      const w = ws();
      const b = bucket({ key: "b:apart:-", limit: 10_000_000n, amount: 100n });
      const first = admitReq(w, { buckets: [b] });
      expect(await replica.admit(first)).toEqual({ ok: true }); // brings back a lease of LEASE_CALLS calls
      const leased = Array.from({ length: Number(LEASE_CALLS) }, () => admitReq(w, { buckets: [b] }));
      for (const r of leased) expect(await replica.admit(r)).toEqual({ ok: true });
      expect(replica.admitRoundTrips).toBe(1);
      const [running, ...done] = leased;
      // The others cost more than their worst cases: the lease has 37 left of the running call's 100.
      await Promise.all(done.map((r) => replica.settle(settleOf(r, 101n))));
      await replica.holdApart(w, running!.id, NOW + 60_000); // a background response: it runs on
      await replica.settle(settleOf(first, 50n));
      await replica.close(); // gives the lease back: none of its calls is in flight
      const spent = 63n * 101n + 50n;
      expect((await stores.redis!.buckets(w, [b], NOW))[0]).toEqual({ spend: spent, reserved: 100n });
      // Found finished: its own reservation settles, through whichever replica.
      await stores.redis!.settle(settleOf(running!, 70n));
      expect((await stores.redis!.buckets(w, [b], NOW))[0]).toEqual({ spend: spent + 70n, reserved: 0n });
    } finally {
      await replica.close().catch(() => {});
    }
  });

  it("a dead replica's lease stops counting when it expires", async () => {
    const w = ws();
    const dead = await RedisLimitStore.connect(redis.url);
    const cap = bucket({ key: "b:dead:-", limit: 10_000_000n, amount: 100n });
    expect((await dead.admit(admitReq(w, { buckets: [cap], expiresAt: NOW + 1000 }))).ok).toBe(true);
    const [held] = await stores.redis!.buckets(w, [cap], NOW);
    expect(held!.reserved).toBe(100n + LEASE_CALLS * 100n); // its call and its lease
    // the replica dies without settling or giving its lease back
    (dead as unknown as { redis: { disconnect(): void } }).redis.disconnect();
    const [later] = await stores.redis!.buckets(w, [cap], NOW + 1001);
    expect(later).toEqual({ spend: 0n, reserved: 0n });
  });
});
