import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, getJson, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const keys: Record<string, string> = {}; // "<workspace>:<role>" → key
const FROM = new Date(Date.now() - 86_400_000).toISOString();
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

beforeAll(async () => {
  rt = await openTestRuntime();
  for (const ws of ["ws-a", "ws-b"])
    for (const role of ["ingest", "read", "admin", "gateway"]) {
      const { status, json } = await createKey(rt.app, rt.rootToken, ws, role);
      expect(status, JSON.stringify(json)).toBe(201);
      keys[`${ws}:${role}`] = json.key;
    }
});

afterAll(async () => {
  await rt?.close();
});

describe("keys", () => {
  it.each(["ingest", "read", "admin", "gateway"])(
    "creates a %s key and stores only its sha256",
    async (role) => {
      const { status, json } = await createKey(rt.app, rt.rootToken, "ws-keys", role);
      expect(status).toBe(201);
      expect(json).toMatchObject({ workspace: "ws-keys", role });
      expect(typeof json.key).toBe("string");
      expect(json.key.length).toBeGreaterThanOrEqual(32);
      expect(json.key.startsWith(`tg_${role}_`)).toBe(true);
      const rec = await rt.store.findKeyByHash(sha256(json.key));
      expect(rec).toMatchObject({ id: json.id, workspace_id: "ws-keys", role });
      // nothing in the stored record carries the secret
      expect(JSON.stringify(rec)).not.toContain(json.key);
      // the plaintext key is not what is stored
      expect(await rt.store.findKeyByHash(json.key)).toBeNull();
    },
  );

  it("returns a different key each time (the secret is shown once, never re-derivable)", async () => {
    const a = await createKey(rt.app, rt.rootToken, "ws-keys", "read");
    const b = await createKey(rt.app, rt.rootToken, "ws-keys", "read");
    expect(a.json.key).not.toBe(b.json.key);
    expect(a.json.id).not.toBe(b.json.id);
    // listing keys never hands a secret back
    const list = await getJson(rt.app, rt.rootToken, "/api/keys");
    expect(list.status).toBe(200);
    expect(JSON.stringify(list.json)).not.toContain(a.json.key);
    expect(JSON.stringify(list.json)).not.toContain(b.json.key);
  });

  it("refuses an unknown role and a malformed workspace", async () => {
    const r1 = await createKey(rt.app, rt.rootToken, "ws-keys", "root");
    expect(r1.status).toBe(400);
    expect(r1.json.error).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_parameter",
      param: "role",
    });
    const r2 = await createKey(rt.app, rt.rootToken, "Bad Workspace!", "read");
    expect(r2.status).toBe(400);
    expect(r2.json.error.param).toBe("workspace");
  });

  it("lets an admin key create keys in its own workspace only", async () => {
    const own = await createKey(rt.app, keys["ws-a:admin"]!, "ws-a", "read");
    expect(own.status).toBe(201);
    const other = await createKey(rt.app, keys["ws-a:admin"]!, "ws-b", "read");
    expect(other.status).toBe(403);
    expect(other.json.error.code).toBe("wrong_workspace");
  });

  it.each(["ingest", "read", "gateway"])("refuses key creation with a %s key (403)", async (role) => {
    const r = await createKey(rt.app, keys[`ws-a:${role}`]!, "ws-a", "read");
    expect(r.status).toBe(403);
    expect(r.json.error).toMatchObject({ type: "permission_error", code: "insufficient_role" });
  });
});

