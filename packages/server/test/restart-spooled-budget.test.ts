// Calls an earlier process answered and spooled but never stored (the store down, then a crash or a
// shutdown that could not wait) count against their budgets after the restart, as stored calls do.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it, vi } from "vitest";
import { Spool } from "../src/gateway/spool.js";
import { type CallContext, SpendGuard } from "../src/limits/guard.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { chatContext, type Json } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "tg-restart-spooled-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const call = (feature: string) => ({
  event_id: uuidv7(),
  ts_start: Date.now() - 1000,
  provider: "openai",
  api: "openai.chat",
  model: "gpt-4o",
  input_uncached_tokens: 10_000,
  output_tokens: 1_000,
  feature,
});

async function admin(rt: Runtime, method: string, path: string, body?: unknown): Promise<Json> {
  const res = await rt.app.request(path, {
    method,
    headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await res.json()) as Json;
}
const budget = (feature: string) => ({ id: feature, scope: { feature }, window: "day", limit_usd: "5.00" });

describe("calls spooled and not stored before a restart", () => {
  it("count against budgets and runs from the start, and are stored in the background, once", async () => {
    const dataDir = join(dir, "background");
    const rt1 = await openRuntime({ dataDir, pricebookPath: null });
    await admin(rt1, "POST", "/api/budgets", { ...budget("f1"), limit_usd: "1.00" });
    await rt1.close();
    const engine = new PricingEngine();
    const built = (n: number) =>
      Array.from({ length: n }, () => {
        const b = buildCallRecord(
          { ...call("f1"), agent_run_id: "run-f1" },
          { workspaceId: "default", engine },
        );
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return b.record;
      });
    // 20 calls spooled while the store was down; 10 a replay committed before a kill -9 removed their file.
    const [unstored, committed] = [built(20), built(10)];
    const spool = new Spool(join(dataDir, "spool"));
    spool.spill(unstored);
    spool.spill(committed);
    const store = await DuckDbStore.open(dataDir);
    await store.append(committed);
    await store.close();
    const cost = [...unstored, ...committed].reduce((sum, r) => sum + r.cost_nanousd, 0n);

    const logged: string[] = [];
    const log = vi.spyOn(console, "error").mockImplementation((m: string) => void logged.push(m));
    const rt2 = await openRuntime({ dataDir, pricebookPath: null });
    try {
      // Open (and so serving) before the spool is stored, which is said.
      expect(rt2.recorder.spoolDepth).toBe(30);
      expect(logged).toContain(
        "recording: 30 calls spooled before this start wait to be stored: stored in the background",
      );
      // A call under the budget is admitted against the spooled calls' spend ($1.05 of $1.00): refused.
      expect(await rt2.guard.admit(chatContext({ feature: "f1" }))).toMatchObject({ ok: false });
      expect((await admin(rt2, "GET", "/api/budgets/f1")).spend_nanousd).toBe(String(cost));
      expect((await admin(rt2, "GET", "/api/runs/run-f1")).usage).toMatchObject({ llm_calls: 30 });

      await rt2.recorder.flush();
      expect(rt2.recorder.spoolDepth).toBe(0);
      expect(
        logged.some((m) => /^recording: the 30 calls spooled before this start are stored/.test(m)),
      ).toBe(true);
      const spend = await admin(rt2, "GET", "/api/spend?by=feature&from=1d");
      expect((spend.rows as Json[]).find((r) => r.key === "f1")).toMatchObject({
        calls: 30,
        cost_nanousd: String(cost),
      });
      // Stored, they count once: not again now, nor at the next start.
      expect((await admin(rt2, "GET", "/api/budgets/f1")).spend_nanousd).toBe(String(cost));
      expect((await admin(rt2, "GET", "/api/runs/run-f1")).usage).toMatchObject({ llm_calls: 30 });
    } finally {
      await rt2.close();
      log.mockRestore();
    }
    const rt3 = await openRuntime({ dataDir, pricebookPath: null });
    try {
      expect((await admin(rt3, "GET", "/api/budgets/f1")).spend_nanousd).toBe(String(cost));
      expect((await admin(rt3, "GET", "/api/runs/run-f1")).usage).toMatchObject({ llm_calls: 30 });
    } finally {
      await rt3.close();
    }
  });

  it("count against budgets, not against this minute's tokens per minute (their minutes are long gone)", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "rates"), pricebookPath: null });
    try {
      await admin(rt, "POST", "/api/rate-limits", {
        id: "tpm",
        scope: { feature: "f3" },
        tokens_per_min: 50_000,
      });
      // Lifetime: two hours ago may be yesterday (UTC).
      await admin(rt, "POST", "/api/budgets", { ...budget("f3"), window: "lifetime" });
      const engine = new PricingEngine();
      // Made two hours ago, during the outage: 11,000 tokens each, 110,000 in all.
      const spooled = Array.from({ length: 10 }, () => {
        const b = buildCallRecord(
          { ...call("f3"), ts_start: Date.now() - 2 * 3_600_000 },
          { workspaceId: "default", engine },
        );
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return b.record;
      });
      await rt.guard.rebuild(["default"], [spooled]);
      const body = { model: "gpt-4o-mini", max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
      const next: CallContext = {
        workspace: "default",
        facts: { feature: "f3" },
        api: "openai.chat",
        provider: "openai",
        model: "gpt-4o-mini",
        body,
        raw: Buffer.from(JSON.stringify(body)),
        requestId: "after-restart",
        retry: false,
        depth: 1,
      };
      expect(await rt.guard.admit(next)).toMatchObject({ ok: true });
      const cost = spooled.reduce((sum, r) => sum + r.cost_nanousd, 0n);
      expect(Number((await admin(rt, "GET", "/api/budgets/f3")).spend_nanousd)).toBeGreaterThanOrEqual(
        Number(cost),
      );
    } finally {
      await rt.close();
    }
  });

  it("count from the spool when the store does not take them yet", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "counted"), pricebookPath: null });
    try {
      await admin(rt, "POST", "/api/budgets", budget("f2"));
      const engine = new PricingEngine();
      const spooled = [call("f2"), call("f2")].map((c) => {
        const b = buildCallRecord(c, { workspaceId: "default", engine });
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return b.record;
      });
      await rt.guard.rebuild(["default"], [spooled]);
      const cost = spooled.reduce((sum, r) => sum + r.cost_nanousd, 0n);
      expect((await admin(rt, "GET", "/api/budgets/f2")).spend_nanousd).toBe(String(cost));
    } finally {
      await rt.close();
    }
  });

  it("count once when the store holds them already (stored, then a crash before their file was removed)", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "stored-too"), pricebookPath: null });
    try {
      await admin(rt, "POST", "/api/budgets", budget("f4"));
      const engine = new PricingEngine();
      const [stored, unstored] = [call("f4"), call("f4")].map((c) => {
        const b = buildCallRecord({ ...c, agent_run_id: "run-f4" }, { workspaceId: "default", engine });
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return b.record;
      });
      // A replay committed the first, and the process died before removing its file; at the next start
      // the store refused the spool's drain (a disk still full), so both come from the spool.
      await rt.store.append([stored!]);
      await rt.guard.rebuild(["default"], [[stored!, unstored!]]);
      const cost = stored!.cost_nanousd + unstored!.cost_nanousd;
      expect((await admin(rt, "GET", "/api/budgets/f4")).spend_nanousd).toBe(String(cost));
      // So does their agent run: two calls, not three.
      expect((await admin(rt, "GET", "/api/runs/run-f4")).usage).toMatchObject({
        llm_calls: 2,
        cost_nanousd: String(cost),
      });
    } finally {
      await rt.close();
    }
  });

  it("count once when the store holds them already, a damaged line in their file (an event id that is no UUID) or not", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "stored-damaged"), pricebookPath: null });
    try {
      await admin(rt, "POST", "/api/budgets", budget("f5"));
      const engine = new PricingEngine();
      const [stored, other] = [call("f5"), { ...call("f5-other"), agent_run_id: "run-f5" }].map((c) => {
        const b = buildCallRecord(c, { workspaceId: "default", engine });
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return b.record;
      });
      // A line a bad byte damaged still parses (the drain that would set it aside was refused): its run
      // counts it, so its id is looked up with the others of its file.
      const damaged = { ...other!, event_id: "0190e1c2-not-a-uuid" };
      await rt.store.append([stored!]);
      await rt.guard.rebuild(["default"], [[stored!, damaged]]);
      expect((await admin(rt, "GET", "/api/budgets/f5")).spend_nanousd).toBe(String(stored!.cost_nanousd));
    } finally {
      await rt.close();
    }
  });

  it("hold up no call only rate limits apply to while they are counted (they do not count against rates)", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "rates-only"), pricebookPath: null });
    // The count is slow (a large spool): it ends once let go.
    let letGo = () => {};
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    const slow = vi.spyOn(rt.guard, "observe").mockImplementation(() => gate);
    try {
      await admin(rt, "POST", "/api/budgets", budget("f8-other"));
      await admin(rt, "POST", "/api/rate-limits", {
        id: "tpm8",
        scope: { feature: "f8" },
        tokens_per_min: 50_000,
      });
      const b = buildCallRecord(call("f8-other"), { workspaceId: "default", engine: new PricingEngine() });
      if (!b.ok) throw new Error(JSON.stringify(b.errors));
      const counted = rt.guard.countUnstored([[b.record]]);
      const waited = await Promise.race([
        rt.guard.admit(chatContext({ feature: "f8" })).then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 1_000)),
      ]);
      expect(waited).toBe(false);
      letGo();
      await counted;
    } finally {
      slow.mockRestore();
      await rt.close();
    }
  });

  it("kill and unkill a run while they are counted as after: its spooled calls count first", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "unkill-during-count"), pricebookPath: null });
    // The count is slow (a large spool): it goes on once let go.
    let letGo = () => {};
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    const observe = rt.guard.observe.bind(rt.guard);
    const slow = vi.spyOn(rt.guard, "observe").mockImplementation(async (records, opts) => {
      await gate;
      return observe(records, opts);
    });
    try {
      await admin(rt, "PUT", "/api/agents/a9", { max_llm_calls: 2 });
      const engine = new PricingEngine();
      // Three calls of a run allowed two: the spooled calls kill it (as the earlier process did); one of another.
      const spooled = ["run-9", "run-9", "run-9", "run-8"].map((run) => {
        const b = buildCallRecord(
          { ...call("f9"), agent_run_id: run, agent_type: "a9" },
          { workspaceId: "default", engine },
        );
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return b.record;
      });
      const counted = rt.guard.countUnstored([spooled]);
      const kill = admin(rt, "POST", "/api/runs/run-8/kill");
      const unkill = admin(rt, "POST", "/api/runs/run-9/unkill");
      letGo();
      await counted;
      // The operator's unkill is not undone by the count that killed the run.
      expect(await unkill).toMatchObject({ was_killed: true });
      expect(await admin(rt, "GET", "/api/runs/run-9")).toMatchObject({ state: "running" });
      // A kill says the run has calls: its spooled one.
      expect(await kill).toMatchObject({ calls_seen: true });
    } finally {
      slow.mockRestore();
      await rt.close();
    }
  });

  it("count the calls after a damaged line that still parses (tags put back as a map, not a list)", async () => {
    const dataDir = join(dir, "damaged-tags");
    const rt1 = await openRuntime({ dataDir, pricebookPath: null });
    await admin(rt1, "POST", "/api/budgets", { ...budget("f7"), scope: { tag: "t7" } });
    await rt1.close();
    const engine = new PricingEngine();
    const [damaged, sound] = [call("f7"), call("f7")].map((c) => {
      const b = buildCallRecord({ ...c, tags: ["t7"] }, { workspaceId: "default", engine });
      if (!b.ok) throw new Error(JSON.stringify(b.errors));
      return b.record;
    });
    const spool = new Spool(join(dataDir, "spool"));
    spool.spill([{ ...damaged!, tags: { t7: true } as unknown as string[] }]);
    spool.spill([sound!]);
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    const rt2 = await openRuntime({ dataDir, pricebookPath: null });
    try {
      await rt2.guard.unstoredCounted();
      // The damaged call stopped the count of every call after it; it counts against nothing, the others count.
      expect((await admin(rt2, "GET", "/api/budgets/f7")).spend_nanousd).toBe(String(sound!.cost_nanousd));
    } finally {
      await rt2.close();
      log.mockRestore();
    }
  });

  it("count the spool files after one that cannot be read when the count reaches it", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "unreadable"), pricebookPath: null });
    try {
      await admin(rt, "POST", "/api/budgets", budget("f6"));
      const engine = new PricingEngine();
      const [first, lost, last] = [call("f6"), call("f6"), call("f6")].map((c) => {
        const b = buildCallRecord(c, { workspaceId: "default", engine });
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return b.record;
      });
      const spoolDir = join(dir, "unreadable-spool");
      const spool = new Spool(spoolDir);
      for (const rec of [first!, lost!, last!]) spool.spill([rec]);
      // The second file turns unreadable after the start read the spool (here: a directory in its place).
      const second = spool.files()[1]!;
      rmSync(join(spoolDir, second));
      mkdirSync(join(spoolDir, second));
      await rt.guard.countUnstored(spool.records());
      const cost = first!.cost_nanousd + last!.cost_nanousd;
      expect((await admin(rt, "GET", "/api/budgets/f6")).spend_nanousd).toBe(String(cost));
    } finally {
      await rt.close();
    }
  });
});

