// The SDK-wrapped official `openai` and `@anthropic-ai/sdk` clients against the fixture-replaying mock,
// exporting to a real Tollgate server: the app sees exactly what the unwrapped client sees, and every
// stored record carries the usage and cost the gateway records for the same payload.

import { setTimeout as sleep } from "node:timers/promises";
import Anthropic from "@anthropic-ai/sdk";
import {
  batchResult,
  buildCallRecord,
  type CallRecord,
  type CallRecordInput,
  COST_FIELDS,
  PricingEngine,
  USAGE_FIELDS,
} from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  collect,
  createKey,
  gatewayRecords,
  recordByEventId,
  startTestGateway,
} from "../../server/test/helpers.js";
import { type MockUpstream, openaiBatchOutput, startMockUpstream } from "../../server/test/mock-upstream.js";
import {
  type AgentRun,
  agentRun,
  Exporter,
  traced,
  withAttribution,
  wrapAnthropic,
  wrapOpenAI,
} from "../src/index.js";
import { TrackedCall } from "../src/instrument/call.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let exporter: Exporter;
let openai: OpenAI; // wrapped, straight to the mock
let plainOpenAI: OpenAI; // unwrapped, straight to the mock
let gatewayOpenAI: OpenAI; // unwrapped, through the gateway
let anthropic: Anthropic;
let plainAnthropic: Anthropic;
let gatewayAnthropic: Anthropic;
const sent: CallRecordInput[] = [];
const sink = (r: CallRecordInput) => {
  sent.push(r);
  exporter.export(r);
};

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
  gw = await startTestGateway(mock.url);
  const { json } = await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "ingest");
  exporter = new Exporter({ url: gw.url, apiKey: json.key, flushIntervalMs: 20 });
  const oa = { apiKey: "sk-test", maxRetries: 0 };
  openai = wrapOpenAI(new OpenAI({ ...oa, baseURL: `${mock.url}/v1` }), { sink });
  plainOpenAI = new OpenAI({ ...oa, baseURL: `${mock.url}/v1` });
  gatewayOpenAI = new OpenAI({ ...oa, baseURL: `${gw.url}/v1` });
  const an = { apiKey: "sk-ant-test", maxRetries: 0 };
  anthropic = wrapAnthropic(new Anthropic({ ...an, baseURL: mock.url }), { sink });
  plainAnthropic = new Anthropic({ ...an, baseURL: mock.url });
  gatewayAnthropic = new Anthropic({ ...an, baseURL: gw.url });
});

afterAll(async () => {
  await exporter?.shutdown();
  await gw?.stop();
  await mock?.close();
});

/** The stored record of the last call the wrapped clients made (after the exporter delivered it). */
async function lastStored(): Promise<CallRecord> {
  expect(await exporter.flush()).toBe(true);
  return recordByEventId(gw.runtime, sent.at(-1)!.event_id);
}

/** The gateway's record of a call made through it (its reply names the event; a stream is read to its end first). */
async function viaGateway(
  call: PromiseLike<unknown> & { withResponse(): Promise<{ data: unknown; response: Response }> },
) {
  const { data, response } = await call.withResponse();
  if (data && typeof data === "object" && Symbol.asyncIterator in data)
    await collect(data as AsyncIterable<unknown>);
  return recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
}

function expectSameCost(sdk: CallRecord, gateway: CallRecord): void {
  for (const f of [
    "provider",
    "api",
    "model",
    "model_requested",
    "stream",
    "priced",
    "price_ref",
    "cost_source",
  ] as const)
    expect(sdk[f], f).toEqual(gateway[f]);
  for (const f of USAGE_FIELDS) expect(sdk[f], f).toBe(gateway[f]);
  for (const f of COST_FIELDS) expect(sdk[f], f).toBe(gateway[f]);
  expect(sdk.cost_nanousd).toBe(gateway.cost_nanousd);
  expect(sdk.cost_nanousd > 0n).toBe(true);
  expect(sdk.usage_raw).toEqual(gateway.usage_raw);
  expect(sdk.status).toBe("ok");
  expect(sdk.latency_ms).toBeGreaterThanOrEqual(0);
}

const messages = [{ role: "user" as const, content: "What is the capital of the UK?" }];

