// An export's rows as the embedded store writes them itself (queryJson: the JSON text built in SQL, never a
// record object per row): the same values recordsJson writes for the records `query` reads back, whatever
// the texts, money and JSON fields hold, page after page, and the same through the store's thread.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CallRecord } from "@tollgate/core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EXPORT_COLUMNS } from "../src/query/export.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { ThreadStore } from "../src/store/duckdb/thread-store.js";
import { recordsJson } from "../src/store/json-rows.js";
import type { EventFilter, JsonRows, QueryCursor } from "../src/store/types.js";
import { buildRecord, demoRecords } from "./conformance-data.js";

const THREAD_ENTRY = new URL("../dist/store/duckdb/thread-entry.js", import.meta.url);
const now = Date.UTC(2026, 11, 4, 12);
const id = (n: number) => `01900000-0000-7000-8000-${String(n).padStart(12, "0")}`;
const tool = { kind: "tool", provider: undefined, model: undefined };
/** Texts JSON must escape, money of 18 digits (the most a record holds), every kind of JSON value; three calls at one instant. */
const odd: CallRecord[] = [
  buildRecord({
    event_id: id(3),
    ts_start: now,
    provider: "openai",
    model: "gpt-4o-mini",
    input_uncached_tokens: 10,
    output_tokens: 2,
    user_id: 'a, "b"\nc\\d',
    feature: "\u0000\u0001\t\u2028 用户 😀",
    customer_id: "ü\u007f\u0085",
    prompt_version: "1.10",
    usage_raw: { "2": 1, "1": [1.5, -0, 1e21, "x"], é: { "": null } },
    tags: ["a", 'b"c'],
    metadata: { k: "v\\'", n: "=1+1" },
    ttft_ms: 0,
    stream: true,
  }),
  buildRecord({
    ...tool,
    event_id: id(1),
    ts_start: now,
    cost_nanousd: "999999999999999999",
    cost_output_nanousd: "999999999999999999",
    usage_raw: "5",
  }),
  buildRecord({ ...tool, event_id: id(2), ts_start: now, usage_raw: 5 }),
  buildRecord({ ...tool, event_id: id(4), ts_start: now + 1, usage_raw: [true, null] }),
  buildRecord({ ...tool, event_id: id(5), ts_start: now + 2, usage_raw: {}, tags: [], metadata: {} }),
];
const records = [...demoRecords({ days: 2, callsPerDay: 200, seed: 3, now }), ...odd];
const filter: EventFilter = { workspaceId: "default", from: now - 3 * 86_400_000, to: now + 1000 };

const dir = mkdtempSync(join(tmpdir(), "tg-query-json-"));
let store: DuckDbStore;
let open = false;
beforeAll(async () => {
  store = await DuckDbStore.open(dir);
  open = true;
  expect((await store.append(records)).inserted.size).toBe(records.length);
});
afterAll(async () => {
  if (open) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const values = (page: JsonRows): unknown[] => JSON.parse(`[${page.json}]`);

/** Every page of `limit` rows, as `read` answers them. */
async function pages(read: (after: QueryCursor | null) => Promise<JsonRows>): Promise<JsonRows[]> {
  const out: JsonRows[] = [];
  for (let after: QueryCursor | null = null; ; ) {
    const page = await read(after);
    out.push(page);
    if (!page.last) return out;
    after = page.last;
  }
}

it("a page holds the values of the records query reads back, as recordsJson writes them", async () => {
  const page = await store.queryJson({ ...filter, limit: 100_000 }, EXPORT_COLUMNS);
  const expected = recordsJson(await store.query({ ...filter, limit: 100_000 }), EXPORT_COLUMNS);
  expect(page.rows).toBe(records.length);
  expect(page.last).toEqual(expected.last);
  expect(values(page)).toEqual(values(expected));
  // Spot checks of what the SQL writes itself: money exact as text, JSON fields as values.
  const byId = new Map(values(page).map((r) => [(r as unknown[])[0], r as unknown[]]));
  const col = (eventId: string, c: (typeof EXPORT_COLUMNS)[number]) =>
    byId.get(eventId)![EXPORT_COLUMNS.indexOf(c)];
  expect(col(id(1), "cost_nanousd")).toBe("999999999999999999");
  expect([col(id(1), "usage_raw"), col(id(2), "usage_raw"), col(id(4), "usage_raw")]).toEqual([
    "5",
    5,
    [true, null],
  ]);
  expect([col(id(5), "usage_raw"), col(id(5), "tags"), col(id(5), "metadata")]).toEqual([null, [], {}]);
  expect(col(id(3), "user_id")).toBe('a, "b"\nc\\d');
});

it("pages go on after their last record (calls at one instant by event id), the last one empty", async () => {
  const paged = await pages((after) =>
    store.queryJson({ ...filter, limit: 7, ...(after ? { after } : {}) }, EXPORT_COLUMNS),
  );
  expect(paged.at(-1)).toEqual({ json: "", rows: 0, last: null });
  const whole = recordsJson(await store.query({ ...filter, limit: 100_000 }), EXPORT_COLUMNS);
  expect(paged.flatMap(values)).toEqual(values(whole));
  expect(paged.slice(0, -2).every((p) => p.rows === 7)).toBe(true);
  const ids = paged.flatMap(values).map((r) => (r as unknown[])[0]);
  expect(ids.slice(-5)).toEqual([id(1), id(2), id(3), id(4), id(5)]);
});

it("through the store's thread (the data dir handed over to it), a page crosses as the same text", async () => {
  await store.close();
  open = false;
  const threaded = await ThreadStore.open(dir, THREAD_ENTRY);
  try {
    const page = await threaded.queryJson({ ...filter, limit: 50 }, EXPORT_COLUMNS);
    expect(page.rows).toBe(50);
    expect(values(page)).toEqual(
      values(recordsJson(await threaded.query({ ...filter, limit: 50 }), EXPORT_COLUMNS)),
    );
  } finally {
    await threaded.close();
  }
});
