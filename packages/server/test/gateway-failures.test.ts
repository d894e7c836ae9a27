// Upstream failures through the gateway, seen by the official SDKs: errors reach the client unchanged,
// timeouts answer 504 in the provider's shape, retries are recorded attempt by attempt, broken and
// abandoned streams are still recorded.

import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import Anthropic from "@anthropic-ai/sdk";
import { type CallRecord, extractFromResponse, formatUsd } from "@tollgate/core";
import OpenAI from "openai";
import { Agent, fetch as undiciFetch } from "undici";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createKey as createKeyRecord } from "../src/auth/keys.js";
import { UsageChunkStripper } from "../src/gateway/strip-usage.js";
import {
  adminRequest,
  expectExactUsageAndCost,
  gatewayRecords,
  type Json,
  rawRequest,
  startSilentServer,
  startTestGateway,
  testCases,
  UNSENT_TIMEOUT,
} from "./helpers.js";
import { FX, fixture, type MockUpstream, startMockUpstream } from "./mock-upstream.js";

const TIMEOUT_MS = 500;

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let openai: OpenAI;
let anthropic: Anthropic;
/** The SDKs' connection pool, closable at the end. */
const agent = new Agent();
const clientFetch = ((url: string, init?: RequestInit) =>
  undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: [5, 20] });
  gw = await startTestGateway(mock.url, { timeoutMs: TIMEOUT_MS });
  openai = new OpenAI({
    apiKey: "sk-test-123",
    baseURL: `${gw.url}/v1`,
    maxRetries: 0,
    fetch: clientFetch,
  });
  anthropic = new Anthropic({ apiKey: "sk-ant-test", baseURL: gw.url, maxRetries: 0, fetch: clientFetch });
});

afterAll(async () => {
  // The SDK clients' own sockets go first: after an aborted stream, fetch opens a fresh connection that
  // sends no request, and stop() waits for it (see "stop() is not held up ..." below).
  await agent.destroy();
  await gw?.stop();
  await mock?.close();
});

const { newCase, tagged, upstreamOf } = testCases("f", () => mock.requests);
/** Marks a call both upstream (x-test-case) and on its records (metadata.case). */
const opts = (id: string, extra: Record<string, string> = {}) =>
  tagged(id, { "x-tollgate-meta-case": id, ...extra });

async function recordsOf(id: string, gateway = gw): Promise<CallRecord[]> {
  return (await gatewayRecords(gateway.runtime))
    .filter((r) => r.metadata.case === id)
    .sort((a, b) => a.attempt - b.attempt);
}

/** For calls whose end the gateway learns asynchronously (client gone, stream broken). */
async function waitForRecords(id: string, n = 1): Promise<CallRecord[]> {
  return vi.waitFor(
    async () => {
      const recs = await recordsOf(id);
      expect(recs.length).toBeGreaterThanOrEqual(n);
      return recs;
    },
    { timeout: 5_000, interval: 50 },
  );
}

const messages = [{ role: "user" as const, content: "Hello" }];

/** Starts a call (streamed unless told) and leaves it (aborts) after `ms`; resolves once the SDK has given up. */
async function leaveStream(
  id: string,
  headers: Record<string, string>,
  ms: number,
  stream = true,
): Promise<void> {
  const leave = new AbortController();
  const call = openai.chat.completions.create(
    { model: "gpt-4o-mini", messages, stream },
    { ...opts(id, headers), signal: leave.signal },
  );
  setTimeout(() => leave.abort(), ms);
  await expect(call).rejects.toThrow();
}

