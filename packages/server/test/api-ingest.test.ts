import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { usdToNano, uuidv7 } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { snakeKeys } from "../../core/test/snake-keys.js";
import { MAX_BATCH_RECORDS } from "../src/ingest/body.js";
import { MAX_STORE_BACKLOG } from "../src/ingest/service.js";
import { getJson, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
let key: string; // ingest key of workspace "ingest-ws"
let reader: string; // read key of the same workspace
const startedAt = Date.now() - 60_000;
const FROM = new Date(startedAt - 3_600_000).toISOString();

beforeAll(async () => {
  rt = await openTestRuntime();
  const mk = async (role: string) => {
    const res = await rt.app.request("/api/keys", {
      method: "POST",
      headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
      body: JSON.stringify({ workspace: "ingest-ws", role }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as Json).key as string;
  };
  key = await mk("ingest");
  reader = await mk("read");
});

afterAll(async () => {
  await rt?.close();
});

async function eventById(id: string): Promise<Json | undefined> {
  const { status, json } = await getJson(rt.app, reader, "/api/events?limit=100000");
  expect(status).toBe(200);
  return json.events.find((e: Json) => e.event_id === id);
}

async function totalCalls(): Promise<number> {
  const { status, json } = await getJson(
    rt.app,
    reader,
    `/api/spend?by=model&from=${encodeURIComponent(FROM)}`,
  );
  expect(status).toBe(200);
  return json.rows.reduce((s: number, r: Json) => s + r.calls, 0);
}

describe("POST /v1/events: ingest", () => {
  it("accepts a gzip body (content-encoding: gzip), as the OTLP route does", async () => {
    const batch = [validRecord({ feature: "gzipped" }), validRecord({ feature: "gzipped" })];
    const body = new Uint8Array(gzipSync(JSON.stringify(batch)));
    const { status, json } = await postEvents(rt.app, key, body, "", { "content-encoding": "gzip" });
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json).toMatchObject({ accepted: 2, duplicates: 0, rejected: 0 });
    expect((await eventById(batch[1]!.event_id as string))?.feature).toBe("gzipped");
  });

  it("accepts a valid batch, answers per item and prices each call", async () => {
    const batch = [
      validRecord(),
      validRecord({ model: "gpt-4o", input_uncached_tokens: 1234, output_tokens: 56 }),
    ];
    const { status, json } = await postEvents(rt.app, key, batch);
    expect(status).toBe(200);
    expect(json).toMatchObject({ accepted: 2, duplicates: 0, rejected: 0 });
    expect(json.results).toEqual([
      { index: 0, event_id: batch[0]!.event_id, status: "accepted" },
      { index: 1, event_id: batch[1]!.event_id, status: "accepted" },
    ]);
    for (const [i, rec] of batch.entries()) {
      const ev = await eventById(rec.event_id as string);
      expect(ev, `record ${i} readable`).toBeDefined();
      expect(ev.workspace_id).toBe("ingest-ws");
      expect(ev.cost_nanousd).toMatch(/^[1-9]\d*$/);
      expect(ev.priced).toBe(true);
      expect(ev.cost_source).toBe("computed");
      expect(ev.price_ref).toMatch(/^genai-prices@0\.1\.8:openai:/);
      expect(ev.input_uncached_tokens).toBe(rec.input_uncached_tokens);
      expect(ev.output_tokens).toBe(rec.output_tokens);
      // per-category costs explain the total
      const cats = Object.keys(ev).filter((k) => /^cost_.+_nanousd$/.test(k));
      expect(cats.length).toBeGreaterThan(0);
      expect(cats.reduce((s, k) => s + BigInt(ev[k]), 0n)).toBe(BigInt(ev.cost_nanousd));
    }
  });

  it("accepts the {events: [...]} envelope", async () => {
    const rec = validRecord();
    const { status, json } = await postEvents(rt.app, key, { events: [rec] });
    expect(status).toBe(200);
    expect(json.results[0]).toMatchObject({ status: "accepted", event_id: rec.event_id });
  });

  it("records an unknown model as unpriced (never a silent 0) and lists it as a coverage gap", async () => {
    const rec = validRecord({ model: "gpt-does-not-exist-9000" });
    const { status, json } = await postEvents(rt.app, key, [rec]);
    expect(status).toBe(200);
    expect(json.results[0].status).toBe("accepted");
    const ev = await eventById(rec.event_id as string);
    expect(ev.priced).toBe(false);
    expect(ev.price_ref).toBe("unpriced:openai:gpt-does-not-exist-9000");
    expect(ev.cost_nanousd).toBe("0");
    const gaps = await getJson(rt.app, reader, "/api/prices/unpriced");
    expect(gaps.status).toBe(200);
    expect(gaps.json.models).toContainEqual(
      expect.objectContaining({ provider: "openai", model: "gpt-does-not-exist-9000", calls: 1 }),
    );
  });

  it("normalizes usage_raw (+ api) when no token fields are given", async () => {
    const fixture = JSON.parse(
      readFileSync("/work/shared/fixtures/providers/openai/chat-completion.o3-mini.reasoning.json", "utf8"),
    );
    const rec = validRecord({
      model: "o3-mini",
      input_uncached_tokens: undefined,
      output_tokens: undefined,
      usage_raw: fixture.usage,
    });
    const { status, json } = await postEvents(rt.app, key, [rec]);
    expect(status, JSON.stringify(json)).toBe(200);
    const ev = await eventById(rec.event_id as string);
    const u = fixture.usage;
    expect(ev.input_uncached_tokens).toBe(u.prompt_tokens - u.prompt_tokens_details.cached_tokens);
    expect(ev.cache_read_tokens).toBe(u.prompt_tokens_details.cached_tokens);
    expect(ev.output_tokens).toBe(u.completion_tokens);
    expect(ev.reasoning_tokens).toBe(u.completion_tokens_details.reasoning_tokens);
    expect(ev.usage_raw).toEqual(u);
    expect(ev.priced).toBe(true);
    expect(ev.price_ref).toMatch(/^genai-prices@0\.1\.8:openai:o3-mini/);
    expect(BigInt(ev.cost_nanousd)).toBeGreaterThan(0n);
  });

  it("normalizes a Gemini usage_raw in snake_case (Python's model_dump()) to the cost its conformance vector pins", async () => {
    const vectors = JSON.parse(readFileSync("/work/shared/fixtures/conformance/cost-vectors.json", "utf8"));
    const v = vectors.find((x: Json) => x.model === "gemini-2.5-flash");
    const usage = snakeKeys(v.usage_raw) as Json;
    expect(usage.cached_content_token_count).toBe(v.usage_raw.cachedContentTokenCount);
    const gemini = { provider: "google", api: "google.generate_content", model: v.model };
    const rec = validRecord({
      ...gemini,
      input_uncached_tokens: undefined,
      output_tokens: undefined,
      usage_raw: usage,
    });
    const both = validRecord({
      ...gemini,
      input_uncached_tokens: undefined,
      output_tokens: undefined,
      usage_raw: { ...v.usage_raw, prompt_token_count: v.usage_raw.promptTokenCount },
    });
    const { status, json } = await postEvents(rt.app, key, [rec, both]);
    expect(status, JSON.stringify(json)).toBe(207);
    expect(json.results[0].status).toBe("accepted");
    // The same field under both names is refused by name, as Google refuses it: not read by one of them.
    expect(json.results[1].status).toBe("rejected");
    expect(json.results[1].errors[0].field).toBe("usage_raw.promptTokenCount");
    expect(json.results[1].errors[0].reason).toContain(
      "sent both as promptTokenCount and as prompt_token_count",
    );
    const ev = await eventById(rec.event_id as string);
    expect(ev.usage_raw).toEqual(usage);
    expect(ev.cache_read_tokens).toBe(v.expected.cached_read_tokens);
    expect(ev.output_tokens).toBe(v.expected.output_tokens);
    expect(BigInt(ev.cost_nanousd)).toBe(usdToNano(String(v.expected.total_cost_usd)));
  });

  it("is idempotent: the same batch twice answers duplicate and is not counted twice", async () => {
    const batch = [validRecord(), validRecord(), validRecord()];
    const first = await postEvents(rt.app, key, batch);
    expect(first.status).toBe(200);
    expect(first.json.accepted).toBe(3);
    const before = await totalCalls();
    const second = await postEvents(rt.app, key, batch);
    expect(second.status).toBe(200);
    expect(second.json).toMatchObject({ accepted: 0, duplicates: 3, rejected: 0 });
    expect(second.json.results.map((r: Json) => r.status)).toEqual(["duplicate", "duplicate", "duplicate"]);
    expect(await totalCalls()).toBe(before);
  });

  it("treats an upper-case spelling of a stored event_id as the same event", async () => {
    const rec = validRecord();
    expect((await postEvents(rt.app, key, [rec])).json.accepted).toBe(1);
    const before = await totalCalls();
    const again = await postEvents(rt.app, key, [
      { ...rec, event_id: (rec.event_id as string).toUpperCase() },
    ]);
    expect(again.status).toBe(200);
    expect(again.json.results[0].status).toBe("duplicate");
    expect(await totalCalls()).toBe(before);
  });

  it("answers concurrent retries of one batch with exactly one acceptance per event", async () => {
    const batch = Array.from({ length: 20 }, () => validRecord());
    const before = await totalCalls();
    const answers = await Promise.all([1, 2, 3].map(() => postEvents(rt.app, key, batch)));
    for (const a of answers) expect(a.status).toBe(200);
    expect(answers.reduce((s, a) => s + a.json.accepted, 0)).toBe(20);
    expect(answers.reduce((s, a) => s + a.json.duplicates, 0)).toBe(40);
    expect(await totalCalls()).toBe(before + 20);
  });

  it("accepts the first of two records sharing an event_id inside one batch, the second is a duplicate", async () => {
    const rec = validRecord();
    const before = await totalCalls();
    const { status, json } = await postEvents(rt.app, key, [rec, { ...rec, output_tokens: 999 }]);
    expect(status).toBe(200);
    expect(json).toMatchObject({ accepted: 1, duplicates: 1, rejected: 0 });
    expect(json.results.map((r: Json) => r.status)).toEqual(["accepted", "duplicate"]);
    expect(await totalCalls()).toBe(before + 1);
    expect((await eventById(rec.event_id as string)).output_tokens).toBe(20);
  });

  it("answers a mixed batch with 207: valid items stored, invalid ones not", async () => {
    const good1 = validRecord();
    const bad1 = validRecord({ output_tokens: -1 });
    const good2 = validRecord({ feature: "mixed" });
    const bad2 = validRecord({ provider: undefined });
    const before = await totalCalls();
    const { status, json } = await postEvents(rt.app, key, [good1, bad1, good2, bad2]);
    expect(status).toBe(207);
    expect(json).toMatchObject({ accepted: 2, duplicates: 0, rejected: 2 });
    expect(json.results.map((r: Json) => r.status)).toEqual(["accepted", "rejected", "accepted", "rejected"]);
    expect(json.results[1]).toMatchObject({ index: 1, event_id: bad1.event_id });
    expect(json.results[1].errors[0].field).toBe("output_tokens");
    expect(json.results[3].errors[0].field).toBe("provider");
    expect(await totalCalls()).toBe(before + 2);
    expect(await eventById(good1.event_id as string)).toBeDefined();
    expect(await eventById(good2.event_id as string)).toBeDefined();
    expect(await eventById(bad1.event_id as string)).toBeUndefined();
    expect(await eventById(bad2.event_id as string)).toBeUndefined();
  });

  it("answers 422 when every item is invalid", async () => {
    const { status, json } = await postEvents(rt.app, key, [validRecord({ model: 5 })]);
    expect(status).toBe(422);
    expect(json).toMatchObject({ accepted: 0, duplicates: 0, rejected: 1 });
  });

  it("keeps a reported cost as sent, with cost_source reported", async () => {
    const rec = validRecord({ cost_nanousd: 123_456_789 });
    const big = validRecord({
      cost_nanousd: "900000000000000001", // beyond 2^53: must survive exactly
      cost_input_uncached_nanousd: "900000000000000000",
      cost_output_nanousd: "1",
    });
    const { status, json } = await postEvents(rt.app, key, [rec, big]);
    expect(status, JSON.stringify(json)).toBe(200);
    const ev = await eventById(rec.event_id as string);
    expect(ev.cost_nanousd).toBe("123456789");
    expect(ev.cost_source).toBe("reported");
    expect(ev.price_ref).toBe("reported");
    expect(ev.priced).toBe(true);
    const evBig = await eventById(big.event_id as string);
    expect(evBig.cost_nanousd).toBe("900000000000000001");
    expect(evBig.cost_input_uncached_nanousd).toBe("900000000000000000");
    expect(evBig.cost_output_nanousd).toBe("1");
    expect(evBig.cost_source).toBe("reported");
  });

  it("refuses a call whose computed cost is past int64 by name, never storing it wrapped negative", async () => {
    // Within every field's bounds (1e12 searches), but $10 per thousand makes 1e19 nano-USD: past the
    // int64 a cost is stored in, it came back as -8446744073708951616 (a negative $8.4 billion in every sum).
    const good = validRecord({ feature: "int64-neighbour" });
    const huge = validRecord({
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      api: "anthropic.messages",
      web_search_requests: 1_000_000_000_000,
    });
    const { status, json } = await postEvents(rt.app, key, [good, huge]);
    expect(status, JSON.stringify(json)).toBe(207);
    expect(json.results[0]).toMatchObject({ status: "accepted" });
    expect(json.results[1]).toMatchObject({ status: "rejected", event_id: huge.event_id });
    expect(json.results[1].errors).toEqual([
      { field: "cost_nanousd", reason: expect.stringContaining("int64") },
    ]);
    expect(await eventById(good.event_id as string)).toBeDefined();
    expect(await eventById(huge.event_id as string)).toBeUndefined();
  });

  it("refuses a ts_start more than 24 h ahead of the server's clock by name; a client clock a little ahead is fine", async () => {
    const ahead = validRecord({ ts_start: Date.now() + 3_600_000 }); // a skewed client clock: stored
    const tomorrow = validRecord({ ts_start: Date.now() + 25 * 3_600_000 });
    const future = validRecord({ ts_start: "2099-06-01T00:00:00Z" });
    const { status, json } = await postEvents(rt.app, key, [ahead, tomorrow, future]);
    expect(status, JSON.stringify(json)).toBe(207);
    expect(json.results.map((r: Json) => r.status)).toEqual(["accepted", "rejected", "rejected"]);
    for (const r of json.results.slice(1))
      expect(r.errors).toEqual([{ field: "ts_start", reason: expect.stringContaining("24 hours ahead") }]);
    expect(await eventById(ahead.event_id as string)).toBeDefined();
    expect(await eventById(future.event_id as string)).toBeUndefined();
  });

  it("derives latency_ms from ts_end - ts_start", async () => {
    const t = Date.UTC(2024, 0, 1);
    const rec = validRecord({ ts_start: t, ts_end: t + 1234 });
    expect((await postEvents(rt.app, key, [rec])).status).toBe(200);
    const ev = await eventById(rec.event_id as string);
    expect(ev.latency_ms).toBe(1234);
    expect(ev.ts_start).toBe(t);
  });

  // Regression guard (found by these tests, now fixed): latency_ms is derived as ts_end - ts_start without the 7-day bound that an
  // explicit latency_ms gets, and is stored in an INTEGER (int32) column through an Int32Array, so a
  // span longer than 2^31 ms (~24.8 days) wraps silently.
  it("a ts_end 60 days after ts_start is rejected or stored with its true latency", async () => {
    const t = Date.UTC(2024, 0, 1);
    const rec = validRecord({ ts_start: t, ts_end: t + 60 * 86_400_000 });
    const { status } = await postEvents(rt.app, key, [rec]);
    if (status === 200) {
      const ev = await eventById(rec.event_id as string);
      expect(ev.latency_ms).toBe(60 * 86_400_000); // before the fix: 889032704 (int32 wrap)
    } else {
      expect(status).toBe(422);
    }
  });

  // Regression guard (found by these tests, now fixed): zod's record parser assigns metadata["__proto__"] on a plain object, which
  // is a no-op for a string, so the key vanishes while the record is accepted.
  it('a metadata key "__proto__" is stored or refused, never silently dropped', async () => {
    const rec = validRecord();
    const raw = `${JSON.stringify(rec).slice(0, -1)},"metadata":{"__proto__":"x","a":"b"}}`;
    const { status } = await postEvents(rt.app, key, `[${raw}]`);
    if (status === 200) {
      const { metadata } = await eventById(rec.event_id as string);
      expect(metadata.a).toBe("b");
      expect(Object.keys(metadata)).toContain("__proto__"); // before the fix: ["a"]
    } else expect(status).toBe(422);
  });

  // A lone UTF-16 surrogate (valid in JSON as an escape) cannot be stored as sent: stored as U+FFFD it
  // would silently change the value, so it is refused, naming the field.
  it.each(["user_id", "api", "provider", "model"])("refuses a lone surrogate in %s", async (field) => {
    const rec = validRecord({ [field]: "x\ud800" });
    const { status, json } = await postEvents(rt.app, key, [rec]);
    expect(status).toBe(422);
    expect(JSON.stringify(json)).toContain(field);
    expect(JSON.stringify(json)).toContain("lone surrogate");
    expect(await eventById(rec.event_id as string)).toBeUndefined();
  });

  it("stores a record with every optional field filled and reads it back", async () => {
    const id = uuidv7();
    const t = Date.now() - 5_000;
    const rec = validRecord({
      event_id: id,
      ts_start: t,
      trace_id: "t1",
      span_id: "s1",
      parent_span_id: "p1",
      ts_end: t + 500,
      ttft_ms: 100,
      kind: "llm",
      model_requested: "gpt-4o-mini",
      stream: true,
      service_tier: "default",
      batch: false,
      status: "ok",
      http_status: 200,
      attempt: 2,
      request_id: "req-1",
      cache_read_tokens: 10,
      reasoning_tokens: 5,
      user_id: "u1",
      customer_id: "c1",
      feature: "f1",
      deployment: "prod",
      prompt_version: "v1",
      agent_run_id: "r1",
      agent_type: "a1",
      session_id: "sess",
      route: "/x",
      variant: "B",
      tags: ["a", "b"],
      metadata: { k: "v" },
      data_mode: "test",
    });
    const { status, json } = await postEvents(rt.app, key, [rec]);
    expect(status, JSON.stringify(json)).toBe(200);
    const ev = await eventById(id);
    for (const [k, v] of Object.entries(rec)) if (k !== "ts_end") expect(ev[k], k).toEqual(v);
    expect(ev.latency_ms).toBe(500);
  });
});

describe("POST /v1/events: output parts", () => {
  it("refuses reasoning + audio output that add up to more than the output", async () => {
    const rt = await openTestRuntime();
    try {
      const { status, json } = await postEvents(rt.app, rt.rootToken, [
        validRecord({ output_tokens: 100, reasoning_tokens: 60, output_audio_tokens: 60 }),
      ]);
      expect(status).toBe(422);
      expect(json.results[0].errors[0].field).toBe("output_audio_tokens");
    } finally {
      await rt.close();
    }
  });
});

describe("POST /v1/events: a store that falls behind", () => {
  it("past MAX_STORE_BACKLOG records waiting, a batch is refused at once (503), not held in memory; the rest are stored once", async () => {
    const own = await openTestRuntime();
    const { append } = own.store;
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    // A store that does not answer until released: every batch waits for its commit meanwhile.
    own.store.append = async (records) => {
      await held;
      own.store.append = append;
      return own.store.append(records);
    };
    try {
      const batch = JSON.stringify(Array.from({ length: MAX_BATCH_RECORDS }, () => validRecord()));
      const post = () => postEvents(own.app, own.rootToken, batch);
      // A client that times out and sends its batch again, as the SDK does, while the store is silent.
      const sent: ReturnType<typeof post>[] = [];
      let refused: Awaited<ReturnType<typeof post>> | undefined;
      for (let i = 0; i < MAX_STORE_BACKLOG / MAX_BATCH_RECORDS + 5 && !refused; i++) {
        const p = post();
        sent.push(p);
        const answer = await Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), 300))]);
        if (answer) refused = answer;
      }
      expect(refused?.status).toBe(503);
      expect(refused?.json.error).toMatchObject({ code: "store_busy" });
      expect(sent.length).toBeLessThanOrEqual(MAX_STORE_BACKLOG / MAX_BATCH_RECORDS + 1);

      release();
      const answers = await Promise.all(sent.slice(0, -1));
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      expect(answers.reduce((n, a) => n + a.json.accepted, 0)).toBe(MAX_BATCH_RECORDS);
      expect(await own.store.count({ workspaceId: "default" })).toBe(MAX_BATCH_RECORDS);
      // Room again: the refused batch goes through (all duplicates by now).
      expect((await post()).json).toMatchObject({ accepted: 0, duplicates: MAX_BATCH_RECORDS });
    } finally {
      release();
      own.store.append = append;
      await own.close();
    }
  }, 60_000);
});