describe("wrapOpenAI", () => {
  it.each([
    ["plain chat", "gpt-4.1-nano"],
    ["cache read", "gpt-5.6-sol"],
    ["reasoning", "o3-mini"],
  ])("chat completion (%s): same body as unwrapped, same cost as the gateway", async (_, model) => {
    const params = { model, messages };
    const data = await openai.chat.completions.create(params);
    expect(data).toEqual(await plainOpenAI.chat.completions.create(params));
    const sdk = await lastStored();
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.chat.completions.create(params)));
    expect(sdk).toMatchObject({
      kind: "llm",
      http_status: 200,
      ttft_ms: null,
      request_id: expect.stringMatching(/^req_mock/),
    });
  });

  it("streamed chat the app did not ask usage for: the app sees the plain stream; usage is still recorded", async () => {
    const params = { model: "gpt-4o-mini", messages, stream: true as const };
    const chunks = await collect(await openai.chat.completions.create(params));
    expect(chunks).toEqual(await collect(await plainOpenAI.chat.completions.create(params)));
    expect(chunks.some((c) => "usage" in c)).toBe(false);
    const sdk = await lastStored();
    expect(mock.requests.at(-2)!.body.stream_options).toEqual({ include_usage: true });
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.chat.completions.create(params)));
    expect(sdk.stream).toBe(true);
    expect(sdk.ttft_ms).toBeGreaterThanOrEqual(0);
    expect(sdk.ttft_ms!).toBeLessThanOrEqual(sdk.latency_ms!);
  });

  it("streamed chat with include_usage asked: the usage chunk reaches the app unchanged", async () => {
    const params = {
      model: "gpt-4o-mini",
      messages,
      stream: true as const,
      stream_options: { include_usage: true },
    };
    const chunks = await collect(await openai.chat.completions.create(params));
    expect(chunks).toEqual(await collect(await plainOpenAI.chat.completions.create(params)));
    expect(chunks.at(-1)!.usage).not.toBeNull();
    const sdk = await lastStored();
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.chat.completions.create(params)));
  });

  it("streamed chat to an upstream that refuses stream_options (Azure OpenAI before 2024-09-01-preview): the app gets its stream as unwrapped, asked so from then on", async () => {
    const azure = (wrap: boolean) => {
      const client = new OpenAI({
        apiKey: "sk-test",
        maxRetries: 0,
        baseURL: `${mock.url}/v1`,
        defaultQuery: { "api-version": "2024-06-01" },
      });
      return wrap ? wrapOpenAI(client, { sink }) : client;
    };
    const params = { model: "gpt-4o-mini", messages, stream: true as const };
    const streamed = async (client: OpenAI, id: string) => {
      const chunks = await collect(
        await client.chat.completions.create(params, { headers: { "x-test-case": id } }),
      );
      const bodies = mock.requests.filter((r) => r.headers["x-test-case"] === id).map((r) => r.body);
      return { chunks, bodies };
    };
    const plain = await streamed(azure(false), "sdk-azure-plain");
    const first = await streamed(azure(true), "sdk-azure-1");
    expect(first.chunks).toEqual(plain.chunks);
    expect(first.bodies).toEqual([{ stream_options: { include_usage: true }, ...params }, params]);
    const rec = await lastStored();
    expect(rec).toMatchObject({
      status: "ok",
      http_status: 200,
      stream: true,
      priced: false,
      usage_raw: null,
    });
    // Another client of the same upstream (base URL and api-version): as the app made it, at once.
    const again = await streamed(azure(true), "sdk-azure-2");
    expect(again.chunks).toEqual(plain.chunks);
    expect(again.bodies).toEqual([params]);
  });

  it("streamed chat to a server that forbids unknown fields (422, pydantic's detail, no OpenAI error in it): the app gets its stream as unwrapped", async () => {
    const params = { model: "gpt-4o-mini", messages, stream: true as const };
    const forbidding = (id: string) => ({
      headers: { "x-test-case": id, "x-mock-scenario": "forbids-stream-options" },
    });
    const client = wrapOpenAI(
      new OpenAI({
        apiKey: "sk-test",
        maxRetries: 0,
        baseURL: `${mock.url}/v1`,
        defaultQuery: { "api-version": "2025-05-01-preview" },
      }),
      { sink },
    );
    const plain = await collect(
      await plainOpenAI.chat.completions.create(params, forbidding("sdk-422-plain")),
    );
    expect(await collect(await client.chat.completions.create(params, forbidding("sdk-422-1")))).toEqual(
      plain,
    );
    const bodies = mock.requests.filter((r) => r.headers["x-test-case"] === "sdk-422-1").map((r) => r.body);
    expect(bodies).toEqual([{ stream_options: { include_usage: true }, ...params }, params]);
    expect(await lastStored()).toMatchObject({ status: "ok", http_status: 200, stream: true, priced: false });
    // Its own request taken, the upstream is remembered: asked as the app makes it from then on.
    await collect(await client.chat.completions.create(params, forbidding("sdk-422-2")));
    const again = mock.requests.filter((r) => r.headers["x-test-case"] === "sdk-422-2").map((r) => r.body);
    expect(again).toEqual([params]);
  });

  it("streamed chat whose own stream_options the upstream refuses (a mistake in them): the app gets that 400, and the upstream is still asked for usage", async () => {
    const client = wrapOpenAI(
      new OpenAI({
        apiKey: "sk-test",
        maxRetries: 0,
        baseURL: `${mock.url}/v1`,
        defaultQuery: { "api-version": "2025-04-01-preview" }, // an upstream of its own: it takes stream_options
      }),
      { sink },
    );
    const params = { model: "gpt-4o-mini", messages, stream: true as const };
    const bodiesOf = (id: string) =>
      mock.requests.filter((r) => r.headers["x-test-case"] === id).map((r) => r.body);
    const mistaken = { ...params, stream_options: { include_obfuscation: "no" } } as unknown as typeof params;
    const err = await client.chat.completions
      .create(mistaken, { headers: { "x-test-case": "sdk-own-options-1" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bodiesOf("sdk-own-options-1")).toHaveLength(1); // no re-send: the refusal was the app's own
    await collect(
      await client.chat.completions.create(params, { headers: { "x-test-case": "sdk-own-options-2" } }),
    );
    expect(bodiesOf("sdk-own-options-2")).toEqual([{ stream_options: { include_usage: true }, ...params }]);
  });

  it("Responses API, body and stream, and the SDK's own stream helper", async () => {
    const body = { model: "gpt-5", input: "Explain caching" };
    expect(await openai.responses.create(body)).toEqual(await plainOpenAI.responses.create(body));
    const sdkBody = await lastStored();
    expectSameCost(sdkBody, await viaGateway(gatewayOpenAI.responses.create(body)));

    const events = await collect(await openai.responses.create({ ...body, stream: true }));
    expect(events).toEqual(await collect(await plainOpenAI.responses.create({ ...body, stream: true })));
    const sdkStream = await lastStored();
    expectSameCost(sdkStream, await viaGateway(gatewayOpenAI.responses.create({ ...body, stream: true })));

    const before = sent.length;
    const final = await openai.responses.stream(body).finalResponse();
    expect(final.usage?.output_tokens).toBeGreaterThan(0);
    expect(sent.length).toBe(before + 1);
    expect((await lastStored()).cost_nanousd).toBe(sdkStream.cost_nanousd);
  });

  it("structured outputs: chat.completions.parse() and responses.parse() are recorded, as the gateway records the call", async () => {
    // The helpers call the wrapped create() and derive their own APIPromise from it (_thenUnwrap).
    const params = { model: "gpt-4.1-nano", messages };
    let before = sent.length;
    const parsed = await openai.chat.completions.parse(params);
    expect(parsed).toEqual(await plainOpenAI.chat.completions.parse(params));
    expect(sent.length).toBe(before + 1);
    expectSameCost(await lastStored(), await viaGateway(gatewayOpenAI.chat.completions.create(params)));

    before = sent.length;
    const { data, response } = await openai.chat.completions.parse(params).withResponse();
    expect(response.status).toBe(200);
    expect(data.choices[0]!.message.parsed).toBeNull();
    expect(sent.length).toBe(before + 1);

    const body = { model: "gpt-5", input: "Explain caching" };
    before = sent.length;
    const reply = await openai.responses.parse(body);
    expect(reply).toEqual(await plainOpenAI.responses.parse(body));
    expect(sent.length).toBe(before + 1);
    expectSameCost(await lastStored(), await viaGateway(gatewayOpenAI.responses.create(body)));

    // A reply the helper cannot parse still cost what it cost: the app gets the SDK's error, the call is recorded.
    const schema = {
      type: "json_schema" as const,
      json_schema: { name: "city", strict: true, schema: { type: "object", properties: {} } },
    };
    before = sent.length;
    const err = await openai.chat.completions.parse({ ...params, response_format: schema }).catch((e) => e);
    const plainErr = await plainOpenAI.chat.completions
      .parse({ ...params, response_format: schema })
      .catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.constructor).toBe(plainErr.constructor);
    expect(sent.length).toBe(before + 1);
    expectSameCost(await lastStored(), await viaGateway(gatewayOpenAI.chat.completions.create(params)));
  });

  it("a Responses stream with a web search: the search is billed as the gateway bills it", async () => {
    const rel = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse"; // one real search
    const opts = { headers: { "x-mock-fixture": rel } };
    const body = { model: "gpt-5.2", input: "Tallest mountain in Alberta?", stream: true as const };
    await collect(await openai.responses.create(body, opts));
    expect(sent.at(-1)).toMatchObject({ web_search_requests: 1 });
    expect(sent.at(-1)).not.toHaveProperty("file_search_requests"); // none: not sent (older servers refuse it)
    expect(sent.at(-1)).not.toHaveProperty("web_search_preview_requests"); // its tool is web_search
    expect(sent.at(-1)).not.toHaveProperty("cache_audio_read_tokens"); // none either (added later still)
    expect(sent.at(-1)).not.toHaveProperty("cache_image_read_tokens");
    const sdk = await lastStored();
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.responses.create(body, opts)));
    expect(sdk).toMatchObject({ web_search_requests: 1, cost_tool_calls_nanousd: 10_000_000n });
  });

  it("a stream aborted before anything read it, outside any agent run, is recorded as cut short by the client", async () => {
    const before = sent.length;
    const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
    stream.controller.abort();
    await expect.poll(() => sent.length).toBe(before + 1);
    const rec = await lastStored();
    expect(rec).toMatchObject({
      status: "error",
      error_type: "client_disconnected",
      cost_source: "estimated",
    });
    expect(rec.cost_nanousd > 0n).toBe(true); // its input, estimated
    expect(rec.agent_run_id).toBeNull();
  });

  it("a background response's submission is recorded as the gateway records it: kind=other, under the response id", async () => {
    const body = { model: "gpt-5", input: "go", background: true };
    const data = await openai.responses.create(body, { headers: { "x-mock-case": "sdk-bg" } });
    expect(data.status).toBe("queued");
    const sdk = await lastStored();
    const gateway = await viaGateway(
      gatewayOpenAI.responses.create(body, { headers: { "x-mock-case": "sdk-bg-gw" } }),
    );
    for (const rec of [sdk, gateway])
      expect(rec).toMatchObject({
        kind: "other",
        api: "openai.responses",
        status: "ok",
        error_type: null,
        request_id: data.id,
        cost_nanousd: 0n,
      });
  });

  it("a background response's cost is recorded when responses.retrieve finds it finished: once, for its submission's scope, as the gateway records it", async () => {
    const body = { model: "gpt-5", input: "research", background: true };
    const sdkCase = { headers: { "x-mock-case": "sdk-bg-done" } };
    const before = sent.length;
    const submitted = await withAttribution({ feature: "research", userId: "u-bg" }, () =>
      openai.responses.create(body, sdkCase),
    );
    // Polled from elsewhere in the app (another scope): still the submission's call.
    expect((await openai.responses.retrieve(submitted.id, {}, sdkCase)).status).toBe("in_progress");
    expect(sent.length).toBe(before + 1); // the submission only
    const done = await openai.responses.retrieve(submitted.id, {}, sdkCase);
    expect(done.status).toBe("completed");
    await openai.responses.retrieve(submitted.id, {}, sdkCase);
    await expect.poll(() => sent.length).toBe(before + 2);
    await sleep(50);
    expect(sent.length).toBe(before + 2); // polled again: nothing more
    expect(sent.at(-1)).toMatchObject({
      kind: "llm",
      feature: "research",
      user_id: "u-bg",
      request_id: submitted.id,
      ts_start: done.created_at * 1000,
      ts_end: null,
      event_id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-/),
    });
    const sdk = await lastStored();
    // The same flow through the gateway: the same usage and cost.
    const gwCase = { headers: { "x-mock-case": "sdk-bg-done-gw" } };
    const viaGw = await gatewayOpenAI.responses.create(body, gwCase);
    await gatewayOpenAI.responses.retrieve(viaGw.id, {}, gwCase);
    await gatewayOpenAI.responses.retrieve(viaGw.id, {}, gwCase);
    const gateway = await vi.waitFor(
      async () => {
        const rec = (await gatewayRecords(gw.runtime)).find(
          (r) => r.request_id === viaGw.id && r.kind === "llm",
        );
        expect(rec).toBeDefined();
        return rec!;
      },
      { timeout: 5_000, interval: 20 },
    );
    for (const f of [...USAGE_FIELDS, ...COST_FIELDS, "cost_nanousd", "model", "priced"] as const)
      expect(sdk[f], f).toEqual(gateway[f]);
    expect(sdk.cost_nanousd > 0n).toBe(true);
    expect(sdk.model_requested).toBe("gpt-5");
  });

  it("a background response submitted in an agent run counts as one LLM call of the run, with its cost", async () => {
    const fixture = "openai/responses.gpt-5.6-sol.cache-read.json";
    const opts = { headers: { "x-mock-case": "sdk-bg-run", "x-mock-fixture": fixture } };
    let run: AgentRun | undefined;
    const submitted = await agentRun({ type: "researcher", limits: { max_cost_usd: "5" } }, (r) => {
      run = r;
      return openai.responses.create({ model: "gpt-5.6-sol", input: "go", background: true }, opts);
    });
    expect(run!.usage.llm_calls).toBe(1);
    expect(run!.usage.cost_nanousd).toBe(0n);
    await openai.responses.retrieve(submitted.id, {}, opts); // in_progress
    await openai.responses.retrieve(submitted.id, {}, opts);
    await expect.poll(() => sent.at(-1)?.request_id).toBe(submitted.id);
    const rec = await lastStored();
    expect(rec).toMatchObject({ kind: "llm", agent_run_id: run!.id, agent_type: "researcher" });
    expect(rec.cost_nanousd > 0n).toBe(true);
    expect(run!.usage).toMatchObject({ llm_calls: 1, cost_nanousd: rec.cost_nanousd });
  });

  it("a background stream a poll finds finished while the app still reads it: one llm record, the poll's", async () => {
    const opts = { headers: { "x-mock-case": "sdk-bg-race", "x-mock-chunk-delay-ms": "10" } };
    const stream = await openai.responses.create(
      { model: "gpt-5", input: "go", stream: true, background: true },
      opts,
    );
    const events = stream[Symbol.asyncIterator]();
    const id = ((await events.next()).value as { response: { id: string } }).response.id;
    expect((await openai.responses.retrieve(id, {}, opts)).status).toBe("completed");
    while (!(await events.next()).done) {}
    const mine = sent.filter((r) => r.request_id === id);
    expect(mine.map((r) => [r.kind, r.stream])).toEqual([
      ["llm", false],
      ["other", true],
    ]);
    expect(mine[0]).toMatchObject({ output_tokens: 469 });
    expect(mine[1]!.output_tokens).toBeUndefined(); // the stream itself carries no usage
  });

  it("a background stream the app stops reading: recorded as its submission; the poll bills the whole response", async () => {
    const rel = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
    const opts = { headers: { "x-mock-case": "sdk-bg-cut", "x-mock-fixture": rel } };
    const stream = await openai.responses.create(
      { model: "gpt-5.2", input: "go", stream: true, background: true },
      opts,
    );
    const events = stream[Symbol.asyncIterator]();
    const id = ((await events.next()).value as { response: { id: string } }).response.id;
    await events.return?.();
    expect(sent.at(-1)).toMatchObject({ kind: "other", request_id: id, error_type: "client_disconnected" });
    expect(sent.at(-1)!.cost_source).toBeUndefined(); // not an estimate: the response runs on
    await openai.responses.retrieve(id, {}, opts);
    expect(sent.at(-1)).toMatchObject({
      kind: "llm",
      request_id: id,
      output_tokens: 79,
      web_search_requests: 1,
      stream: false, // the response as the poll read it
    });
  });

  it("a background response polled inside its run's run.llm is counted by the run once", async () => {
    const fixture = "openai/responses.gpt-5.6-sol.cache-write.json";
    const opts = { headers: { "x-mock-case": "sdk-bg-run-llm", "x-mock-fixture": fixture } };
    // Over the submission's worst case (~$21), which it holds while the response runs (a poll inside
    // run.llm needs no room: it is no LLM call).
    await agentRun({ type: "poller", limits: { max_cost_usd: "50" } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5.6-sol", input: "go", background: true },
        opts,
      );
      for (let i = 0; i < 2; i++)
        await run.llm("openai.responses", () => openai.responses.retrieve(submitted.id, {}, opts));
      const rec = sent.findLast((r) => r.request_id === submitted.id && r.kind === "llm");
      expect(rec).toBeDefined();
      const stored = await lastStored();
      expect(stored.cost_nanousd > 0n).toBe(true);
      // run.llm counted the finished reply; the record of it adds nothing more to the run.
      expect(run.usage.cost_nanousd).toBe(stored.cost_nanousd);
    });
  });

  it("a background response submitted elsewhere and polled through a wrapped client is recorded for the poll's scope", async () => {
    // Another fixture than the test above's: the mock's responses keep their fixture's id.
    const fixture = "openai/responses.gpt-4o.cached.json";
    const opts = { headers: { "x-mock-case": "sdk-bg-elsewhere", "x-mock-fixture": fixture } };
    const submitted = await plainOpenAI.responses.create(
      { model: "gpt-4o", input: "go", background: true },
      opts,
    );
    const before = sent.length;
    await withAttribution({ feature: "poller" }, async () => {
      await openai.responses.retrieve(submitted.id, {}, opts); // in_progress
      await openai.responses.retrieve(submitted.id, {}, opts);
    });
    await expect.poll(() => sent.length).toBe(before + 1);
    expect(sent.at(-1)).toMatchObject({ kind: "llm", feature: "poller", request_id: submitted.id });
    expect(sent.at(-1)!.input_uncached_tokens).toBeGreaterThan(0);
  });

  it("embeddings", async () => {
    const params = { model: "text-embedding-3-small", input: "hello" };
    expect(await openai.embeddings.create(params)).toEqual(await plainOpenAI.embeddings.create(params));
    const sdk = await lastStored();
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.embeddings.create(params)));
    expect(sdk.kind).toBe("embedding");
  });

  it("image generations and edits (gpt-image-1.5), and a streamed generation, as the gateway records them", async () => {
    const gen = { model: "gpt-image-1.5", prompt: "a red fox", quality: "low" as const };
    expect(await openai.images.generate(gen)).toEqual(await plainOpenAI.images.generate(gen));
    const sdk = await lastStored();
    expect(sdk).toMatchObject({ api: "openai.images", output_image_tokens: 272, cost_nanousd: 11_034_000n });
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.images.generate(gen)));

    const image = new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], "a.png", { type: "image/png" });
    const edit = { model: "gpt-image-1.5", image, prompt: "add a hat" };
    await openai.images.edit(edit);
    expectSameCost(await lastStored(), await viaGateway(gatewayOpenAI.images.edit(edit)));
    // An edit that names no model runs on gpt-image-1.5 (OpenAI's default): recorded as such, priced.
    await openai.images.edit({ image, prompt: "add a hat" });
    const unnamed = await lastStored();
    expect(unnamed).toMatchObject({ model_requested: null, model: "gpt-image-1.5", priced: true });
    expectSameCost(unnamed, await viaGateway(gatewayOpenAI.images.edit({ image, prompt: "add a hat" })));

    // DALL·E reports no usage: an ok call, its cost unknown, on both.
    const dallE = { model: "dall-e-3", prompt: "a red fox" };
    await openai.images.generate(dallE);
    const sdkDallE = await lastStored();
    expect(sdkDallE).toMatchObject({ status: "ok", error_type: "usage_unreadable", priced: false });
    const gwDallE = await viaGateway(gatewayOpenAI.images.generate(dallE));
    for (const f of ["status", "error_type", "priced", "model"] as const)
      expect(sdkDallE[f], f).toBe(gwDallE[f]);

    const streamed = { model: "gpt-image-1", prompt: "a red fox", stream: true as const, partial_images: 1 };
    const events = await collect(await openai.images.generate(streamed));
    expect(events.map((e) => e.type)).toEqual([
      "image_generation.partial_image",
      "image_generation.completed",
    ]);
    const sdkStream = await lastStored();
    expect(sdkStream).toMatchObject({ stream: true, cost_nanousd: 2_450_000n });
    expectSameCost(sdkStream, await viaGateway(gatewayOpenAI.images.generate(streamed)));
  });

  it("audio transcriptions, whole and streamed, by tokens or by seconds, as the gateway records them", async () => {
    const file = new File([new Uint8Array([0x52, 0x49, 0x46, 0x46, 0xff])], "a.wav", { type: "audio/wav" });
    const params = { model: "gpt-4o-mini-transcribe", file };
    expect(await openai.audio.transcriptions.create(params)).toEqual(
      await plainOpenAI.audio.transcriptions.create(params),
    );
    const sdk = await lastStored();
    expect(sdk).toMatchObject({
      api: "openai.transcriptions",
      input_audio_tokens: 16,
      cost_nanousd: 88_000n,
    });
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.audio.transcriptions.create(params)));
    const streamed = { ...params, stream: true as const };
    await collect(await openai.audio.transcriptions.create(streamed));
    expectSameCost(await lastStored(), await viaGateway(gatewayOpenAI.audio.transcriptions.create(streamed)));
    // whisper-1 reports the audio's seconds: 2 s at $0.36 an hour.
    const whisper = { model: "whisper-1", file };
    await openai.audio.transcriptions.create(whisper);
    const byLength = await lastStored();
    expect(byLength).toMatchObject({ input_audio_ms: 2_000, priced: true, cost_nanousd: 200_000n });
    expectSameCost(byLength, await viaGateway(gatewayOpenAI.audio.transcriptions.create(whisper)));
  });

  it("a Responses call's image generation tool: a record of its image model beside the response's, as the gateway's", async () => {
    const tools = [{ type: "image_generation" as const, model: "gpt-image-1-mini" }];
    for (const stream of [false, true]) {
      const params = { model: "gpt-5-nano", input: "Draw a cat", tools, stream };
      const before = sent.length;
      const reply = await openai.responses.create(params);
      if (stream) await collect(reply as AsyncIterable<unknown>);
      const [main, tool] = sent.slice(before);
      expect(sent.length - before).toBe(2);
      expect(tool).toMatchObject({
        api: "openai.images",
        parent_span_id: main!.span_id,
        request_id: main!.request_id,
      });
      const sdkTool = await lastStored();
      const gatewayMain = await viaGateway(gatewayOpenAI.responses.create(params));
      const gatewayTool = (await gatewayRecords(gw.runtime)).find(
        (r) => r.request_id === gatewayMain.request_id && r.api === "openai.images",
      )!;
      // 25 text in × $2 + 272 image out × $8 per million (gpt-image-1-mini).
      expect(sdkTool).toMatchObject({ model: "gpt-image-1-mini", cost_nanousd: 2_226_000n, stream });
      expectSameCost(sdkTool, gatewayTool);
    }
  });

  it("a compaction (responses.compact): priced at the request's model and tier, as the gateway records it", async () => {
    const params = { model: "gpt-5", input: "A long conversation", service_tier: "flex" as const };
    const data = await openai.responses.compact(params);
    expect(data).toEqual(await plainOpenAI.responses.compact(params));
    const sdk = await lastStored();
    expectSameCost(sdk, await viaGateway(gatewayOpenAI.responses.compact(params)));
    expect(sdk).toMatchObject({ kind: "llm", api: "openai.responses", model: "gpt-5", service_tier: "flex" });
  });

  it("speech: tts-1 by its characters, gpt-4o-mini-tts estimated from its text, as the gateway records them", async () => {
    const input = "Hello there, how are you? ".repeat(20); // 520 characters
    for (const [model, cost] of [
      ["tts-1", 7_800_000n], // 520 × $15 per million
      ["gpt-4o-mini-tts", 130n * 600n + 723n * 12_000n], // 520 / 4 in; 34.7 s of speech out
    ] as const) {
      const params = { model, input, voice: "alloy" as const };
      const before = sent.length;
      const audio = await openai.audio.speech.create(params);
      expect((await audio.arrayBuffer()).byteLength).toBeGreaterThan(0);
      await expect.poll(() => sent.length).toBe(before + 1);
      const sdk = await lastStored();
      expect(sdk).toMatchObject({
        api: "openai.speech",
        model,
        stream: true,
        cost_nanousd: cost,
        cost_source: model === "tts-1" ? "computed" : "estimated",
      });
      const viaGw = await gatewayOpenAI.audio.speech.create(params);
      await viaGw.arrayBuffer();
      const gateway = await recordByEventId(gw.runtime, viaGw.headers.get("x-tollgate-event-id"));
      expectSameCost(sdk, gateway);
      for (const f of USAGE_FIELDS) expect(sdk[f], f).toBe(gateway[f]);
    }
  });

  it("a Responses stream left after its image came, before response.completed: the image recorded, as the gateway's", async () => {
    const tools = [{ type: "image_generation" as const, model: "gpt-image-1-mini" }];
    const params = { model: "gpt-5-nano", input: "Draw a cat", tools, stream: true as const };
    const slow = { headers: { "x-mock-chunk-delay-ms": "300" } };
    const leave = async (stream: AsyncIterable<{ type: string }>) => {
      for await (const ev of stream) if (ev.type === "response.output_item.done") break;
    };
    const before = sent.length;
    await leave(await openai.responses.create(params, slow));
    await expect.poll(() => sent.length).toBe(before + 2);
    const [main, image] = sent.slice(before);
    expect(main).toMatchObject({ api: "openai.responses", cost_source: "estimated" });
    const sdk = await lastStored();
    expect(sdk).toMatchObject({ api: "openai.images", model: "gpt-image-1-mini", cost_source: "estimated" });
    expect(image!.parent_event_id).toBe(main!.event_id);
    await leave(await gatewayOpenAI.responses.create(params, slow));
    const gateway = async () =>
      (await gatewayRecords(gw.runtime)).findLast(
        (r) => r.api === "openai.images" && r.cost_source === "estimated",
      );
    await expect.poll(async () => (await gateway())?.model).toBe("gpt-image-1-mini");
    // 29 × $2 + 272 × $8 per million: the image the stream showed, low quality, 1024².
    expect(sdk.cost_nanousd).toBe(2_234_000n);
    expectSameCost(sdk, (await gateway())!);
  });

  it("a transcription stream cut off is estimated as the gateway estimates it: at its worst case", async () => {
    const file = new File([new Uint8Array(200_000)], "a.wav", { type: "audio/wav" });
    const params = { model: "gpt-4o-mini-transcribe", file, stream: true as const };
    const cut = { headers: { "x-mock-scenario": "reset-mid-stream" } };
    await expect(collect(await openai.audio.transcriptions.create(params, cut))).rejects.toThrow();
    const sdk = await lastStored();
    await expect(collect(await gatewayOpenAI.audio.transcriptions.create(params, cut))).rejects.toThrow();
    const gateway = (await gatewayRecords(gw.runtime)).findLast(
      (r) => r.api === "openai.transcriptions" && r.cost_source === "estimated",
    )!;
    // The context window of audio in and of text out: $0.128, as a budget held it.
    expect(sdk).toMatchObject({
      input_audio_tokens: 16_000,
      output_tokens: 16_000,
      cost_nanousd: 128_000_000n,
    });
    for (const f of USAGE_FIELDS) expect(sdk[f], f).toBe(gateway[f]);
    expect(sdk.cost_nanousd).toBe(gateway.cost_nanousd);
  });

  it("withResponse() and asResponse() work unchanged and still record once", async () => {
    const params = { model: "gpt-4.1-nano", messages };
    const before = sent.length;
    const { data, response } = await openai.chat.completions.create(params).withResponse();
    expect(response.status).toBe(200);
    expect(data.usage?.total_tokens).toBeGreaterThan(0);
    const raw = await openai.chat.completions.create(params).asResponse();
    expect(((await raw.json()) as { usage: unknown }).usage).toEqual(data.usage);
    await expect.poll(() => sent.length).toBe(before + 2);
    const [a, b] = sent.slice(before);
    expect(a!.input_uncached_tokens).toBe(b!.input_uncached_tokens);
    expect(b!.status).toBe("ok");
  });

  it("a stream's asResponse(): recorded from what the app reads; a read the app cancels ends the request", async () => {
    const params = { model: "gpt-4o-mini", messages, stream: true as const };
    let before = sent.length;
    const whole = await openai.chat.completions.create(params).asResponse();
    const text = await whole.text();
    expect(text).toContain("data: [DONE]");
    await expect.poll(() => sent.length).toBe(before + 1);
    expectSameCost(await lastStored(), await viaGateway(gatewayOpenAI.chat.completions.create(params)));

    // 200 ms between events: the app cancels after its first bytes, long before the stream would end.
    const slow = { headers: { "x-mock-chunk-delay-ms": "200" } };
    before = sent.length;
    const started = Date.now();
    const res = await openai.chat.completions.create(params, slow).asResponse();
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    const cancelledAfter = Date.now() - started;
    await expect.poll(() => sent.length).toBe(before + 1);
    const rec = await lastStored();
    expect(rec).toMatchObject({
      status: "error",
      error_type: "client_disconnected",
      cost_source: "estimated",
    });
    // Not read on to its end behind the app's back (the upstream generating, and billing, all of it).
    expect(rec.latency_ms).toBeLessThan(cancelledAfter + 100);
  });

  it("a provider error reaches the app as the SDK's typed error and is recorded as an error, cost 0", async () => {
    const opts = { headers: { "x-mock-scenario": "rate-limit" } };
    const err = await openai.chat.completions
      .create({ model: "gpt-4.1-nano", messages }, opts)
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const rec = await lastStored();
    expect(rec).toMatchObject({ status: "error", http_status: 429, cost_nanousd: 0n });
    const gwErr = await gatewayOpenAI.chat.completions
      .create({ model: "gpt-4.1-nano", messages }, opts)
      .catch((e) => e);
    const gwRec = await recordByEventId(gw.runtime, gwErr.headers.get("x-tollgate-event-id"));
    expect(rec.error_type).toBe(gwRec.error_type); // the provider's own error type, as the gateway reads it
  });

  it("a call that timed out, or that the app aborted, is recorded as such, not as a connection error", async () => {
    const hang = { headers: { "x-mock-scenario": "hang" } };
    const timedOut = await openai.chat.completions
      .create({ model: "gpt-4.1-nano", messages }, { ...hang, timeout: 100 })
      .catch((e) => e);
    expect(timedOut).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    expect(await lastStored()).toMatchObject({ status: "error", error_type: "timeout", http_status: null });

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const aborted = await anthropic.messages
      .create({ model: "claude-sonnet-4-5", max_tokens: 16, messages }, { ...hang, signal: ac.signal })
      .catch((e) => e);
    expect(aborted).toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(await lastStored()).toMatchObject({ status: "error", error_type: "aborted", http_status: null });
  });

  it("a stream the app stops reading is recorded once, as cut short by the client", async () => {
    const before = sent.length;
    const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
    for await (const _ of stream) break;
    await expect.poll(() => sent.length).toBe(before + 1);
    const rec = await lastStored();
    expect(rec).toMatchObject({
      status: "error",
      error_type: "client_disconnected",
      cost_source: "estimated",
    });
    expect(rec.input_uncached_tokens).toBeGreaterThan(0);
  });

  it("a stream the app aborts (its controller, its request's signal, a helper's abort()) is recorded as cut short by the client", async () => {
    const params = { model: "gpt-4o-mini", messages, stream: true as const };
    const am = [{ role: "user" as const, content: "How do I cross the street safely?" }];
    const aborts: [string, () => Promise<void>][] = [
      [
        "stream.controller.abort()",
        async () => {
          const stream = await openai.chat.completions.create(params);
          for await (const _ of stream) stream.controller.abort();
        },
      ],
      [
        "the request's signal",
        async () => {
          const ac = new AbortController();
          const stream = await openai.chat.completions.create(params, { signal: ac.signal });
          for await (const _ of stream) ac.abort();
        },
      ],
      [
        "chat.completions.stream().abort()",
        async () => {
          const stream = openai.chat.completions.stream({ model: "gpt-4o-mini", messages });
          stream.on("chunk", () => stream.abort());
          await stream.done().catch(() => {});
        },
      ],
      [
        "anthropic messages.stream().abort()",
        async () => {
          const stream = anthropic.messages.stream({
            model: "claude-sonnet-4-5",
            max_tokens: 1024,
            messages: am,
          });
          stream.on("text", () => stream.abort());
          await stream.done().catch(() => {});
        },
      ],
    ];
    for (const [how, abort] of aborts) {
      const before = sent.length;
      await abort();
      await expect.poll(() => sent.length, { message: how }).toBe(before + 1);
      const rec = await lastStored();
      // Not an ok call without usage (unpriced), nor the usage of the first event as if it were the whole call.
      expect(rec, how).toMatchObject({
        status: "error",
        error_type: "client_disconnected",
        cost_source: "estimated",
        priced: true,
      });
      expect(rec.cost_nanousd > 0n, how).toBe(true);
    }
  });

  it("estimateCost: the app's own cost for a model Tollgate cannot price is stored as sent", async () => {
    const seen: string[] = [];
    const custom = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink,
      provider: "self-hosted",
      estimateCost: ({ model, usage }) => {
        seen.push(model);
        return BigInt(usage.input_uncached_tokens + usage.output_tokens) * 1000n; // $1 per million tokens
      },
    });
    await custom.chat.completions.create({ model: "acme-llm-7b", messages });
    const rec = await lastStored();
    expect(seen).toEqual([rec.model]);
    expect(rec).toMatchObject({ provider: "self-hosted", cost_source: "estimated", priced: true });
    expect(rec.cost_nanousd).toBe(BigInt(rec.input_uncached_tokens + rec.output_tokens) * 1000n);
  });

  it("tee() splits the stream for the app; the call is recorded once", async () => {
    const before = sent.length;
    const [left, right] = (
      await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true })
    ).tee();
    const [l, r] = await Promise.all([collect(left), collect(right)]);
    expect(l).toEqual(r);
    await expect.poll(() => sent.length).toBe(before + 1);
    expect(sent.at(-1)!.output_tokens).toBeGreaterThan(0);
  });
});

