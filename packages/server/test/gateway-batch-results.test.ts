// Batch results downloaded through the gateway, with the official SDKs, against the mock upstream (real
// reply bodies in the providers' documented batch envelopes): each answered request is recorded once as
// the call it was, priced at the batch rate, and counted against budgets once however often it is read.

import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import Anthropic from "@anthropic-ai/sdk";
import {
  type Api,
  type BatchFamily,
  type BatchResult,
  BatchResultsReader,
  batchResult,
  type CallRecord,
  extractFromResponse,
  PricingEngine,
} from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BatchRecords, batchResultsSource, pointResultsUrlsAt } from "../src/gateway/batch-results.js";
import { publicUrlFromEnv } from "../src/gateway/config.js";
import type { IngestResponse } from "../src/ingest/service.js";
import {
  adminRequest,
  gatewayRecords,
  type Json,
  nanoChat,
  postEvents,
  startTestGateway,
  validRecord,
} from "./helpers.js";
import {
  anthropicBatchResults,
  BATCH_FIXTURES,
  fixture,
  imageToolBatchOutput,
  longTierBatchOutput,
  type MockUpstream,
  openaiBatchOutput,
  startMockUpstream,
} from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
const engine = new PricingEngine();
const FAST = { "x-mock-chunk-delay-ms": "0" };

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(mock.url);
});
afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

/** A port free now (for a gateway that must know its own URL before it starts). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const api = async (method: string, path: string, body?: unknown): Promise<Json> =>
  (await adminRequest(gw, method, path, body)).json;

/** The batch records of a feature, once there are `n` of them, and a moment for any more. */
async function batchRecords(feature: string, n: number, g = gw): Promise<CallRecord[]> {
  const find = async () => (await gatewayRecords(g.runtime)).filter((r) => r.batch && r.feature === feature);
  await vi.waitFor(async () => expect((await find()).length).toBeGreaterThanOrEqual(n), {
    timeout: 5_000,
    interval: 20,
  });
  await sleep(150);
  return find();
}

/**
 * Each record is its fixture's reply exactly (found by the request id `idOf` gives it): usage, and the
 * cost core computes for it at the batch rate.
 */
function expectBatchCalls(
  records: CallRecord[],
  provider: string,
  fixtures: readonly string[],
  apis: Api[],
  idOf: (i: number, body: Json) => string,
) {
  expect(records).toHaveLength(fixtures.length);
  fixtures.forEach((rel, i) => {
    const body = JSON.parse(fixture(rel));
    const rec = records.find((r) => r.request_id === idOf(i, body));
    expect(rec, rel).toBeDefined();
    const usage = extractFromResponse(apis[i]!, body);
    expect(rec).toMatchObject({ ...usage.usage, api: apis[i], model: body.model });
    const at = rec!.ts_start;
    const batch = engine.price({ provider, model: body.model, usage: usage.usage, at, batch: true });
    const list = engine.price({ provider, model: body.model, usage: usage.usage, at });
    expect(rec!.cost_nanousd, rel).toBe(batch.cost.total_nanousd);
    expect(rec!.cost_nanousd < list.cost.total_nanousd).toBe(true);
    expect(rec!.price_ref).toContain(";batch=0.5");
    expect(rec).toMatchObject({
      batch: true,
      stream: false,
      status: "ok",
      provider,
      cost_source: "computed",
    });
  });
}

