// One suite, every store: the embedded DuckDB store, ClickHouse 18.16 (a real clickhouse-server, id claims
// in a real Redis; once more with appends on their own thread), the same on two shards under Distributed
// tables (two servers, no replication) and modern ClickHouse (chdb, in-process). The same generated calls
// go into each; every query of the store and of the query layer must answer exactly alike.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CallRecord, STREAM_OPTIONS_REFUSED, uuidv7Time } from "@tollgate/core";
import { Session } from "chdb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coverageOf } from "../src/query/coverage.js";
import { explainChange } from "../src/query/explain.js";
import { decodeCursor, exportPage } from "../src/query/export.js";
import { forecastMonth } from "../src/query/forecast.js";
import {
  agentRunRollup,
  customerRollup,
  featureRollup,
  OUTCOME_DIMENSIONS,
  outcomeRollup,
  previousWindow,
  userDayRollup,
} from "../src/query/rollups.js";
import { QUERY_TIMES } from "../src/query-time.js";
import { HttpExec } from "../src/store/clickhouse/exec.js";
import { type ClickHouseOptions, openClickHouse } from "../src/store/clickhouse/open.js";
import type { ClickHouseStore } from "../src/store/clickhouse/store.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import {
  type EventFilter,
  type QueryCursor,
  type Retention,
  recordKey,
  SEGMENT_DIMENSIONS,
  SPEND_DIMENSIONS,
  type Store,
  type SumField,
  type WorkspaceRow,
} from "../src/store/types.js";
import { utcMonthStart } from "../src/time.js";
import { ChdbExec } from "./chdb-exec.js";
import { startClickHouse, type TestClickHouse } from "./clickhouse-server.js";
import { buildRecord, demoRecords } from "./conformance-data.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const DAY = 86_400_000;
const now = Date.now();
const APPEND_ENTRY = new URL("../dist/store/clickhouse/append-entry.js", import.meta.url);
/** Edge cases the generator does not make: quoting, unicode, tags, metadata, unpriced, non-model kinds. */
function edgeCases(): CallRecord[] {
  const t = utcMonthStart(now) + 3_600_000;
  const base = { provider: "openai", model: "gpt-4o-mini", input_uncached_tokens: 100, output_tokens: 20 };
  const id = (n: number) => `01900000-0000-7000-8000-${String(n).padStart(12, "0")}`;
  return [
    buildRecord({ ...base, event_id: id(1), ts_start: t, feature: "it's \\ a 'quote'", user_id: "用户-ü" }),
    buildRecord({
      ...base,
      event_id: id(2),
      ts_start: t + 1,
      tags: ["beta", "x'y"],
      metadata: { k: "v\\'" },
    }),
    buildRecord({
      ...base,
      event_id: id(3),
      ts_start: t + 2,
      model: "no-such-model-9",
      customer_id: "c-edge",
    }),
    buildRecord({
      event_id: id(4),
      ts_start: t + 3,
      kind: "tool",
      agent_run_id: "run-edge",
      agent_type: "edge",
    }),
    buildRecord({
      ...base,
      event_id: id(5),
      ts_start: t + 4,
      attempt: 2,
      status: "error",
      http_status: 500,
      agent_run_id: "run-edge",
    }),
    buildRecord({
      ...base,
      event_id: id(6),
      ts_start: t + 5,
      deployment: "staging",
      ttft_ms: 12,
      latency_ms: 40,
    }),
    buildRecord({ ...base, event_id: id(7), ts_start: t + 6, workspace_id: "other", feature: "elsewhere" }),
    // An attempt its upstream refused for the stream_options the gateway added, and the gateway's re-send
    // of it: no retry of its run's.
    buildRecord({
      ...base,
      event_id: id(12),
      ts_start: t + 9,
      request_id: "req-resent",
      status: "error",
      http_status: 400,
      error_type: STREAM_OPTIONS_REFUSED,
      agent_run_id: "run-resent",
    }),
    buildRecord({
      ...base,
      event_id: id(13),
      ts_start: t + 10,
      request_id: "req-resent",
      attempt: 2,
      agent_run_id: "run-resent",
    }),
    // A tool's reported cost is spend (no request), on a closed day: summed when days close and as a late call.
    buildRecord({
      event_id: id(11),
      ts_start: Math.floor(now / DAY) * DAY - 3 * DAY + 18_000_000,
      kind: "tool",
      cost_nanousd: "7000000",
      feature: "summarize",
      customer_id: "c-edge",
      user_id: "用户-ü",
      prompt_version: "tool-v1",
    }),
    // Speech billed by the character: 1,200 characters on tts-1 at $15 per million.
    buildRecord({
      provider: "openai",
      model: "tts-1",
      api: "openai.speech",
      event_id: id(10),
      ts_start: t + 6,
      input_characters: 1_200,
      feature: "voice",
    }),
    buildRecord({
      ...base,
      event_id: id(8),
      ts_start: t + 7,
      status: "killed",
      agent_run_id: "run-edge",
      data_mode: "test",
    }),
    // Server-side tool calls billed per call; cached audio and images (counted apart from cached text);
    // image output tokens (a part of output); audio billed by its length; made within another call.
    buildRecord({
      ...base,
      event_id: id(9),
      ts_start: t + 8,
      web_search_requests: 3,
      file_search_requests: 2,
      web_search_preview_requests: 1,
      cache_audio_read_tokens: 7,
      cache_image_read_tokens: 5,
      output_image_tokens: 4,
      input_audio_ms: 2_500,
      parent_event_id: id(8),
    }),
  ];
}

