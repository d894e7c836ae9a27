// GET /api/workspaces (and /:id, one of them): what a read may name, and whether it holds calls (a mistyped
// workspace is none).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, getJson, openTestRuntime, postEvents, validRecord } from "./helpers.js";

describe("GET /api/workspaces", () => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  beforeAll(async () => {
    rt = await openTestRuntime();
  });
  afterAll(async () => rt.close());

  it("lists every workspace made or holding calls (a key's, a limit's, a root import's), and which hold calls", async () => {
    const list = async (key = rt.rootToken) => (await getJson(rt.app, key, "/api/workspaces")).json;
    expect(await list()).toEqual({ workspaces: [{ id: "default", calls: false }] });

    expect((await postEvents(rt.app, rt.rootToken, [validRecord()], "?workspace=imported")).status).toBe(200);
    const read = await createKey(rt.app, rt.rootToken, "keyed", "read");
    expect(read.status).toBe(201);
    const budget = await rt.app.request("/api/budgets?workspace=capped", {
      method: "POST",
      headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
      body: JSON.stringify({ id: "cap", window: "day", limit_usd: "1.00" }),
    });
    expect(budget.status).toBe(201);
    expect(await list()).toEqual({
      workspaces: [
        { id: "capped", calls: false },
        { id: "default", calls: false },
        { id: "imported", calls: true },
        { id: "keyed", calls: false },
      ],
    });
    // Any other key sees its own workspace only.
    expect(await list(read.json.key)).toEqual({ workspaces: [{ id: "keyed", calls: false }] });
    const ingest = await createKey(rt.app, rt.rootToken, "keyed", "ingest");
    expect((await getJson(rt.app, ingest.json.key, "/api/workspaces")).status).toBe(403);
  });

  // After the test above: workspaces "imported" (calls), "keyed" (a key) and "capped" (a budget) exist.
  it("GET /api/workspaces/:id answers one of them as the list has it, 404 workspace_not_found for one nothing names", async () => {
    const one = async (id: string, key = rt.rootToken) =>
      getJson(rt.app, key, `/api/workspaces/${encodeURIComponent(id)}`);
    for (const [id, calls] of [
      ["imported", true],
      ["keyed", false],
      ["capped", false],
      ["default", false],
    ] as const)
      expect(await one(id)).toEqual({ status: 200, json: { id, calls } });
    for (const id of ["impored", "a b/c", "it's ü"])
      expect(await one(id)).toEqual({
        status: 404,
        json: {
          error: {
            type: "invalid_request_error",
            code: "workspace_not_found",
            message: `no workspace ${JSON.stringify(id)}: no call, key or limit names it`,
            param: "id",
          },
        },
      });

    // Any other key asks about its own workspace only: another, known or not, is 403 as on every route.
    const read = (await createKey(rt.app, rt.rootToken, "keyed", "read")).json.key;
    expect(await one("keyed", read)).toEqual({ status: 200, json: { id: "keyed", calls: false } });
    for (const id of ["imported", "impored"]) {
      const other = await one(id, read);
      expect(other.status).toBe(403);
      expect(other.json.error.code).toBe("wrong_workspace");
    }
    const admin = (await createKey(rt.app, rt.rootToken, "keyed", "admin")).json.key;
    expect((await one("keyed", admin)).status).toBe(200);
    const ingest = (await createKey(rt.app, rt.rootToken, "keyed", "ingest")).json.key;
    const refused = await one("keyed", ingest);
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe("insufficient_role");
    expect((await getJson(rt.app, null, "/api/workspaces/keyed")).status).toBe(401);
  });
});
