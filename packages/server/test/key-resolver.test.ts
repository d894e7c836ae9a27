// KeyResolver's cache against revocations: a revoked key is refused from the revocation on, even when a
// lookup of it was under way at that moment.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, KeyResolver } from "../src/auth/keys.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { holdable } from "./helpers.js";

let dir: string;
let store: DuckDbStore;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tg-key-resolver-"));
  store = await DuckDbStore.open(dir);
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("KeyResolver", () => {
  it("does not cache a lookup that read the key before its revocation", async () => {
    const { key, record } = await createKey(store, { workspace: "default", role: "gateway" });
    const { delayed, hold } = holdable(store, "findKeyByHash");
    const keys = new KeyResolver(delayed, null);
    const answer = hold();
    const inFlight = keys.resolve(key); // a call with this key: its lookup has read the key, not answered
    await new Promise((r) => setTimeout(r, 50));
    // What DELETE /api/keys/:id does.
    expect(await store.revokeKey("default", record.id)).toBe(true);
    keys.invalidate();
    answer();
    expect(await inFlight).toMatchObject({ keyId: record.id }); // began before the revocation: let through
    expect(await keys.resolve(key)).toBeNull(); // every call after it: refused
  });

  it("caches a lookup no revocation overtook", async () => {
    const { key, record } = await createKey(store, { workspace: "default", role: "gateway" });
    const keys = new KeyResolver(store, null);
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
    await store.revokeKey("default", record.id); // on another replica: this one's cache still has it
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
  });
});
