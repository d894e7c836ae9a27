import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCallRecord, type CallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it } from "vitest";
import { DataDirLockedError } from "../src/data-dir-lock.js";
import { ThreadStore } from "../src/store/duckdb/thread-store.js";

// The thread runs the compiled entry (npm test builds first), exactly as `tollgate serve` does.
const ENTRY = new URL("../dist/store/duckdb/thread-entry.js", import.meta.url);
const dir = mkdtempSync(join(tmpdir(), "tollgate-thread-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function record(workspaceId: string): CallRecord {
  const built = buildCallRecord(
    {
      event_id: uuidv7(),
      ts_start: Date.now() - 1000,
      provider: "openai",
      model: "gpt-4o",
      input_uncached_tokens: 1000,
      output_tokens: 100,
    },
    { workspaceId, engine: new PricingEngine() },
  );
  if (!built.ok) throw new Error(JSON.stringify(built.errors));
  return built.record;
}

describe("store on its own thread", () => {
  it("appends idempotently and reads back exact money across the thread boundary", async () => {
    const store = await ThreadStore.open(join(dir, "a"), ENTRY);
    const batch = [record("default"), record("default")];
    expect((await store.append(batch)).inserted.size).toBe(2);
    expect((await store.append(batch)).inserted.size).toBe(0);
    const back = await store.query({ workspaceId: "default" });
    expect(back.map((r) => r.cost_nanousd).sort()).toEqual(batch.map((r) => r.cost_nanousd).sort());
    expect(typeof back[0]!.cost_nanousd).toBe("bigint");
    const spend = await store.spend({ workspaceId: "default" }, "model");
    expect(spend[0]!.cost_nanousd).toBe(batch[0]!.cost_nanousd * 2n);
    await store.close();
  });

  it("reports a locked data dir with the same typed error as in-process", async () => {
    const first = await ThreadStore.open(join(dir, "b"), ENTRY);
    const second = await ThreadStore.open(join(dir, "b"), ENTRY).catch((e) => e);
    expect(second).toBeInstanceOf(DataDirLockedError);
    expect(String(second.message)).toMatch(/in use by another Tollgate process/);
    await first.close();
  });

  it("turns a failing call into a rejected promise, not a dead thread", async () => {
    const store = await ThreadStore.open(join(dir, "c"), ENTRY);
    await expect(store.query({ workspaceId: "default", where: { nope: "x" } as never })).rejects.toThrow(
      /not a filterable field/,
    );
    expect(await store.count({ workspaceId: "default" })).toBe(0);
    await store.close();
  });
});

describe("store thread failure", () => {
  it("fails calls at once after the thread is gone, instead of hanging", async () => {
    const store = await ThreadStore.open(join(dir, "d"), ENTRY);
    await store.close();
    await expect(store.count({ workspaceId: "default" })).rejects.toThrow(/store thread exited/);
  });
});
