// The policy registry's API changes against its refreshes from a shared store, when the two interleave.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyRegistry } from "../src/limits/policies.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { holdable } from "./helpers.js";

const budget = (id: string, usd = "1.00") => ({ id, window: "day", limit_usd: usd });
const ids = (r: PolicyRegistry) => r.list("default", "budget").map((e) => e.id);

describe("PolicyRegistry against refreshes from a shared store", () => {
  let dir: string;
  let store: DuckDbStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tg-policies-"));
    store = await DuckDbStore.open(dir);
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps a budget created while a refresh read the store without it", async () => {
    const { delayed, hold } = holdable(store, "listPolicies");
    const registry = await PolicyRegistry.open(delayed, null);
    const rowsRead = hold();
    const refreshing = registry.refresh(); // reads the rows now, returns them once the latch opens
    await new Promise((r) => setTimeout(r, 50));
    const put = await registry.put("default", "budget", null, budget("during-read"), "test");
    expect(put).toMatchObject({ created: true, newHere: true });
    rowsRead();
    expect(await refreshing).toEqual([]); // not new to this process: its counters were seeded by the put
    expect(ids(registry)).toContain("during-read");
    expect(await registry.refresh()).toEqual([]);
    expect(ids(registry)).toContain("during-read");
  });

  it("loads a budget stored before a rule that now refuses it (set again, it is refused)", async () => {
    // Saved by an earlier version: a threshold finer than a basis point, an override naming no value.
    const legacy = {
      ...budget("legacy", "2.00"),
      scope: { customer_id: "*" },
      warn_at: [0.00001],
      overrides: [{ when: {}, limit_usd: "5.00" }],
    };
    await store.putPolicy({
      workspace_id: "ws-legacy",
      kind: "budget",
      id: "legacy",
      spec: legacy,
      updated_at: Date.now(),
      updated_by: "v0",
    });
    const registry = await PolicyRegistry.open(store, null);
    // Read strictly, it failed every call of its workspace; it keeps applying as it did.
    const [b] = registry.forWorkspace("ws-legacy").budgets;
    expect(b).toMatchObject({ id: "legacy" });
    expect(b!.overrides).toHaveLength(1);
    await expect(registry.put("ws-legacy", "budget", null, legacy, "test")).rejects.toMatchObject({
      errors: expect.arrayContaining([
        expect.objectContaining({ field: "warn_at.0" }),
        expect.objectContaining({ field: "overrides.0.when" }),
      ]),
    });
  });

  it("keeps a budget deleted while a refresh read the store with it", async () => {
    const plain = await PolicyRegistry.open(store, null);
    await plain.put("default", "budget", null, budget("doomed"), "test");
    const { delayed, hold } = holdable(store, "listPolicies");
    const registry = await PolicyRegistry.open(delayed, null);
    const rowsRead = hold();
    const refreshing = registry.refresh();
    await new Promise((r) => setTimeout(r, 50));
    expect(await registry.delete("default", "budget", "doomed", "test")).toBe(true);
    rowsRead();
    await refreshing;
    expect(ids(registry)).not.toContain("doomed");
  });

  it("answers created for a new id even when a refresh brought it here first, and seeds it once", async () => {
    const { delayed, hold } = holdable(store, "putPolicy");
    const registry = await PolicyRegistry.open(delayed, null);
    const written = hold();
    const putting = registry.put("default", "budget", null, budget("raced"), "test");
    await new Promise((r) => setTimeout(r, 50)); // stored, not yet answered
    expect(await registry.refresh()).toEqual([{ workspace: "default", id: "raced" }]);
    written();
    expect(await putting).toMatchObject({ created: true, newHere: false });
    const again = await registry.put("default", "budget", null, budget("raced", "2.00"), "test");
    expect(again).toMatchObject({ created: false, newHere: false });
    expect(registry.get("default", "budget", "raced")?.spec).toMatchObject({ limit_usd: "2.00" });
  });
});
