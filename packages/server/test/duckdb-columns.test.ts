// Records as columns: what the embedded store appends and what crosses to its thread. Every field must come
// back as it went in, and a batch with some duplicates stores exactly its new records.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CallRecord } from "@tollgate/core";
import { afterAll, describe, expect, it } from "vitest";
import { fromColumns, toColumns, transferList } from "../src/store/duckdb/columns.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { buildRecord, demoRecords } from "./conformance-data.js";

const now = Date.UTC(2026, 11, 4, 12);
const odd: CallRecord[] = [
  buildRecord({
    event_id: "01900000-0000-7000-8000-000000000001",
    ts_start: now,
    ts_end: now + 1234,
    provider: "openai",
    api: "openai.chat",
    model: "gpt-4o-mini",
    usage_raw: { prompt_tokens: 10, completion_tokens: 2, details: { é: [1, null] } },
    tags: ["a", "it's"],
    metadata: { k: "v\u0000😀" },
    feature: "用户",
    http_status: 200,
    ttft_ms: 0,
    stream: true,
    batch: true,
  }),
  buildRecord({
    event_id: "01900000-0000-7000-8000-000000000002",
    ts_start: now + 1,
    kind: "tool",
    cost_nanousd: "999999999999999999",
    cost_output_nanousd: "999999999999999999",
    priced: false,
  }),
];
const records = [...demoRecords({ days: 3, callsPerDay: 300, seed: 5, now }), ...odd];

describe("record columns", () => {
  it("give back every field of every record", () => {
    const cols = toColumns(records);
    expect(cols.rows).toBe(records.length);
    expect(fromColumns(cols)).toEqual(records);
    // Repeated texts are kept once per batch.
    expect(cols.texts.length).toBeLessThan(records.length * 4);
  });

  it("survive a move to another thread (the buffers are transferred, not copied)", () => {
    const cols = toColumns(records);
    const moved = structuredClone(cols, { transfer: transferList(cols) });
    expect(cols.data.every((a) => a.byteLength === 0)).toBe(true);
    expect(fromColumns(moved)).toEqual(records);
  });

  describe("in the store", () => {
    const dir = mkdtempSync(join(tmpdir(), "tg-cols-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("a batch half made of stored records appends exactly the new half, field for field", async () => {
      const store = await DuckDbStore.open(dir);
      try {
        const stored = records.filter((_, i) => i % 2 === 0);
        expect((await store.append(stored)).inserted.size).toBe(stored.length);
        const res = await store.appendColumns(toColumns(records));
        expect(res.inserted.size).toBe(records.length - stored.length);
        const back = await store.query({ workspaceId: "default", limit: 100_000 });
        const byId = (a: CallRecord, b: CallRecord) => a.event_id.localeCompare(b.event_id);
        expect(back.sort(byId)).toEqual([...records].sort(byId));
      } finally {
        await store.close();
      }
    });

    it("a text that is the same in every row of a data chunk (but not of the batch) is stored per row", async () => {
      const store = await DuckDbStore.open(mkdtempSync(join(tmpdir(), "tg-cols-const-")));
      try {
        // DuckDB's chunks hold 2,048 rows: the first chunk is all 'first', the second mixes texts and NULLs.
        const many = demoRecords({ days: 2, callsPerDay: 4000, seed: 9, now })
          .slice(0, 2100)
          .map((r, i) => ({ ...r, feature: i < 2048 ? "first" : i % 2 ? "second" : null }));
        expect(many).toHaveLength(2100);
        await store.append(many.filter((_, i) => i % 3 === 0));
        await store.appendColumns(toColumns(many));
        const back = await store.query({ workspaceId: "default", limit: 100_000 });
        const features = new Map(back.map((r) => [r.event_id, r.feature]));
        expect(many.every((r) => features.get(r.event_id) === r.feature)).toBe(true);
        expect(back).toHaveLength(many.length);
      } finally {
        await store.close();
      }
    });
  });
});