/** A counter of the gateway's /metrics (0 when absent), by a pattern whose group 1 is the value. */
async function metricCount(pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

/** The admin API, as the local admin (root token). */
async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(gw.url + path, {
    method,
    headers: { authorization: `Bearer ${gw.runtime.rootToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Json };
}

describe("gateway failures: upstream errors reach the SDK unchanged", () => {
  it("OpenAI 429 with retry-after → RateLimitError with the provider's headers and body", async () => {
    const id = newCase();
    const err = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages }, opts(id, { "x-mock-scenario": "rate-limit" }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.status).toBe(429);
    expect(err.headers.get("retry-after")).toBe("1");
    expect(err.headers.get("x-request-id")).toMatch(/^req_mock/);
    expect(err.error).toMatchObject({ type: "requests", code: "rate_limit_exceeded" });
    expect(err.error.message).toMatch(/^Rate limit reached/);

    const [rec, ...more] = await recordsOf(id);
    expect(more).toHaveLength(0);
    expect(rec).toMatchObject({ status: "error", http_status: 429, attempt: 1, cost_nanousd: 0n });
    expect(rec!.error_type).toBeTruthy();
    expect(err.headers.get("x-tollgate-event-id")).toBe(rec!.event_id);
    expect(upstreamOf(id)).toHaveLength(1); // no gateway retries unless asked
  });

  it("the error body is byte-identical to the upstream's", async () => {
    const init = {
      method: "POST",
      headers: { "content-type": "application/json", "x-mock-scenario": "rate-limit" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages }),
    };
    const via = await rawRequest(`${gw.url}/v1/chat/completions`, init);
    const direct = await rawRequest(`${mock.url}/v1/chat/completions`, init);
    expect(via.status).toBe(429);
    expect(via.body).toBe(direct.body);
    expect(via.headers["retry-after"]).toBe("1");
    expect(via.headers["content-type"]).toBe(direct.headers["content-type"]);
  });

  it("Anthropic 429 → Anthropic.RateLimitError with its error shape", async () => {
    const id = newCase();
    const err = await anthropic.messages
      .create(
        { model: "claude-sonnet-4-5", max_tokens: 10, messages },
        opts(id, { "x-mock-scenario": "rate-limit" }),
      )
      .catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(err.headers.get("retry-after")).toBe("1");
    expect(err.error).toMatchObject({ type: "error", error: { type: "rate_limit_error" } });
    const [rec] = await recordsOf(id);
    // The provider's own type, from inside Anthropic's {"type":"error","error":{...}}.
    expect(rec).toMatchObject({
      status: "error",
      http_status: 429,
      provider: "anthropic",
      error_type: "rate_limit_error",
    });
  });

  it("500 → InternalServerError (both SDKs), recorded as errors", async () => {
    const a = newCase();
    const e1 = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages }, opts(a, { "x-mock-scenario": "server-error" }))
      .catch((e) => e);
    expect(e1).toBeInstanceOf(OpenAI.InternalServerError);
    expect(e1.status).toBe(500);
    expect(e1.error).toMatchObject({ type: "server_error" });
    const b = newCase();
    const e2 = await anthropic.messages
      .create(
        { model: "claude-sonnet-4-5", max_tokens: 10, messages },
        opts(b, { "x-mock-scenario": "server-error" }),
      )
      .catch((e) => e);
    expect(e2).toBeInstanceOf(Anthropic.InternalServerError);
    expect(e2.error).toMatchObject({ type: "error", error: { type: "api_error" } });
    for (const [id, type] of [
      [a, "server_error"],
      [b, "api_error"],
    ]) {
      const [rec] = await recordsOf(id!);
      expect(rec).toMatchObject({ status: "error", http_status: 500, cost_nanousd: 0n, error_type: type });
    }
  });
});

describe("gateway failures: a fault of the gateway's own", () => {
  it("a throw inside the relay: the attempt is still recorded, the client gets a 502 naming its record", async () => {
    const metrics = gw.runtime.metrics.upstreamErrors;
    // The relay of an error answer counts it first: that count throws, once, as a bug there would.
    const spy = vi.spyOn(metrics, "inc").mockImplementationOnce(() => {
      throw new Error("injected fault");
    });
    try {
      const a = newCase();
      const res = await rawRequest(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test-123",
          "x-test-case": a,
          "x-tollgate-meta-case": a,
          "x-mock-scenario": "server-error",
        },
        body: JSON.stringify({ model: "gpt-4o-mini", messages }),
      });
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body)).toMatchObject({
        error: { type: "api_error", message: "gateway error: injected fault" },
      });
      const [rec, ...more] = await recordsOf(a);
      expect(more).toEqual([]);
      expect(rec).toMatchObject({ status: "error", http_status: 500, error_type: "gateway_error" });
      expect(res.headers["x-tollgate-event-id"]).toBe(rec!.event_id);
    } finally {
      spy.mockRestore();
    }
  });

  it("a throw while relaying a stream: recorded as the gateway's fault (not the upstream's), usage estimated", async () => {
    const spy = vi.spyOn(UsageChunkStripper.prototype, "push").mockImplementationOnce(() => {
      throw new Error("injected fault");
    });
    try {
      const a = newCase();
      // No include_usage: the gateway adds it, and strips its chunk with the stripper that throws (on the
      // first chunk, so the SDK sees the connection close before or while it reads the stream).
      const err = await (async () => {
        const stream = await openai.chat.completions.create(
          { model: "gpt-4o-mini", messages, stream: true },
          opts(a),
        );
        for await (const _ of stream);
      })().catch((e) => e);
      expect(err).toBeInstanceOf(Error);
      const [rec, ...more] = await waitForRecords(a);
      expect(more).toEqual([]);
      expect(rec).toMatchObject({
        status: "error",
        http_status: 200,
        error_type: "gateway_error",
        cost_source: "estimated",
      });
    } finally {
      spy.mockRestore();
    }
  });
});

describe("gateway failures: timeouts and broken connections", () => {
  it("an upstream that never answers → 504 in OpenAI's error shape, recorded as a timeout", async () => {
    const id = newCase();
    const started = Date.now();
    const err = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages }, opts(id, { "x-mock-scenario": "hang" }))
      .catch((e) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(504);
    expect(typeof err.error?.message).toBe("string");
    expect(typeof err.error?.type).toBe("string");
    expect(err.error).toHaveProperty("code");
    const [rec] = await recordsOf(id);
    // The upstream had the request: it may bill its input all the same, estimated from the request.
    expect(rec).toMatchObject({
      status: "error",
      error_type: "timeout",
      cost_source: "estimated",
      priced: true,
    });
    expect(rec!.input_uncached_tokens).toBeGreaterThan(0);
    expect(rec!.cost_nanousd).toBeGreaterThan(0n);
    // The gateway's own answer names the record it made, as an upstream's answer would, and its cost.
    expect(err.headers.get("x-tollgate-event-id")).toBe(rec!.event_id);
    expect(err.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec!.cost_nanousd));

    const raw = await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-mock-scenario": "hang" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages }),
    });
    expect(raw.status).toBe(504);
    const body = JSON.parse(raw.body) as Json;
    expect(Object.keys(body)).toEqual(["error"]);
    expect(body.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
    expect(body.error).toHaveProperty("code");
    // Answers the gateway gave itself count in /metrics like any other.
    const timeouts = await metricCount(
      /tollgate_gateway_requests_total\{family="openai",api="openai.chat",status="504"\} (\d+)/,
    );
    expect(timeouts).toBeGreaterThanOrEqual(2);
  });

  it("x-tollgate-timeout-ms sets one call's upstream timeout; a malformed one is refused", async () => {
    // A model slow to start (1.5 s to its headers): past the gateway's 500 ms, within the call's own 5 s.
    const slow = (extra: Record<string, string>) =>
      openai.chat.completions
        .create(
          { model: "gpt-4.1-nano", messages },
          opts(newCase(), { "x-mock-headers-delay-ms": "1500", ...extra }),
        )
        .then(() => 200)
        .catch((e) => e.status);
    expect(await slow({})).toBe(504);
    expect(await slow({ "x-tollgate-timeout-ms": "5000" })).toBe(200);

    const id = newCase();
    const err = await openai.chat.completions
      .create(
        { model: "gpt-4o-mini", messages },
        opts(id, { "x-mock-scenario": "hang", "x-tollgate-timeout-ms": "150" }),
      )
      .catch((e) => e);
    expect(err.status).toBe(504);
    expect(err.error.message).toMatch(/within 150 ms/);
    expect(upstreamOf(id)[0]!.headers["x-tollgate-timeout-ms"]).toBeUndefined();

    const bad = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages }, opts(newCase(), { "x-tollgate-timeout-ms": "soon" }))
      .catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.error.message).toMatch(/x-tollgate-timeout-ms must be an integer/);
  });

  it("a short x-tollgate-timeout-ms keeps its time, for the headers and between body chunks alike", async () => {
    // undici's own timeouts tick every ~0.5 s: a 150 ms timeout used to fire at about 1 s.
    const timed = async (scenario: string) => {
      const started = performance.now();
      const err = await openai.chat.completions
        .create(
          { model: "gpt-4.1-nano", messages },
          opts(newCase(), { "x-mock-scenario": scenario, "x-tollgate-timeout-ms": "150" }),
        )
        .catch((e) => e);
      expect(err.status).toBe(504);
      return { ms: performance.now() - started, message: err.error.message as string };
    };
    const headers = await timed("hang");
    expect(headers.message).toMatch(/within 150 ms/);
    expect(headers.ms).toBeGreaterThanOrEqual(150);
    expect(headers.ms).toBeLessThan(450);
    const body = await timed("stall-mid-stream");
    expect(body.message).toMatch(/upstream body did not arrive within 150 ms/);
    expect(body.ms).toBeGreaterThanOrEqual(150);
    expect(body.ms).toBeLessThan(450);
  });

  it("connecting is bounded by the upstream timeout: an https upstream that never finishes its handshake → 504, $0", async () => {
    const silent = await startSilentServer();
    const g = await startTestGateway(silent.origin("https"), {
      timeoutMs: 500,
    });
    try {
      const client = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g.url}/v1`, maxRetries: 0 });
      const started = Date.now();
      const err = await client.chat.completions.create({ model: "gpt-4.1-nano", messages }).catch((e) => e);
      expect(Date.now() - started).toBeLessThan(5_000); // undici's own connect timeout is 10 s
      expect(err.status).toBe(504);
      expect(err.error.message).toBe("upstream did not take the connection within 500 ms");
      const [rec] = await gatewayRecords(g.runtime);
      expect(rec).toMatchObject(UNSENT_TIMEOUT);
    } finally {
      await g.stop();
      silent.close();
    }
  });

  it("x-tollgate-timeout-ms may not ask for more than the operator's ceiling (gateway.maxTimeoutMs)", async () => {
    const g = await startTestGateway(mock.url, { timeoutMs: TIMEOUT_MS, maxTimeoutMs: 2000 });
    try {
      const client = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g.url}/v1`, maxRetries: 0 });
      const call = (ms: string) =>
        client.chat.completions.create(
          { model: "gpt-4.1-nano", messages },
          opts(newCase(), { "x-mock-headers-delay-ms": "1000", "x-tollgate-timeout-ms": ms }),
        );
      const over = await call("5000").catch((e) => e);
      expect(over).toBeInstanceOf(OpenAI.BadRequestError);
      expect(over.error.message).toBe("x-tollgate-timeout-ms must be an integer 1..2000");
      expect((await call("2000")).usage?.total_tokens).toBeGreaterThan(0); // 1 s to headers: within it
    } finally {
      await g.stop();
    }
  });

  it("an upstream that never answers → 504 in Anthropic's error shape", async () => {
    const id = newCase();
    const err = await anthropic.messages
      .create(
        { model: "claude-sonnet-4-5", max_tokens: 10, messages },
        opts(id, { "x-mock-scenario": "hang" }),
      )
      .catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(err.status).toBe(504);
    expect(err.error).toMatchObject({
      type: "error",
      error: { type: expect.any(String), message: expect.any(String) },
    });
    const [rec] = await recordsOf(id);
    expect(rec).toMatchObject({ status: "error", error_type: "timeout", provider: "anthropic" });
  });

  it("connection reset mid-stream: the SDK throws after the chunks it got; the record has status error", async () => {
    const id = newCase();
    const stream = await openai.chat.completions.create(
      { model: "gpt-4o-mini", messages, stream: true },
      opts(id, { "x-mock-scenario": "reset-mid-stream" }),
    );
    const seen: unknown[] = [];
    const err = await (async () => {
      for await (const c of stream) seen.push(c);
    })().catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(seen.length).toBeGreaterThan(0);
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({ status: "error", stream: true, http_status: 200 });
    expect(rec!.error_type).toBeTruthy();
  });

  it("Anthropic stream reset mid-stream: the SDK throws; the record keeps the input usage already sent", async () => {
    const id = newCase();
    const stream = await anthropic.messages.create(
      { model: "claude-sonnet-4-20250514", max_tokens: 100, messages, stream: true },
      opts(id, { "x-mock-scenario": "reset-mid-stream", "x-mock-chunk-delay-ms": "1" }),
    );
    let events = 0;
    const err = await (async () => {
      for await (const _ of stream) events++;
    })().catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({ status: "error", provider: "anthropic", input_uncached_tokens: 43 });
    // message_start said 1 output token; the output streamed after it was generated, and billed, too.
    expect(events).toBeGreaterThan(10);
    expect(rec!.output_tokens).toBeGreaterThanOrEqual(events);
    expect(rec!.cost_source).toBe("estimated");
  });

  it("a stream that stalls longer than the timeout: the SDK throws, recorded as a timeout", async () => {
    const id = newCase();
    const stream = await openai.chat.completions.create(
      { model: "gpt-4o-mini", messages, stream: true },
      opts(id, { "x-mock-scenario": "stall-mid-stream" }),
    );
    const err = await (async () => {
      for await (const _ of stream);
    })().catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({ status: "error", error_type: "timeout" });
  });

  it("a non-streamed body cut mid-way: the SDK gets an error, the record has status error", async () => {
    const id = newCase();
    const err = await openai.chat.completions
      .create({ model: "gpt-4.1-nano", messages }, opts(id, { "x-mock-scenario": "reset-mid-stream" }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(502);
    const [rec] = await waitForRecords(id);
    // The headers came (200), then the body broke off: answered, so billed; estimated, as a cut-off stream.
    expect(rec).toMatchObject({ status: "error", http_status: 200, error_type: "connection_error" });
    expect(rec).toMatchObject({ cost_source: "estimated", priced: true });
    expect(rec!.cost_nanousd).toBeGreaterThan(0n);
    expect(err.headers.get("x-tollgate-event-id")).toBe(rec!.event_id);
    expect(err.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec!.cost_nanousd));
  });

  it("a non-streamed body that stalls longer than the timeout: 504, recorded as a timeout", async () => {
    const id = newCase();
    const err = await openai.chat.completions
      .create({ model: "gpt-4.1-nano", messages }, opts(id, { "x-mock-scenario": "stall-mid-stream" }))
      .catch((e) => e);
    expect(err.status).toBe(504);
    expect(err.error.message).toMatch(/upstream body did not arrive within/);
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({
      status: "error",
      http_status: 200,
      error_type: "timeout",
      cost_source: "estimated",
    });
  });

  it("an upstream that breaks off or stalls after its headers counts in /metrics' upstream errors", async () => {
    const upstreamErrors = (kind: string) =>
      metricCount(
        new RegExp(
          `^tollgate_gateway_upstream_errors_total\\{family="openai",kind="${kind}"\\} (\\d+)$`,
          "m",
        ),
      );
    const before = {
      connection: await upstreamErrors("connection"),
      timeout: await upstreamErrors("timeout"),
    };
    for (const scenario of ["reset-mid-stream", "stall-mid-stream"])
      for (const stream of [true, false]) {
        const call = openai.chat.completions.create(
          { model: "gpt-4o-mini", messages, stream },
          opts(newCase(), { "x-mock-scenario": scenario }),
        );
        const err = await (async () => {
          for await (const _ of (await call) as AsyncIterable<unknown>);
        })().catch((e) => e);
        expect(err, `${scenario}, stream: ${stream}`).toBeInstanceOf(Error);
      }
    // A stream and a whole reply of each: broken (a connection error) and stalled (a timeout).
    expect(await upstreamErrors("connection")).toBe(before.connection + 2);
    expect(await upstreamErrors("timeout")).toBe(before.timeout + 2);
  });

  it("an error answer whose body breaks off counts once in /metrics' upstream errors, as the break its record says", async () => {
    const upstreamErrors = (kind: string) =>
      metricCount(
        new RegExp(
          `^tollgate_gateway_upstream_errors_total\\{family="openai",kind="${kind}"\\} (\\d+)$`,
          "m",
        ),
      );
    const before = { connection: await upstreamErrors("connection"), notFound: await upstreamErrors("404") };
    const cut = { "x-mock-scenario": "not-found-cut" };
    // A download (relayed as it comes) and a model call's whole reply.
    const download = await fetch(`${gw.url}/v1/files/file-abc/content`, {
      headers: { authorization: "Bearer sk-test-123", ...cut },
    })
      .then((r) => r.text())
      .catch((e) => e);
    expect(download).toBeInstanceOf(Error);
    const err = await openai.chat.completions
      .create({ model: "gpt-4.1-nano", messages }, opts(newCase(), cut))
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(await upstreamErrors("connection")).toBe(before.connection + 2);
    expect(await upstreamErrors("404")).toBe(before.notFound);
  });
});

describe("gateway failures: retries", () => {
  it("x-tollgate-retries: 2 + one 429: the SDK gets 200; two records share request_id (attempts 1, 2)", async () => {
    const id = newCase();
    const started = Date.now();
    const { data, response } = await openai.chat.completions
      .create(
        { model: "gpt-4.1-nano", messages: [{ role: "user", content: id }] },
        opts(id, { "x-mock-scenario": "rate-limit-once", "x-tollgate-retries": "2" }),
      )
      .withResponse();
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // retry-after: 1 honoured
    expect(data).toEqual(JSON.parse(fixture(FX.chat)));
    const ups = upstreamOf(id);
    expect(ups).toHaveLength(2);
    expect(ups[1]!.rawBody).toBe(ups[0]!.rawBody);
    expect(ups[1]!.headers["x-tollgate-retries"]).toBeUndefined();

    const recs = await recordsOf(id);
    expect(recs.map((r) => r.attempt)).toEqual([1, 2]);
    expect(recs[0]!.request_id).toBeTruthy();
    expect(recs[1]!.request_id).toBe(recs[0]!.request_id);
    expect(recs[0]).toMatchObject({ status: "error", http_status: 429, cost_nanousd: 0n });
    expect(recs[1]).toMatchObject({ status: "ok", http_status: 200 });
    expectExactUsageAndCost(
      recs[1]!,
      extractFromResponse("openai.chat", JSON.parse(fixture(FX.chat))),
      "openai",
    );
    expect(response.headers.get("x-tollgate-event-id")).toBe(recs[1]!.event_id);
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(recs[1]!.cost_nanousd));
    // Both attempts, found by the request id they share.
    const byRequest = await admin("GET", `/api/events?request_id=${recs[0]!.request_id}`);
    expect(byRequest.json.events.map((e: Json) => e.attempt).sort()).toEqual([1, 2]);
  });

  it.each([
    [
      "asking for a longer wait than the gateway holds a request",
      { "x-mock-retry-after": "30" },
      "retry-after",
      "30",
    ],
    [
      "whose provider says x-should-retry: false",
      { "x-mock-should-retry": "false" },
      "x-should-retry",
      "false",
    ],
  ] as const)("a 429 %s: no retry, the SDK gets it unchanged", async (_, mock, header, value) => {
    const id = newCase();
    const started = Date.now();
    const err = await openai.chat.completions
      .create(
        { model: "gpt-4.1-nano", messages },
        opts(id, { "x-mock-scenario": "rate-limit", ...mock, "x-tollgate-retries": "2" }),
      )
      .catch((e) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.headers.get(header)).toBe(value);
    expect(upstreamOf(id)).toHaveLength(1);
    const recs = await waitForRecords(id);
    expect(recs.map((r) => [r.attempt, r.status, r.http_status])).toEqual([[1, "error", 429]]);
  });

  it("retries exhausted on 500: the SDK gets the last error; every attempt is recorded", async () => {
    const id = newCase();
    const err = await openai.chat.completions
      .create(
        { model: "gpt-4o-mini", messages },
        opts(id, { "x-mock-scenario": "server-error", "x-tollgate-retries": "2" }),
      )
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(upstreamOf(id)).toHaveLength(3);
    const recs = await recordsOf(id);
    expect(recs.map((r) => [r.attempt, r.status, r.http_status])).toEqual([
      [1, "error", 500],
      [2, "error", 500],
      [3, "error", 500],
    ]);
    expect(new Set(recs.map((r) => r.request_id)).size).toBe(1);
  });

  it("retries a rate-limited Anthropic stream, then streams normally", async () => {
    const id = newCase();
    const stream = await anthropic.messages.create(
      {
        model: "claude-sonnet-4-5",
        max_tokens: 100,
        messages: [{ role: "user", content: id }],
        stream: true,
      },
      opts(id, { "x-mock-scenario": "rate-limit-once", "x-tollgate-retries": "1" }),
    );
    const events = [];
    for await (const e of stream) events.push(e);
    expect(events.at(-1)!.type).toBe("message_stop");
    const recs = await waitForRecords(id, 2);
    expect(recs.map((r) => [r.attempt, r.status, r.http_status])).toEqual([
      [1, "error", 429],
      [2, "ok", 200],
    ]);
    expect(recs[1]!.request_id).toBe(recs[0]!.request_id);
    expect(recs[1]!.cost_nanousd > 0n).toBe(true);
  });

  it("a retry is admitted after its failed attempt has settled: near a cap, that attempt's hold refuses it not", async () => {
    const g = await startTestGateway(mock.url, { timeoutMs: TIMEOUT_MS });
    // A limit backend whose settle takes longer than the retry's backoff (at most 250 ms here), as a remote
    // one may: the retry's admission must still see the failed attempt's $0, not its worst case held.
    const limits = g.runtime.guard.store;
    const settle = limits.settle.bind(limits);
    limits.settle = async (req) => {
      await sleep(500);
      return settle(req);
    };
    try {
      const id = newCase();
      // gpt-4.1-nano, max_tokens 400: ~$0.00017 held per attempt; the cap holds one attempt, not two.
      const budget = { id: `retry-${id}`, scope: { feature: id }, window: "day", limit_usd: "0.0002" };
      expect((await adminRequest(g, "POST", "/api/budgets", { ...budget, action: "block" })).status).toBe(
        201,
      );
      const client = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g.url}/v1`, maxRetries: 0 });
      const { data, response } = await client.chat.completions
        .create(
          { model: "gpt-4.1-nano", max_tokens: 400, messages: [{ role: "user", content: id }] },
          opts(id, {
            "x-tollgate-feature": id,
            "x-mock-scenario": "server-error-once",
            "x-tollgate-retries": "1",
          }),
        )
        .withResponse();
      expect(data).toEqual(JSON.parse(fixture(FX.chat)));
      expect(upstreamOf(id)).toHaveLength(2);
      const recs = await recordsOf(id, g);
      expect(recs.map((r) => [r.attempt, r.status, r.http_status])).toEqual([
        [1, "error", 500],
        [2, "ok", 200],
      ]);
      expect(recs[1]!.request_id).toBe(recs[0]!.request_id);
      expect(response.headers.get("x-tollgate-event-id")).toBe(recs[1]!.event_id);
    } finally {
      await g.stop();
    }
  });

  it("the configured default (gateway.retries) applies without the header", async () => {
    const g2 = await startTestGateway(mock.url, { timeoutMs: TIMEOUT_MS, retries: 1 });
    try {
      const client = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g2.url}/v1`, maxRetries: 0 });
      const id = newCase();
      await client.chat.completions.create(
        { model: "gpt-4.1-nano", messages: [{ role: "user", content: id }] },
        opts(id, { "x-mock-scenario": "rate-limit-once" }),
      );
      const recs = await recordsOf(id, g2);
      expect(recs.map((r) => r.attempt)).toEqual([1, 2]);
    } finally {
      await g2.stop();
    }
  });

  it("connection errors are retried and recorded; the SDK gets a 5xx in OpenAI's shape", async () => {
    // a port nobody listens on
    const dead = await startMockUpstream();
    const deadUrl = dead.url;
    await dead.close();
    const g3 = await startTestGateway(deadUrl, { timeoutMs: TIMEOUT_MS });
    try {
      const client = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g3.url}/v1`, maxRetries: 0 });
      const id = newCase();
      const err = await client.chat.completions
        .create({ model: "gpt-4o-mini", messages }, opts(id, { "x-tollgate-retries": "2" }))
        .catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect(err.status).toBeGreaterThanOrEqual(500);
      expect(typeof err.error?.message).toBe("string");
      const recs = await recordsOf(id, g3);
      expect(recs.map((r) => [r.attempt, r.status])).toEqual([
        [1, "error"],
        [2, "error"],
        [3, "error"],
      ]);
    } finally {
      await g3.stop();
    }
  });
});