const records: CallRecord[] = [...demoRecords({ days: 75, callsPerDay: 160, seed: 11, now }), ...edgeCases()];

interface Backend {
  name: string;
  store: Store;
}
const backends: Backend[] = [];
let ch: TestClickHouse;
let shards: TestClickHouse;
let redis: TestRedis;
let chdb: Session;
const dirs: string[] = [];

/** A ClickHouse store whose appends run on their own thread (the compiled entry: `npm run build` first). */
async function openClickHouseAppendThread(opts: ClickHouseOptions): Promise<ClickHouseStore> {
  if (!existsSync(fileURLToPath(APPEND_ENTRY))) throw new Error("build first: npm run build");
  const store = await openClickHouse(opts);
  await store.appendOnThread(APPEND_ENTRY, opts);
  expect(store.appendThread).not.toBeNull();
  return store;
}

beforeAll(async () => {
  [ch, shards, redis] = await Promise.all([startClickHouse(), startClickHouse({ shards: 2 }), startRedis()]);
  const dir = mkdtempSync(join(tmpdir(), "tg-conf-"));
  dirs.push(dir);
  chdb = new Session(join(dir, "chdb"));
  backends.push(
    // Opened before the calls arrive: every past day is closed and the calls come in as late ones.
    { name: "duckdb", store: await DuckDbStore.open(join(dir, "duck")) },
    // Days summed after the calls arrived (the hourly close), then answered from segment_days.
    {
      name: "duckdb-days-closed",
      store: await DuckDbStore.open(join(dir, "duck2"), { closeDaysAtOpen: false }),
    },
    {
      name: "clickhouse-18.16",
      store: await openClickHouse({ url: `${ch.url}/tg_conformance`, redisUrl: redis.url }),
    },
    {
      name: "clickhouse-18.16, appends on a thread",
      store: await openClickHouseAppendThread({
        url: `${ch.url}/tg_conformance_thread`,
        redisUrl: redis.url,
      }),
    },
    {
      name: "clickhouse-2-shards",
      store: await openClickHouse({
        url: `${shards.url}/tg_conformance`,
        cluster: shards.cluster,
        nodes: shards.urls,
        redisUrl: redis.url,
      }),
    },
    {
      name: "chdb-modern",
      store: await openClickHouse({ url: "http://chdb/tg_conformance" }, () => new ChdbExec(chdb)),
    },
  );
  for (const b of backends) {
    for (let i = 0; i < records.length; i += 4000) {
      const r = await b.store.append(records.slice(i, i + 4000));
      expect(r.inserted.size, b.name).toBe(Math.min(4000, records.length - i));
    }
  }
  await (backends[1]!.store as DuckDbStore).closeDays();
}, 120_000);