describe("OpenAI: a batch output file read through the gateway", () => {
  const openai = new OpenAI({ apiKey: "sk-test", baseURL: "http://x/v1", maxRetries: 0 });
  const client = () =>
    openai.withOptions({
      baseURL: `${gw.url}/v1`,
      defaultHeaders: { ...FAST, "x-tollgate-feature": "nightly-batch" },
    });

  it("reaches the app unchanged; each answered request is recorded at the batch rate, once, and charged once", async () => {
    await api("POST", "/api/budgets", {
      id: "nightly",
      scope: { feature: "nightly-batch" },
      window: "day",
      limit_usd: "10",
    });
    const text = await (await client().files.content("file-batch-output")).text();
    expect(text).toBe(openaiBatchOutput());
    const records = await batchRecords("nightly-batch", 4);
    expectBatchCalls(
      records,
      "openai",
      BATCH_FIXTURES.openai,
      ["openai.chat", "openai.chat", "openai.embeddings", "openai.responses"],
      (i) => `req_batch_${i}`,
    );
    // As the provider answered: its request id, its reply's creation; the embeddings one is no LLM call.
    const chat = records.find((r) => r.request_id === "req_batch_0")!;
    expect(chat.ts_start).toBe(JSON.parse(fixture(BATCH_FIXTURES.openai[0])).created * 1000);
    expect(records.find((r) => r.api === "openai.embeddings")!.kind).toBe("embedding");
    expect(records.map((r) => r.request_id).sort()).toEqual([0, 1, 2, 3].map((i) => `req_batch_${i}`));
    // A day's budget counts the calls made today: the fixtures' replies are months old, bar the embeddings'
    // (it says not when; recorded when read).
    const today = new Date().setUTCHours(0, 0, 0, 0);
    const total = records.filter((r) => r.ts_start >= today).reduce((a, r) => a + r.cost_nanousd, 0n);
    expect(total > 0n).toBe(true);
    expect((await api("GET", "/api/budgets/nightly")).spend_nanousd).toBe(total.toString());
    // Nothing left waiting for the store (what /metrics reports).
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/^tollgate_batch_results_waiting 0$/m);
    // Read again: nothing stored twice, nothing charged twice.
    await (await client().files.content("file-batch-output")).text();
    await sleep(300);
    expect(await batchRecords("nightly-batch", 4)).toHaveLength(4);
    expect((await api("GET", "/api/budgets/nightly")).spend_nanousd).toBe(total.toString());
  });

  it("a result whose service tier is an overlong name is recorded, its tier cut to the field's length", async () => {
    const c = openai.withOptions({
      baseURL: `${gw.url}/v1`,
      defaultHeaders: { ...FAST, "x-tollgate-feature": "batch-long-tier" },
    });
    expect(await (await c.files.content("file-batch-output-long-tier")).text()).toBe(longTierBatchOutput());
    const [rec] = await batchRecords("batch-long-tier", 1);
    expect(rec).toMatchObject({ request_id: "req_batch_tier", batch: true, service_tier: "t".repeat(64) });
  });

  it("a request whose image generation tool made an image: the image is a call of its own, at the batch rate", async () => {
    const c = openai.withOptions({
      baseURL: `${gw.url}/v1`,
      defaultHeaders: { ...FAST, "x-tollgate-feature": "batch-image-tool" },
    });
    expect(await (await c.files.content("file-batch-output-image-tool")).text()).toBe(imageToolBatchOutput());
    const [image, main] = (await batchRecords("batch-image-tool", 2)).sort((a, b) =>
      a.api!.localeCompare(b.api!),
    );
    expect(main).toMatchObject({ api: "openai.responses", batch: true, parent_event_id: null });
    // gpt-image-1 at half its list price: (25 × $5 + 272 × $40 per million) / 2.
    expect(image).toMatchObject({
      api: "openai.images",
      model: "gpt-image-1",
      batch: true,
      request_id: "req_batch_img",
      parent_event_id: main!.event_id,
      feature: "batch-image-tool",
      cost_nanousd: 5_502_500n,
    });
  });

  it("any other file (a batch's input) is relayed and recorded as the download it is, nothing more", async () => {
    const c = openai.withOptions({
      baseURL: `${gw.url}/v1`,
      defaultHeaders: { ...FAST, "x-tollgate-feature": "batch-input" },
    });
    const { data, response } = await c.files.content("file-batch-input").withResponse();
    expect(await data.text()).toContain('"custom_id":"request-0"');
    await sleep(300);
    const mine = (await gatewayRecords(gw.runtime)).filter((r) => r.feature === "batch-input");
    expect(mine).toMatchObject([{ kind: "other", batch: false, cost_nanousd: 0n }]);
    expect(mine[0]!.event_id).toBe(response.headers.get("x-tollgate-event-id"));
  });
});

