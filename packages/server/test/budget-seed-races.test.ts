// Budgets added while calls go on, at the edges the load test does not reach: two seeds of one budget at
// once (created, deleted and created again while the first seed reads the store), a call in flight when a
// budget appears that started before the budget's window (it counts where a call admitted under the budget
// would have: not in a window it did not start in), a background response submitted under no limit,
// found finished once limits came (it counts against them as any call recorded then), and one recorded
// again (once per event id in a budget added while it ran, as in the others).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PricingEngine } from "@tollgate/core";
import { afterEach, describe, expect, it } from "vitest";
import { type CallContext, SpendGuard } from "../src/limits/guard.js";
import { MemoryLimitStore } from "../src/limits/memory-store.js";
import { PolicyRegistry } from "../src/limits/policies.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import type { CostSumRow, LimitsStateStore } from "../src/store/types.js";
import { buildRecord } from "./conformance-data.js";
import {
  adminRequest,
  chatContext,
  type Json,
  postEvents,
  startTestGateway,
  validRecord,
} from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("two seeds of one budget at once", () => {
  let rt: Runtime | null = null;
  let dir = "";
  afterEach(async () => {
    await rt?.close();
    rt = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("(created, deleted, created again while the first seed reads the store) count its spend once", async () => {
    dir = mkdtempSync(join(tmpdir(), "tg-seed-twice-"));
    rt = await openRuntime({ dataDir: join(dir, "data"), pricebookPath: null });
    const runtime = rt;
    const admin = async (method: string, path: string, body?: unknown) => {
      const res = await runtime.app.request(path, {
        method,
        headers: { authorization: `Bearer ${runtime.rootToken}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Json };
    };
    const res = await postEvents(rt.app, rt.rootToken, {
      events: [validRecord({ user_id: "twice", input_uncached_tokens: 1_000_000 })],
    });
    expect(res.json.accepted).toBe(1);
    const stored = (await admin("GET", "/api/spend?by=user_id&user_id=twice&from=7d")).json.rows[0]
      .cost_nanousd as string;

    // The seeds' store reads answer together (a store thread answers queued reads back to back).
    const events = rt.guard.events;
    const sumCost = events.sumCost.bind(events);
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    (rt.guard as unknown as { events: LimitsStateStore }).events = new Proxy(events, {
      get: (t, p) =>
        p === "sumCost"
          ? async (...args: Parameters<LimitsStateStore["sumCost"]>) => {
              const rows = await sumCost(...args);
              calls++; // read, its answer held back
              await gate;
              return rows;
            }
          : Reflect.get(t, p),
    }) as LimitsStateStore;

    const budget = { id: "twice", scope: { user_id: "twice" }, window: "lifetime", limit_usd: "100" };
    const first = admin("POST", "/api/budgets", budget);
    while (calls < 1) await pause(5);
    expect((await admin("DELETE", "/api/budgets/twice")).status).toBe(200);
    const second = admin("POST", "/api/budgets", budget);
    // The second seed reads the store too while the first one's answer is held (unless it waits its turn).
    const since = Date.now();
    while (calls < 2 && Date.now() - since < 500) await pause(5);
    release();
    expect((await first).status).toBe(201);
    expect((await second).status).toBe(201);
    expect((await admin("GET", "/api/budgets/twice")).json.spend_nanousd).toBe(stored);
  });
});

describe("a call in flight when a budget appears", () => {
  const DAY = 86_400_000;
  const day1 = Date.UTC(2026, 11, 6, 23, 30);
  let now = day1;
  const events = {
    listPolicies: async () => [],
    putPolicy: async () => null,
    deletePolicy: async () => null,
    appendLimitEvents: async () => {},
    limitEvents: async () => [],
    runUsage: async () => [],
    sumCost: async (): Promise<CostSumRow[]> => [], // nothing stored in the window
  } as unknown as LimitsStateStore;

  function ctx(user: string): CallContext {
    return chatContext({ user_id: user }, { requestId: `req-${user}` });
  }

  for (const [window, later] of [
    ["day", day1 + DAY / 24], // the next day
    ["1h", day1 + DAY / 24], // the next hour
  ] as const)
    it(`started before the budget's window (${window}): not counted in it, as under a budget it was admitted with`, async () => {
      now = day1;
      const registry = await PolicyRegistry.open(events, null);
      const guard = new SpendGuard(new MemoryLimitStore(), registry, events, new PricingEngine(), {
        now: () => now,
        log: () => {},
      });
      const spec = (id: string, user: string) => ({
        id,
        scope: { user_id: user },
        window,
        limit_usd: "10",
      });
      // One call admitted under a budget, one under none; both end after the budgets' window turned.
      await registry.put("default", "budget", null, spec("held", "held"), "test");
      const held = await guard.admit(ctx("held"));
      const bare = await guard.admit(ctx("bare"));
      if (!held.ok || !bare.ok) throw new Error("refused");
      now = later;
      await registry.put("default", "budget", null, spec("added", "bare"), "test");
      await guard.budgetAdded("default", "added");
      const outcome = { cost: 1_000_000n, tokens: 10, toolCalls: 0 };
      await guard.settle(held.ticket, { ...outcome, eventId: "e-held" });
      await guard.settle(bare.ticket, { ...outcome, eventId: "e-bare" });
      const spend = async (id: string) => {
        const b = registry.forWorkspace("default").budgets.find((x) => x.id === id)!;
        return (await guard.budgetStatus("default", b))[0]!.spend;
      };
      expect(await spend("held")).toBe(0n);
      expect(await spend("added")).toBe(0n);
    });

  it("a background response recorded first elsewhere, then here again: counted once in a budget added meanwhile", async () => {
    now = day1;
    const registry = await PolicyRegistry.open(events, null);
    const guard = new SpendGuard(new MemoryLimitStore(), registry, events, new PricingEngine(), {
      now: () => now,
      log: () => {},
    });
    const spec = (id: string) => ({ id, scope: { user_id: "bg" }, window: "day", limit_usd: "10" });
    await registry.put("default", "budget", null, spec("before"), "test");
    const submitted = await guard.admit(ctx("bg"));
    if (!submitted.ok) throw new Error("refused");
    await registry.put("default", "budget", null, spec("meanwhile"), "test");
    await guard.budgetAdded("default", "meanwhile");
    // Its poll through a replica without its submission charged it; this one's lookup timed out.
    const rec = buildRecord(validRecord({ user_id: "bg", ts_start: day1 }));
    await guard.observe([rec], { countCalls: false, recurs: true });
    await guard.settle(submitted.ticket, {
      cost: rec.cost_nanousd,
      tokens: 10,
      toolCalls: 0,
      eventId: rec.event_id,
      tsStart: rec.ts_start,
      recurs: true,
    });
    const spend = async (id: string) => {
      const b = registry.forWorkspace("default").budgets.find((x) => x.id === id)!;
      return (await guard.budgetStatus("default", b))[0]!.spend;
    };
    expect(await spend("before")).toBe(rec.cost_nanousd);
    expect(await spend("meanwhile")).toBe(rec.cost_nanousd);
  });
});

describe("a background response submitted under no limit", () => {
  it("found finished after a tokens-per-minute limit came: its tokens count against it", async () => {
    const mock = await startMockUpstream({ chunkDelayMs: 1 });
    const gw = await startTestGateway(mock.url);
    const { default: OpenAI } = await import("openai");
    const openai = new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
    try {
      const headers = { "x-mock-case": "bare-submission", "x-tollgate-feature": "bg" };
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "go", background: true },
        { headers },
      );
      const rate = { id: "bg-tpm", scope: { feature: "bg" }, tokens_per_min: 100 };
      expect((await adminRequest(gw, "POST", "/api/rate-limits", rate)).status).toBe(201);
      await openai.responses.retrieve(submitted.id, undefined, { headers }); // in_progress
      const done = await openai.responses.retrieve(submitted.id, undefined, { headers });
      expect(done.usage!.total_tokens).toBeGreaterThan(100);
      await pause(200);
      // Its tokens are past the minute's 100: the next call of the feature waits.
      const next = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
        body: JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] }),
      });
      await next.text();
      expect(next.status).toBe(429);
    } finally {
      await gw.stop();
      await mock.close();
    }
  });
});