describe("authentication", () => {
  const routes: [string, string][] = [
    ["POST", "/v1/events"],
    ["GET", "/api/events"],
    ["GET", "/api/spend?by=model"],
    ["GET", "/api/prices/unpriced"],
    ["POST", "/api/keys"],
  ];
  it.each(routes)("%s %s without a key → 401 missing_api_key", async (method, path) => {
    const res = await rt.app.request(path, {
      method,
      headers: { "content-type": "application/json" },
      ...(method === "POST" ? { body: JSON.stringify([validRecord()]) } : {}),
    });
    expect(res.status).toBe(401);
    const json = (await res.json()) as Json;
    expect(json.error).toMatchObject({ type: "authentication_error", code: "missing_api_key" });
    expect(json.error.message).toEqual(expect.any(String));
  });

  it.each(routes)("%s %s with a bad key → 401 invalid_api_key", async (method, path) => {
    const res = await rt.app.request(path, {
      method,
      headers: {
        authorization: "Bearer tg_read_000000000000_notarealkey",
        "content-type": "application/json",
      },
      ...(method === "POST" ? { body: JSON.stringify([validRecord()]) } : {}),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as Json).error).toMatchObject({
      type: "authentication_error",
      code: "invalid_api_key",
    });
  });

  it("refuses a non-Bearer authorization header", async () => {
    const res = await rt.app.request("/api/events", {
      headers: { authorization: `Basic ${keys["ws-a:read"]}` },
    });
    expect(res.status).toBe(401);
  });

  it("an ingest key cannot read spend (403)", async () => {
    const r = await getJson(rt.app, keys["ws-a:ingest"]!, "/api/spend?by=model");
    expect(r.status).toBe(403);
    expect(r.json.error).toMatchObject({ type: "permission_error", code: "insufficient_role" });
    expect(r.json.error.message).toMatch(/^an ingest key cannot do this; needs one of: /);
    expect((await getJson(rt.app, keys["ws-a:ingest"]!, "/api/events")).status).toBe(403);
  });

  it("a read key cannot ingest (403), and nothing is stored", async () => {
    const rec = validRecord();
    const r = await postEvents(rt.app, keys["ws-a:read"]!, [rec]);
    expect(r.status).toBe(403);
    expect(r.json.error).toMatchObject({ type: "permission_error", code: "insufficient_role" });
    const ev = await getJson(rt.app, keys["ws-a:read"]!, "/api/events?limit=100000");
    expect(ev.json.events.find((e: Json) => e.event_id === rec.event_id)).toBeUndefined();
  });

  it("a gateway key can neither ingest through /v1/events nor read", async () => {
    expect((await postEvents(rt.app, keys["ws-a:gateway"]!, [validRecord()])).status).toBe(403);
    expect((await getJson(rt.app, keys["ws-a:gateway"]!, "/api/spend?by=model")).status).toBe(403);
  });

  it("an admin key can ingest and read", async () => {
    expect((await postEvents(rt.app, keys["ws-a:admin"]!, [validRecord({ feature: "admin" })])).status).toBe(
      200,
    );
    expect((await getJson(rt.app, keys["ws-a:admin"]!, "/api/spend?by=model")).status).toBe(200);
  });
});

