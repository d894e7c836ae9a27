import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { COLUMNS } from "../src/store/duckdb/columns.js";
import { openDuckDb } from "../src/store/duckdb/open.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { buildRecord } from "./conformance-data.js";

it("the migrated events table has exactly the Appender's columns, in its order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-migrations-"));
  try {
    const { instance, conn } = await openDuckDb(dir);
    const res = await conn.runAndReadAll(
      "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position",
    );
    expect(res.getRowsJS().map((r) => r[0])).toEqual(COLUMNS.map((c) => c.name));
    const versions = await conn.runAndReadAll("SELECT version FROM schema_migrations ORDER BY version");
    expect(versions.getRowsJS().map((r) => Number(r[0]))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
    ]);
    conn.closeSync();
    instance.closeSync();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const CACHED_MEDIA = ["cache_audio_read_tokens", "cache_image_read_tokens"];
const IMAGE_OUT = "output_image_tokens";
/** Migration 10: the audio length, and the call a record was made within. */
const MIGRATION_10 = ["input_audio_ms", "parent_event_id"];
/** Migration 11: the characters of text. */
const MIGRATION_11 = ["input_characters"];

/**
 * Data dirs from before the tool-call columns, the web_search_preview count, the cached media counts, the
 * image output count, the audio length and the call made within, the characters.
 */
const UPGRADES = [
  {
    from: "before migration 6",
    versions: [6, 7, 8, 9, 10, 11],
    columns: [
      "web_search_requests",
      "file_search_requests",
      "cost_tool_calls_nanousd",
      "web_search_preview_requests",
      ...CACHED_MEDIA,
      IMAGE_OUT,
      ...MIGRATION_10,
      ...MIGRATION_11,
    ],
  },
  {
    from: "at migration 6",
    versions: [7, 8, 9, 10, 11],
    columns: ["web_search_preview_requests", ...CACHED_MEDIA, IMAGE_OUT, ...MIGRATION_10, ...MIGRATION_11],
  },
  {
    from: "at migration 7",
    versions: [8, 9, 10, 11],
    columns: [...CACHED_MEDIA, IMAGE_OUT, ...MIGRATION_10, ...MIGRATION_11],
  },
  { from: "at migration 8", versions: [9, 10, 11], columns: [IMAGE_OUT, ...MIGRATION_10, ...MIGRATION_11] },
  { from: "at migration 9", versions: [10, 11], columns: [...MIGRATION_10, ...MIGRATION_11] },
  { from: "at migration 10", versions: [11], columns: MIGRATION_11 },
];