describe("the count of calls spooled before a start, with a store that does not answer", () => {
  it("holds up a budgeted call for one wait for the store, not one per spool file, nor forever", async () => {
    const rt = await openRuntime({ dataDir: join(dir, "hung-store"), pricebookPath: null });
    // The store hangs (a wedged thread, a ClickHouse node that takes the request and never answers).
    const storedIds = rt.store.storedIds;
    rt.store.storedIds = () => new Promise(() => {});
    const log = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      await admin(rt, "POST", "/api/budgets", budget("f10"));
      const engine = new PricingEngine();
      const files = [call("f10"), call("f10"), call("f10")].map((c) => {
        const b = buildCallRecord(c, { workspaceId: "default", engine });
        if (!b.ok) throw new Error(JSON.stringify(b.errors));
        return [b.record];
      });
      const counted = rt.guard.countUnstored(files);
      const started = performance.now();
      const admitted = await Promise.race([
        rt.guard.admit(chatContext({ feature: "f10" })).then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 9_000)),
      ]);
      expect(admitted).toBe(true);
      expect(performance.now() - started).toBeLessThan(8_000);
      await counted;
      // Not known stored, they count (as when the store says it failed).
      const cost = files.reduce((sum, [r]) => sum + r!.cost_nanousd, 0n);
      expect((await admin(rt, "GET", "/api/budgets/f10")).spend_nanousd).toBe(String(cost));
    } finally {
      rt.store.storedIds = storedIds;
      log.mockRestore();
      await rt.close();
    }
  }, 15_000);
});

