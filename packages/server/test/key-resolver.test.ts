// KeyResolver's cache against revocations: a revoked key is refused from the revocation on, even when a
// lookup of it was under way at that moment; and against a store that is down or silent.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, hashKey, KeyLookupFailed, KeyResolver } from "../src/auth/keys.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import type { ApiKeyRecord, KeyStore } from "../src/store/types.js";
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

  it("while the store is down or silent, a key it answered for keeps that answer; one it never did fails, and never hangs", async () => {
    const { key, record } = await createKey(store, { workspace: "default", role: "gateway" });
    const { key: unseen } = await createKey(store, { workspace: "default", role: "gateway" });
    const outage: Pick<KeyStore, "findKeyByHash"> = { findKeyByHash: (hash) => store.findKeyByHash(hash) };
    const keys = new KeyResolver(outage as KeyStore, null, 0, 50); // no cache: every call asks the store
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });

    outage.findKeyByHash = () => Promise.reject(new Error("connect ECONNREFUSED (test outage)"));
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
    await expect(keys.resolve(unseen)).rejects.toThrow(KeyLookupFailed);
    outage.findKeyByHash = () => new Promise(() => {}); // a store that never answers
    await expect(keys.resolve(unseen)).rejects.toThrow(/did not answer \(no answer within 50 ms\)/);
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
    // A revocation (the cache invalidated) still wins: the key is not let through on an old answer.
    keys.invalidate();
    await expect(keys.resolve(key)).rejects.toThrow(KeyLookupFailed);
  });

  it("once the store failed a key's lookup, its calls get the kept answer at once while the next lookup is tried, not after its wait", async () => {
    const { key, record } = await createKey(store, { workspace: "default", role: "gateway" });
    const outage: Pick<KeyStore, "findKeyByHash"> = { findKeyByHash: (hash) => store.findKeyByHash(hash) };
    // A lookup may wait an hour: a call that waited for one would outlive the test.
    const keys = new KeyResolver(outage as KeyStore, null, 0, 3_600_000);
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
    outage.findKeyByHash = () => Promise.reject(new Error("connect ECONNREFUSED (test outage)"));
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id }); // kept through the failed lookup
    let asked = 0;
    let answer = (_: Promise<ApiKeyRecord | null>) => {};
    outage.findKeyByHash = (hash) => {
      asked++;
      // Silent until the test lets the store answer: with the key as it is then.
      return new Promise((resolve) => {
        answer = (later) => resolve(later ?? store.findKeyByHash(hash));
      });
    };
    for (let i = 0; i < 5; i++) expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
    expect(asked).toBe(1); // one lookup tried meanwhile, shared

    // The store answers again, the key revoked meanwhile (on another replica): its answer replaces the kept one.
    expect(await store.revokeKey("default", record.id)).toBe(true);
    const lookedUp = store.findKeyByHash(hashKey(key));
    answer(lookedUp);
    await lookedUp;
    await new Promise((r) => setImmediate(r)); // the lookup's answer cached
    outage.findKeyByHash = (hash) => store.findKeyByHash(hash);
    expect(await keys.resolve(key)).toBeNull(); // no kept answer any more: the store's is waited for
  });

  it("calls that come while a key's lookup is under way wait for that one: one store query per key, not one per call", async () => {
    const { key, record } = await createKey(store, { workspace: "default", role: "gateway" });
    const { key: unseen } = await createKey(store, { workspace: "default", role: "gateway" });
    const asked: string[] = [];
    let silent = false;
    const counting: Pick<KeyStore, "findKeyByHash"> = {
      findKeyByHash: (hash) => {
        asked.push(hash);
        return silent ? new Promise(() => {}) : store.findKeyByHash(hash);
      },
    };
    const keys = new KeyResolver(counting as KeyStore, null, 0, 500); // no cache: only the lookup is shared
    const twenty = (k: string) => Promise.allSettled(Array.from({ length: 20 }, () => keys.resolve(k)));
    const askedFor = (k: string) => asked.filter((h) => h === hashKey(k)).length;

    for (const r of await twenty(key)) expect(r).toMatchObject({ value: { keyId: record.id } });
    expect(askedFor(key)).toBe(1);
    // A silent store: one query per key waits out the 5 s (here 500 ms) for all the calls that came meanwhile.
    silent = true;
    for (const r of await twenty(key)) expect(r).toMatchObject({ value: { keyId: record.id } });
    expect(askedFor(key)).toBe(2);
    for (const r of await twenty(unseen)) expect(r).toMatchObject({ reason: expect.any(KeyLookupFailed) });
    expect(askedFor(unseen)).toBe(1);
    // Once it ended, the next call asks again.
    await expect(keys.resolve(unseen)).rejects.toThrow(KeyLookupFailed);
    expect(askedFor(unseen)).toBe(2);
  });

  it("keeps a key in use through a flood of other keys (the least recently used go, not all at once)", async () => {
    const lookups = new Map<string, number>();
    const hot = "tg_gateway_hot";
    const counting = {
      findKeyByHash: async (hash: string): Promise<ApiKeyRecord | null> => {
        lookups.set(hash, (lookups.get(hash) ?? 0) + 1);
        if (hash !== hashKey(hot)) return null; // keys nobody made: their lookups are cached as well
        return {
          id: "hot",
          workspace_id: "default",
          role: "gateway",
          label: null,
          created_at: 0,
          defaults: {},
        };
      },
    } as unknown as KeyStore;
    const keys = new KeyResolver(counting, null);
    const unknown = (i: number) => `tg_gateway_unknown_${i}`;
    expect(await keys.resolve(hot)).toMatchObject({ keyId: "hot" });
    // Three times the cache's 10,000 keys, the one in use among them.
    for (let i = 0; i < 30_000; i++) {
      await keys.resolve(unknown(i));
      if (i % 1_000 === 0) expect(await keys.resolve(hot)).toMatchObject({ keyId: "hot" });
    }
    expect(lookups.get(hashKey(hot))).toBe(1);
    // Bounded all the same: the first of the flood has gone, and is looked up again.
    await keys.resolve(unknown(0));
    expect(lookups.get(hashKey(unknown(0)))).toBe(2);
  });

  it("caches a lookup no revocation overtook", async () => {
    const { key, record } = await createKey(store, { workspace: "default", role: "gateway" });
    const keys = new KeyResolver(store, null);
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
    await store.revokeKey("default", record.id); // on another replica: this one's cache still has it
    expect(await keys.resolve(key)).toMatchObject({ keyId: record.id });
  });
});