afterAll(async () => {
  for (const b of backends) await b.store.close();
  chdb?.close();
  await Promise.all([ch?.stop(), shards?.stop(), redis?.stop()]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** JSON with bigints as strings: answers compared as data. */
const plain = (v: unknown): unknown =>
  JSON.parse(JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x)));
/** For answers whose row order is not part of the contract. */
const sorted = (rows: unknown[]) => rows.map((r) => JSON.stringify(plain(r))).sort();

/** Every backend's answer equals the embedded store's. */
async function same(query: (s: Store) => Promise<unknown>, normalize: (v: unknown) => unknown = plain) {
  const [first, ...rest] = await Promise.all(backends.map(async (b) => normalize(await query(b.store))));
  for (const [i, answer] of rest.entries()) expect(answer, backends[i + 1]!.name).toEqual(first);
  return first;
}

const to = Math.floor(now / DAY) * DAY;
const windows: Record<string, EventFilter & { from: number; to: number }> = {
  "every time a query may name (1970 to 2100)": {
    workspaceId: "default",
    from: QUERY_TIMES.min,
    to: QUERY_TIMES.max,
  },
  // A derived window may reach past what a query names: ClickHouse 18.16 reads a Date after 2105 as 1970-01-01.
  "a comparison window reaching past 2105": { workspaceId: "default", from: 0, to: Date.UTC(2230, 0, 1) },
  "last 14 days": { workspaceId: "default", from: to - 14 * DAY, to },
  "prod or unset, 30 days": { workspaceId: "default", from: to - 30 * DAY, to, deploymentOrUnset: "prod" },
  "one feature, all time": {
    workspaceId: "default",
    from: 0,
    to: now + DAY,
    where: { feature: "summarize" },
  },
  "a quoted feature": {
    workspaceId: "default",
    from: 0,
    to: now + DAY,
    where: { feature: "it's \\ a 'quote'" },
  },
  "real data, mid-day bounds": {
    workspaceId: "default",
    from: to - 20 * DAY + 3_600_123,
    to: to - 2 * DAY - 777,
    where: { data_mode: "real" },
  },
};

describe("store conformance: DuckDB, ClickHouse 18.16 (one node, two shards), modern ClickHouse (chdb)", () => {
  it("appends are idempotent: a retried batch stores nothing new", async () => {
    const again = await same(async (s) => [...(await s.append(records.slice(100, 600))).inserted]);
    expect(again).toEqual([]);
    await same((s) => s.count({ workspaceId: "default" }));
    await same((s) => s.count({ workspaceId: "other" }));
  });

  it("a 20,000-record batch is one append (the id check is split below ClickHouse's max query size)", async () => {
    const store = await openClickHouse({ url: `${ch.url}/tg_big` });
    try {
      const big = Array.from({ length: 20_000 }, (_, i) => ({
        ...records[i % records.length]!,
        workspace_id: "default",
        event_id: `01920000-0000-7000-8000-${String(i).padStart(12, "0")}`,
      }));
      expect((await store.append(big)).inserted.size).toBe(20_000);
      expect((await store.append(big)).inserted.size).toBe(0);
      expect(await store.count({ workspaceId: "default" })).toBe(20_000);
    } finally {
      await store.close();
    }
  });

  it("appends on a thread go on in-process once the thread is gone, each record still stored once", async () => {
    const store = await openClickHouseAppendThread({ url: `${ch.url}/tg_thread_end`, redisUrl: redis.url });
    try {
      const fresh = records.slice(0, 600).map((r, i) => ({
        ...r,
        event_id: `01930000-0000-7000-8000-${String(i).padStart(12, "0")}`,
      }));
      expect((await store.append(fresh.slice(0, 400))).inserted.size).toBe(400);
      await store.appendThread!.terminate();
      expect(store.appendThread).toBeNull();
      const after = await store.append(fresh);
      expect(after.inserted).toEqual(
        new Set(fresh.slice(400).map((r) => recordKey(r.workspace_id, r.event_id))),
      );
      expect(await store.count({ workspaceId: "default" })).toBe(600);
    } finally {
      await store.close();
    }
  });

  it("an events table from before the tool-call (cached media, image output, audio length, parent call) columns gains them on open, two replicas at once (one node, two shards, modern)", async () => {
    const added = [
      "web_search_requests",
      "file_search_requests",
      "cost_tool_calls_nanousd",
      "web_search_preview_requests",
      "cache_audio_read_tokens",
      "cache_image_read_tokens",
      "output_image_tokens",
      "input_audio_ms",
      "parent_event_id",
      "input_characters",
    ];
    const [before, after] = edgeCases().slice(-2);
    const layouts: { name: string; opts: ClickHouseOptions; exec?: () => ChdbExec; tables: string[] }[] = [
      { name: "one node", opts: { url: `${ch.url}/tg_upgrade` }, tables: ["events"] },
      {
        name: "two shards",
        opts: { url: `${shards.url}/tg_upgrade`, cluster: shards.cluster, nodes: shards.urls },
        tables: ["events", "events_local"],
      },
      {
        name: "modern",
        opts: { url: "http://chdb/tg_upgrade" },
        exec: () => new ChdbExec(chdb),
        tables: ["events"],
      },
    ];
    for (const l of layouts) {
      const open = () => openClickHouse(l.opts, l.exec);
      let store = await open();
      await store.append([before!]);
      await store.close();
      // Back to the first layout: the columns dropped on every node, the stored call kept.
      for (const url of l.exec ? ["http://chdb"] : (l.opts.nodes ?? [l.opts.url])) {
        const node = l.exec ? l.exec() : new HttpExec(new URL("/", url).toString());
        // The daily summary's view reads the cached media counts: it goes first (an older version's read none).
        await node.command("DROP TABLE IF EXISTS tg_upgrade.daily_summary_mv");
        for (const table of l.tables)
          for (const column of added)
            await node.command(`ALTER TABLE tg_upgrade.${table} DROP COLUMN ${column}`);
        if (!l.exec) await node.close();
      }
      // Two replicas starting at once (a rolling deploy): both add the columns; neither fails.
      const [other, reopened] = await Promise.all([open(), open()]);
      await other.close();
      store = reopened;
      try {
        await store.append([after!]);
        expect(await store.findEvent("default", before!.event_id), l.name).toMatchObject({
          web_search_requests: 0,
          web_search_preview_requests: 0,
          cache_audio_read_tokens: 0,
          cache_image_read_tokens: 0,
          output_image_tokens: 0,
          input_audio_ms: 0,
          parent_event_id: null,
          input_characters: 0,
          cost_tool_calls_nanousd: 0n,
        });
        expect(await store.findEvent("default", after!.event_id), l.name).toMatchObject({
          web_search_requests: 3,
          file_search_requests: 2,
          web_search_preview_requests: 1,
          cache_audio_read_tokens: 7,
          cache_image_read_tokens: 5,
          output_image_tokens: 4,
          input_audio_ms: 2_500,
          parent_event_id: after!.parent_event_id,
          cost_tool_calls_nanousd: after!.cost_tool_calls_nanousd,
        });
        // gpt-4o-mini: 2 × $0.01 (web_search) + 1 × $0.025 (web_search_preview) + 2 × $0.0025 (file search)
        expect(after!.cost_tool_calls_nanousd).toBe(50_000_000n);
      } finally {
        await store.close();
      }
    }
  });

  it("two writers appending the same ids at once (two replicas, one Redis) store each once", async () => {
    const open = () => openClickHouse({ url: `${ch.url}/tg_race`, redisUrl: redis.url });
    const [a, other] = await Promise.all([open(), open()]);
    try {
      const fresh = records.slice(0, 3000).map((r, i) => ({
        ...r,

        event_id: `01910000-0000-7000-8000-${String(i).padStart(12, "0")}`,
      }));
      const [x, y] = await Promise.all([a.append(fresh), other.append(fresh)]);
      const both = [...x.inserted].filter((k) => y.inserted.has(k));
      expect(both).toEqual([]);
      expect(x.inserted.size + y.inserted.size).toBe(fresh.length);
      expect(new Set([...x.inserted, ...y.inserted])).toEqual(
        new Set(fresh.map((r) => recordKey(r.workspace_id, r.event_id))),
      );
      expect(await a.count({ workspaceId: "default" })).toBe(fresh.length);
    } finally {
      await Promise.all([a.close(), other.close()]);
    }
  });

  it("one call by its event id; a retried call's attempts by request id", async () => {
    const retried = records.find((r) => r.request_id !== null && r.attempt > 1)!;
    const ws = retried.workspace_id;
    const one = (await same((s) =>
      s.query({ workspaceId: ws, where: { event_id: retried.event_id }, limit: 10 }),
    )) as CallRecord[];
    expect(one.map((r) => r.event_id)).toEqual([retried.event_id]);
    const attempts = (await same((s) =>
      s.query({ workspaceId: ws, where: { request_id: retried.request_id! }, limit: 100 }),
    )) as CallRecord[];
    const sent = records.filter((r) => r.request_id === retried.request_id);
    expect(sent.length).toBeGreaterThan(1);
    expect(attempts.map((r) => r.attempt).sort()).toEqual(sent.map((r) => r.attempt).sort());

    // findEvent: an id made when its call started, and one whose v7 time is far from it (an edge case's
    // id dates from 2024): ClickHouse then reads past the id's time window.
    const farId = records.at(-2)!;
    expect(Math.abs(farId.ts_start - uuidv7Time(farId.event_id)!)).toBeGreaterThan(30 * DAY);
    const searches = records.at(-1)!;
    // Speech billed by its characters: 1,200 on tts-1 at $15 per million.
    const speech = records.find((r) => r.input_characters > 0)!;
    expect(speech).toMatchObject({ input_characters: 1_200, cost_nanousd: 18_000_000n, priced: true });
    for (const rec of [retried, farId, searches, speech]) {
      const found = (await same((s) => s.findEvent(rec.workspace_id, rec.event_id))) as CallRecord | null;
      expect(found).toEqual(plain(rec));
    }
    expect(await same((s) => s.findEvent("default", "01900000-0000-7000-8000-999999999999"))).toBeNull();

    // storedIds: which of these ids the workspace holds (another workspace's and unknown ones not, nor one
    // that is no UUID: a damaged spooled line's, which fails no lookup).
    const other = records.find((r) => r.workspace_id !== ws)!;
    const unknown = "01900000-0000-7000-8000-999999999998";
    const held = await same(
      (s) => s.storedIds(ws, [retried.event_id, farId.event_id, other.event_id, unknown, "not-a-uuid"]),
      (v) => [...(v as Set<string>)].sort(),
    );
    expect(held).toEqual(
      [retried, farId]
        .filter((r) => r.workspace_id === ws)
        .map((r) => r.event_id)
        .sort(),
    );
    expect(held).toContain(retried.event_id);
  });

  it("the records of some traces over a time range, usage_raw parsed, priced (what OTLP ingest reads to find a wrapper's call)", async () => {
    const t = utcMonthStart(now) + 5 * 3_600_000;
    const a = "a".repeat(32);
    const b = "b".repeat(32);
    const c = "c".repeat(32);
    const usage_raw = { "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20 };
    const rec = (n: number, over: Record<string, unknown>) =>
      buildRecord({
        workspace_id: "traces",
        event_id: `01940000-0000-7000-8000-${String(n).padStart(12, "0")}`,
        ts_start: t + n,
        span_id: String(n).padStart(16, "0"),
        ...over,
      });
    const call = { provider: "openai", model: "gpt-4o-mini", input_uncached_tokens: 100, output_tokens: 20 };
    const wrapper = rec(1, { trace_id: a, kind: "other", usage_raw, metadata: { "tollgate.wrapper": "x" } });
    const inA = [
      wrapper,
      rec(2, { ...call, trace_id: a, parent_span_id: wrapper.span_id, usage_raw }),
      rec(3, { trace_id: a, kind: "tool", parent_span_id: wrapper.span_id }),
    ];
    const inB = rec(4, { ...call, trace_id: b });
    const later = rec(10, { ...call, trace_id: a });
    const elsewhere = { ...rec(5, { ...call, trace_id: a }), workspace_id: "default" };
    const noTrace = rec(6, call);
    for (const bk of backends)
      await bk.store.append([...inA, inB, later, elsewhere, noTrace, rec(7, { trace_id: c, kind: "tool" })]);

    const fields = (r: CallRecord) => ({
      event_id: r.event_id,
      trace_id: r.trace_id,
      span_id: r.span_id,
      parent_span_id: r.parent_span_id,
      kind: r.kind,
      usage_raw: r.usage_raw,
      priced: r.priced,
    });
    const read = (traces: string[], from: number, to: number) =>
      same(
        (s) => s.traceSpans("traces", traces, from, to),
        (v) => sorted(v as unknown[]),
      );
    // [from, to): the call at t + 10 is past it; another workspace's span, and other traces, are not read.
    expect(await read([a, b, "f".repeat(32)], t, t + 10)).toEqual(sorted([...inA, inB].map(fields)));
    expect(await read([a], t + 2, t + 11)).toEqual(sorted([inA[1]!, inA[2]!, later].map(fields)));
    expect(await read([c], t, t + 5)).toEqual([]);
    expect(inA[1]!.usage_raw).toEqual(usage_raw);
    expect([inA[1]!.priced, wrapper.priced]).toEqual([true, false]);
  });

  for (const [name, w] of Object.entries(windows)) {
    describe(name, () => {
      it("count, spend by every dimension, unpriced models", async () => {
        expect(await same((s) => s.count(w))).toBeGreaterThan(0);
        for (const by of SPEND_DIMENSIONS) await same((s) => s.spend(w, by));
        await same((s) => s.unpriced(w));
      });

      it("records page by page in (ts_start, event_id) order", async () => {
        const pages = await same(async (s) => {
          const out: unknown[] = [];
          let after: QueryCursor | null = null;
          for (;;) {
            const page = await exportPage(s, w, after, 700);
            // Each store's text, as the CLI reads it: DuckDB writes it in SQL, ClickHouse from its records.
            out.push(...JSON.parse(`[${page.rows.json}]`));
            if (!page.next) break;
            after = decodeCursor(page.next);
          }
          return out;
        });
        expect((pages as unknown[]).length).toBeGreaterThan(0);
        await same((s) => s.query({ ...w, limit: 5000 }));
      });

      it("segments, user-days, agent runs, first seen", async () => {
        await same((s) => s.segments(w, SEGMENT_DIMENSIONS, true));
        await same((s) => s.segments(w, ["model"], false));
        await same((s) => s.userDays(w, 5));
        await same((s) => s.agentRuns(w));
        for (const by of SEGMENT_DIMENSIONS) await same((s) => s.firstSeen(w, by, w.from + 3 * DAY));
      });

      it("money is one amount: spend, segment sums and user days add up to the same cost", async () => {
        const total = <T>(rows: T[], cost: (r: T) => bigint) => rows.reduce((a, r) => a + cost(r), 0n);
        for (const b of backends) {
          const spend = total(await b.store.spend(w, "day"), (r) => r.cost_nanousd);
          const segments = await b.store.segments(w, ["feature", "model"], false);
          const sums = [
            total(segments.feature, (r) => r.cost_nanousd),
            total(segments.model, (r) => r.cost_nanousd),
            total(await b.store.userDays(w, 1), (r) => r.cost_nanousd),
          ];
          expect(sums, b.name).toEqual([spend, spend, spend]);
        }
      });

      it("the rollups, the variance narrative and the forecast", async () => {
        await same((s) => userDayRollup(s, w, 3));
        await same((s) => featureRollup(s, w));
        await same((s) => agentRunRollup(s, w));
        await same((s) => customerRollup(s, w, now));
        for (const by of OUTCOME_DIMENSIONS) await same((s) => outcomeRollup(s, w, by));
        await same((s) => explainChange(s, w, previousWindow(w)));
        await same((s) => forecastMonth(s, w, now));
      });

      it("the sums limits are rebuilt from", async () => {
        const sets: SumField[][] = [[], ["feature"], ["customer_id", "model"], ["user_id", "key_id"]];
        for (const by of sets)
          for (const hourly of [false, true])
            await same(
              (s) => s.sumCost(w, by, hourly),
              (v) => sorted(v as unknown[]),
            );
        await same(
          (s) => s.sumCost({ ...w, tag: "beta" }, [], false),
          (v) => sorted(v as unknown[]),
        );
      });
    });
  }

  it("agent run usage", async () => {
    await same(
      (s) => s.runUsage("default", 0),
      (v) => sorted(v as unknown[]),
    );
    await same((s) => s.runUsage("default", 0, "run-edge"));
    expect(await same((s) => s.runUsage("default", 0, "run-resent"))).toMatchObject([
      { llm_calls: 1, retries: 0 },
    ]);
  });

  it("keys: insert, find by hash, list, revoke", async () => {
    const key = (i: number) => ({
      id: `key-${i}`,
      workspace_id: i % 2 ? "default" : "other",
      role: "ingest" as const,
      label: i === 1 ? null : `label ${i}`,
      created_at: 1_700_000_000_000 + i,
      defaults: i === 2 ? { feature: "f'x" } : {},
      hash: `hash-${i}`,
    });
    await same(async (s) => {
      await s.ensureWorkspace("other");
      for (let i = 1; i <= 4; i++) await s.insertKey(key(i));
      const found = [await s.findKeyByHash("hash-2"), await s.findKeyByHash("nope")];
      const revoked = [await s.revokeKey("other", "key-2"), await s.revokeKey("other", "key-2")];
      const gone = await s.findKeyByHash("hash-2");
      const list = (await s.listKeys()).map((k) => ({ ...k, revoked_at: k.revoked_at !== null }));
      return { found, revoked, gone, list, other: (await s.listKeys("other")).length };
    });
  });

  it("workspaces: every one made or holding calls, by id, and whether it holds calls", async () => {
    const answer = (await same(async (s) => {
      await s.ensureWorkspace("made-only");
      return s.workspaces();
    })) as WorkspaceRow[];
    expect(answer).toEqual(
      expect.arrayContaining([
        { id: "default", calls: true },
        { id: "made-only", calls: false },
        { id: "other", calls: true },
      ]),
    );
    const ids = answer.map((w) => w.id);
    expect(ids).toEqual([...new Set(ids)].sort());
  });

  it("workspace: one by its id, as workspaces lists it, or null when nothing made it and it holds no calls", async () => {
    const answer = await same(async (s) => {
      await s.ensureWorkspace("made-only");
      return Promise.all(
        ["default", "made-only", "other", "no-such", "defaul", "it's"].map((w) => s.workspace(w)),
      );
    });
    expect(answer).toEqual([
      { id: "default", calls: true },
      { id: "made-only", calls: false },
      { id: "other", calls: true },
      null,
      null,
      null,
    ]);
  });

  it("policies with their audit trail, and limit events", async () => {
    await same(async (s) => {
      const row = (n: number) => ({
        workspace_id: "default",
        kind: "budget" as const,
        id: "b1",
        spec: { limit_usd: String(n) },
        updated_at: 1_700_000_000_000 + n,
        updated_by: "tester",
      });
      const steps = [
        await s.putPolicy(row(1)),
        await s.putPolicy(row(2)),
        await s.deletePolicy("default", "budget", "b1", "tester"),
        await s.deletePolicy("default", "budget", "b1", "tester"),
        await s.putPolicy({ ...row(3), id: "b2" }),
      ];
      const audit = (await s.policyAudit("default")).map((a) =>
        a.action === "delete" ? { ...a, ts: 0 } : a,
      );
      await s.appendLimitEvents([
        {
          ts: 1_700_000_000_000,
          workspace_id: "default",
          type: "budget_state",
          subject: "b2",
          bucket: "default",
          from_state: "ok",
          to_state: "warn",
          spend_nanousd: 9_007_199_254_740_993n,
          limit_nanousd: 10n ** 18n,
          event_id: null,
          request_id: "r-1",
          detail: { why: "it's" },
        },
      ]);
      return {
        steps,
        list: await s.listPolicies(),
        audit,
        events: await s.limitEvents("default", { type: "budget_state" }),
      };
    });
  });

  /** Calls of today in a workspace of their own, appended to every store. */
  async function appendToday(
    workspace_id: string,
    idPrefix: string,
    calls: Record<string, unknown>[],
  ): Promise<CallRecord[]> {
    // Today's open day (the embedded store answers its spend from in-memory sums), never in the future.
    const t = Math.max(to, now - 60_000);
    const recs = calls.map((c, i) =>
      buildRecord({
        provider: "openai",
        model: "gpt-4o-mini",
        input_uncached_tokens: 100,
        output_tokens: 20,
        ...c,
        workspace_id,
        event_id: `${idPrefix}-0000-7000-8000-${String(i).padStart(12, "0")}`,
        ts_start: t + i,
      }),
    );
    for (const b of backends) expect((await b.store.append(recs)).inserted.size, b.name).toBe(recs.length);
    return recs;
  }

  it("spend rows tied on cost are in one order on every store and path: keys by their bytes, none last", async () => {
    // The same call by each user (and customer): one cost. "B" < "a" < "ä" as bytes (not as the locale
    // collates them), U+FF01 before U+1F600 (UTF-16 units would put the surrogate pair first).
    const keys = ["ä", "\u{1F600}", undefined, "a", "\uFF01", "B"];
    await appendToday(
      "ties",
      "01950000",
      keys.map((k) => ({ user_id: k, customer_id: k, feature: k })),
    );
    const order = ["B", "a", "ä", "\uFF01", "\u{1F600}", null];
    // From today's midnight (the embedded store's open-day sums), and over a window of raw calls.
    for (const w of [
      { workspaceId: "ties", from: to },
      { workspaceId: "ties", from: to - DAY, to: now + DAY },
    ])
      for (const by of ["user_id", "customer_id", "feature"] as const) {
        const rows = (await same((s) => s.spend(w, by))) as { key: string | null }[];
        expect(
          rows.map((r) => r.key),
          `${by} from ${w.from}`,
        ).toEqual(order);
      }
  });

  it("the sums limits are rebuilt from, by tag: a call's own tags, not text inside another tag", async () => {
    const recs = await appendToday(
      "tags",
      "01960000",
      [['a","b'], ["b"], ["x\\"], ['\\"b'], []].map((tags, i) => ({ tags, input_uncached_tokens: 100 + i })),
    );
    const tagged = async (tag: string) =>
      same(
        (s) => s.sumCost({ workspaceId: "tags", from: to - DAY, to: now + DAY, tag }, [], false),
        (v) => sorted(v as unknown[]),
      );
    const cost = (r: CallRecord) => sorted([{ values: [], hour: null, cost_nanousd: r.cost_nanousd }]);
    expect(await tagged("b")).toEqual(cost(recs[1]!));
    expect(await tagged('a","b')).toEqual(cost(recs[0]!));
    expect(await tagged('\\"b')).toEqual(cost(recs[3]!));
  });

  it("money sums past int64 (ten calls at the largest cost a record takes) are exact on every store", async () => {
    const most = "999999999999999999";
    await appendToday(
      "big",
      "01970000",
      Array.from({ length: 12 }, (_, i) => ({
        cost_nanousd: most,
        user_id: `u${i % 3}`,
        customer_id: "c",
        feature: "f",
        agent_run_id: `run-${i % 2}`,
        agent_type: "t",
        attempt: i % 4 === 3 ? 2 : 1,
        status: i % 5 === 0 ? "error" : "ok",
      })),
    );
    const total = (12n * BigInt(most)).toString();
    const w = { workspaceId: "big", from: to - DAY, to: now + DAY };
    for (const f of [w, { workspaceId: "big", from: to }])
      for (const by of SPEND_DIMENSIONS) {
        const rows = (await same((s) => s.spend(f, by))) as { cost_nanousd: string }[];
        if (by === "feature") expect(rows.map((r) => r.cost_nanousd)).toEqual([total]);
      }
    const segments = (await same((s) => s.segments(w, SEGMENT_DIMENSIONS, true))) as Record<
      string,
      { cost_nanousd: string }[]
    >;
    expect(segments.feature!.map((r) => r.cost_nanousd)).toEqual([total]);
    expect(((await same((s) => s.userDays(w, 5))) as { cost_nanousd: string }[])[0]!.cost_nanousd).toBe(
      total,
    );
    expect(((await same((s) => s.agentRuns(w))) as { cost_nanousd: string }[])[0]!.cost_nanousd).toBe(total);
    await same((s) => featureRollup(s, w));
    await same((s) => customerRollup(s, w, now));
    for (const by of [[], ["customer_id"]] as SumField[][])
      expect(
        await same(
          (s) => s.sumCost(w, by, false),
          (v) => sorted(v as unknown[]),
        ),
      ).toEqual(sorted([{ values: by.map(() => "c"), hour: null, cost_nanousd: total }]));
    await same(
      (s) => s.sumCost(w, ["user_id"], true),
      (v) => sorted(v as unknown[]),
    );
    await same(
      (s) => s.runUsage("big", 0),
      (v) => sorted(v as unknown[]),
    );
  });

  it("retention: after purging whole months, long-range spend is the same from summaries", async () => {
    const before = await same((s) => s.spend({ workspaceId: "default" }, "day"));
    const rawBefore = utcMonthStart(now, -1);
    const deleted = await same((s) => s.purge(rawBefore, null));
    expect((deleted as { raw_deleted: number }).raw_deleted).toBeGreaterThan(0);
    await same((s) => s.retention("default"));
    expect(await same((s) => s.spend({ workspaceId: "default" }, "day"))).toEqual(before);
    await same((s) => s.spend({ workspaceId: "default", from: 0, deploymentOrUnset: "prod" }, "feature"));
    await same((s) => s.count({ workspaceId: "default" }));
    // A late retry of a purged call is still a duplicate.
    const old = records.filter((r) => r.ts_start < rawBefore).slice(0, 50);
    expect(await same(async (s) => (await s.append(old)).inserted.size)).toBe(0);
  });

  it("workspaces: one whose calls are raw only, in months a purge dropped from the summary (summary_months alone), holds calls", async () => {
    // It drops every summary month before this one. Its call is kept raw (after the raw horizon).
    const call = buildRecord({
      provider: "openai",
      model: "gpt-4o-mini",
      input_uncached_tokens: 10,
      output_tokens: 5,
      event_id: "01940000-0000-7000-8000-000000000001",
      ts_start: utcMonthStart(now, -1) + 3_600_000,
      workspace_id: "raw-only",
    });
    expect(await same(async (s) => (await s.append([call])).inserted.size)).toBe(1);
    // What each deletes differs (DuckDB's summary holds only the calls purged from raw, ClickHouse's every one).
    await Promise.all(backends.map((b) => b.store.purge(null, utcMonthStart(now))));
    expect(await same((s) => s.count({ workspaceId: "raw-only" }))).toBe(1);
    expect(await same((s) => s.workspaces())).toContainEqual({ id: "raw-only", calls: true });
    expect(await same((s) => s.workspace("raw-only"))).toEqual({ id: "raw-only", calls: true });
  });

  it("retention: a workspace whose calls are raw only, in months a purge dropped from the summary, gets every purge's horizons", async () => {
    // Last: after the test above, "raw-only"'s one call is a raw call of a month whose summary is gone.
    const month = utcMonthStart(now);
    expect(await same((s) => s.retention("raw-only"))).toEqual({
      raw_available_from: null,
      summary_available_from: month,
    });
    await Promise.all(backends.map((b) => b.store.purge(month, null)));
    expect(await same((s) => s.count({ workspaceId: "raw-only" }))).toBe(0);
    const horizons = await same((s) => s.retention("raw-only"));
    expect(horizons).toEqual({ raw_available_from: month, summary_available_from: month });
    // Its call is gone from the raw events and (ClickHouse) from the summary: an answer from 0 says so.
    expect(coverageOf(horizons as Retention, undefined, true).truncated).toBe(true);
  });
});