describe("Anthropic: message batches through a gateway that knows its public URL", () => {
  // The SDK reads results from the batch's results_url, absolute: TOLLGATE_PUBLIC_URL makes it the gateway.
  let pub: Awaited<ReturnType<typeof startTestGateway>>;
  let base: string;
  beforeAll(async () => {
    // The port is free when asked, but another process may take it before the gateway does: try again.
    for (let tries = 1; ; tries++) {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      try {
        pub = await startTestGateway(mock.url, { publicUrl: base }, { port });
        return;
      } catch (e) {
        if (tries === 5 || !/EADDRINUSE/.test(String(e))) throw e;
      }
    }
  });
  afterAll(() => pub?.stop());
  const get = (g: { url: string }, path: string) =>
    fetch(`${g.url}${path}`, { headers: { "x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01" } });

  it("the SDK reads the results through it, unchanged; each succeeded request is recorded at the batch rate", async () => {
    const through = new Anthropic({
      apiKey: "sk-ant-test",
      baseURL: pub.url,
      maxRetries: 0,
      defaultHeaders: { ...FAST, "x-tollgate-feature": "claude-batch" },
    });
    const direct = new Anthropic({
      apiKey: "sk-ant-test",
      baseURL: mock.url,
      maxRetries: 0,
      defaultHeaders: FAST,
    });
    const read = async (c: Anthropic) => {
      const out: unknown[] = [];
      for await (const r of await c.messages.batches.results("msgbatch_01")) out.push(r);
      return out;
    };
    const got = await read(through);
    expect(got).toEqual(await read(direct));
    expect(got).toHaveLength(4);
    const records = await batchRecords("claude-batch", 2, pub);
    // Its message id names each; Anthropic's results say not when a request ran: recorded when read.
    expectBatchCalls(
      records,
      "anthropic",
      BATCH_FIXTURES.anthropic,
      ["anthropic.messages", "anthropic.messages"],
      (_, body) => body.id,
    );
  });

  it("results_url names the public URL; nothing else changes; without one it is relayed as sent", async () => {
    const direct = (await (await fetch(`${mock.url}/v1/messages/batches/msgbatch_07`)).json()) as Json;
    const res = await get(pub, "/v1/messages/batches/msgbatch_07");
    const body = (await res.json()) as Json;
    expect(body.results_url).toBe(`${base}/v1/messages/batches/msgbatch_07/results`);
    expect({ ...body, results_url: direct.results_url }).toEqual(direct);
    expect(Number(res.headers.get("content-length"))).toBe(Buffer.byteLength(JSON.stringify(body)));
    const list = (await (await get(pub, "/v1/messages/batches")).json()) as Json;
    expect(list.data.map((b: Json) => b.results_url)).toEqual(
      ["msgbatch_01", "msgbatch_02"].map((id) => `${base}/v1/messages/batches/${id}/results`),
    );
    // The default gateway knows no public URL: the upstream's, byte for byte.
    const plain = await get(gw, "/v1/messages/batches/msgbatch_07");
    expect(await plain.text()).toBe(
      await (await fetch(`${mock.url}/v1/messages/batches/msgbatch_07`)).text(),
    );
  });

  it("a results_url elsewhere than the upstream is left as it is; a public URL's path is kept", () => {
    const json = '{"id":"b","results_url": "https://files.example.com/x","other":"https://up/v1/messages"}';
    expect(pointResultsUrlsAt(json, "https://up/v1", "http://gw/v1")).toBe(json);
    expect(
      pointResultsUrlsAt(
        '{"results_url":"https://up/v1/messages/batches/b/results"}',
        "https://up/v1",
        "https://x/llm/v1",
      ),
    ).toBe('{"results_url":"https://x/llm/v1/messages/batches/b/results"}');
  });
});

