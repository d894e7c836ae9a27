// Bad input to the limits API: every path answers a precise 4xx and stores (and audits) nothing.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { createKey, type Json, postEvents, validRecord } from "./helpers.js";

let rt: Runtime;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-api-limits-"));
  const limits = join(dir, "limits.yaml");
  writeFileSync(limits, 'budgets:\n  - { id: from-file, window: day, limit_usd: "5" }\n');
  rt = await openRuntime({ dataDir: join(dir, "data"), pricebookPath: null, limitsPath: limits });
});
afterAll(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(
  method: string,
  path: string,
  body?: string,
  key = rt.rootToken,
): Promise<{ status: number; json: Json }> {
  const res = await rt.app.request(path, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body,
  });
  return { status: res.status, json: await res.json() };
}

const ok = { id: "b1", window: "day", limit_usd: "1.00" };

describe("limits API: bad input", () => {
  it.each([
    ["POST", "/api/budgets", "{not json", 400, "invalid_json", undefined],
    ["POST", "/api/budgets", "[]", 400, "invalid_policy", "(record)"],
    ["POST", "/api/budgets", JSON.stringify({ ...ok, limit_usd: 1 }), 400, "invalid_policy", "limit_usd"],
    ["POST", "/api/budgets", JSON.stringify({ ...ok, limit_usd: "-1" }), 400, "invalid_policy", "limit_usd"],
    ["POST", "/api/budgets", JSON.stringify({ ...ok, window: "24x" }), 400, "invalid_policy", "window"],
    [
      "POST",
      "/api/budgets",
      JSON.stringify({ ...ok, timezone: "Moon/Base" }),
      400,
      "invalid_policy",
      "timezone",
    ],
    ["POST", "/api/budgets", JSON.stringify({ ...ok, warn_at: [1.5] }), 400, "invalid_policy", "warn_at.0"],
    // Thresholds apply in basis points: 0.00001 rounded to 0 and put a budget at $0 spend in "warning".
    [
      "POST",
      "/api/budgets",
      JSON.stringify({ ...ok, warn_at: [0.00001] }),
      400,
      "invalid_policy",
      "warn_at.0",
    ],
    [
      "POST",
      "/api/budgets",
      JSON.stringify({ ...ok, warn_at: [0.5, 0.99999] }),
      400,
      "invalid_policy",
      "warn_at.1",
    ],
    [
      "POST",
      "/api/budgets",
      JSON.stringify({ ...ok, scope: { tag: "*" } }),
      400,
      "invalid_policy",
      "scope.tag",
    ],
    ["POST", "/api/budgets", JSON.stringify({ ...ok, extra: 1 }), 400, "invalid_policy", "extra"],
    // An override that names no value matches every call: it would replace the budget's own limit.
    [
      "POST",
      "/api/budgets",
      JSON.stringify({ ...ok, scope: { customer_id: "*" }, overrides: [{ when: {}, limit_usd: "500" }] }),
      400,
      "invalid_policy",
      "overrides.0.when",
    ],
    // The first override a call matches applies: a second for the same values would never apply.
    [
      "POST",
      "/api/budgets",
      JSON.stringify({
        ...ok,
        scope: { customer_id: "*", feature: "*" },
        overrides: [
          { when: { customer_id: "acme", feature: "f" }, limit_usd: "500" },
          { when: { feature: "f", customer_id: "acme" }, limit_usd: "900" },
        ],
      }),
      400,
      "invalid_policy",
      "overrides.1.when",
    ],
    // Nor would one for those values and more: every call it matches, the first takes (acme's chat at $500).
    [
      "POST",
      "/api/budgets",
      JSON.stringify({
        ...ok,
        scope: { customer_id: "*", feature: "*" },
        overrides: [
          { when: { customer_id: "acme" }, limit_usd: "500" },
          { when: { customer_id: "acme", feature: "chat" }, limit_usd: "900" },
        ],
      }),
      400,
      "invalid_policy",
      "overrides.1.when",
    ],
    ["PUT", "/api/budgets/other-id", JSON.stringify(ok), 400, "invalid_policy", "id"],
    ["PUT", "/api/budgets/bad%20id", JSON.stringify(ok), 400, "invalid_parameter", "id"],
    [
      "PUT",
      "/api/budgets/from-file",
      JSON.stringify({ ...ok, id: "from-file" }),
      409,
      "policy_in_limits_file",
      "id",
    ],
    ["DELETE", "/api/budgets/from-file", undefined, 409, "policy_in_limits_file", "id"],
    ["DELETE", "/api/budgets/no-such", undefined, 404, "not_found", "id"],
    ["GET", "/api/budgets/no-such", undefined, 404, "not_found", "id"],
    ["POST", "/api/rate-limits", JSON.stringify({ id: "r1" }), 400, "invalid_policy", "requests_per_min"],
    [
      "POST",
      "/api/rate-limits",
      JSON.stringify({ id: "r1", requests_per_min: 0 }),
      400,
      "invalid_policy",
      "requests_per_min",
    ],
    [
      "POST",
      "/api/rate-limits",
      JSON.stringify({ id: "r1", tokens_per_min: 1.5 }),
      400,
      "invalid_policy",
      "tokens_per_min",
    ],
    ["PUT", "/api/agents/support", JSON.stringify({}), 400, "invalid_policy", "(record)"],
    [
      "PUT",
      "/api/agents/support",
      JSON.stringify({ max_cost_usd: "abc" }),
      400,
      "invalid_policy",
      "max_cost_usd",
    ],
    [
      "PUT",
      "/api/agents/support",
      JSON.stringify({ max_llm_calls: -3 }),
      400,
      "invalid_policy",
      "max_llm_calls",
    ],
    ["PUT", "/api/agents/support", JSON.stringify({ max_calls: 3 }), 400, "invalid_policy", "max_calls"],
    ["PUT", "/api/agents/bad%20type", JSON.stringify({ max_llm_calls: 3 }), 400, "invalid_parameter", "id"],
    ["DELETE", "/api/agents/no-such", undefined, 404, "not_found", "id"],
    ["GET", "/api/runs/no-such-run", undefined, 404, "not_found", "id"],
    ["GET", `/api/runs/${"r".repeat(257)}`, undefined, 400, "invalid_parameter", "id"],
    ["POST", "/api/runs/r1/kill", "{nope", 400, "invalid_json", undefined],
    ["POST", "/api/runs/r1/kill", "[1]", 400, "invalid_parameter", undefined],
    ["POST", "/api/runs/r1/kill", JSON.stringify({ reason: 42 }), 400, "invalid_parameter", "reason"],
    [
      "POST",
      "/api/runs/r1/kill",
      JSON.stringify({ reason: "x".repeat(501) }),
      400,
      "invalid_parameter",
      "reason",
    ],
    ["POST", "/api/runs/r1/kill", JSON.stringify({ why: "x" }), 400, "invalid_parameter", "why"],
    ["GET", "/api/limit-events?from=yesterday-ish", undefined, 400, "invalid_parameter", "from"],
  ])("%s %s %s → %i %s", async (method, path, body, status, code, param) => {
    const res = await call(method, path, body);
    expect(res.status).toBe(status);
    expect(res.json.error.code).toBe(code);
    if (param) expect(res.json.error.param).toBe(param);
    expect(res.json.error.message.length).toBeGreaterThan(10);
  });

  it("a body past the ingest cap is a 413 as it arrives, not read whole into memory first", async () => {
    const body = JSON.stringify({ ...ok, description: "x".repeat(11 << 20) });
    const res = await call("POST", "/api/budgets", body);
    expect(res.status).toBe(413);
    expect(res.json.error.code).toBe("body_too_large");
  });

  it("a caller without a valid key is refused before its body is read: a chunked one is not taken in first", async () => {
    // A body that starts and never ends: read before the key check, it would hold the answer for ever.
    const endless = () =>
      new ReadableStream<Uint8Array>({
        start(ctl) {
          ctl.enqueue(new TextEncoder().encode('{"id":'));
        },
      });
    for (const authorization of [undefined, "Bearer tg_not_a_key"]) {
      const res = await Promise.race([
        rt.app.request("/api/budgets", {
          method: "POST",
          body: endless(),
          headers: { "content-type": "application/json", ...(authorization && { authorization }) },
          duplex: "half",
        } as RequestInit),
        new Promise<string>((r) => setTimeout(() => r("still reading"), 2_000)),
      ]);
      expect(res, authorization).not.toBe("still reading");
      expect((res as Response).status).toBe(401);
    }
  });

  it("a threshold out of range is said once, as the rule a budget is set by", async () => {
    for (const w of [80, 0, 0.00001]) {
      const res = await call("POST", "/api/budgets", JSON.stringify({ ...ok, warn_at: [w] }));
      expect(res.status).toBe(400);
      expect(res.json.error.errors, String(w)).toEqual([
        {
          field: "warn_at.0",
          reason: "thresholds are fractions from 0.0001 to 0.9999 (basis points of the limit)",
        },
      ]);
    }
  });

  it("roles: a read key cannot change limits, an ingest key cannot read them", async () => {
    const read = (await createKey(rt.app, rt.rootToken, "default", "read")).json.key;
    const ingest = (await createKey(rt.app, rt.rootToken, "default", "ingest")).json.key;
    expect((await call("POST", "/api/budgets", JSON.stringify(ok), read)).status).toBe(403);
    expect((await call("POST", "/api/runs/r1/kill", "", read)).status).toBe(403);
    expect((await call("GET", "/api/budgets", undefined, ingest)).status).toBe(403);
    expect((await call("GET", "/api/budgets", undefined, read)).status).toBe(200);
  });

  it("nothing was half-written: no policy, no audit row, no kill from any refused request", async () => {
    expect(await rt.store.listPolicies()).toEqual([]);
    for (const [kind, id] of [
      ["budget", "b1"],
      ["budget", "other-id"],
      ["budget", "from-file"],
      ["rate_limit", "r1"],
      ["agent", "support"],
    ] as const)
      expect(await rt.store.policyAudit("default", kind, id)).toEqual([]);
    expect(await rt.store.limitEvents("default", { type: "run_killed" })).toEqual([]);
    expect(await rt.guard.store.run("default", "r:r1")).toBeNull();
    // the limits file's budget is still in force, unchanged
    const { json } = await call("GET", "/api/budgets/from-file");
    expect(json).toMatchObject({ source: "file", limit_usd: "5.00" });
  });

  it("a limits file that clashes with an API budget is refused whole; the previous file stays in force", async () => {
    expect((await call("POST", "/api/budgets", JSON.stringify({ ...ok, id: "api-made" }))).status).toBe(201);
    const path = join(dir, "limits.yaml");
    writeFileSync(path, 'budgets:\n  - { id: api-made, window: day, limit_usd: "9" }\n');
    expect(() => rt.guard.registry.reloadFile()).toThrow(/also set through the API/);
    expect((await call("GET", "/api/budgets/from-file")).json).toMatchObject({
      source: "file",
      limit_usd: "5.00",
    });
    expect((await call("GET", "/api/budgets/api-made")).json).toMatchObject({
      source: "api",
      limit_usd: "1.00",
    });
    writeFileSync(
      path,
      'budgets:\n  - { id: from-file, window: day, limit_usd: "5" }\n  - { id: second, window: week, limit_usd: "7" }\n',
    );
    expect(rt.guard.registry.reloadFile()).toEqual({
      entries: 2,
      newBudgets: [{ workspace: "default", id: "second" }],
    });
    await call("DELETE", "/api/budgets/api-made");
  });

  it("unkill of a run that is not killed leaves its counters (and records no unkill)", async () => {
    const records = [1, 2].map(() => validRecord({ agent_run_id: "live-run", agent_type: "support" }));
    expect((await postEvents(rt.app, rt.rootToken, records)).status).toBe(200);
    const usage = async () => (await call("GET", "/api/runs/live-run")).json.usage;
    await vi.waitFor(async () => expect((await usage()).llm_calls).toBe(2));
    const cost = (await usage()).cost_nanousd;
    expect((await call("POST", "/api/runs/live-run/unkill")).json).toMatchObject({ was_killed: false });
    // Its ceilings still see the calls it made: an unkill by mistake is no way around them.
    expect(await usage()).toMatchObject({ llm_calls: 2, cost_nanousd: cost });
    const events = (await call("GET", "/api/limit-events?subject=live-run")).json.events;
    expect(events.filter((e: Json) => e.type === "run_unkilled")).toEqual([]);
  });

  it("a kill says whether the run had made calls: one killed before its first call is kept, calls_seen false", async () => {
    const records = [validRecord({ agent_run_id: "seen-run", agent_type: "support" })];
    expect((await postEvents(rt.app, rt.rootToken, records)).status).toBe(200);
    await vi.waitFor(async () =>
      expect((await call("GET", "/api/runs/seen-run")).json.usage?.llm_calls).toBe(1),
    );
    expect((await call("POST", "/api/runs/seen-run/kill")).json).toMatchObject({
      state: "killed",
      calls_seen: true,
    });
    // A run stopped before it starts (its first call is refused), or a mistyped id: said either way.
    expect((await call("POST", "/api/runs/not-started/kill")).json).toMatchObject({
      state: "killed",
      calls_seen: false,
    });
    expect((await call("GET", "/api/runs/not-started")).json).toMatchObject({ state: "killed" });
  });

  it("an empty kill body is fine; a reason is kept", async () => {
    expect((await call("POST", "/api/runs/r2/kill", "")).json).toMatchObject({ state: "killed" });
    expect(
      (await call("POST", "/api/runs/r3/kill", JSON.stringify({ reason: "loop" }))).json.killed,
    ).toMatchObject({
      ceiling: "manual",
      value: "loop",
    });
  });

  it("an override for some values after one for those and more is taken: each applies to its own calls", async () => {
    const budget = {
      ...ok,
      id: "specific-first",
      scope: { customer_id: "*", feature: "*" },
      overrides: [
        { when: { customer_id: "acme", feature: "chat" }, limit_usd: "900" },
        { when: { customer_id: "acme" }, limit_usd: "500" },
      ],
    };
    expect((await call("POST", "/api/budgets", JSON.stringify(budget))).status).toBe(201);
    expect((await call("DELETE", "/api/budgets/specific-first")).status).toBe(200);
  });
});