describe("gateway failures: the client goes away mid-stream", () => {
  it("OpenAI: recorded with estimated usage (input estimated from the request)", async () => {
    const id = newCase();
    const stream = await openai.chat.completions.create(
      { model: "gpt-4o-mini", messages, stream: true },
      opts(id, { "x-mock-chunk-delay-ms": "100" }),
    );
    let n = 0;
    for await (const _ of stream) if (++n === 2) break; // leaving the loop aborts the request
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({ cost_source: "estimated", stream: true, provider: "openai" });
    expect(rec!.status).not.toBe("ok");
    expect(rec!.input_uncached_tokens).toBeGreaterThan(0);
    expect(rec!.priced).toBe(true);
    expect(rec!.cost_nanousd > 0n).toBe(true);
    // the upstream stream is not read to the end on the abandoned client's behalf
    expect(rec!.ts_end! - rec!.ts_start).toBeLessThan(700);
  });

  it("its input is estimated from the request its client sent, not the stream_options the gateway added", async () => {
    const id = newCase();
    const sent = JSON.stringify({ model: "gpt-4o-mini", messages, stream: true });
    const leave = new AbortController();
    const call = fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...opts(id, { "x-mock-headers-delay-ms": "400" }).headers,
      },
      body: sent,
      signal: leave.signal,
    });
    await vi.waitFor(() => expect(upstreamOf(id)).toHaveLength(1)); // it went upstream, usage asked for
    expect(upstreamOf(id)[0]!.body.stream_options).toEqual({ include_usage: true });
    leave.abort();
    await expect(call).rejects.toThrow();
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({ error_type: "client_disconnected", cost_source: "estimated" });
    expect(rec!.usage_raw).toMatchObject({ estimated: true, request_bytes: Buffer.byteLength(sent) });
  });

  it("before the upstream answers: the upstream request is cancelled, the call recorded and its reservation released", async () => {
    const id = newCase();
    const user = `u-${id}`;
    const budget = await admin("POST", "/api/budgets", {
      id: `b-${id}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "1.00",
    });
    expect(budget.status).toBe(201);
    await leaveStream(id, { "x-mock-headers-delay-ms": "400", "x-tollgate-user-id": user }, 100);
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({
      status: "error",
      error_type: "client_disconnected",
      http_status: null,
      cost_source: "estimated",
      stream: true,
      user_id: user,
    });
    expect(rec!.input_uncached_tokens).toBeGreaterThan(0); // estimated from the request
    expect(rec!.output_tokens).toBe(0);
    expect(rec!.cost_nanousd > 0n).toBe(true);
    expect(rec!.ts_end! - rec!.ts_start).toBeLessThan(350); // cancelled, not waited out
    const after = await admin("GET", `/api/budgets/b-${id}`);
    expect(after.json).toMatchObject({ reserved_usd: "0.00", spend_usd: formatUsd(rec!.cost_nanousd) });
  });

  for (const stream of [true, false])
    it(`during a retry wait (${stream ? "a stream" : "a reply"}): the wait ends at once, no retry goes out, 499`, async () => {
      const id = newCase();
      const closed = () => metricCount(/tollgate_gateway_requests_total\{[^}]*status="499"\} (\d+)/);
      const before = await closed();
      const retryLater = {
        "x-mock-scenario": "rate-limit",
        "x-mock-retry-after": "5",
        "x-tollgate-retries": "2",
      };
      await leaveStream(id, retryLater, 200, stream);
      await vi.waitFor(async () => expect(await closed()).toBe(before + 1), { timeout: 1_000, interval: 20 });
      expect(upstreamOf(id)).toHaveLength(1);
      const recs = await waitForRecords(id);
      expect(recs.map((r) => [r.attempt, r.http_status])).toEqual([[1, 429]]);
    });

  it("a stream request answered with a whole body, left while it arrives: recorded as the client's leaving", async () => {
    const id = newCase();
    await leaveStream(id, { "x-mock-fixture": FX.chat, "x-mock-scenario": "stall-mid-stream" }, 150);
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({
      status: "error",
      http_status: 200,
      error_type: "client_disconnected",
      cost_source: "estimated",
    });
    expect(rec!.input_uncached_tokens).toBeGreaterThan(0);
  });

  it("Anthropic: input tokens from message_start, cost_source estimated", async () => {
    const id = newCase();
    const stream = await anthropic.messages.create(
      { model: "claude-sonnet-4-20250514", max_tokens: 100, messages, stream: true },
      opts(id, { "x-mock-chunk-delay-ms": "50" }),
    );
    let n = 0;
    for await (const _ of stream) if (++n === 4) stream.controller.abort();
    const [rec] = await waitForRecords(id);
    expect(rec).toMatchObject({
      cost_source: "estimated",
      provider: "anthropic",
      model: "claude-sonnet-4-20250514",
      input_uncached_tokens: 43, // what the provider reported up front
    });
    expect(rec!.output_tokens).toBeGreaterThanOrEqual(1);
    expect(rec!.cost_nanousd > 0n).toBe(true);
  });
});

describe("gateway failures: the event store goes away", () => {
  it("a replica keeps proxying and stays ready while calls spool to disk; back, each is stored once", async () => {
    const g = await startTestGateway(mock.url, { timeoutMs: TIMEOUT_MS }, { role: "gateway" });
    const store = g.runtime.store;
    const { append, count } = store;
    try {
      // The store's side of an outage, as the gateway sees it: every write and read fails.
      const outage = () => Promise.reject(new Error("connect ECONNREFUSED (test outage)"));
      store.append = outage;
      store.count = outage;
      const via = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g.url}/v1`, maxRetries: 0 });
      const id = newCase();
      const costs: string[] = [];
      for (let i = 0; i < 20; i++) {
        const { data, response } = await via.chat.completions
          .create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: `${id} ${i}` }] }, opts(id))
          .withResponse();
        expect(data).toEqual(JSON.parse(fixture(FX.chat)));
        costs.push(response.headers.get("x-tollgate-cost-usd")!);
      }
      await g.runtime.recorder.flush(); // the batch meets the outage and goes to the spool
      expect(g.runtime.recorder.spoolDepth).toBe(20);
      const ready = await fetch(`${g.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: "ready", spool_depth: 20 });
      expect(await (await fetch(`${g.url}/metrics`)).text()).toMatch(/^tollgate_spool_depth 20$/m);

      store.append = append;
      store.count = count;
      await g.runtime.recorder.flush(); // replays the spool
      expect(g.runtime.recorder.spoolDepth).toBe(0);
      const recs = await recordsOf(id, g);
      expect(recs).toHaveLength(20);
      expect(new Set(recs.map((r) => r.event_id)).size).toBe(20);
      expect(recs.map((r) => formatUsd(r.cost_nanousd)).sort()).toEqual([...costs].sort());
      expect((await fetch(`${g.url}/readyz`)).status).toBe(200);
    } finally {
      store.append = append;
      store.count = count;
      await g.stop();
    }
  });

  it("a store that answers reads and refuses commits (a full disk): /readyz says so, the replica ready, any other role not", async () => {
    const replica = await startTestGateway(mock.url, {}, { role: "gateway" });
    const all = await startTestGateway(mock.url, {}, { role: "all" });
    const full = () =>
      Promise.reject(
        new Error('IO Error: Could not write file "tollgate.duckdb.wal": No space left on device'),
      );
    const appends = [replica, all].map((g) => g.runtime.store.append);
    try {
      for (const g of [replica, all]) {
        g.runtime.store.append = full;
        const via = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g.url}/v1`, maxRetries: 0 });
        const id = newCase();
        await via.chat.completions.create(
          { model: "gpt-4.1-nano", messages: [{ role: "user", content: id }] },
          opts(id),
        );
        await g.runtime.recorder.flush(); // the batch meets the full disk and goes to the spool
        expect(g.runtime.recorder.spoolDepth).toBe(1);
      }
      const since = /commits refused since \d{4}-\d\d-\d\dT[\d:.]+Z: IO Error: .*No space left on device/;
      const ready = await fetch(`${replica.url}/readyz`);
      expect(ready.status).toBe(200);
      const body = (await ready.json()) as Json;
      expect(body.status).toBe("ready");
      expect(body.store).toMatch(new RegExp(`^${since.source}, calls spooled to disk$`));
      const notReady = await fetch(`${all.url}/readyz`);
      expect(notReady.status).toBe(503);
      expect(((await notReady.json()) as Json).reason).toMatch(new RegExp(`^store: ${since.source}$`));

      // Room again: the spool's replay is a commit the store takes, and /readyz says ok again.
      [replica, all].forEach((g, i) => {
        g.runtime.store.append = appends[i]!;
      });
      for (const g of [replica, all]) {
        await g.runtime.recorder.flush();
        expect(g.runtime.recorder.spoolDepth).toBe(0);
        const again = await fetch(`${g.url}/readyz`);
        expect(again.status).toBe(200);
        expect(((await again.json()) as Json).store).toBe("ok");
      }
    } finally {
      [replica, all].forEach((g, i) => {
        g.runtime.store.append = appends[i]!;
      });
      await Promise.all([replica.stop(), all.stop()]);
    }
  });

  it("a store down past the key cache's 30 s: a gateway key the replica checked before goes on; one it never checked is a 503", async () => {
    const g = await startTestGateway(mock.url, { timeoutMs: TIMEOUT_MS }, { role: "gateway" });
    const store = g.runtime.store;
    const { append, count, findKeyByHash } = store;
    const [created, unchecked] = await Promise.all(
      [1, 2].map(() => createKeyRecord(store, { workspace: "default", role: "gateway" })),
    );
    const via = (key: string) =>
      new OpenAI({
        apiKey: "sk-test-123",
        baseURL: `${g.url}/v1`,
        maxRetries: 0,
        defaultHeaders: { "x-tollgate-key": key },
      });
    try {
      await via(created!.key).chat.completions.create({ model: "gpt-4.1-nano", messages }, opts(newCase()));
      const outage = () => Promise.reject(new Error("connect ECONNREFUSED (test outage)"));
      store.append = outage;
      store.count = outage;
      store.findKeyByHash = outage;
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 31_000 }); // past the key's cached answer
      const id = newCase();
      const { response } = await via(created!.key)
        .chat.completions.create({ model: "gpt-4.1-nano", messages }, opts(id))
        .withResponse();
      expect(response.status).toBe(200);
      const other = newCase();
      const err = await via(unchecked!.key)
        .chat.completions.create({ model: "gpt-4.1-nano", messages }, opts(other))
        .catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect(err.status).toBe(503);
      expect(err.error.message).toMatch(/^x-tollgate-key: the key cannot be checked now: .*ECONNREFUSED/);
      expect(upstreamOf(other)).toHaveLength(0);
      vi.useRealTimers();

      store.append = append;
      store.count = count;
      store.findKeyByHash = findKeyByHash;
      await g.runtime.recorder.flush(); // the spooled call is stored, under its key
      const [rec] = await recordsOf(id, g);
      expect(rec).toMatchObject({ status: "ok", key_id: created!.record.id });
    } finally {
      vi.useRealTimers();
      Object.assign(store, { append, count, findKeyByHash });
      await g.stop();
    }
  });

  it("a store that does not answer at all: the replica's /readyz says so within ~2 s, probes share one query", async () => {
    const g = await startTestGateway(mock.url, {}, { role: "gateway" });
    const { count } = g.runtime.store;
    let probes = 0;
    try {
      g.runtime.store.count = () => {
        probes++;
        return new Promise<number>(() => {}); // never settles
      };
      const started = Date.now();
      const [a, b] = await Promise.all([fetch(`${g.url}/readyz`), fetch(`${g.url}/readyz`)]);
      expect(Date.now() - started).toBeLessThan(4_000);
      expect([a.status, b.status]).toEqual([200, 200]);
      expect(((await a.json()) as Json).store).toMatch(/^unreachable.*no answer within 2000 ms/);
      expect(probes).toBe(1);
    } finally {
      g.runtime.store.count = count;
      await g.stop();
    }
  });

  it("a store that does not answer at all: any other role's /readyz answers 503 within ~2 s, naming the store", async () => {
    const g = await startTestGateway(mock.url, {}, { role: "all" });
    const { count } = g.runtime.store;
    try {
      g.runtime.store.count = () => new Promise<number>(() => {}); // never settles
      const started = Date.now();
      const ready = await fetch(`${g.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: "not_ready", reason: "store: no answer within 2000 ms" });
    } finally {
      g.runtime.store.count = count;
      await g.stop();
    }
  });

  it("any other role is not ready without its store", async () => {
    const g = await startTestGateway(mock.url, {}, { role: "all" });
    const { count } = g.runtime.store;
    try {
      g.runtime.store.count = () => Promise.reject(new Error("connect ECONNREFUSED (test outage)"));
      const ready = await fetch(`${g.url}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; reason: string };
      expect(body.status).toBe("not_ready");
      expect(body.reason).toMatch(/^store: .*ECONNREFUSED/);
    } finally {
      g.runtime.store.count = count;
      await g.stop();
    }
  });
});

describe("gateway shutdown", () => {
  it("stop() is not held up by a client connection that has sent no request", async () => {
    // Node 20's fetch (undici), which both SDKs use, opens a fresh keep-alive connection right after a
    // stream is aborted; it sends nothing. Node's server.close() + closeIdleConnections() leave such
    // sockets open until headersTimeout (60 s), so stop() must not wait on them.
    const g = await startTestGateway(mock.url, { timeoutMs: TIMEOUT_MS });
    const { port } = new URL(g.url);
    const sock = connect(Number(port), "127.0.0.1");
    await new Promise<void>((r) => sock.once("connect", () => r()));
    const started = Date.now();
    const stopped = g.stop().then(() => Date.now() - started);
    const outcome = await Promise.race([
      stopped,
      new Promise<"hung">((r) => setTimeout(() => r("hung"), 3_000)),
    ]);
    sock.destroy(); // let a hung stop() finish either way
    await stopped;
    expect(outcome, "stop() still waiting after 3 s on a request-less connection").not.toBe("hung");
  });
});