describe("batch results read through wrapped clients", () => {
  /** The records the SDK sent while `read` ran. */
  const sentDuring = async (read: () => Promise<unknown>) => {
    const before = sent.length;
    await read();
    return sent.slice(before);
  };

  it("OpenAI files.content: the file reads unchanged; each answered request is recorded as the gateway records it", async () => {
    const fileId = "file-batch-output-sdk";
    const text = async (c: OpenAI, headers: Record<string, string> = {}) =>
      (await c.files.content(fileId, { headers: { "x-mock-chunk-delay-ms": "0", ...headers } })).text();
    let got = "";
    const records = await sentDuring(async () => {
      got = await withAttribution({ feature: "nightly" }, () => text(openai));
    });
    expect(got).toBe(await text(plainOpenAI));
    expect(records.map((r) => r.request_id)).toEqual([0, 1, 2, 3].map((i) => `req_batch_${i}`));
    expect(records.map((r) => r.kind)).toEqual(["llm", "llm", "embedding", "llm"]);
    for (const r of records) expect(r).toMatchObject({ batch: true, feature: "nightly", stream: false });
    // Through the gateway, the same file: the same usage and cost, call by call.
    await text(gatewayOpenAI, { "x-tollgate-feature": "nightly-gw" });
    expect(await exporter.flush()).toBe(true);
    const stored = await Promise.all(records.map((r) => recordByEventId(gw.runtime, r.event_id)));
    await vi.waitFor(
      async () =>
        expect((await gatewayRecords(gw.runtime)).filter((r) => r.feature === "nightly-gw").length).toBe(5),
      { timeout: 5_000, interval: 20 },
    );
    const viaGateway = (await gatewayRecords(gw.runtime)).filter(
      (r) => r.batch && r.feature === "nightly-gw",
    );
    for (const sdk of stored) {
      const gateway = viaGateway.find((r) => r.request_id === sdk.request_id)!;
      for (const f of [
        ...USAGE_FIELDS,
        ...COST_FIELDS,
        "cost_nanousd",
        "model",
        "api",
        "kind",
        "price_ref",
      ] as const)
        expect(sdk[f], f).toEqual(gateway[f]);
      expect(sdk.price_ref).toContain(";batch=0.5");
    }
    // Read again: the same named calls (stored once).
    const again = await sentDuring(() => text(openai));
    expect(again.map((r) => r.event_id)).toEqual(records.map((r) => r.event_id));
  });

  it("OpenAI files.content of any other file records nothing; an unread file records nothing", async () => {
    const records = await sentDuring(async () => {
      await (
        await openai.files.content("file-batch-input", { headers: { "x-mock-chunk-delay-ms": "0" } })
      ).text();
      await openai.files.content("file-batch-output-unread", { headers: { "x-mock-chunk-delay-ms": "0" } });
    });
    expect(records).toEqual([]);
  });

  it("Anthropic messages.batches.results: the same results; each succeeded request recorded at the batch rate", async () => {
    const read = async (c: Anthropic) => {
      const out: unknown[] = [];
      for await (const r of await c.messages.batches.results(
        "msgbatch_sdk",
        {},
        { headers: { "x-mock-chunk-delay-ms": "0" } },
      ))
        out.push(r);
      return out;
    };
    let got: unknown[] = [];
    const records = await sentDuring(async () => {
      got = await read(anthropic);
    });
    expect(got).toEqual(await read(plainAnthropic));
    expect(records).toHaveLength(2);
    expect(await exporter.flush()).toBe(true);
    const engine = new PricingEngine();
    for (const r of records) {
      expect(r).toMatchObject({ batch: true, api: "anthropic.messages", kind: "llm" });
      const rec = await recordByEventId(gw.runtime, r.event_id);
      const usage = Object.fromEntries(USAGE_FIELDS.map((f) => [f, rec[f]])) as never;
      const price = engine.price({
        provider: "anthropic",
        model: rec.model,
        usage,
        at: rec.ts_start,
        batch: true,
      });
      expect(rec.cost_nanousd).toBe(price.cost.total_nanousd);
    }
  });

  it("files.content stays the same object: withResponse's data is its response, readable, url kept", async () => {
    const opts = { headers: { "x-mock-chunk-delay-ms": "0" } };
    const records = await sentDuring(async () => {
      const { data, response } = await openai.files.content("file-batch-output-same", opts).withResponse();
      expect(data).toBe(response);
      expect(response.url).toBe(`${mock.url}/v1/files/file-batch-output-same/content`);
      expect(response.bodyUsed).toBe(false);
      expect(await response.text()).toBe(
        await (await plainOpenAI.files.content("file-batch-output-same", opts)).text(),
      );
      expect(response.bodyUsed).toBe(true);
    });
    expect(records).toHaveLength(4);
    // A clone taken before reading: both read whole, the original recorded.
    const cloned = await sentDuring(async () => {
      const res = await openai.files.content("file-batch-output-clone", opts);
      const copy = res.clone();
      expect(await res.text()).toBe(await copy.text());
    });
    expect(cloned).toHaveLength(4);
    // Read as a stream, and let go half-way: what came whole is recorded, nothing is thrown.
    const cut = await sentDuring(async () => {
      const res = await openai.files.content("file-batch-output-cut", {
        headers: { "x-mock-chunk-delay-ms": "5" },
      });
      const reader = res.body!.getReader();
      let bytes = 0;
      while (bytes < 6_000) bytes += (await reader.read()).value?.length ?? 0;
      await reader.cancel();
      await sleep(50);
    });
    expect(cut.length).toBeGreaterThan(0);
    expect(cut.length).toBeLessThan(4);
  });

  it("reading results waits for the exporter: a file read faster than its records go out loses none", async () => {
    const { json } = await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "ingest");
    // A queue of 2 (1 record a request), sent slowly: without waiting, reading 4 results would drop 2.
    const slow = new Exporter({
      url: gw.url,
      apiKey: json.key,
      maxBatch: 1,
      maxQueue: 2,
      flushIntervalMs: 1,
      fetch: async (url, init) => {
        await sleep(300);
        return fetch(url, init);
      },
      onWarning: () => {},
    });
    const client = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      exporter: slow,
    });
    const res = await client.files.content("file-batch-output-slow", {
      headers: { "x-mock-chunk-delay-ms": "0" },
    });
    expect(await res.text()).toContain("request-3");
    expect(await slow.flush()).toBe(true);
    expect(slow.stats).toMatchObject({ delivered: 4, dropped: 0, queued: 0 });
    await slow.shutdown();
  });

  it("a result's record is one the server takes, whatever the provider's ids look like", () => {
    const kept: CallRecordInput[] = [];
    const reader = new TrackedCall({ api: "openai.chat", kind: "llm", provider: "openai" }, {}, (r) =>
      kept.push(r),
    );
    const line = JSON.parse(openaiBatchOutput().split("\n")[0]!);
    for (const [customId, requestId] of [
      ["c".repeat(300), null],
      ["x", ""],
    ] as const) {
      const r = batchResult("openai", {
        ...line,
        custom_id: customId,
        response: { ...line.response, request_id: requestId },
      })!;
      reader.recordBatchResult(r, "00000000-0000-8000-8000-000000000001");
    }
    for (const rec of kept)
      expect(buildCallRecord(rec, { workspaceId: "default", engine: new PricingEngine() }).ok).toBe(true);
    expect(kept.map((r) => r.request_id)).toEqual(["c".repeat(256), "x"]);
  });

  it("files.content behind another wrapper that returns a plain promise: read unchanged, recorded", async () => {
    const client = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 });
    const theirs = client.files.content.bind(client.files);
    client.files.content = ((id: string, o?: unknown) => Promise.resolve(theirs(id, o as never))) as never;
    // And an older Tollgate copy's marker on the resource: wrapping still works.
    Object.defineProperty(client.files, Symbol.for("tollgate.wrapped"), { value: true });
    const wrapped = wrapOpenAI(client, { sink });
    const records = await sentDuring(async () => {
      const res = await wrapped.files.content("file-batch-output-plain", {
        headers: { "x-mock-chunk-delay-ms": "0" },
      });
      expect(await res.text()).toContain('"custom_id":"request-0"');
    });
    expect(records).toHaveLength(4);
  });

  it("an agent run reading its batch's results counts their cost at the batch rate, not as its LLM calls", async () => {
    await agentRun({ type: "batcher", limits: { max_llm_calls: 1 } }, async (run) => {
      const records = await sentDuring(async () => {
        await (
          await openai.files.content("file-batch-output-run", { headers: { "x-mock-chunk-delay-ms": "0" } })
        ).text();
      });
      expect(records).toHaveLength(4);
      expect(run.usage.llm_calls).toBe(0);
      expect(await exporter.flush()).toBe(true);
      const stored = await Promise.all(records.map((r) => recordByEventId(gw.runtime, r.event_id)));
      const cost = stored.reduce((a, r) => a + r.cost_nanousd, 0n);
      expect(run.usage.cost_nanousd).toBe(cost);
      // Read again (a retry after a broken download, say): recorded again, stored once, counted once.
      await (
        await openai.files.content("file-batch-output-run", { headers: { "x-mock-chunk-delay-ms": "0" } })
      ).text();
      expect(run.usage.cost_nanousd).toBe(cost);
    });
  });
});

