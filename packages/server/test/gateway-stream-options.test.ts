// An upstream that refuses the stream_options the gateway adds to a streamed OpenAI call (Azure OpenAI
// before api-version 2024-09-01-preview; a compatible server that forbids unknown fields): the call goes
// again as its client sent it, the gateway's own doing, which no retry of the client's or its run's pays for.
// Its own gateway: what it remembers of an upstream must not change the other files' streams.

import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  adminRequest,
  collect,
  gatewayRecords,
  recordByEventId,
  startTestGateway,
  testCases,
} from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let direct: OpenAI; // straight to the mock
const logs: string[] = [];

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(mock.url, {}, { log: (msg) => logs.push(msg) });
  direct = new OpenAI({ apiKey: "sk-test-123", baseURL: `${mock.url}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const { newCase, tagged, upstreamOf } = testCases("so", () => mock.requests);

/** A client of the gateway naming an Azure OpenAI api-version (each test its own: an upstream of its own). */
const azure = (apiVersion: string) =>
  new OpenAI({
    apiKey: "sk-test-123",
    baseURL: `${gw.url}/v1`,
    defaultQuery: { "api-version": apiVersion },
    maxRetries: 0,
  });

const messages = [{ role: "user" as const, content: "What is the capital of the UK?" }];
const params = { model: "gpt-4o-mini", messages, stream: true as const };
const withUsage = { stream_options: { include_usage: true }, ...params };

/** Every attempt of the call whose reply named `eventId`, in order: [attempt, http_status, error_type, cost]. */
async function attemptsOf(eventId: string | null) {
  const rec = await recordByEventId(gw.runtime, eventId);
  return (await gatewayRecords(gw.runtime))
    .filter((r) => r.request_id === rec.request_id)
    .sort((a, b) => a.attempt - b.attempt)
    .map((r) => [r.attempt, r.http_status, r.error_type, r.cost_nanousd]);
}

describe("gateway: an upstream that refuses the stream_options it added", () => {
  it("gets the client's own request: the stream as if direct", async () => {
    const refusing = (id: string) => tagged(id, { "x-mock-scenario": "no-stream-options" });
    const openai = new OpenAI({ apiKey: "sk-test-123", baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const id = newCase();
    const { data: stream, response } = await openai.chat.completions
      .create(params, refusing(id))
      .withResponse();
    const got = await collect(stream);
    expect(got).toEqual(await collect(await direct.chat.completions.create(params, refusing(newCase()))));
    // Asked with usage, refused, then sent as the client sent it.
    expect(upstreamOf(id).map((r) => r.body)).toEqual([withUsage, params]);
    // Each attempt is a record: the refusal at $0 (named so: the gateway's doing), then the stream, which
    // reported no usage (unpriced).
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ attempt: 2, status: "ok", http_status: 200, priced: false });
    expect(await attemptsOf(rec.event_id)).toEqual([
      [1, 400, "stream_options_refused", 0n],
      [2, 200, "usage_unreadable", 0n], // the stream the client asked for: no usage in it
    ]);
  });

  it("is remembered (base URL and api-version): its later streams go as their clients send them, told once", async () => {
    const refusing = azure("2024-05-01-preview");
    const sent = async (openai: OpenAI) => {
      const id = newCase();
      const { data: stream, response } = await openai.chat.completions
        .create(params, tagged(id))
        .withResponse();
      expect((await collect(stream)).length).toBeGreaterThan(1);
      const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
      return { bodies: upstreamOf(id).map((r) => r.body), rec };
    };
    expect((await sent(refusing)).bodies).toEqual([withUsage, params]);
    // No second round trip, no refusal recorded: one attempt, without usage (unpriced).
    const again = await sent(refusing);
    expect(again.bodies).toEqual([params]);
    expect(again.rec).toMatchObject({ attempt: 1, status: "ok", priced: false, usage_raw: null });
    expect(await attemptsOf(again.rec.event_id)).toEqual([[1, 200, "usage_unreadable", 0n]]);
    // Another api-version of the same base URL is another upstream: a newer one reports usage.
    const newer = await sent(azure("2024-10-21"));
    expect(newer.bodies).toEqual([withUsage]);
    expect(newer.rec).toMatchObject({ attempt: 1, status: "ok", priced: true });
    expect(newer.rec.cost_nanousd).toBeGreaterThan(0n);
    const told = logs.filter((m) => m.includes("api-version=2024-05-01-preview"));
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/refused stream_options .*without usage \(unpriced\)/);
  });

  it("is not a client's own stream_options the upstream refuses: its 400 is the client's, and the upstream's later streams still report usage", async () => {
    const openai = azure("2025-04-01-preview"); // an upstream of its own, which takes stream_options
    const mistaken = { ...params, stream_options: { include_obfuscation: "no" } };
    const id = newCase();
    const err = await openai.chat.completions
      .create(mistaken as unknown as typeof params, tagged(id))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toMatch(/stream_options\.include_obfuscation/);
    // One attempt, the client's request with the usage asked: no re-send, and the refusal is its own.
    const sentBodies = upstreamOf(id).map((r) => r.body);
    expect(sentBodies).toEqual([
      { ...mistaken, stream_options: { include_obfuscation: "no", include_usage: true } },
    ]);
    // The upstream was not refusing stream_options: a later stream of it is asked for its usage, priced.
    const later = newCase();
    const { data: stream, response } = await openai.chat.completions
      .create(params, tagged(later))
      .withResponse();
    expect((await collect(stream)).length).toBeGreaterThan(1);
    expect(upstreamOf(later).map((r) => r.body)).toEqual([withUsage]);
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ attempt: 1, status: "ok", priced: true });
    expect(logs.filter((m) => m.includes("api-version=2025-04-01-preview"))).toEqual([]);
  });

  it("its re-send is no retry of the client's: x-tollgate-retries 1 still retries the re-sent call's 429", async () => {
    const id = newCase();
    const { data: stream, response } = await azure("2024-02-01")
      .chat.completions.create(
        params,
        tagged(id, {
          "x-mock-scenario": "rate-limit-once",
          "x-mock-retry-after": "0",
          "x-tollgate-retries": "1",
        }),
      )
      .withResponse();
    expect((await collect(stream)).length).toBeGreaterThan(1);
    expect(upstreamOf(id).map((r) => r.body)).toEqual([withUsage, params, params]);
    expect(await attemptsOf(response.headers.get("x-tollgate-event-id"))).toEqual([
      [1, 400, "stream_options_refused", 0n],
      [2, 429, "requests", 0n],
      [3, 200, "usage_unreadable", 0n],
    ]);
  });

  it("its re-send is no retry of the agent run's: a run with max_retries 0 gets its stream, and goes on", async () => {
    const put = await adminRequest(gw, "PUT", "/api/agents/no-retries-bot", { max_retries: 0 });
    expect(put.status).toBeLessThan(300);
    const run = { "x-tollgate-agent-run-id": "no-retries-1", "x-tollgate-agent-type": "no-retries-bot" };
    const openai = azure("2024-03-01-preview");
    for (const _ of [1, 2]) {
      const stream = await openai.chat.completions.create(params, tagged(newCase(), run));
      expect((await collect(stream)).length).toBeGreaterThan(1);
    }
    const { json } = await adminRequest(gw, "GET", "/api/runs/no-retries-1");
    expect(json).toMatchObject({ killed: null, usage: { retries: 0 } });
  });

  it("nor is its refused attempt one of the run's LLM calls: a run with max_llm_calls 1 gets its one stream", async () => {
    const put = await adminRequest(gw, "PUT", "/api/agents/one-call-bot", { max_llm_calls: 1 });
    expect(put.status).toBeLessThan(300);
    const run = { "x-tollgate-agent-run-id": "one-call-1", "x-tollgate-agent-type": "one-call-bot" };
    const id = newCase();
    const stream = await azure("2024-07-01-preview").chat.completions.create(params, tagged(id, run));
    expect((await collect(stream)).length).toBeGreaterThan(1);
    expect(upstreamOf(id).map((r) => r.body)).toEqual([withUsage, params]);
    const { json } = await adminRequest(gw, "GET", "/api/runs/one-call-1");
    expect(json).toMatchObject({ killed: null, usage: { llm_calls: 1 } });
  });

  it("nor is its refused attempt one of the client's requests a rate limit counts: at 1 request a minute, its stream comes", async () => {
    const rate = { id: "so-rpm", scope: { feature: "so-rpm" }, requests_per_min: 1 };
    expect((await adminRequest(gw, "POST", "/api/rate-limits", rate)).status).toBeLessThan(300);
    const id = newCase();
    const stream = await azure("2024-08-01-preview").chat.completions.create(
      params,
      tagged(id, { "x-tollgate-feature": "so-rpm" }),
    );
    expect((await collect(stream)).length).toBeGreaterThan(1);
    expect(upstreamOf(id).map((r) => r.body)).toEqual([withUsage, params]);
  });

  it("nor once its run is rebuilt from the store (a restart): the run with max_retries 0 goes on", async () => {
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    const run = { "x-tollgate-agent-run-id": "no-retries-2", "x-tollgate-agent-type": "no-retries-bot-2" };
    const streamed = async (on: typeof gw) => {
      const openai = new OpenAI({
        apiKey: "sk-test-123",
        baseURL: `${on.url}/v1`,
        defaultQuery: { "api-version": "2024-04-01-preview" },
        maxRetries: 0,
      });
      const id = newCase();
      expect(
        (await collect(await openai.chat.completions.create(params, tagged(id, run)))).length,
      ).toBeGreaterThan(1);
      return upstreamOf(id).length;
    };
    try {
      expect(
        (await adminRequest(first, "PUT", "/api/agents/no-retries-bot-2", { max_retries: 0 })).status,
      ).toBeLessThan(300);
      expect(await streamed(first)).toBe(2); // refused, then re-sent
      await first.runtime.recorder.flush();
    } finally {
      await first.stop();
    }
    const second = await startTestGateway(mock.url, {}, { dataDir: first.dataDir });
    try {
      const { json } = await adminRequest(second, "GET", "/api/runs/no-retries-2");
      expect(json).toMatchObject({ killed: null, usage: { llm_calls: 1, retries: 0 } });
      expect(await streamed(second)).toBe(2); // a new process: it learns the upstream again
    } finally {
      await second.stop();
    }
  });
});
