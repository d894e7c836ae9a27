// Query strings the API must not read as something else than was asked: a parameter a route does not take,
// one given twice, an empty workspace, a limit event type no event has. Each is a 400 naming the parameter,
// and a write so refused changes nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_LIMIT_EVENTS } from "../src/api/limits-routes.js";
import { getJson, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;

beforeAll(async () => {
  rt = await openTestRuntime();
  const stored = await postEvents(rt.app, rt.rootToken, [
    validRecord({ customer_id: "c1" }),
    validRecord({ customer_id: "c2" }),
  ]);
  expect(stored.status).toBe(200);
});
afterAll(async () => {
  await rt?.close();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await rt.app.request(path, {
    method,
    headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

function expectRefused(res: { status: number; json: Json }, param: string, what: string): void {
  expect(res.status, `${what}: ${JSON.stringify(res.json)}`).toBe(400);
  expect(res.json.error, what).toMatchObject({ code: "invalid_parameter", param });
}

const budget = { id: "b1", scope: { user_id: "u1" }, window: "day", limit_usd: "1.00" };

describe("a query parameter given twice", () => {
  it("is a 400 naming it, not an answer for its first value alone", async () => {
    for (const [path, param] of [
      ["/api/spend?by=customer_id&customer_id=c1&customer_id=c2", "customer_id"],
      ["/api/spend?by=customer_id&by=model", "by"],
      ["/api/events?limit=1&limit=2", "limit"],
      ["/api/rollups/customers?from=7d&from=1d", "from"],
      ["/api/export/calls?customer_id=c1&customer_id=c2", "customer_id"],
      ["/api/budgets?workspace=a&workspace=b", "workspace"],
    ] as const)
      expectRefused(await getJson(rt.app, rt.rootToken, path), param, path);
  });

  it("so is one bound by its two names: /api/prices/unpriced's since and from", async () => {
    const path = "/api/prices/unpriced?from=30d&since=garbage";
    expectRefused(await getJson(rt.app, rt.rootToken, path), "since", path);
  });
});

describe("a query parameter a route does not take", () => {
  it("is a 400 naming it on the routes that take no filters too", async () => {
    for (const [path, param] of [
      ["/api/limit-events?to=now", "to"],
      ["/api/limit-events?limit=5", "limit"],
      ["/api/budgets?workspce=acme", "workspce"],
      ["/api/budgets/b1?bogus=1", "bogus"],
      ["/api/agents?workspce=acme", "workspce"],
      ["/api/keys?workspce=acme", "workspce"],
      ["/api/workspaces?workspace=acme", "workspace"],
      ["/api/workspaces/default?bogus=1", "bogus"],
      ["/api/events/01900000-0000-7000-8000-000000000001?workspce=acme", "workspce"],
      ["/api/runs/r1?workspce=acme", "workspce"],
      ["/api/prices/lookup?model=gpt-4o&provder=openai", "provder"],
    ] as const)
      expectRefused(await getJson(rt.app, rt.rootToken, path), param, path);
  });

  it("refuses a write naming a misspelt workspace, which would otherwise act on the key's own", async () => {
    expectRefused(await call("POST", "/api/budgets?workspce=acme", budget), "workspce", "budget");
    expectRefused(await call("POST", "/api/runs/r1/kill?workspce=acme"), "workspce", "kill");
    expectRefused(await call("POST", "/api/keys?workspace=acme", { role: "read" }), "workspace", "key");
    expectRefused(
      await call("POST", "/api/admin/purge?workspace=acme", { raw_days: 1 }),
      "workspace",
      "purge",
    );
    expect((await getJson(rt.app, rt.rootToken, "/api/budgets")).json.budgets).toEqual([]);
    expect((await getJson(rt.app, rt.rootToken, "/api/runs/r1")).status).toBe(404);
    expect((await getJson(rt.app, rt.rootToken, "/api/keys")).json.keys).toEqual([]);
  });

  it("every parameter those routes take is still taken", async () => {
    expect((await call("POST", "/api/budgets?workspace=acme", budget)).status).toBe(201);
    for (const path of [
      "/api/budgets?workspace=acme",
      "/api/budgets/b1?workspace=acme",
      "/api/budgets/b1/audit?workspace=acme",
      "/api/limit-events?workspace=acme&from=7d&type=budget_state&subject=b1",
      "/api/keys?workspace=acme",
      "/api/prices/lookup?model=gpt-4o&provider=openai",
    ]) {
      const res = await getJson(rt.app, rt.rootToken, path);
      expect(res.status, `${path}: ${JSON.stringify(res.json)}`).toBe(200);
    }
  });
});

describe("an empty workspace", () => {
  it("is a 400 naming it, not the key's own workspace", async () => {
    expectRefused(await call("POST", "/api/budgets?workspace=", budget), "workspace", "budget");
    expectRefused(await call("POST", "/api/keys", { workspace: "", role: "read" }), "workspace", "key");
    expectRefused(await getJson(rt.app, rt.rootToken, "/api/keys?workspace="), "workspace", "keys");
    expectRefused(
      await getJson(rt.app, rt.rootToken, "/api/spend?by=model&workspace="),
      "workspace",
      "spend",
    );
    expectRefused(
      await postEvents(rt.app, rt.rootToken, [validRecord()], "?workspace="),
      "workspace",
      "ingest",
    );
    expect((await getJson(rt.app, rt.rootToken, "/api/budgets")).json.budgets).toEqual([]);
    expect((await getJson(rt.app, rt.rootToken, "/api/events")).json.events).toHaveLength(2);
  });
});

describe("GET /api/limit-events", () => {
  it("a type no event has, or an empty subject, is a 400 naming it, not an answer of none or of all", async () => {
    expectRefused(await getJson(rt.app, rt.rootToken, "/api/limit-events?type=budget-state"), "type", "type");
    expectRefused(await getJson(rt.app, rt.rootToken, "/api/limit-events?type="), "type", "empty type");
    expectRefused(await getJson(rt.app, rt.rootToken, "/api/limit-events?subject="), "subject", "subject");
  });

  it("an answer cut at MAX_LIMIT_EVENTS says so (truncated), rather than passing for every event", async () => {
    const row = (i: number) => ({
      ts: Date.now() - 60_000 + i,
      workspace_id: "many-events",
      type: "run_killed" as const,
      subject: `run-${i}`,
      bucket: null,
      from_state: null,
      to_state: null,
      spend_nanousd: null,
      limit_nanousd: null,
      event_id: null,
      request_id: null,
      detail: null,
    });
    await rt.store.appendLimitEvents(Array.from({ length: MAX_LIMIT_EVENTS }, (_, i) => row(i)));
    const all = await getJson(rt.app, rt.rootToken, "/api/limit-events?workspace=many-events");
    expect(all.json).toMatchObject({ truncated: false });
    expect(all.json.events).toHaveLength(MAX_LIMIT_EVENTS);
    await rt.store.appendLimitEvents([row(MAX_LIMIT_EVENTS)]);
    const cut = await getJson(rt.app, rt.rootToken, "/api/limit-events?workspace=many-events");
    expect(cut.json).toMatchObject({ truncated: true });
    expect(cut.json.events).toHaveLength(MAX_LIMIT_EVENTS);
    expect(cut.json.events[0].subject).toBe("run-0"); // oldest first: a later `from` reads on
  });
});