describe("batch results and limits", () => {
  it("count as spend for budgets and agent runs, not as a run's LLM calls nor against tokens per minute", async () => {
    await api("PUT", "/api/agents/batcher", { max_llm_calls: 3 });
    await api("POST", "/api/rate-limits", {
      id: "tpm-batch",
      scope: { feature: "tpm-batch" },
      tokens_per_min: 2000,
    });
    const c = new OpenAI({
      apiKey: "sk-test",
      baseURL: `${gw.url}/v1`,
      maxRetries: 0,
      defaultHeaders: {
        ...FAST,
        "x-tollgate-agent-run-id": "batch-run-1",
        "x-tollgate-agent-type": "batcher",
        "x-tollgate-feature": "tpm-batch",
      },
    });
    const live = () => nanoChat(c);
    expect(await live()).toBe("ok");
    await (await c.files.content("file-batch-output-2")).text(); // 4 results, ~8,800 tokens of past work
    const records = await batchRecords("tpm-batch", 4);
    expect(await live()).toBe("ok"); // neither the run's third call nor over 2,000 tokens a minute
    const run = await api("GET", "/api/runs/batch-run-1");
    expect(run.usage.llm_calls).toBe(2);
    const live2 = (await gatewayRecords(gw.runtime)).filter(
      (r) => r.agent_run_id === "batch-run-1" && !r.batch,
    );
    const spend = [...records, ...live2].reduce((a, r) => a + r.cost_nanousd, 0n);
    expect(run.usage.cost_nanousd).toBe(spend.toString());
  });

  it("a batch's call sent to the events API (the SDK's) counts the same: as spend, not as a call", async () => {
    await api("PUT", "/api/agents/batcher3", { max_llm_calls: 1 });
    const run = { agent_run_id: "batch-run-3", agent_type: "batcher3", batch: true };
    const posted = await postEvents(gw.runtime.app, gw.runtime.rootToken, [
      validRecord(run),
      validRecord(run),
    ]);
    expect(posted.json.accepted).toBe(2);
    const state = await api("GET", "/api/runs/batch-run-3");
    expect(state).toMatchObject({ state: "running", usage: { llm_calls: 0 } });
    expect(BigInt(state.usage.cost_nanousd) > 0n).toBe(true);
    // The agent-run rollup agrees.
    const rollup = await api("GET", "/api/rollups/agent-runs?from=1d");
    expect(rollup.agent_types.find((t: Json) => t.agent_type === "batcher3")).toMatchObject({
      runs: 1,
      llm_calls_per_run: 0,
    });
  });

  it("a run rebuilt after a restart does not count its batch results as LLM calls either", async () => {
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    try {
      await adminRequest(first, "PUT", "/api/agents/batcher2", { max_llm_calls: 2 });
      const h = { ...FAST, "x-tollgate-agent-run-id": "batch-run-2", "x-tollgate-agent-type": "batcher2" };
      await fetch(`${first.url}/v1/files/file-batch-output/content`, {
        headers: { authorization: "Bearer sk", ...h },
      }).then((r) => r.text());
      await first.runtime.recorder.flush();
      await vi.waitFor(
        async () =>
          expect(
            (await gatewayRecords(first.runtime)).filter((r) => r.agent_run_id === "batch-run-2").length,
          ).toBe(5),
        { timeout: 5_000, interval: 20 },
      );
      await first.stop();
      const second = await startTestGateway(mock.url, {}, { dataDir: first.dataDir, keepDataDir: true });
      try {
        const { json: runNow } = await adminRequest(second, "GET", "/api/runs/batch-run-2");
        expect(runNow.usage.llm_calls).toBe(0);
        expect(runNow.state).toBe("running");
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(first.dataDir, { recursive: true, force: true });
    }
  });
});

describe("BatchResultsReader", () => {
  const read = (family: BatchFamily, text: string, pieces: number, whole = true) => {
    const found: BatchResult[] = [];
    const reader = new BatchResultsReader(family, (group) => found.push(...group));
    const buf = Buffer.from(text);
    const step = Math.max(1, Math.ceil(buf.length / pieces));
    for (let at = 0; at < buf.length; at += step) reader.push(buf.subarray(at, at + step));
    reader.end(whole);
    return found;
  };

  it("reads lines however the chunks split them (UTF-8 included), with or without a final newline", () => {
    const openai = openaiBatchOutput();
    const expected = openai
      .trim()
      .split("\n")
      .map((l) => batchResult("openai", JSON.parse(l)))
      .filter((r) => r !== null);
    expect(expected).toHaveLength(4);
    for (const pieces of [1, 7, openai.length]) expect(read("openai", openai, pieces)).toEqual(expected);
    expect(read("anthropic", anthropicBatchResults(), 13).map((r) => r.customId)).toEqual(["msg-0", "msg-1"]);
    const multibyte = openai.replace('"request-0"', '"réquest-0 ✓"');
    expect(read("openai", multibyte, multibyte.length)[0]!.customId).toBe("réquest-0 ✓");
  });

  it("a download cut short keeps the lines that came whole, never the one cut", () => {
    const text = anthropicBatchResults(); // no final newline: its last line is whole only at the end
    const lines = text.split("\n");
    const cut = `${lines.slice(0, 3).join("\n")}\n${lines[3]!.slice(0, 40)}`;
    expect(read("anthropic", cut, 5, false).map((r) => r.customId)).toEqual(["msg-0", "msg-1"]);
    const firstOnly = `${lines[0]}\n${lines[1]!.slice(0, -2)}`;
    expect(read("anthropic", firstOnly, 3, false).map((r) => r.customId)).toEqual(["msg-0"]);
  });

  it("stops at a first line that is no result (another kind of file), and hands results on in groups", () => {
    expect(read("openai", `not json\n${openaiBatchOutput()}`, 3)).toEqual([]);
    const groups: number[] = [];
    const reader = new BatchResultsReader("openai", (g) => groups.push(g.length));
    const line = openaiBatchOutput().split("\n")[0]!;
    reader.push(Buffer.from(`${line}\n`.repeat(1_200)));
    reader.end(true);
    expect(groups).toEqual([500, 500, 200]);
  });

  it("lets a binary file go at its first byte, and skips a line too long to hold (16 MB) but not the next", () => {
    const line = openaiBatchOutput().split("\n")[0]!;
    expect(read("openai", `\u0000\u0001PNG\n${line}\n`, 2)).toEqual([]);
    const long = `{"custom_id":"huge","pad":"${"a".repeat(17 * 1024 * 1024)}"}`;
    const found = read("openai", `${line}\n${long}\n${line}\n`, 300);
    expect(found.map((r) => r.customId)).toEqual(["request-0", "request-0"]);
  });

  it("knows the downloads that may be results, by method, path and provider; ids decoded", () => {
    expect(batchResultsSource("GET", "/files/file-abc/content", "openai")).toEqual({
      family: "openai",
      id: "file-abc",
    });
    expect(batchResultsSource("GET", "/files/file%2Dabc/content", "openai")).toEqual({
      family: "openai",
      id: "file-abc",
    });
    expect(batchResultsSource("GET", "/messages/batches/msgbatch_1/results", "anthropic")).toEqual({
      family: "anthropic",
      id: "msgbatch_1",
    });
    // Anthropic's Files API has the same path as OpenAI's: its files are no batch output.
    expect(batchResultsSource("GET", "/files/file-abc/content", "anthropic")).toBeNull();
    expect(batchResultsSource("POST", "/files/file-abc/content", "openai")).toBeNull();
    expect(batchResultsSource("GET", "/files/file-abc", "openai")).toBeNull();
  });

  it("reads the same whatever the chunks: a first line naming its request late is no results file", () => {
    const [first, ...rest] = openaiBatchOutput().split("\n");
    const parsed = JSON.parse(first!);
    const late = JSON.stringify({ pad: "x".repeat(2_000), ...parsed });
    for (const pieces of [1, 3, 40, 20_000])
      expect(read("openai", [late, ...rest].join("\n"), pieces)).toEqual([]);
    const spaced = `${" ".repeat(1_100)}${openaiBatchOutput()}`;
    for (const pieces of [1, 5, 9_000]) expect(read("openai", spaced, pieces)).toHaveLength(4);
  });

  it("lets a JSON document go once its first line runs past where a result names its request", () => {
    let parsed = 0;
    const reader = new BatchResultsReader("openai", () => parsed++);
    const doc = Buffer.from(`{"object":"list","data":[${'{"x":1},'.repeat(200_000)}{"x":1}]}`);
    for (let at = 0; at < doc.length; at += 4096) reader.push(doc.subarray(at, at + 4096));
    reader.end(true);
    expect(parsed).toBe(0);
  });
});

describe("TOLLGATE_PUBLIC_URL", () => {
  it("is normalised, and refused with a reason when clients could not use it as given", () => {
    expect(publicUrlFromEnv(undefined)).toBeNull();
    expect(publicUrlFromEnv("  ")).toBeNull();
    expect(publicUrlFromEnv(" https://LLM.example.com/ ")).toBe("https://llm.example.com");
    expect(publicUrlFromEnv("https://example.com/llm/")).toBe("https://example.com/llm");
    expect(publicUrlFromEnv('https://example.com/a"b')).toBe("https://example.com/a%22b");
    expect(() => publicUrlFromEnv("llm.example.com")).toThrow(/must be a URL/);
    expect(() => publicUrlFromEnv("ftp://example.com")).toThrow(/http\(s\)/);
    expect(() => publicUrlFromEnv("https://user:pw@example.com")).toThrow(/credentials/);
    expect(() => publicUrlFromEnv("https://example.com/?")).toThrow(/query or fragment/);
    expect(() => publicUrlFromEnv("https://example.com/v1")).toThrow(/without \/v1/);
  });
});

describe("BatchRecords", () => {
  /** An ingest that stores when told (the real one is exercised through the gateway above). */
  function slowIngest() {
    const pending: { n: number; done: () => void; fail: (e: Error) => void }[] = [];
    const ingest = {
      ingest: (_ws: string, items: readonly unknown[]) =>
        new Promise<IngestResponse>((resolve, reject) =>
          pending.push({
            n: items.length,
            done: () => resolve({ accepted: items.length, duplicates: 0, rejected: 0, results: [] }),
            fail: reject,
          }),
        ),
    };
    return { ingest, pending };
  }
  /** A recorder that keeps what it is given. */
  const recorderInto = (kept: unknown[]) => ({
    record: (input: Record<string, unknown>) => {
      kept.push(input);
      return null;
    },
  });
  const inputs = (n: number) => Array.from({ length: n }, (_, i) => ({ event_id: `e${i}` }));

  it("past 5,000 calls waiting for the store, asks the download to wait until there is room", async () => {
    const { ingest, pending } = slowIngest();
    const recorded: unknown[] = [];
    const records = new BatchRecords(ingest, recorderInto(recorded), () => {});
    for (let i = 0; i < 10; i++) expect(records.add("w", inputs(500))).toBeNull();
    expect(records.add("w", inputs(500))).toBeInstanceOf(Promise); // 5,500 waiting
    const room = records.add("w", inputs(500)); // 6,000
    let roomy = false;
    void room!.then(() => (roomy = true));
    pending.shift()!.done();
    await sleep(1);
    expect(roomy).toBe(false); // 5,500 still waiting

    pending.shift()!.done();
    await sleep(1);
    expect(roomy).toBe(true);
    for (const p of pending.splice(0)) p.done();
    await records.settled();
    expect(records.waiting).toBe(0);
    expect(recorded).toEqual([]);
  });

  it("a store that refuses: the calls go to the recorder (spooled), none lost", async () => {
    const { ingest, pending } = slowIngest();
    const recorded: unknown[] = [];
    const logs: string[] = [];
    const records = new BatchRecords(ingest, recorderInto(recorded), (m) => logs.push(m));
    records.add("w", inputs(3));
    pending.shift()!.fail(new Error("disk full"));
    await records.settled();
    expect(recorded).toHaveLength(3);
    expect(logs[0]).toMatch(/refused 3 calls \(disk full\); spooled/);
  });

  it("at shutdown a store that does not answer keeps calls waiting 'withinMs' at most; then they are spooled", async () => {
    const { ingest } = slowIngest(); // never answers
    const recorded: unknown[] = [];
    const records = new BatchRecords(ingest, recorderInto(recorded), () => {});
    records.add("w", inputs(3));
    await records.settled(30);
    expect(recorded).toHaveLength(3);
  });

  it("far behind (a download that cannot be paused): past 50,000 waiting, calls go to the recorder", () => {
    const { ingest } = slowIngest();
    const recorded: unknown[] = [];
    const records = new BatchRecords(ingest, recorderInto(recorded), () => {});
    for (let i = 0; i < 100; i++) records.add("w", inputs(500));
    expect(records.waiting).toBe(50_000);
    records.add("w", inputs(500));
    expect(recorded).toHaveLength(500);
    expect(records.waiting).toBe(50_000);
  });
});
