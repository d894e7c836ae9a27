// A budget added while running (in-memory limits) is seeded with the calls spooled and not stored yet a
// spool file at a time: each file's calls are read, asked of the store and summed on their own, so a huge
// spool is never held in memory whole; each call counts once all the same.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CallRecord, uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it } from "vitest";
import { Spool } from "../src/gateway/spool.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { buildRecord } from "./conformance-data.js";
import type { Json } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "tg-seed-spool-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function spooledCalls(n: number): CallRecord[] {
  return Array.from({ length: n }, () =>
    buildRecord({
      event_id: uuidv7(),
      ts_start: Date.now() - 1000,
      provider: "openai",
      api: "openai.chat",
      model: "gpt-4o",
      input_uncached_tokens: 10_000,
      output_tokens: 1_000,
      feature: "seeded",
    }),
  );
}

async function admin(rt: Runtime, method: string, path: string, body?: unknown) {
  const res = await rt.app.request(path, {
    method,
    headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Json };
}

describe("a budget added while calls wait in the spool", () => {
  it("is seeded a spool file at a time, each call once", async () => {
    const dataDir = join(dir, "data");
    const rt = await openRuntime({ dataDir, pricebookPath: null });
    try {
      const [first, second, third] = [spooledCalls(5), spooledCalls(5), spooledCalls(5)];
      // Spooled while running, through a spool of its own on the same directory: the runtime's replay
      // knows nothing of these files, so they stay unstored while the budget is seeded.
      const spool = new Spool(join(dataDir, "spool"));
      spool.spill(first);
      spool.spill(second);
      // A batch spooled twice (a shutdown that stopped waiting for the store, then the write failed).
      spool.spill([...third, first[0]!]);
      // A call the store took without saying so (an answer lost): it counts as stored, not again.
      await rt.store.append([second[0]!]);
      const cost = [...first, ...second, ...third].reduce((sum, r) => sum + r.cost_nanousd, 0n);

      // How many calls the store is asked of at a time.
      const asked: number[] = [];
      const storedIds = rt.store.storedIds;
      rt.store.storedIds = function (this: DuckDbStore, ws, ids) {
        asked.push(ids.length);
        return DuckDbStore.prototype.storedIds.call(this, ws, ids);
      };
      const put = await admin(rt, "POST", "/api/budgets", {
        id: "seeded",
        scope: { feature: "seeded" },
        window: "day",
        limit_usd: "100.00",
      });
      expect(put.status).toBeLessThan(300);
      // The store is asked of each file's calls on their own (the repeated one only once).
      expect(asked).toEqual([5, 5, 5]);
      rt.store.storedIds = storedIds;
      const status = await admin(rt, "GET", "/api/budgets/seeded");
      expect(status.json.spend_nanousd).toBe(String(cost));
    } finally {
      await rt.close();
    }
  });
});
