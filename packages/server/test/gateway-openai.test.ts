// The gateway as a drop-in OpenAI base URL, driven by the official `openai` SDK against the local mock
// upstream (real recorded payloads). The SDK must see exactly what the upstream sent, and every call's
// record must carry the usage and cost @tollgate/core computes from that payload.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { extractFromResponse, extractFromSse, formatUsd } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadUpstreams } from "../src/gateway/config.js";
import {
  collect,
  createKey,
  expectExactUsageAndCost,
  gatewayRecords,
  type Json,
  rawRequest,
  recordByEventId,
  startTestGateway,
  testCases,
} from "./helpers.js";
import {
  compactedResponse,
  FX,
  fixture,
  LEGACY_COMPLETION_USAGE,
  type MockUpstream,
  startMockUpstream,
} from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let openai: OpenAI; // through the gateway
let direct: OpenAI; // straight to the mock

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(mock.url);
  openai = new OpenAI({ apiKey: "sk-test-123", baseURL: `${gw.url}/v1`, maxRetries: 0 });
  direct = new OpenAI({ apiKey: "sk-test-123", baseURL: `${mock.url}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const { newCase, tagged, upstreamOf } = testCases("oa", () => mock.requests);
const recordById = (eventId: string | null, workspace = "default") =>
  recordByEventId(gw.runtime, eventId, workspace);

const messages = [{ role: "user" as const, content: "What is the capital of the UK?" }];

/**
 * The records of a background response, once its llm record is there (a finished poll's record is made
 * after the poll's reply, and after a look for one made elsewhere), plus a moment for any second one.
 */
async function responseRecords(id: string, workspace = "default") {
  await vi.waitFor(
    async () => {
      const llm = (await gatewayRecords(gw.runtime, workspace)).filter(
        (r) => r.request_id === id && r.kind === "llm",
      );
      expect(llm.length).toBeGreaterThan(0);
    },
    { timeout: 5_000, interval: 20 },
  );
  await sleep(100);
  return (await gatewayRecords(gw.runtime, workspace)).filter((r) => r.request_id === id);
}

describe("gateway: OpenAI chat completions", () => {
  it("non-streaming: the SDK gets the upstream reply; headers and record are exact", async () => {
    const id = newCase();
    const params = { model: "gpt-4.1-nano", messages, temperature: 0 };
    const { data, response } = await openai.chat.completions.create(params, tagged(id)).withResponse();
    expect(data).toEqual(await direct.chat.completions.create(params));
    expect(data).toEqual(JSON.parse(fixture(FX.chat)));
    expect(response.status).toBe(200);
    // the provider's own headers pass through
    expect(response.headers.get("x-request-id")).toMatch(/^req_mock/);
    expect(response.headers.get("openai-processing-ms")).toBe("42");

    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
    expectExactUsageAndCost(rec, extractFromResponse("openai.chat", JSON.parse(fixture(FX.chat))), "openai");
    expect(rec).toMatchObject({
      workspace_id: "default",
      kind: "llm",
      provider: "openai",
      api: "openai.chat",
      model_requested: "gpt-4.1-nano",
      model: "gpt-4.1-nano-2025-04-14",
      stream: false,
      status: "ok",
      http_status: 200,
      error_type: null,
      attempt: 1,
    });
    expect(rec.request_id).toBeTruthy();
    expect(rec.latency_ms).toBeGreaterThanOrEqual(0);

    const [up, ...more] = upstreamOf(id);
    expect(more).toHaveLength(0);
    expect(up!.method).toBe("POST");
    expect(up!.path).toBe("/v1/chat/completions");
    expect(up!.body).toEqual(params); // forwarded unchanged
    expect(up!.headers.authorization).toBe("Bearer sk-test-123");
  });

  it.each([
    "openai/chat-completion.gpt-4.1-nano.json",
    "openai/chat-completion.o3-mini.reasoning.json",
    "openai/chat-completion.gpt-5.6-sol.cache-read.json",
    "openai/chat-completion.gpt-5.6-sol.cache-write.json",
  ])("prices %s exactly (reasoning, cache read/write)", async (rel) => {
    const body = JSON.parse(fixture(rel));
    const { data, response } = await openai.chat.completions
      .create({ model: body.model, messages }, { headers: { "x-mock-fixture": rel } })
      .withResponse();
    expect(data).toEqual(body);
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(rec, extractFromResponse("openai.chat", body), "openai");
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
  });

  it("streaming with include_usage: the stream passes unchanged; usage and cost exact", async () => {
    const id = newCase();
    const params = {
      model: "gpt-4o-mini",
      messages,
      stream: true as const,
      stream_options: { include_usage: true },
    };
    const { data: stream, response } = await openai.chat.completions
      .create(params, tagged(id))
      .withResponse();
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const eventId = response.headers.get("x-tollgate-event-id");
    const got = await collect(stream);
    const want = await collect(await direct.chat.completions.create(params));
    expect(got).toEqual(want);
    expect(got.at(-1)!.usage).toMatchObject({ prompt_tokens: 53, completion_tokens: 15 });

    const [up] = upstreamOf(id);
    expect(up!.body).toEqual(params);

    const rec = await recordById(eventId);
    expectExactUsageAndCost(rec, extractFromSse("openai.chat", fixture(FX.chatStream)), "openai");
    expect(rec).toMatchObject({ stream: true, status: "ok", http_status: 200, api: "openai.chat" });
    expect(rec.ttft_ms).toBeGreaterThanOrEqual(0);
  });

  it("streaming without include_usage: usage is added upstream and removed before the SDK sees it", async () => {
    const id = newCase();
    const params = { model: "gpt-4o-mini", messages, stream: true as const };
    const { data: stream, response } = await openai.chat.completions
      .create(params, tagged(id))
      .withResponse();
    const got = await collect(stream);
    const want = await collect(await direct.chat.completions.create(params));
    expect(got).toEqual(want);
    for (const chunk of got) expect(chunk).not.toHaveProperty("usage");
    expect(got.every((c) => c.choices.length === 1)).toBe(true);

    // the gateway asked the upstream for usage...
    const [up] = upstreamOf(id);
    expect(up!.body).toEqual({ ...params, stream_options: { include_usage: true } });
    // ...and recorded it
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(rec, extractFromSse("openai.chat", fixture(FX.chatStream)), "openai");
    expect(rec.stream).toBe(true);
  });

  it("the include_usage the gateway adds leaves every other byte of the request as the client sent it", async () => {
    const id = newCase();
    // An integer past 2^53 and the client's own spacing: a JSON round trip would change both.
    const sent = ` {"model": "gpt-4o-mini", "seed": 12345678901234567890, "stream": true, "messages": ${JSON.stringify(messages)}}`;
    const res = await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test-123", "x-test-case": id },
      body: sent,
    });
    expect(res.status).toBe(200);
    expect(upstreamOf(id)[0]!.rawBody).toBe(` {"stream_options":{"include_usage":true},${sent.slice(2)}`);
  });

  it("a client's own stream_options (null, or without include_usage) has only its value rewritten", async () => {
    for (const [own, added] of [
      ["null", '{"include_usage":true}'],
      [
        '{ "include_usage": false, "include_obfuscation": false }',
        '{"include_usage":true,"include_obfuscation":false}',
      ],
    ]) {
      const id = newCase();
      const head = ` {"model": "gpt-4o-mini", "seed": 12345678901234567890, "stream_options": `;
      const tail = `, "stream": true, "messages": ${JSON.stringify(messages)}}`;
      const res = await rawRequest(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test-123",
          "x-test-case": id,
        },
        body: `${head}${own}${tail}`,
      });
      expect(res.status).toBe(200);
      expect(res.body).not.toContain('"usage":{'); // the client did not ask for it
      expect(upstreamOf(id)[0]!.rawBody).toBe(`${head}${added}${tail}`);
    }
  });

  it("a stream_options the upstream would refuse (not an object) is sent as it came", async () => {
    const id = newCase();
    const sent = `{"model":"gpt-4o-mini","stream":true,"stream_options":"yes","messages":${JSON.stringify(messages)}}`;
    await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test-123", "x-test-case": id },
      body: sent,
    });
    expect(upstreamOf(id)[0]!.rawBody).toBe(sent);
  });

  it("streaming with include_usage: false is treated as not asked", async () => {
    const params = {
      model: "gpt-4o-mini",
      messages,
      stream: true as const,
      stream_options: { include_usage: false },
    };
    const { data: stream, response } = await openai.chat.completions.create(params).withResponse();
    const got = await collect(stream);
    expect(got).toEqual(await collect(await direct.chat.completions.create(params)));
    for (const chunk of got) expect(chunk).not.toHaveProperty("usage");
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(rec, extractFromSse("openai.chat", fixture(FX.chatStream)), "openai");
  });

  it("a call's record by its x-tollgate-event-id (GET /api/events/:id): for streams, whose cost is a trailer", async () => {
    const id = newCase();
    const { data: stream, response } = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages, stream: true }, tagged(id))
      .withResponse();
    await collect(stream);
    const eventId = response.headers.get("x-tollgate-event-id")!;
    const rec = await recordById(eventId); // waits for the recorder
    const auth = { authorization: `Bearer ${gw.runtime.rootToken}` };
    const got = await fetch(`${gw.url}/api/events/${eventId}`, { headers: auth });
    expect(got.status).toBe(200);
    const body = (await got.json()) as Json;
    expect(body.event).toMatchObject({
      event_id: eventId,
      stream: true,
      cost_nanousd: rec.cost_nanousd.toString(),
    });
    expect(body.cost_usd).toBe(formatUsd(rec.cost_nanousd));

    const upper = await fetch(`${gw.url}/api/events/${eventId.toUpperCase()}`, { headers: auth });
    expect(((await upper.json()) as Json).event.event_id).toBe(eventId);

    const missing = await fetch(`${gw.url}/api/events/01900000-0000-7000-8000-000000000000`, {
      headers: auth,
    });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as Json).error).toMatchObject({ code: "event_not_found", param: "id" });
    const malformed = await fetch(`${gw.url}/api/events/not-an-id`, { headers: auth });
    expect(malformed.status).toBe(400);
    expect((await fetch(`${gw.url}/api/events/${eventId}`)).status).toBe(401);
    const empty = await fetch(`${gw.url}/api/events?request_id=`, { headers: auth });
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as Json).error).toMatchObject({ param: "request_id" });
  });

  it("a gateway key looks up the calls made through it, and no other", async () => {
    const { json: mine } = await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "gateway");
    const { json: theirs } = await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "gateway");
    const call = async (key: string) => {
      const { response } = await openai.chat.completions
        .create({ model: "gpt-4.1-nano", messages }, { headers: { "x-tollgate-key": key } })
        .withResponse();
      const eventId = response.headers.get("x-tollgate-event-id")!;
      await recordById(eventId);
      return eventId;
    };
    const [own, other] = [await call(mine.key), await call(theirs.key)];
    const lookup = (id: string) =>
      fetch(`${gw.url}/api/events/${id}`, { headers: { authorization: `Bearer ${mine.key}` } });
    expect((await lookup(own)).status).toBe(200);
    expect((await lookup(other)).status).toBe(404);
    // ...and nothing else of the API
    const list = await fetch(`${gw.url}/api/events`, { headers: { authorization: `Bearer ${mine.key}` } });
    expect(list.status).toBe(403);
  });

  it("streams: the raw SSE content equals the upstream's, and the cost follows as an HTTP trailer", async () => {
    for (const includeUsage of [true, false]) {
      const body = JSON.stringify({
        model: "gpt-4o-mini",
        messages,
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      });
      const init = {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test-123" },
        body,
      };
      const viaGateway = await rawRequest(`${gw.url}/v1/chat/completions`, init);
      const viaDirect = await rawRequest(`${mock.url}/v1/chat/completions`, init);
      expect(viaGateway.status).toBe(200);
      expect(viaGateway.body, `include_usage=${includeUsage}`).toBe(viaDirect.body); // byte for byte
      const rec = await recordById(String(viaGateway.headers["x-tollgate-event-id"]));
      expect(viaGateway.trailers["x-tollgate-cost-usd"]).toBe(formatUsd(rec.cost_nanousd));
      expectExactUsageAndCost(rec, extractFromSse("openai.chat", fixture(FX.chatStream)), "openai");
    }
  });
});

describe("gateway: OpenAI streaming behaviour", () => {
  it("relays chunk by chunk, without buffering the stream", async () => {
    const started = Date.now();
    const stream = await openai.chat.completions.create(
      { model: "gpt-4o-mini", messages, stream: true },
      { headers: { "x-mock-chunk-delay-ms": "80" } },
    );
    const arrivals: number[] = [];
    for await (const _ of stream) arrivals.push(Date.now() - started);
    expect(arrivals.length).toBe(7); // 9 upstream events minus the added usage chunk and [DONE]
    const total = arrivals.at(-1)!;
    expect(total).toBeGreaterThanOrEqual(6 * 80);
    // the first chunk arrives about one upstream delay in, long before the stream ends
    expect(arrivals[0]!).toBeLessThan(total / 2);
    expect(arrivals[3]! - arrivals[0]!).toBeGreaterThanOrEqual(2 * 70);
  });

  it("an error status on a stream request reaches the SDK as the typed error", async () => {
    const err = await openai.chat.completions
      .create(
        { model: "gpt-4o-mini", messages, stream: true },
        { headers: { "x-mock-scenario": "rate-limit" } },
      )
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.headers.get("retry-after")).toBe("1");
  });

  it("concurrent calls of every kind each get their own exact record", async () => {
    const N = 8;
    const calls = Array.from({ length: N }, async (_, i) => {
      if (i % 4 === 0) {
        const { data, response } = await openai.chat.completions
          .create({ model: "gpt-4.1-nano", messages })
          .withResponse();
        return { data, eventId: response.headers.get("x-tollgate-event-id"), api: "openai.chat" };
      }
      if (i % 4 === 1) {
        const { data: s, response } = await openai.chat.completions
          .create({ model: "gpt-4o-mini", messages, stream: true })
          .withResponse();
        return {
          data: await collect(s),
          eventId: response.headers.get("x-tollgate-event-id"),
          api: "openai.chat",
        };
      }
      if (i % 4 === 2) {
        const { data: s, response } = await openai.responses
          .create({ model: "gpt-5", input: "x", stream: true })
          .withResponse();
        return {
          data: await collect(s),
          eventId: response.headers.get("x-tollgate-event-id"),
          api: "openai.responses",
        };
      }
      const { data, response } = await openai.embeddings
        .create({ model: "text-embedding-3-small", input: "x" })
        .withResponse();
      return { data, eventId: response.headers.get("x-tollgate-event-id"), api: "openai.embeddings" };
    });
    const results = await Promise.all(calls);
    expect(new Set(results.map((r) => r.eventId)).size).toBe(N);
    const all = await gatewayRecords(gw.runtime);
    for (const r of results) {
      const rec = all.find((x) => x.event_id === r.eventId);
      expect(rec?.api).toBe(r.api);
      expect(rec?.status).toBe("ok");
    }
    const streamed = results.filter((_, i) => i % 4 === 1).map((r) => r.data);
    for (const chunks of streamed) expect(chunks).toEqual(streamed[0]);
  });
});

describe("gateway: OpenAI Responses, legacy completions and embeddings", () => {
  it.each([
    "openai/responses.gpt-4o.cached.json",
    "openai/responses.gpt-5.cached-reasoning.json",
    "openai/responses.gpt-5.6-sol.cache-read.json",
    "openai/responses.gpt-5.6-sol.cache-write.json",
  ])("Responses body %s: reply and record exact", async (rel) => {
    const body = JSON.parse(fixture(rel));
    const opts = { headers: { "x-mock-fixture": rel } };
    const params = { model: body.model, input: "Describe the image." };
    const { data, response } = await openai.responses.create(params, opts).withResponse();
    expect(data).toEqual(await direct.responses.create(params, opts));
    expect(data.id).toBe(body.id);
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(rec, extractFromResponse("openai.responses", body), "openai");
    expect(rec).toMatchObject({ kind: "llm", api: "openai.responses", stream: false, status: "ok" });
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
  });

  it("a compaction (responses.compact) is a model call: priced at the request's model and tier, not passed through at $0", async () => {
    const id = newCase();
    const params = { model: "gpt-5", input: "A long conversation", service_tier: "flex" as const };
    const { data, response } = await openai.responses.compact(params, tagged(id)).withResponse();
    expect(data).toEqual(JSON.parse(compactedResponse()));
    expect(upstreamOf(id)[0]!.path).toBe("/v1/responses/compact");
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    // The compacted response names no model: the request's is priced, on the tier it asked for (flex).
    const usage = extractFromResponse("openai.responses", { ...data, model: "gpt-5", service_tier: "flex" });
    expectExactUsageAndCost(rec, usage, "openai");
    expect(rec).toMatchObject({
      kind: "llm",
      api: "openai.responses",
      model: "gpt-5",
      service_tier: "flex",
      status: "ok",
      input_uncached_tokens: 213,
      cache_read_tokens: 1280,
      output_tokens: 125,
    });
    // Half of gpt-5's $1.25 / $0.125 / $10 per million.
    expect(rec.cost_nanousd).toBe((213n * 1_250n + 1280n * 125n + 125n * 10_000n) / 2n);
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
  });

  it("Responses stream: events unchanged, usage from response.completed", async () => {
    const params = { model: "gpt-5", input: "What is 2+2?", stream: true as const };
    const { data: stream, response } = await openai.responses.create(params).withResponse();
    const got = await collect(stream);
    expect(got).toEqual(await collect(await direct.responses.create(params)));
    expect(got.at(-1)!.type).toBe("response.completed");
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(rec, extractFromSse("openai.responses", fixture(FX.responsesStream)), "openai");
    expect(rec).toMatchObject({ api: "openai.responses", stream: true, status: "ok", reasoning_tokens: 448 });
    // The provider served it on the flex tier (response.service_tier), billed at batch rates: half of
    // gpt-5's $1.25 / $10 per million for 53 input and 469 output tokens.
    expect(rec).toMatchObject({ service_tier: "flex", input_uncached_tokens: 53, output_tokens: 469 });
    expect(rec.price_ref).toMatch(/;flex=0\.5$/);
    expect(rec.cost_nanousd).toBe((53n * 1_250n + 469n * 10_000n) / 2n);
  });

  it.each(["no-usage-at-end", "usage-unreadable-at-end"])(
    "a Responses stream that ends without usage it can read (%s): an ok call of unknown cost, usage_unreadable, as a whole reply is",
    async (scenario) => {
      const { data: stream, response } = await openai.responses
        .create(
          { model: "gpt-5", input: "What is 2+2?", stream: true },
          { headers: { "x-mock-scenario": scenario } },
        )
        .withResponse();
      expect((await collect(stream)).at(-1)!.type).toBe("response.completed");
      // Ended with none, it was recorded error_type null: as a call without a problem, its cost unknown.
      expect(await recordById(response.headers.get("x-tollgate-event-id"))).toMatchObject({
        status: "ok",
        error_type: "usage_unreadable",
        priced: false,
        cost_nanousd: 0n,
      });
    },
  );

  it("a background response: its submission is kind=other; the poll that finds it finished records its cost, once", async () => {
    const opts = {
      headers: { "x-mock-case": "bg-1", "x-tollgate-feature": "research", "x-tollgate-user-id": "u-bg" },
    };
    const submit = await openai.responses
      .create({ model: "gpt-5", input: "Research caching", background: true }, opts)
      .withResponse();
    expect(submit.data).toMatchObject({ status: "queued", background: true, usage: null });
    const submission = await recordById(submit.response.headers.get("x-tollgate-event-id"));
    expect(submission).toMatchObject({
      kind: "other",
      api: "openai.responses",
      status: "ok",
      error_type: null,
      cost_nanousd: 0n,
      feature: "research",
    });
    const id = submit.data.id;
    expect((await openai.responses.retrieve(id, undefined, opts)).status).toBe("in_progress");
    const done = await openai.responses.retrieve(id, undefined, opts);
    expect(done.status).toBe("completed");
    // Polled again, here and through another client: still one record.
    await openai.responses.retrieve(id, undefined, opts);
    const finished = (await responseRecords(id)).filter((r) => r.kind === "llm");
    expect(finished).toHaveLength(1);
    const body = JSON.parse(fixture(FX.responsesReasoning));
    expect(id).toBe(body.id);
    expectExactUsageAndCost(finished[0]!, extractFromResponse("openai.responses", body), "openai");
    expect(finished[0]).toMatchObject({
      api: "openai.responses",
      status: "ok",
      feature: "research",
      user_id: "u-bg",
      ts_start: submit.data.created_at * 1000,
      ts_end: null, // when it finished is not known
      cost_source: "computed",
    });
    expect(finished[0]!.cost_nanousd).toBeGreaterThan(0n);
  });

  it("a background response streamed to its end is recorded once: from its stream, not again from a poll", async () => {
    const opts = { headers: { "x-mock-case": "bg-stream" } };
    const streamed = await rawRequest(`${gw.url}/v1/responses`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test-123", ...opts.headers },
      body: JSON.stringify({ model: "gpt-5", input: "go", stream: true, background: true }),
    });
    expect(streamed.status).toBe(200);
    const id = /"id":"(resp_[^"]+)"/.exec(streamed.body)![1]!;
    expect((await openai.responses.retrieve(id, undefined, opts)).status).toBe("completed");
    // Resumed from the start as well: the same response, still one record.
    const resumed = await collect(await openai.responses.retrieve(id, { stream: true }, opts));
    expect(resumed.at(-1)).toMatchObject({ type: "response.completed" });
    await sleep(100);
    const llm = (await responseRecords(id)).filter((r) => r.kind === "llm");
    expect(llm).toHaveLength(1);
    expect(llm[0]).toMatchObject({ stream: true, status: "ok", output_tokens: 469 });
    // Its header, sent before the response was named, names the stream's own record (as a submission's);
    // its trailer, the response's cost.
    const own = await recordById(String(streamed.headers["x-tollgate-event-id"]));
    expect(own).toMatchObject({ kind: "other", request_id: id, cost_nanousd: 0n });
    expect(streamed.trailers["x-tollgate-cost-usd"]).toBe(formatUsd(llm[0]!.cost_nanousd));
  });

  it("a background stream cut short and resumed (GET …?stream=true) is billed once, from the resumed stream's end, for its submission", async () => {
    // A fixture of its own: the gateway records a response once, under the id its fixture gives it.
    const rel = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
    const mockCase = { "x-mock-case": "bg-resume", "x-mock-fixture": rel };
    const submitted = await openai.responses.create(
      { model: "gpt-5.2", input: "Tallest mountain in Alberta?", stream: true, background: true },
      { headers: { ...mockCase, "x-mock-scenario": "reset-mid-stream", "x-tollgate-feature": "resumable" } },
    );
    const seen: { type: string; sequence_number: number; response?: { id: string } }[] = [];
    await expect(
      (async () => {
        for await (const ev of submitted) seen.push(ev);
      })(),
    ).rejects.toThrow();
    const id = seen[0]!.response!.id;
    const last = seen.at(-1)!.sequence_number;
    const resume = (scenario?: string) =>
      openai.responses.retrieve(
        id,
        { stream: true, starting_after: last },
        // Resumed under another feature: the response is still its submission's.
        {
          headers: {
            ...mockCase,
            "x-tollgate-feature": "poller",
            ...(scenario ? { "x-mock-scenario": scenario } : {}),
          },
        },
      );
    const llmOf = async () =>
      (await gatewayRecords(gw.runtime)).filter((r) => r.request_id === id && r.kind === "llm");
    // Cut again before its end: the response has not been seen to finish, nothing is billed yet.
    await expect(collect(await resume("reset-mid-stream"))).rejects.toThrow();
    await sleep(200);
    expect(await llmOf()).toHaveLength(0);
    // Resumed to its end: the client gets the rest of the stream, and the response is billed once.
    const rest = await collect(await resume());
    expect(rest[0]!.sequence_number).toBe(last + 1);
    expect(rest.at(-1)).toMatchObject({ type: "response.completed", response: { id, background: true } });
    const records = await responseRecords(id);
    const llm = records.filter((r) => r.kind === "llm");
    expect(llm).toHaveLength(1);
    expectExactUsageAndCost(llm[0]!, extractFromSse("openai.responses", fixture(rel)), "openai");
    expect(llm[0]).toMatchObject({
      status: "ok",
      feature: "resumable",
      web_search_requests: 1,
      ts_end: null,
    });
    expect(llm[0]!.cost_nanousd).toBe(15_515_500n + 10_000_000n);
    // The resumptions themselves pass through as kind=other, $0; a later poll bills nothing more.
    expect(records.filter((r) => r.kind === "other").every((r) => r.cost_nanousd === 0n)).toBe(true);
    await openai.responses.retrieve(id, undefined, { headers: mockCase });
    await sleep(100);
    expect(await llmOf()).toHaveLength(1);
  });

  it("a background response is recorded for its submission's workspace and attribution, polled with another key or none", async () => {
    const { json: key } = await createKey(gw.runtime.app, gw.runtime.rootToken, "bg-ws", "gateway");
    // A response is recorded once whoever polls it, and the mock's keep their fixture's id: a fixture of its own.
    const mock = {
      "x-mock-case": "bg-ws",
      "x-mock-fixture": "openai/responses.gpt-5.6-sol.cache-write.json",
    };
    const submitter = { ...mock, "x-tollgate-key": key.key, "x-tollgate-feature": "reports" };
    const submitted = await openai.responses.create(
      { model: "gpt-5.6-sol", input: "go", background: true },
      { headers: submitter },
    );
    const inDefault = async () =>
      (await gatewayRecords(gw.runtime)).filter((r) => r.request_id === submitted.id && r.kind === "llm")
        .length;
    const before = await inDefault();
    for (let i = 0; i < 2; i++) await openai.responses.retrieve(submitted.id, undefined, { headers: mock });
    const mine = await responseRecords(submitted.id, "bg-ws");
    expect(mine.map((r) => r.kind).sort()).toEqual(["llm", "other"]);
    expect(mine.find((r) => r.kind === "llm")).toMatchObject({ feature: "reports", key_id: key.id });
    expect(await inDefault()).toBe(before);
  });

  it("Responses stream with a web search: the search is counted from response.completed and billed per call", async () => {
    // A real capture: gpt-5.2 with the web_search tool, one search ("tallest mountain in Alberta").
    const rel = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
    const opts = { headers: { "x-mock-fixture": rel } };
    const params = { model: "gpt-5.2", input: "Tallest mountain in Alberta?", stream: true as const };
    const { data: stream, response } = await openai.responses.create(params, opts).withResponse();
    const got = await collect(stream);
    expect(got).toEqual(await collect(await direct.responses.create(params, opts)));
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(rec, extractFromSse("openai.responses", fixture(rel)), "openai");
    expect(rec).toMatchObject({ input_uncached_tokens: 8234, output_tokens: 79, web_search_requests: 1 });
    // The cost vector's $0.0155155 of tokens (genai-prices), plus one search at $10 per thousand.
    expect(rec.cost_tool_calls_nanousd).toBe(10_000_000n);
    expect(rec.cost_nanousd).toBe(15_515_500n + 10_000_000n);
  });

  it("legacy completions (/v1/completions): body and stream unchanged, usage added and removed, cost exact", async () => {
    // $1.50 / $2.00 per million tokens (gpt-3.5-turbo-instruct): 5 in, 7 out.
    const cost = 5n * 1_500n + 7n * 2_000n;
    const id = newCase();
    const params = { model: "gpt-3.5-turbo-instruct", prompt: "Say this is a test", max_tokens: 7 };
    const { data, response } = await openai.completions.create(params, tagged(id)).withResponse();
    expect(data).toEqual(await direct.completions.create(params));
    expect(data.usage).toEqual(LEGACY_COMPLETION_USAGE);
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(cost));
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      kind: "llm",
      api: "openai.completions",
      model: "gpt-3.5-turbo-instruct",
      input_uncached_tokens: 5,
      output_tokens: 7,
      stream: false,
      cost_nanousd: cost,
      cost_source: "computed",
    });
    expect(upstreamOf(id)[0]!.path).toBe("/v1/completions");

    // Streamed without include_usage: the gateway asks for usage and strips its chunk again.
    const sid = newCase();
    const streamed = { ...params, stream: true as const };
    const { data: stream, response: sres } = await openai.completions
      .create(streamed, tagged(sid))
      .withResponse();
    const got = await collect(stream);
    expect(got).toEqual(await collect(await direct.completions.create(streamed)));
    expect(got.map((c) => c.choices[0]!.text).join("")).toBe(data.choices[0]!.text);
    for (const chunk of got) expect(chunk).not.toHaveProperty("usage");
    expect(upstreamOf(sid)[0]!.body).toEqual({ ...streamed, stream_options: { include_usage: true } });
    const srec = await recordById(sres.headers.get("x-tollgate-event-id"));
    expect(srec).toMatchObject({
      api: "openai.completions",
      stream: true,
      output_tokens: 7,
      cost_nanousd: cost,
    });
  });

  it("embeddings: vectors unchanged, recorded as kind=embedding", async () => {
    const id = newCase();
    const params = { model: "text-embedding-3-small", input: "hello world" };
    const { data, response } = await openai.embeddings.create(params, tagged(id)).withResponse();
    expect(data).toEqual(await direct.embeddings.create(params));
    expect(data.data[0]!.embedding.length).toBeGreaterThan(0);
    expect(upstreamOf(id)[0]!.path).toBe("/v1/embeddings");
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expectExactUsageAndCost(
      rec,
      extractFromResponse("openai.embeddings", JSON.parse(fixture(FX.embeddings))),
      "openai",
    );
    expect(rec).toMatchObject({
      kind: "embedding",
      api: "openai.embeddings",
      model: "text-embedding-3-small",
      input_uncached_tokens: 4,
      output_tokens: 0,
    });
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
  });
});

describe("gateway: attribution, keys and pass-through", () => {
  const attribution = {
    "x-tollgate-user-id": "u-42",
    "x-tollgate-customer-id": "acme",
    "x-tollgate-feature": "search",
    "x-tollgate-deployment": "staging",
    "x-tollgate-prompt-version": "pv-7",
    "x-tollgate-agent-run-id": "run-1",
    "x-tollgate-agent-type": "planner",
    "x-tollgate-session-id": "sess-9",
    "x-tollgate-route": "variant-b",
    "x-tollgate-tags": "alpha, beta,gamma",
    "x-tollgate-meta-team": "growth",
    "x-tollgate-meta-ticket": "T-1",
  };

  it("x-tollgate-* headers land on the record and never reach the upstream; the provider key does", async () => {
    const id = newCase();
    const client = new OpenAI({
      apiKey: "sk-test-123",
      baseURL: `${gw.url}/v1`,
      maxRetries: 0,
      defaultHeaders: attribution,
    });
    const { response } = await client.chat.completions
      .create({ model: "gpt-4.1-nano", messages }, tagged(id, { "openai-organization": "org-x" }))
      .withResponse();
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      user_id: "u-42",
      customer_id: "acme",
      feature: "search",
      deployment: "staging",
      prompt_version: "pv-7",
      agent_run_id: "run-1",
      agent_type: "planner",
      session_id: "sess-9",
      route: "variant-b",
      tags: ["alpha", "beta", "gamma"],
      metadata: { team: "growth", ticket: "T-1" },
    });
    const [up] = upstreamOf(id);
    expect(Object.keys(up!.headers).filter((h) => h.startsWith("x-tollgate"))).toEqual([]);
    expect(up!.headers.authorization).toBe("Bearer sk-test-123");
    expect(up!.headers["openai-organization"]).toBe("org-x");
    expect(up!.headers["x-test-case"]).toBe(id);
  });

  it("chat.completions.list() (a GET on the model path) passes through, recorded as kind=other", async () => {
    const { response } = await openai.chat.completions.list().withResponse();
    expect(response.status).toBe(200);
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.00");
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ kind: "other", api: null, status: "ok", error_type: null, priced: false });
  });

  it("attribution the record could not take is refused up front (400 naming the header), not dropped after", async () => {
    for (const [headers, says] of [
      [{ "x-tollgate-user-id": "u".repeat(300) }, "x-tollgate-user-id: must be at most 256 characters"],
      [{ "x-tollgate-tags": `ok,${"t".repeat(200)}` }, "x-tollgate-tags: must be at most 128 characters"],
      [{ "x-tollgate-meta-note": "n".repeat(3000) }, "x-tollgate-meta-note: must be at most 2048 characters"],
    ] as const) {
      const id = newCase();
      const err = await openai.chat.completions
        .create(
          { model: "gpt-4.1-nano", messages },
          tagged(id, { "x-tollgate-customer-id": "acme", ...headers }),
        )
        .catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.error).toMatchObject({ type: "invalid_request_error", message: says });
      expect(upstreamOf(id)).toEqual([]); // nothing went upstream, so nothing was billed
    }
  });

  it("an empty attribution header is no attribution; UTF-8 header bytes are read as UTF-8", async () => {
    // Written on a raw socket, as curl sends them: the header's UTF-8 bytes.
    const body = JSON.stringify({ model: "gpt-4.1-nano", messages });
    const head = [
      "POST /v1/chat/completions HTTP/1.1",
      "host: gw",
      "connection: close",
      "content-type: application/json",
      "authorization: Bearer sk-test-123",
      "x-tollgate-feature: ",
      "x-tollgate-customer-id: acme",
      "x-tollgate-user-id: Zoë 日本",
      "x-tollgate-tags: café,ünï",
      `content-length: ${Buffer.byteLength(body)}`,
    ];
    const sock = connect(Number(new URL(gw.url).port), "127.0.0.1");
    sock.write(Buffer.from(`${head.join("\r\n")}\r\n\r\n${body}`, "utf8"));
    let reply = "";
    for await (const chunk of sock) reply += chunk;
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    const rec = await recordById(/x-tollgate-event-id: (\S+)/i.exec(reply)![1]!);
    expect(rec).toMatchObject({
      feature: null,
      customer_id: "acme",
      user_id: "Zoë 日本",
      tags: ["café", "ünï"],
    });
  });

  it("without attribution headers the record has none", async () => {
    const { response } = await openai.chat.completions
      .create({ model: "gpt-4.1-nano", messages })
      .withResponse();
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ user_id: null, customer_id: null, feature: null, tags: [], metadata: {} });
  });

  it("x-tollgate-key: calls go to the key's workspace with its defaults; headers override them", async () => {
    const res = await gw.runtime.app.request("/api/keys", {
      method: "POST",
      headers: { authorization: `Bearer ${gw.runtime.rootToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        workspace: "gw-ws",
        role: "gateway",
        defaults: { customer_id: "cust-default", feature: "feat-default" },
      }),
    });
    expect(res.status).toBe(201);
    const { key } = (await res.json()) as Json;
    const id = newCase();
    const { response } = await openai.chat.completions
      .create(
        { model: "gpt-4.1-nano", messages },
        tagged(id, { "x-tollgate-key": key, "x-tollgate-feature": "feat-header" }),
      )
      .withResponse();
    const rec = await recordById(response.headers.get("x-tollgate-event-id"), "gw-ws");
    expect(rec).toMatchObject({ workspace_id: "gw-ws", customer_id: "cust-default", feature: "feat-header" });
    const def = await gatewayRecords(gw.runtime, "default");
    expect(def.find((r) => r.event_id === rec.event_id)).toBeUndefined();
    expect(upstreamOf(id)[0]!.headers["x-tollgate-key"]).toBeUndefined();
  });

  it("other /v1/* paths pass through and are recorded as kind=other, unpriced", async () => {
    const id = newCase();
    const { data: page, response } = await openai.models.list(tagged(id)).withResponse();
    expect(page.data.map((m) => m.id)).toEqual(["gpt-4o-mini", "text-embedding-3-small"]);
    const [up] = upstreamOf(id);
    expect(up).toMatchObject({ method: "GET", path: "/v1/models" });
    expect(up!.headers.authorization).toBe("Bearer sk-test-123");
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.00"); // not a model call: nothing to price
    const rec = await recordById(response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      kind: "other",
      provider: "openai",
      priced: false,
      status: "ok",
      http_status: 200,
      cost_nanousd: 0n,
    });
  });

  it("named upstreams: the path below their base URL, their headers added, priced as their provider", async () => {
    const g = await startTestGateway(mock.url, {
      upstreams: {
        "azure-east": {
          provider: "azure",
          baseUrl: `${mock.url}/openai/deployments/nano`,
          headers: { "api-key": "az-secret" },
        },
        homegrown: { provider: "homegrown", baseUrl: `${mock.url}/v1`, headers: {} },
      },
    });
    try {
      const via = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g.url}/v1`, maxRetries: 0 });
      const call = (id: string, upstream: string) =>
        via.chat.completions
          .create(
            { model: "gpt-4.1-nano", messages },
            tagged(id, { "x-tollgate-upstream": upstream, "x-mock-fixture": FX.chat }),
          )
          .withResponse();

      const az = newCase();
      const { data, response } = await call(az, "azure-east");
      expect(data).toEqual(JSON.parse(fixture(FX.chat)));
      const [up] = upstreamOf(az);
      expect(up).toMatchObject({ method: "POST", path: "/openai/deployments/nano/chat/completions" });
      expect(up!.headers["api-key"]).toBe("az-secret");
      expect(up!.headers.authorization).toBe("Bearer sk-test-123");
      expect(up!.headers["x-tollgate-upstream"]).toBeUndefined();
      const rec = await recordByEventId(g.runtime, response.headers.get("x-tollgate-event-id"));
      expect(rec).toMatchObject({ provider: "azure", priced: true });
      expect(rec.price_ref).toMatch(/:azure:/);
      expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));

      // A provider without a price: the record says priced=false, and the reply does not say 0.00.
      const home = newCase();
      const unpriced = await call(home, "homegrown");
      const rec2 = await recordByEventId(g.runtime, unpriced.response.headers.get("x-tollgate-event-id"));
      expect(rec2).toMatchObject({ provider: "homegrown", priced: false, cost_nanousd: 0n });
      expect(unpriced.response.headers.get("x-tollgate-cost-usd")).toBe("unknown");
      const looked = await fetch(`${g.url}/api/events/${rec2.event_id}`, {
        headers: { authorization: `Bearer ${g.runtime.rootToken}` },
      });
      expect(((await looked.json()) as Json).cost_usd).toBe("unknown"); // as the reply said
    } finally {
      await g.stop();
    }
  });

  it("a named upstream's headers replace the client's, however the upstreams file spells their names", async () => {
    // Header names are case-insensitive: `Api-Key` in the file is the client's `api-key`, sent once, the file's.
    const dir = mkdtempSync(join(tmpdir(), "tollgate-upstreams-"));
    const file = join(dir, "upstreams.yaml");
    writeFileSync(
      file,
      [
        "upstreams:",
        "  azure-east:",
        "    provider: azure",
        `    base_url: ${mock.url}/v1`,
        "    headers:",
        "      Api-Key: az-secret",
        "      Authorization: Bearer az-entra-token",
      ].join("\n"),
    );
    const g = await startTestGateway(mock.url, { upstreams: loadUpstreams(file) });
    try {
      const via = new OpenAI({ apiKey: "sk-client-key", baseURL: `${g.url}/v1`, maxRetries: 0 });
      const id = newCase();
      await via.chat.completions.create(
        { model: "gpt-4.1-nano", messages },
        tagged(id, {
          "x-tollgate-upstream": "azure-east",
          "x-mock-fixture": FX.chat,
          "api-key": "client-az",
        }),
      );
      // Sent twice, Node would join the api-keys ("client-az, az-secret") and keep the client's authorization.
      const [up] = upstreamOf(id);
      expect(up!.headers["api-key"]).toBe("az-secret");
      expect(up!.headers.authorization).toBe("Bearer az-entra-token");
    } finally {
      await g.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an upstream 404 on a pass-through path reaches the SDK as NotFoundError", async () => {
    const err = await openai.moderations.create({ input: "x" }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.error).toMatchObject({ type: "invalid_request_error" });
    expect(mock.requests.at(-1)!.path).toBe("/v1/moderations");
  });

  it("Tollgate's own /v1/events is not proxied", async () => {
    const before = mock.requests.length;
    const res = await fetch(`${gw.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "[]",
    });
    expect(res.status).toBe(401); // the ingest API answered (no key), not the upstream
    expect(mock.requests.slice(before).some((r) => r.path.startsWith("/v1/events"))).toBe(false);
  });

  it("serves /healthz, /readyz and Prometheus /metrics", async () => {
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${gw.url}/readyz`)).status).toBe(200);
    const res = await fetch(`${gw.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    for (const name of [
      "tollgate_gateway_requests_total",
      "tollgate_gateway_request_duration_seconds_bucket",
      "tollgate_gateway_upstream_errors_total",
      "tollgate_spool_depth",
      "tollgate_recorded_cost_nanousd_total",
    ])
      expect(text, name).toContain(name);
    const cost = /^tollgate_recorded_cost_nanousd_total(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(
      text,
    );
    expect(Number(cost?.[1])).toBeGreaterThan(0);
    // The process's own: what an on-call watches memory and event-loop stalls with.
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    expect(gauge("process_resident_memory_bytes")).toBeGreaterThan(20 * 1024 * 1024);
    expect(gauge("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(gauge("process_open_fds")).toBeGreaterThan(0);
    expect(gauge("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(Math.abs(gauge("process_start_time_seconds") - Date.now() / 1000)).toBeLessThan(3600);
    const busy = gauge("tollgate_event_loop_utilization");
    expect(busy).toBeGreaterThan(0);
    expect(busy).toBeLessThanOrEqual(1);
  });
});