describe("a shutdown while the calls spooled before its start are counted", () => {
  it("does not wait for the count, says nothing of the store, and neither counts nor stores them after", async () => {
    const dataDir = join(dir, "shutdown-during-count");
    const rt1 = await openRuntime({ dataDir, pricebookPath: null });
    await admin(rt1, "POST", "/api/budgets", budget("f11"));
    await rt1.close();
    const engine = new PricingEngine();
    const spool = new Spool(join(dataDir, "spool"));
    for (const c of [call("f11"), call("f11")]) {
      const b = buildCallRecord(c, { workspaceId: "default", engine });
      if (!b.ok) throw new Error(JSON.stringify(b.errors));
      spool.spill([b.record]);
    }
    const files = spool.files();
    // The count is slow (a large spool): the first file goes on once let go.
    let letGo = () => {};
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    const observe = SpendGuard.prototype.observe;
    const slow = vi.spyOn(SpendGuard.prototype, "observe").mockImplementation(async function (
      this: SpendGuard,
      records,
      opts,
    ) {
      await gate;
      return observe.call(this, records, opts);
    });
    const logged: string[] = [];
    const log = vi.spyOn(console, "error").mockImplementation((m: string) => void logged.push(m));
    try {
      const rt = await openRuntime({ dataDir, pricebookPath: null });
      const started = performance.now();
      await rt.close();
      // Nothing in memory to store: the shutdown is not held up by the count (nor blames the store).
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(logged.filter((m) => /shutdown/.test(m))).toEqual([]);
      letGo();
      await rt.guard.unstoredCounted();
      await new Promise((r) => setTimeout(r, 200));
      // The store closed, the count stopped (it asked the closed store, then its replay stored into it):
      // the spooled calls are counted and stored by the next start.
      expect(logged.filter((m) => /store failed|did not say/.test(m))).toEqual([]);
      expect(spool.files()).toEqual(files);
    } finally {
      slow.mockRestore();
      log.mockRestore();
    }
  }, 20_000);
});