describe("calls the store took though it failed to say so (spooled, and stored)", () => {
  // A write whose answer was lost (ClickHouse's timeout or dropped connection after the INSERT landed;
  // DuckDB invalidated by a failed checkpoint after the commit) is spooled by the recorder, and is in the
  // store too until its replay finds it stored. A budget seeded meanwhile asks the store which of the
  // calls not stored yet it holds after all: before, it counted them twice (2x in this test).
  it("count once in a budget seeded before their replay", async () => {
    const mock = await startMockUpstream({ chunkDelayMs: 1 });
    const gw = await startTestGateway(mock.url);
    let lost = true;
    const store = gw.runtime.store as unknown as { append: DuckDbStore["append"] };
    store.append = async function (this: DuckDbStore, records) {
      const res = await DuckDbStore.prototype.append.call(this, records);
      if (lost) throw new Error("the store's answer was lost");
      return res;
    };
    try {
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${gw.url}/v1/chat/completions`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: "Bearer sk-test",
            "x-tollgate-user-id": "lost",
          },
          body: JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] }),
        });
        expect(res.status).toBe(200);
        await res.text();
      }
      while (gw.runtime.recorder.spoolDepth < 5) await pause(20);
      const budget = { id: "lost", scope: { user_id: "lost" }, window: "lifetime", limit_usd: "100" };
      expect((await adminRequest(gw, "POST", "/api/budgets", budget)).status).toBe(201);
      lost = false;
      await gw.runtime.recorder.flush(); // the replay finds them stored: the spool empties
      expect(gw.runtime.recorder.spoolDepth).toBe(0);
      const spend = await adminRequest(gw, "GET", "/api/spend?by=user_id&user_id=lost&from=7d");
      const stored = spend.json.rows[0].cost_nanousd as string;
      expect(BigInt(stored)).toBeGreaterThan(0n);
      expect((await adminRequest(gw, "GET", "/api/budgets/lost")).json.spend_nanousd).toBe(stored);
    } finally {
      lost = false;
      await gw.stop();
      await mock.close();
    }
  });
});
