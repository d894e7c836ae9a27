// A budget that comes back (API delete then create, a limits-file reload that drops it and one that
// restores it) is seeded from the store anew: its window's spend counts once, not on top of the counters
// it left in memory.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { type Json, postEvents, validRecord } from "./helpers.js";

let rt: Runtime;
let dir: string;
let limitsFile: string;
const FILE_BUDGET = 'budgets:\n  - { id: from-file, scope: { user_id: u2 }, window: day, limit_usd: "5" }\n';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tg-budget-readded-"));
  limitsFile = join(dir, "limits.yaml");
  writeFileSync(limitsFile, "budgets: []\n");
  rt = await openRuntime({ dataDir: join(dir, "data"), pricebookPath: null, limitsPath: limitsFile });
});
afterAll(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await rt.app.request(path, {
    method,
    headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Json };
}
const spendUsd = async (id: string) => (await admin("GET", `/api/budgets/${id}`)).json.spend_usd;

/** A call of `user` stored before any budget covers it: $2.50 of gpt-4o input. */
async function spentEarlier(user: string) {
  const res = await postEvents(rt.app, rt.rootToken, {
    events: [validRecord({ user_id: user, input_uncached_tokens: 1_000_000 })],
  });
  expect(res.status).toBe(200);
}

describe("a budget that comes back", () => {
  it("through the API (deleted, created again) counts its window's spend once", async () => {
    await spentEarlier("u1");
    const b = { id: "b1", scope: { user_id: "u1" }, window: "day", limit_usd: "10.00" };
    expect((await admin("POST", "/api/budgets", b)).status).toBe(201);
    const first = await spendUsd("b1");
    expect(Number(first)).toBeGreaterThan(0);
    expect((await admin("DELETE", "/api/budgets/b1")).status).toBe(200);
    expect((await admin("POST", "/api/budgets", b)).status).toBe(201);
    expect(await spendUsd("b1")).toBe(first);
  });

  it("leaves alone the counters of a budget whose id starts with its own (org:acme, org:acme:eng)", async () => {
    const eng = { id: "org:acme:eng", scope: { user_id: "u3" }, window: "day", limit_usd: "10.00" };
    expect((await admin("POST", "/api/budgets", eng)).status).toBe(201);
    await spentEarlier("u3"); // counted live: after its budget was seeded
    const before = await spendUsd("org:acme:eng");
    expect(Number(before)).toBeGreaterThan(0);
    const org = { id: "org:acme", scope: { user_id: "*" }, window: "day", limit_usd: "50.00" };
    expect((await admin("POST", "/api/budgets", org)).status).toBe(201);
    expect(await spendUsd("org:acme:eng")).toBe(before);
  });

  it("through the limits file (dropped by one reload, restored by the next) counts its spend once", async () => {
    await spentEarlier("u2");
    // What serve's watcher does on a change or SIGHUP.
    const reload = async (text: string) => {
      writeFileSync(limitsFile, text);
      const { newBudgets } = rt.guard.registry.reloadFile();
      for (const b of newBudgets) await rt.guard.budgetAdded(b.workspace, b.id);
    };
    await reload(FILE_BUDGET);
    const first = await spendUsd("from-file");
    expect(Number(first)).toBeGreaterThan(0);
    await reload("budgets: []\n");
    await reload(FILE_BUDGET);
    expect(await spendUsd("from-file")).toBe(first);
  });
});

describe("a budget whose buckets change (window, scope)", () => {
  it("through the API is seeded anew: its new window's spend counts, once", async () => {
    await spentEarlier("u4");
    await spentEarlier("u5");
    await spentEarlier("u5");
    const b = { id: "b4", scope: { user_id: "u4" }, window: "day", limit_usd: "10.00" };
    expect((await admin("POST", "/api/budgets", b)).status).toBe(201);
    const day = await spendUsd("b4");
    expect(Number(day)).toBeGreaterThan(0);
    // A new window: what the month holds of u4's calls (today's), not empty.
    expect((await admin("POST", "/api/budgets", { ...b, window: "month" })).status).toBe(200);
    expect(await spendUsd("b4")).toBe(day);
    // A new scope: u5's spend (twice u4's), not u4's left in its counters (nor both).
    const u5 = { ...b, window: "month", scope: { user_id: "u5" } };
    expect((await admin("POST", "/api/budgets", u5)).status).toBe(200);
    const twice = await spendUsd("b4");
    expect(Number(twice)).toBeCloseTo(2 * Number(day), 6);
    // An edit that leaves its buckets as they are (the limit) keeps its counters.
    expect((await admin("POST", "/api/budgets", { ...u5, limit_usd: "20" })).status).toBe(200);
    expect(await spendUsd("b4")).toBe(twice);
  });

  it("through the limits file is seeded anew on reload", async () => {
    await spentEarlier("u6");
    const reload = async (text: string) => {
      writeFileSync(limitsFile, text);
      const { newBudgets } = rt.guard.registry.reloadFile();
      for (const x of newBudgets) await rt.guard.budgetAdded(x.workspace, x.id);
    };
    await reload('budgets:\n  - { id: filed, scope: { user_id: u6 }, window: day, limit_usd: "5" }\n');
    const day = await spendUsd("filed");
    expect(Number(day)).toBeGreaterThan(0);
    await reload('budgets:\n  - { id: filed, scope: { user_id: u6 }, window: week, limit_usd: "5" }\n');
    expect(await spendUsd("filed")).toBe(day);
  });
});
