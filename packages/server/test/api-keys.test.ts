import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey as createKeyAs, getJson, openTestRuntime, postEvents, validRecord } from "./helpers.js";

/** A new key of `role` in `workspace`, created with the root token. */
async function createKey(
  rt: Awaited<ReturnType<typeof openTestRuntime>>,
  workspace: string,
  role: string,
): Promise<string> {
  const res = await createKeyAs(rt.app, rt.rootToken, workspace, role);
  expect(res.status).toBe(201);
  return res.json.key as string;
}

describe("key management", () => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  beforeAll(async () => {
    rt = await openTestRuntime();
  });
  afterAll(async () => rt.close());

  it("lists keys without secrets and revokes them at once", async () => {
    const ingest = await createKey(rt, "ws-keys", "ingest");
    const admin = await createKey(rt, "ws-keys", "admin");
    expect((await postEvents(rt.app, ingest, [validRecord()])).status).toBe(200); // cached as valid now

    const list = await getJson(rt.app, admin, "/api/keys");
    expect(list.status).toBe(200);
    const ids = list.json.keys.map((k: { id: string }) => k.id);
    expect(ids).toContain(ingest.split("_")[2]);
    expect(JSON.stringify(list.json)).not.toContain(ingest); // never the key itself
    expect(list.json.keys.every((k: { workspace_id: string }) => k.workspace_id === "ws-keys")).toBe(true);

    const id = ingest.split("_")[2]!;
    const res = await rt.app.request(`/api/keys/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.status).toBe(200);
    const after = await postEvents(rt.app, ingest, [validRecord()]);
    expect(after.status).toBe(401); // no 30-second grace from the lookup cache
    const again = await rt.app.request(`/api/keys/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(again.status).toBe(404);
    const listed = await getJson(rt.app, admin, "/api/keys");
    expect(listed.json.keys.find((k: { id: string }) => k.id === id).revoked_at).toBeGreaterThan(0);
  });

  it("an admin cannot list or revoke another workspace's keys", async () => {
    const other = await createKey(rt, "ws-other", "ingest");
    const admin = await createKey(rt, "ws-keys", "admin");
    expect((await getJson(rt.app, admin, "/api/keys?workspace=ws-other")).status).toBe(403);
    const id = other.split("_")[2]!;
    const res = await rt.app.request(`/api/keys/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.status).toBe(404); // not in the admin's workspace
    expect((await postEvents(rt.app, other, [validRecord()])).status).toBe(200);
  });

  it("refuses unknown or misplaced fields, naming them, and creates no key", async () => {
    const before = (await rt.store.listKeys()).length;
    for (const [body, param] of [
      // A customer meant as the key's binding, given beside `defaults`: the key would bind nothing.
      [{ workspace: "ws-keys", role: "gateway", customer_id: "acme" }, "customer_id"],
      [{ workspace: "ws-keys", role: "gateway", defualts: { customer_id: "acme" } }, "defualts"],
      [{ workspace: "ws-keys", role: "gateway", defaults: { customer: "acme" } }, "defaults.customer"],
      // A workspace that is no string went to the key's own workspace instead.
      [{ workspace: 5, role: "read" }, "workspace"],
      // Only the gateway applies a key's defaults (it takes gateway and admin keys): an ingest key's would
      // be stored and never applied.
      [{ workspace: "ws-keys", role: "ingest", defaults: { customer_id: "acme" } }, "defaults"],
    ] as const) {
      const res = await rt.app.request("/api/keys", {
        method: "POST",
        headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const json = (await res.json()) as { error: { code: string; param: string; message: string } };
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(json.error).toMatchObject({ code: "invalid_parameter", param });
      expect(json.error.message).toContain(param);
    }
    expect(await rt.store.listKeys()).toHaveLength(before);
  });

  it("an admin key may carry defaults: the gateway takes it, and applies them", async () => {
    const res = await rt.app.request("/api/keys", {
      method: "POST",
      headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
      body: JSON.stringify({ workspace: "ws-keys", role: "admin", defaults: { customer_id: "acme" } }),
    });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { defaults: unknown }).defaults).toEqual({ customer_id: "acme" });
  });

  it("a key the store cannot be asked about (down) is a 503 that says so, not an internal error", async () => {
    const ingest = await createKey(rt, "ws-keys", "ingest");
    const { findKeyByHash } = rt.store;
    rt.store.findKeyByHash = () => Promise.reject(new Error("connect ECONNREFUSED (test outage)"));
    try {
      const res = await postEvents(rt.app, ingest, [validRecord()]);
      expect(res.status).toBe(503);
      expect(res.json.error).toMatchObject({ type: "api_error", code: "key_unchecked" });
      expect(res.json.error.message).toMatch(/^the key cannot be checked now: .*ECONNREFUSED/);
    } finally {
      rt.store.findKeyByHash = findKeyByHash;
    }
    expect((await postEvents(rt.app, ingest, [validRecord()])).status).toBe(200); // checked once it answers
  });

  it("refuses a label that is not a short string", async () => {
    const res = await rt.app.request("/api/keys", {
      method: "POST",
      headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
      body: JSON.stringify({ workspace: "ws-keys", role: "read", label: { nested: true } }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe("label");
  });
});