it.each(UPGRADES)("a data dir $from gains the columns it lacks: its calls read back with none", async (u) => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-migrations-"));
  const call = {
    provider: "openai",
    model: "gpt-4o",
    input_uncached_tokens: 10,
    output_tokens: 5,
  };
  const before = buildRecord({
    ...call,
    event_id: "01900000-0000-7000-8000-000000000001",
    ts_start: Date.now(),
  });
  const after = buildRecord({
    ...call,
    event_id: "01900000-0000-7000-8000-000000000002",
    ts_start: Date.now(),
    web_search_requests: 2,
    web_search_preview_requests: 1,
    cache_audio_read_tokens: 3,
    output_image_tokens: 2,
    input_audio_ms: 1_500,
    parent_event_id: "01900000-0000-7000-8000-000000000001",
  });
  try {
    let store = await DuckDbStore.open(dir);
    await store.append([before]);
    await store.close();
    // Back to the older layout, with the call stored then.
    const { instance, conn } = await openDuckDb(dir);
    for (const column of u.columns) await conn.run(`ALTER TABLE events DROP COLUMN ${column}`);
    await conn.run(`DELETE FROM schema_migrations WHERE version IN (${u.versions.join(", ")})`);
    conn.closeSync();
    instance.closeSync();

    store = await DuckDbStore.open(dir);
    try {
      await store.append([after]);
      expect(await store.findEvent("default", before.event_id)).toMatchObject({
        web_search_requests: 0,
        file_search_requests: 0,
        web_search_preview_requests: 0,
        cache_audio_read_tokens: 0,
        cache_image_read_tokens: 0,
        output_image_tokens: 0,
        input_audio_ms: 0,
        parent_event_id: null,
        input_characters: 0,
        cost_tool_calls_nanousd: 0n,
        cost_nanousd: before.cost_nanousd,
      });
      // gpt-4o: $10 per thousand web_search searches, $25 per thousand web_search_preview ones; cached
      // audio at its cached input rate ($1.25/M: it has none of its own); image output at the output rate;
      // audio by the hour it has no rate for.
      expect(await store.findEvent("default", after.event_id)).toMatchObject({
        web_search_requests: 2,
        web_search_preview_requests: 1,
        cache_audio_read_tokens: 3,
        output_image_tokens: 2,
        input_audio_ms: 1_500,
        parent_event_id: "01900000-0000-7000-8000-000000000001",
        cost_tool_calls_nanousd: 35_000_000n,
        cost_nanousd: before.cost_nanousd + 35_000_000n + 3_750n,
      });
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("migration 12 sums closed days again: a hosted tool's model call is no request of its own", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-migrations-"));
  const yesterday = Date.now() - 86_400_000;
  const call = { provider: "openai", model: "gpt-4o", input_uncached_tokens: 10, output_tokens: 5 };
  const main = buildRecord({
    ...call,
    event_id: "01900000-0000-7000-8000-000000000001",
    ts_start: yesterday,
  });
  const tool = buildRecord({
    ...call,
    event_id: "01900000-0000-7000-8000-000000000002",
    ts_start: yesterday,
    parent_event_id: main.event_id,
  });
  const filter = { workspaceId: "default", from: yesterday - 86_400_000, to: Date.now() };
  try {
    let store = await DuckDbStore.open(dir);
    await store.append([main, tool]);
    await store.close();
    // The closed day as summed before: the tool's call counted as a request and a success.
    const { instance, conn } = await openDuckDb(dir);
    await conn.run("UPDATE segment_days SET requests = 2, ok_requests = 2");
    await conn.run("UPDATE user_days SET requests = 2");
    await conn.run("DELETE FROM schema_migrations WHERE version = 12");
    conn.closeSync();
    instance.closeSync();

    store = await DuckDbStore.open(dir);
    try {
      const { feature } = await store.segments(filter, ["feature"], false);
      expect(feature).toMatchObject([{ requests: 1, ok_requests: 1 }]);
      expect(feature[0]!.cost_nanousd).toBe(main.cost_nanousd + tool.cost_nanousd);
      const days = await store.userDays(filter, 5);
      expect(days.map((d) => d.requests)).toEqual([1]);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("migration 13 sums closed days again: a tool's reported cost is spend, as `spend` counts it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-migrations-"));
  const yesterday = Date.now() - 86_400_000;
  const call = buildRecord({
    provider: "openai",
    model: "gpt-4o",
    input_uncached_tokens: 10,
    output_tokens: 5,
    event_id: "01900000-0000-7000-8000-000000000001",
    ts_start: yesterday,
  });
  const tool = buildRecord({
    kind: "tool",
    cost_nanousd: "7000",
    event_id: "01900000-0000-7000-8000-000000000002",
    ts_start: yesterday,
  });
  const filter = { workspaceId: "default", from: yesterday - 86_400_000, to: Date.now() };
  try {
    let store = await DuckDbStore.open(dir);
    await store.append([call, tool]);
    await store.close();
    // The closed day as summed before: model calls only.
    const { instance, conn } = await openDuckDb(dir);
    await conn.run(`UPDATE segment_days SET cost_nanousd = ${call.cost_nanousd}`);
    await conn.run(`UPDATE user_days SET cost_nanousd = ${call.cost_nanousd}`);
    await conn.run("DELETE FROM schema_migrations WHERE version = 13");
    conn.closeSync();
    instance.closeSync();

    store = await DuckDbStore.open(dir);
    try {
      const { feature } = await store.segments(filter, ["feature"], false);
      expect(feature).toMatchObject([{ requests: 1, cost_nanousd: call.cost_nanousd + 7000n }]);
      const days = await store.userDays(filter, 5);
      expect(days.map((d) => [d.requests, d.cost_nanousd])).toEqual([[1, call.cost_nanousd + 7000n]]);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
