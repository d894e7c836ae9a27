// GET /api/workspaces: what a read may name, and whether it holds calls (a mistyped workspace is none).
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
});