describe("workspace isolation", () => {
  const recA = validRecord({ feature: "only-a", customer_id: "cust-a" });
  const recB = validRecord({ feature: "only-b", customer_id: "cust-b", model: "gpt-4o" });

  beforeAll(async () => {
    expect((await postEvents(rt.app, keys["ws-a:ingest"]!, [recA])).status).toBe(200);
    expect((await postEvents(rt.app, keys["ws-b:ingest"]!, [recB])).status).toBe(200);
  });

  it("rejects records that name another workspace in workspace_id", async () => {
    const rec = validRecord({ workspace_id: "ws-b" });
    const { status, json } = await postEvents(rt.app, keys["ws-a:ingest"]!, [rec]);
    expect(status).toBe(422);
    expect(json.results[0].status).toBe("rejected");
    expect(json.results[0].errors[0].field).toBe("workspace_id");
    expect(json.results[0].errors[0].reason).toMatch(/ws-a/);
    const inB = await getJson(rt.app, keys["ws-b:read"]!, "/api/events?limit=100000");
    expect(inB.json.events.find((e: Json) => e.event_id === rec.event_id)).toBeUndefined();
  });

  it("accepts records that name the key's own workspace", async () => {
    const { status } = await postEvents(rt.app, keys["ws-a:ingest"]!, [
      validRecord({ workspace_id: "ws-a", feature: "only-a" }),
    ]);
    expect(status).toBe(200);
  });

  it("refuses ?workspace=<other> on ingest with 403 wrong_workspace, storing nothing", async () => {
    const rec = validRecord();
    const { status, json } = await postEvents(rt.app, keys["ws-a:ingest"]!, [rec], "?workspace=ws-b");
    expect(status).toBe(403);
    expect(json.error).toMatchObject({
      type: "permission_error",
      code: "wrong_workspace",
      param: "workspace",
    });
    for (const k of ["ws-a:read", "ws-b:read"]) {
      const ev = await getJson(rt.app, keys[k]!, "/api/events?limit=100000");
      expect(ev.json.events.find((e: Json) => e.event_id === rec.event_id)).toBeUndefined();
    }
  });

  it.each([
    "/api/events?workspace=ws-b",
    "/api/spend?by=model&workspace=ws-b",
    "/api/prices/unpriced?workspace=ws-b",
  ])("refuses a read key of ws-a on %s (403)", async (path) => {
    const r = await getJson(rt.app, keys["ws-a:read"]!, path);
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe("wrong_workspace");
  });

  for (const [me, other, mine, theirs] of [
    ["ws-a", "ws-b", recA, recB],
    ["ws-b", "ws-a", recB, recA],
  ] as const) {
    it(`a read key of ${me} sees only ${me}'s data in /api/events`, async () => {
      const { status, json } = await getJson(rt.app, keys[`${me}:read`]!, "/api/events?limit=100000");
      expect(status).toBe(200);
      const ids = json.events.map((e: Json) => e.event_id);
      expect(ids).toContain(mine.event_id);
      expect(ids).not.toContain(theirs.event_id);
      for (const e of json.events) expect(e.workspace_id).toBe(me);
      // filtering on the other workspace's attribution values finds nothing
      const f = await getJson(rt.app, keys[`${me}:read`]!, `/api/events?feature=${theirs.feature}`);
      expect(f.json.events).toEqual([]);
    });

    it(`a read key of ${me} sees none of ${other}'s spend`, async () => {
      const q = `from=${encodeURIComponent(FROM)}`;
      const byFeature = await getJson(rt.app, keys[`${me}:read`]!, `/api/spend?by=feature&${q}`);
      expect(byFeature.status).toBe(200);
      const features = byFeature.json.rows.map((r: Json) => r.key);
      expect(features).toContain(mine.feature);
      expect(features).not.toContain(theirs.feature);
      const scoped = await getJson(
        rt.app,
        keys[`${me}:read`]!,
        `/api/spend?by=model&customer_id=${theirs.customer_id}&${q}`,
      );
      expect(scoped.status).toBe(200);
      expect(scoped.json.rows).toEqual([]);
    });
  }

  it("a workspace with no data sees nothing", async () => {
    const { json } = await createKey(rt.app, rt.rootToken, "ws-empty", "read");
    const ev = await getJson(rt.app, json.key, "/api/events");
    expect(ev.json.events).toEqual([]);
    const sp = await getJson(rt.app, json.key, `/api/spend?by=model&from=${encodeURIComponent(FROM)}`);
    expect(sp.json.rows).toEqual([]);
  });

  // Regression guard (found by these tests, now fixed): idempotency is global (one event_ids table for all workspaces), so an
  // event_id already stored by workspace A makes workspace B's record a "duplicate" that is never stored,
  // and tells B that the id exists elsewhere.
  it("an event_id stored in ws-a does not suppress the same id in ws-b", async () => {
    const rec = validRecord({ feature: "shared-id" });
    expect((await postEvents(rt.app, keys["ws-a:ingest"]!, [rec])).json.accepted).toBe(1);
    const b = await postEvents(rt.app, keys["ws-b:ingest"]!, [rec]);
    expect(b.json.results[0].status).toBe("accepted"); // before the fix: "duplicate"
    const inB = await getJson(rt.app, keys["ws-b:read"]!, "/api/events?feature=shared-id");
    expect(inB.json.events).toHaveLength(1); // before the fix: 0
  });

  it("the root token may pick a workspace explicitly", async () => {
    const r = await getJson(rt.app, rt.rootToken, "/api/events?workspace=ws-b&limit=100000");
    expect(r.status).toBe(200);
    expect(r.json.events.map((e: Json) => e.event_id)).toContain(recB.event_id);
    expect(r.json.events.map((e: Json) => e.event_id)).not.toContain(recA.event_id);
  });
});
