// The gateway as a drop-in Anthropic base URL, driven by the official `@anthropic-ai/sdk` against the
// local mock upstream (real recorded payloads).
import Anthropic from "@anthropic-ai/sdk";
import { extractFromResponse, extractFromSse, formatUsd, parseSse } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ANTHROPIC_HEADERS,
  adminRequest,
  collect,
  expectExactUsageAndCost,
  gatewayRecords,
  rawRequest,
  recordByEventId,
  startTestGateway,
  testCases,
} from "./helpers.js";
import { FX, fixture, type MockUpstream, sseText, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let anthropic: Anthropic; // through the gateway
let direct: Anthropic; // straight to the mock

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(mock.url);
  anthropic = new Anthropic({ apiKey: "sk-ant-test", baseURL: gw.url, maxRetries: 0 });
  direct = new Anthropic({ apiKey: "sk-ant-test", baseURL: mock.url, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const { newCase, tagged, upstreamOf } = testCases("an", () => mock.requests);
const recordById = (eventId: string | null) => recordByEventId(gw.runtime, eventId);

const messages = [{ role: "user" as const, content: "How do I cross the street safely?" }];

describe("gateway: Anthropic messages", () => {
  it("non-streaming: reply, headers and record exact; the provider key passes untouched", async () => {
    const id = newCase();
    const params = { model: "claude-sonnet-4-5", max_tokens: 1024, messages };
    const { data, response } = await anthropic.messages
      .create(params, tagged(id, { "anthropic-beta": "prompt-caching-2024-07-31" }))
      .withResponse();
    expect(data).toEqual(await direct.messages.create(params));
    expect(data).toEqual(JSON.parse(fixture(FX.messages)));
    expect(response.headers.get("request-id")).toMatch(/^req_mock/);

    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
    expectExactUsageAndCost(
      rec,
      extractFromResponse("anthropic.messages", JSON.parse(fixture(FX.messages))),
      "anthropic",
    );
    expect(rec).toMatchObject({
      workspace_id: "default",
      kind: "llm",
      provider: "anthropic",
      api: "anthropic.messages",
      model_requested: "claude-sonnet-4-5",
      model: "claude-sonnet-4-5-20250929",
      stream: false,
      status: "ok",
      http_status: 200,
      attempt: 1,
    });

    const [up, ...more] = upstreamOf(id);
    expect(more).toHaveLength(0);
    expect(up!.path).toBe("/v1/messages");
    expect(up!.body).toEqual(params);
    // whichever header the SDK uses for the key (x-api-key, or a bearer token in SDK 1.x) arrives as sent
    const sent = mock.requests.findLast(
      (r) => r.headers["x-test-case"] === undefined && r.path === "/v1/messages",
    );
    expect(up!.headers["x-api-key"]).toBe(sent!.headers["x-api-key"]);
    expect(up!.headers.authorization).toBe(sent!.headers.authorization);
    expect(up!.headers.authorization ?? `Bearer ${up!.headers["x-api-key"]}`).toBe("Bearer sk-ant-test");
    expect(up!.headers["anthropic-version"]).toBe(sent!.headers["anthropic-version"]);
    expect(up!.headers["anthropic-beta"]).toBe("prompt-caching-2024-07-31");
  });

  it("an explicit x-api-key header reaches the upstream unchanged", async () => {
    const id = newCase();
    const client = new Anthropic({
      apiKey: null,
      authToken: null,
      baseURL: gw.url,
      maxRetries: 0,
      defaultHeaders: { "x-api-key": "sk-ant-raw-key" },
    });
    await client.messages.create({ model: "claude-sonnet-4-5", max_tokens: 10, messages }, tagged(id));
    expect(upstreamOf(id)[0]!.headers["x-api-key"]).toBe("sk-ant-raw-key");
  });

  it.each([
    "anthropic/messages.claude-sonnet-4-5.text.json",
    "anthropic/messages.claude-sonnet-4-5.cache-read.json",
    "anthropic/messages.claude-sonnet-4-5.cache-read-and-write.json",
  ])("prices %s exactly (cache reads and writes)", async (rel) => {
    const body = JSON.parse(fixture(rel));
    const { data, response } = await anthropic.messages
      .create({ model: body.model, max_tokens: 100, messages }, { headers: { "x-mock-fixture": rel } })
      .withResponse();
    expect(data).toEqual(body);
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(rec, extractFromResponse("anthropic.messages", body), "anthropic");
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
  });

  it.each([
    ["claude-sonnet-4-20250514", FX.messagesStream],
    ["claude-sonnet-4-6", FX.messagesStreamTools],
    ["claude-sonnet-4-5", FX.messagesStreamChunks],
  ])(
    "stream %s: events unchanged; cumulative usage taken from the last message_delta",
    async (model, rel) => {
      const params = { model, max_tokens: 2048, messages, stream: true as const };
      const { data: stream, response } = await anthropic.messages.create(params).withResponse();
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const got = await collect(stream);
      expect(got).toEqual(await collect(await direct.messages.create(params)));
      expect(got.at(-1)!.type).toBe("message_stop");
      const rec = await recordById(response.headers.get("x-tollgate-event-id"));
      expectExactUsageAndCost(rec, extractFromSse("anthropic.messages", sseText(rel)), "anthropic");
      expect(rec).toMatchObject({ api: "anthropic.messages", stream: true, status: "ok", http_status: 200 });
      expect(rec.ttft_ms).toBeGreaterThanOrEqual(0);
    },
  );

  it("stream via the SDK helper: finalMessage usage matches the record", async () => {
    const stream = anthropic.messages.stream({
      model: "claude-sonnet-4-6",
      max_tokens: 2048,
      messages,
    });
    const final = await stream.finalMessage();
    const { response } = await stream.withResponse();
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    // code-execution loop: message_start said 2293 input tokens, the final message_delta 4714
    expect(final.usage.input_tokens).toBe(4714);
    expect(rec.input_uncached_tokens).toBe(final.usage.input_tokens);
    expect(rec.output_tokens).toBe(final.usage.output_tokens);
  });

  it("stream: the raw SSE (ping and event lines included) equals the upstream's; cost as a trailer", async () => {
    const init = {
      method: "POST",
      headers: ANTHROPIC_HEADERS,
      body: JSON.stringify({ model: "claude-sonnet-4-20250514", max_tokens: 10, messages, stream: true }),
    };
    const viaGateway = await rawRequest(`${gw.url}/v1/messages`, init);
    const viaDirect = await rawRequest(`${mock.url}/v1/messages`, init);
    expect(viaGateway.body).toBe(viaDirect.body); // no rewriting for Anthropic: byte-identical
    const rec = await recordById(String(viaGateway.headers["x-tollgate-event-id"]));
    expect(viaGateway.trailers["x-tollgate-cost-usd"]).toBe(formatUsd(rec.cost_nanousd));
    expect(parseSse(viaGateway.body).filter((e) => e.event === "ping")).toHaveLength(1);
  });

  it("count_tokens passes through (recorded as kind=other, not priced)", async () => {
    const id = newCase();
    const params = { model: "claude-sonnet-4-5", messages };
    const { data, response } = await anthropic.messages.countTokens(params, tagged(id)).withResponse();
    expect(data).toEqual(await direct.messages.countTokens(params));
    expect(data.input_tokens).toBeGreaterThan(0);
    const [up] = upstreamOf(id);
    expect(up).toMatchObject({ method: "POST", path: "/v1/messages/count_tokens", body: params });
    const eventId = response.headers.get("x-tollgate-event-id");
    const rec = await recordById(eventId);
    expect(rec).toMatchObject({ kind: "other", provider: "anthropic", priced: false, cost_nanousd: 0n });
  });

  it("other paths go to the Anthropic upstream, never to OpenAI's with the Anthropic key", async () => {
    const openaiSide = await startMockUpstream();
    const g = await startTestGateway(openaiSide.url, { anthropicBaseUrl: `${mock.url}/v1` });
    try {
      const id = newCase();
      const viaGateway = new Anthropic({ apiKey: "sk-ant-private", baseURL: g.url, maxRetries: 0 });
      const { response } = await viaGateway.models.list({}, tagged(id)).withResponse();
      expect(response.status).toBe(200);
      expect(openaiSide.requests).toEqual([]);
      const [up] = upstreamOf(id);
      expect(up).toMatchObject({ method: "GET", path: "/v1/models" });
      expect(up!.headers.authorization).toBe("Bearer sk-ant-private"); // as this SDK sends it, untouched
      const rec = await recordByEventId(g.runtime, response.headers.get("x-tollgate-event-id"));
      expect(rec).toMatchObject({ kind: "other", provider: "anthropic", priced: false });
    } finally {
      await g.stop();
      await openaiSide.close();
    }
  });

  it("attribution headers land on the record and are stripped upstream", async () => {
    const id = newCase();
    const { response } = await anthropic.messages
      .create(
        { model: "claude-sonnet-4-5", max_tokens: 10, messages },
        tagged(id, {
          "x-tollgate-customer-id": "cust-a",
          "x-tollgate-feature": "support-bot",
          "x-tollgate-agent-run-id": "run-77",
          "x-tollgate-tags": "x,y",
          "x-tollgate-meta-region": "eu",
        }),
      )
      .withResponse();
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      customer_id: "cust-a",
      feature: "support-bot",
      agent_run_id: "run-77",
      tags: ["x", "y"],
      metadata: { region: "eu" },
    });
    expect(Object.keys(upstreamOf(id)[0]!.headers).filter((h) => h.startsWith("x-tollgate"))).toEqual([]);
  });
});

describe("gateway: Anthropic's advisor tool", () => {
  // claude-opus-4-6, the advisor: 6,500 in × $5 + 2,000 cache reads × $0.50 + 1,500 out × $25 per million.
  const ADVISOR_COST = 6_500n * 5_000n + 2_000n * 500n + 1_500n * 25_000n;
  const tools = [{ type: "advisor_20260301" as const, name: "advisor" as const, model: "claude-opus-4-6" }];
  const ask = {
    model: "claude-sonnet-4-5",
    max_tokens: 1024,
    messages,
    tools,
    betas: ["advisor-tool-2026-03-01"],
  };

  /** The executor's record and its advisor's, which names it as the call it was made within. */
  async function recordsOf(eventId: string | null) {
    const main = await recordById(eventId);
    const all = await gatewayRecords(gw.runtime);
    return { main, advisor: all.filter((r) => r.parent_event_id === main.event_id) };
  }

  it("its consultations are a call of the advisor's model of their own; the reply's cost is both", async () => {
    for (const stream of [false, true]) {
      const res = await rawRequest(`${gw.url}/v1/messages`, {
        method: "POST",
        headers: { ...ANTHROPIC_HEADERS, "anthropic-beta": "advisor-tool-2026-03-01" },
        body: JSON.stringify({ ...ask, betas: undefined, stream }),
      });
      expect(res.status).toBe(200);
      const { main, advisor } = await recordsOf(String(res.headers["x-tollgate-event-id"]));
      expect(main).toMatchObject({ api: "anthropic.messages", stream, parent_event_id: null });
      expect(advisor).toHaveLength(1);
      expect(advisor[0]).toMatchObject({
        api: "anthropic.messages",
        model: "claude-opus-4-6",
        model_requested: "claude-opus-4-6",
        request_id: main.request_id,
        input_uncached_tokens: 6_500,
        cache_read_tokens: 2_000,
        output_tokens: 1_500,
        cost_nanousd: ADVISOR_COST,
        stream,
      });
      const cost = stream ? res.trailers["x-tollgate-cost-usd"] : res.headers["x-tollgate-cost-usd"];
      expect(cost).toBe(formatUsd(main.cost_nanousd + ADVISOR_COST));
    }
    // The SDK (its beta messages, which the advisor is) gets the reply as the upstream sent it.
    const data = await anthropic.beta.messages.create(ask);
    expect(data.usage.iterations).toHaveLength(3);
  });

  it("a budget holds the advisor's consultations before the call goes out, and counts them after", async () => {
    const user = `advisor-user-${newCase()}`;
    const budget = (limit: string) =>
      adminRequest(gw, "POST", "/api/budgets", {
        id: user,
        scope: { user_id: user },
        window: "day",
        limit_usd: limit,
      });
    const call = (params: object) =>
      anthropic.beta.messages.create(params as typeof ask, tagged(newCase(), { "x-tollgate-user-id": user }));
    const small = { ...ask, max_tokens: 100 };
    // The executor's worst case (claude-sonnet-4-5, ~300 input tokens and 100 out: ~$0.0025) fits $0.01; one
    // consultation's (claude-opus-4-6 reading that transcript, writing up to 2,048 tokens: ~$0.053) does not.
    await budget("0.01");
    const refused = await call(small).catch((e) => e);
    expect(refused).toBeInstanceOf(Anthropic.RateLimitError);
    expect(JSON.stringify(refused.error)).toMatch(/budget_exceeded/);
    const { tools: _, betas: __, ...noTool } = small;
    await anthropic.messages.create(noTool, tagged(newCase(), { "x-tollgate-user-id": user }));
    // Room for it: the call goes, and its spend is both calls'.
    await budget("5");
    const before = BigInt((await adminRequest(gw, "GET", `/api/budgets/${user}`)).json.spend_nanousd);
    const { response } = await call(small).withResponse();
    const { main } = await recordsOf(response.headers.get("x-tollgate-event-id"));
    const spend = async () => (await adminRequest(gw, "GET", `/api/budgets/${user}`)).json;
    await expect.poll(spend).toMatchObject({
      spend_nanousd: String(before + main.cost_nanousd + ADVISOR_COST),
      reserved_nanousd: "0",
    });
  });

  it("a stream the client leaves after a consultation came back: the consultation is estimated, not left out", async () => {
    const user = `advisor-cut-${newCase()}`;
    const stream = await anthropic.beta.messages.create(
      { ...ask, stream: true },
      tagged(newCase(), { "x-mock-chunk-delay-ms": "300", "x-tollgate-user-id": user }),
    );
    for await (const ev of stream)
      if (ev.type === "content_block_start" && ev.content_block.type === "advisor_tool_result") break;
    const records = async () => (await gatewayRecords(gw.runtime)).filter((r) => r.user_id === user);
    await expect.poll(async () => (await records()).length).toBe(2);
    const main = (await records()).find((r) => r.parent_event_id === null)!;
    const advisor = (await records()).find((r) => r.parent_event_id === main.event_id)!;
    expect(main).toMatchObject({ cost_source: "estimated", error_type: "client_disconnected" });
    // The transcript so far (message_start's input, the events received as output) read once, and a typical
    // consultation's 1,600 tokens, at the model the request's tool names.
    expect(advisor).toMatchObject({
      model: "claude-opus-4-6",
      cost_source: "estimated",
      input_uncached_tokens:
        main.input_uncached_tokens + main.cache_read_tokens + main.cache_write_5m_tokens + main.output_tokens,
      output_tokens: 1_600,
      request_id: main.request_id,
    });
    expect(advisor.cost_nanousd).toBeGreaterThan(0n);
  });

  it("an agent run counts the advisor's cost, not as another LLM call", async () => {
    const run = `advisor-run-${newCase()}`;
    const { response } = await anthropic.beta.messages
      .create(ask, tagged(newCase(), { "x-tollgate-agent-run-id": run }))
      .withResponse();
    const { main } = await recordsOf(response.headers.get("x-tollgate-event-id"));
    const usage = (await adminRequest(gw, "GET", `/api/runs/${run}`)).json.usage;
    expect(usage).toMatchObject({ llm_calls: 1, cost_nanousd: String(main.cost_nanousd + ADVISOR_COST) });
  });
});

describe("gateway: how Anthropic served a call (US-only inference, fast mode)", () => {
  it("a reply that says inference ran in the US is billed at 1.1×, header and record alike", async () => {
    const params = { model: "claude-sonnet-4-6", max_tokens: 1024, messages };
    const plain = await anthropic.messages.create({ ...params, inference_geo: "global" }).withResponse();
    const geo = await anthropic.messages.create({ ...params, inference_geo: "us" }).withResponse();
    expect(geo.data.usage).toMatchObject({ inference_geo: "us" });
    const standard = await recordById(plain.response.headers.get("x-tollgate-event-id"));
    const us = await recordById(geo.response.headers.get("x-tollgate-event-id"));
    expect(us.price_ref).toMatch(/;us-only=1\.1$/);
    expect(standard.price_ref).not.toMatch(/us-only/);
    expect([standard.model, us.model]).toEqual(["claude-sonnet-4-6", "claude-sonnet-4-6"]);
    // The same usage (the same real reply), at 1.1×: each category rounds once, as any multiplier's.
    expect(us.cost_nanousd).toBe((standard.cost_nanousd * 11n) / 10n);
    expect(geo.response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(us.cost_nanousd));
  });

  it("fast mode on Opus 4.6 is billed at 6×, header and record alike", async () => {
    const params = { model: "claude-opus-4-6", max_tokens: 1024, messages };
    const standard = await anthropic.messages
      .create({ ...params, speed: "standard" } as typeof params)
      .withResponse();
    const fast = await anthropic.messages
      .create({ ...params, speed: "fast" } as typeof params)
      .withResponse();
    expect(fast.data.usage).toMatchObject({ speed: "fast" });
    const [a, b] = await Promise.all(
      [standard, fast].map((r) => recordById(r.response.headers.get("x-tollgate-event-id"))),
    );
    expect(b!.price_ref).toMatch(/;fast=6$/);
    expect(b!.cost_nanousd).toBe(a!.cost_nanousd * 6n);
    expect(fast.response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(b!.cost_nanousd));
  });
});
