// Budgets added while calls go on, at an edge the load test does not reach: two seeds of one budget at
// once (created, deleted and created again while the first seed reads the store).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openRuntime, type Runtime } from "../src/runtime.js";
import type { LimitsStateStore } from "../src/store/types.js";
import { type Json, postEvents, validRecord } from "./helpers.js";

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