describe("wrapAnthropic", () => {
  const am = [{ role: "user" as const, content: "How do I cross the street safely?" }];
  it.each([
    ["text", "claude-sonnet-4-5"],
    ["cache read and write", "claude-sonnet-4-5-cache"],
  ])("message (%s): same body as unwrapped, same cost as the gateway", async (_, model) => {
    const params = { model, max_tokens: 1024, messages: am };
    expect(await anthropic.messages.create(params)).toEqual(await plainAnthropic.messages.create(params));
    const sdk = await lastStored();
    expectSameCost(sdk, await viaGateway(gatewayAnthropic.messages.create(params)));
    expect(sdk.request_id).toMatch(/req_mock|^[\w-]+$/);
  });

  it.each([
    ["thinking", "claude-sonnet-4-20250514"],
    ["server tools", "claude-sonnet-4-6"],
  ])("streamed message (%s): same events as unwrapped, same cost as the gateway", async (_, model) => {
    const params = { model, max_tokens: 1024, messages: am, stream: true as const };
    const events = await collect(await anthropic.messages.create(params));
    expect(events).toEqual(await collect(await plainAnthropic.messages.create(params)));
    const sdk = await lastStored();
    expectSameCost(sdk, await viaGateway(gatewayAnthropic.messages.create(params)));
    expect(sdk.ttft_ms).toBeGreaterThanOrEqual(0);
  });

  it("Anthropic's advisor tool: a record of the advisor's model beside the executor's, as the gateway's", async () => {
    const tools = [{ type: "advisor_20260301" as const, name: "advisor" as const, model: "claude-opus-4-6" }];
    const params = {
      model: "claude-sonnet-4-5",
      max_tokens: 1024,
      messages: [{ role: "user" as const, content: "Plan it" }],
      tools,
    };
    for (const stream of [false, true]) {
      const before = sent.length;
      const reply = await anthropic.beta.messages.create({ ...params, stream });
      if (stream) await collect(reply as AsyncIterable<unknown>);
      const [main, advisor] = sent.slice(before);
      expect(sent.length - before).toBe(2);
      expect(advisor).toMatchObject({
        api: "anthropic.messages",
        model: "claude-opus-4-6",
        parent_event_id: main!.event_id,
        request_id: main!.request_id,
      });
      const sdkAdvisor = await lastStored();
      const gatewayMain = await viaGateway(gatewayAnthropic.beta.messages.create({ ...params, stream }));
      const gatewayAdvisor = (await gatewayRecords(gw.runtime)).find(
        (r) => r.parent_event_id === gatewayMain.event_id,
      )!;
      // 6,500 in × $5 + 2,000 cache reads × $0.50 + 1,500 out × $25 per million (claude-opus-4-6).
      expect(sdkAdvisor).toMatchObject({
        cost_nanousd: 6_500n * 5_000n + 2_000n * 500n + 1_500n * 25_000n,
        stream,
      });
      expectSameCost(sdkAdvisor, gatewayAdvisor);
    }
  });

  it("the messages.stream() helper is recorded through the create it calls", async () => {
    const before = sent.length;
    const final = await anthropic.messages
      .stream({ model: "claude-sonnet-4-5", max_tokens: 1024, messages: am })
      .finalMessage();
    expect(sent.length).toBe(before + 1);
    const rec = await lastStored();
    expect(rec.output_tokens).toBe(final.usage.output_tokens);
    expect(rec.stream).toBe(true);
  });
});

describe("clients made from a wrapped client", () => {
  it("withOptions() returns a client recorded as the one it came from, with its options", async () => {
    const am = [{ role: "user" as const, content: "How do I cross the street safely?" }];
    let before = sent.length;
    const quick = openai.withOptions({ timeout: 30_000, defaultHeaders: { "x-app": "quick" } });
    const params = { model: "gpt-4.1-nano", messages };
    expect(await quick.chat.completions.create(params)).toEqual(
      await plainOpenAI.chat.completions.create(params),
    );
    expect(sent.length).toBe(before + 1);
    expectSameCost(await lastStored(), await viaGateway(gatewayOpenAI.chat.completions.create(params)));
    expect(mock.requests.some((r) => r.headers["x-app"] === "quick")).toBe(true); // the new options hold

    before = sent.length;
    const aParams = { model: "claude-sonnet-4-5", max_tokens: 1024, messages: am };
    await anthropic.withOptions({ maxRetries: 1 }).withOptions({ timeout: 30_000 }).messages.create(aParams);
    expect(sent.length).toBe(before + 1);
    expectSameCost(await lastStored(), await viaGateway(gatewayAnthropic.messages.create(aParams)));
  });
});

describe("attribution and traces", () => {
  it("withAttribution and traced reach calls deep in the call tree; spans form a tree", async () => {
    const helper = () => openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
    const before = sent.length;
    await withAttribution({ userId: "u-1", customerId: "acme", feature: "chat", tags: ["a"] }, () =>
      traced(
        () =>
          withAttribution({ promptVersion: "v7", tags: ["b"], metadata: { plan: "pro" } }, async () => {
            await helper();
            await traced(() => helper(), { name: "lookup", kind: "tool", sink });
          }),
        { name: "answer", kind: "agent", metadata: { step: "1" }, sink },
      ),
    );
    const [llm1, llm2, tool, agent] = sent.slice(before);
    expect(agent).toMatchObject({
      kind: "agent",
      parent_span_id: null,
      metadata: { "span.name": "answer", step: "1" },
    });
    expect(tool).toMatchObject({ kind: "tool", parent_span_id: agent!.span_id, trace_id: agent!.trace_id });
    expect(llm1).toMatchObject({ parent_span_id: agent!.span_id, trace_id: agent!.trace_id });
    expect(llm2).toMatchObject({ parent_span_id: tool!.span_id, trace_id: agent!.trace_id });
    for (const r of [llm1, llm2])
      expect(r).toMatchObject({
        user_id: "u-1",
        customer_id: "acme",
        feature: "chat",
        prompt_version: "v7",
        tags: ["a", "b"],
        metadata: { plan: "pro" },
      });
    expect(await exporter.flush()).toBe(true);
    const stored = await recordByEventId(gw.runtime, tool!.event_id);
    expect(stored).toMatchObject({ kind: "tool", cost_nanousd: 0n, trace_id: agent!.trace_id });
    expect(await recordByEventId(gw.runtime, llm2!.event_id)).toMatchObject({
      user_id: "u-1",
      prompt_version: "v7",
    });
  });

  it("traced() around a call returns its APIPromise: withResponse() and asResponse() stay, the span ends once", async () => {
    const span = { name: "call", sink };
    const chat = { model: "gpt-4.1-nano", messages };
    const message = {
      model: "claude-sonnet-4-5",
      max_tokens: 1024,
      messages: [{ role: "user" as const, content: "Hi" }],
    };
    const before = sent.length;
    const a = await traced(() => openai.chat.completions.create(chat), span).withResponse();
    expect(a.response.status).toBe(200);
    expect(a.data.usage?.total_tokens).toBeGreaterThan(0);
    const b = await traced(() => openai.chat.completions.create(chat), span).asResponse();
    expect(((await b.json()) as { usage: unknown }).usage).toEqual(a.data.usage);
    const c = await traced(() => anthropic.messages.create(message), span).withResponse();
    expect(c.data.usage.output_tokens).toBeGreaterThan(0);
    const d = await traced(() => anthropic.messages.create(message), span).asResponse();
    expect(((await d.json()) as { usage: unknown }).usage).toEqual(c.data.usage);
    const limited = { headers: { "x-mock-scenario": "rate-limit" } };
    const err = await traced(() => openai.chat.completions.create(chat, limited), span)
      .withResponse()
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    await expect.poll(() => sent.length).toBe(before + 10);
    const spans = sent.slice(before).filter((r) => r.kind === "other");
    expect(spans.map((s) => s.status)).toEqual(["ok", "ok", "ok", "ok", "error"]);
    const calls = sent.slice(before).filter((r) => r.kind === "llm");
    expect(calls.map((r) => r.parent_span_id).sort()).toEqual(spans.map((s) => s.span_id).sort());
  });

  it("concurrent scopes never leak into each other", async () => {
    const before = sent.length;
    await Promise.all(
      ["u-a", "u-b", "u-c"].map((userId) =>
        withAttribution({ userId }, async () => {
          await new Promise((r) => setTimeout(r, Math.random() * 5));
          await openai.chat.completions.create({
            model: "gpt-4.1-nano",
            messages: [{ role: "user", content: userId }],
          });
        }),
      ),
    );
    const mine = sent.slice(before);
    expect(mine).toHaveLength(3);
    for (const r of mine) {
      const req = mock.requests.find((q) => q.body?.messages?.[0]?.content === r.user_id);
      expect(req, `request of ${r.user_id}`).toBeDefined();
    }
  });
});
