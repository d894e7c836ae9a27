// OpenAI speech (text to audio) through the gateway, driven by the official `openai` SDK against the local
// mock upstream: tts-1 and tts-1-hd priced exactly by the request's characters, their audio relayed as it
// comes with the cost already in the reply's headers; gpt-4o-mini-tts priced from its event stream's usage,
// or estimated from its text when it answers with the audio alone; budgets hold each before it is sent.
import { formatUsd } from "@tollgate/core";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { adminRequest, gatewayRecords, rawRequest, recordByEventId, testCases } from "./helpers.js";
import { AUDIO_FX, audioFixture, type MockUpstream, speechAudio } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
let openai: OpenAI;
openaiThroughGateway((s) => ({ mock, gw, openai } = s));

const { newCase, tagged, upstreamOf } = testCases("speech", () => mock.requests);
/** 1,000 characters (code points: the emoji is one), 1,100 UTF-16 units. */
const TEXT = "Hé 😀! How are you today? ".repeat(40);
const say = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  input: TEXT,
  voice: "alloy" as const,
  ...extra,
});

describe("gateway: OpenAI speech", () => {
  it("tts-1: the audio reaches the SDK byte for byte; its characters at $15 per million, in the headers", async () => {
    const id = newCase();
    expect([...TEXT].length).toBe(1000);
    const response = await openai.audio.speech.create(say("tts-1"), tagged(id));
    expect(Buffer.from(await response.arrayBuffer()).equals(speechAudio(TEXT))).toBe(true);
    expect(response.headers.get("content-type")).toBe("audio/mpeg");
    expect(upstreamOf(id)[0]!.body).toEqual(say("tts-1")); // sent as the client sent it
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.015");
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      kind: "llm",
      api: "openai.speech",
      model: "tts-1",
      stream: true,
      status: "ok",
      input_characters: 1000,
      input_uncached_tokens: 0,
      cost_source: "computed",
      cost_nanousd: 15_000_000n,
      cost_input_uncached_nanousd: 15_000_000n,
      price_ref: "tollgate:openai:tts-1",
    });
    const hd = await openai.audio.speech.create(say("tts-1-hd"));
    expect(hd.headers.get("x-tollgate-cost-usd")).toBe("0.03");
  });

  it("gpt-4o-mini-tts as events: priced from speech.audio.done's usage; the cost follows as a trailer", async () => {
    const res = await rawRequest(`${gw.url}/v1/audio/speech`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test-123" },
      body: JSON.stringify(say("gpt-4o-mini-tts", { stream_format: "sse" })),
    });
    expect(res.body).toBe(audioFixture(AUDIO_FX.speech));
    // 14 text tokens × $0.60 + 101 audio tokens × $12 per million.
    const cost = 14n * 600n + 101n * 12_000n;
    expect(res.trailers["x-tollgate-cost-usd"]).toBe(formatUsd(cost));
    const rec = await recordByEventId(gw.runtime, String(res.headers["x-tollgate-event-id"]));
    expect(rec).toMatchObject({
      model: "gpt-4o-mini-tts",
      cost_source: "computed",
      input_uncached_tokens: 14,
      output_tokens: 101,
      output_audio_tokens: 101,
      input_characters: 0,
      cost_nanousd: cost,
    });
  });

  it("gpt-4o-mini-tts answered with audio alone (no usage): estimated from its text, never unpriced", async () => {
    const response = await openai.audio.speech.create(say("gpt-4o-mini-tts"));
    await response.arrayBuffer();
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    // 1,000 characters at ~4 a token in; spoken at 15 a second they take 66.7 s: 1,389 tokens at 1,250 a minute.
    expect(rec).toMatchObject({
      cost_source: "estimated",
      priced: true,
      input_uncached_tokens: 250,
      output_audio_tokens: 1389,
      cost_nanousd: 250n * 600n + 1389n * 12_000n,
    });
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(rec.cost_nanousd));
  });

  it("a client that leaves mid-audio: the call is still recorded (estimated) at its characters", async () => {
    const user = `speech-left-${newCase()}`;
    const response = await openai.audio.speech.create(
      say("tts-1"),
      tagged(newCase(), { "x-mock-chunk-delay-ms": "200", "x-tollgate-user-id": user }),
    );
    const reader = response.body!.getReader();
    await reader.read();
    await reader.cancel();
    const rec = async () => (await gatewayRecords(gw.runtime)).find((r) => r.user_id === user);
    await expect.poll(async () => (await rec())?.error_type).toBe("client_disconnected");
    expect(await rec()).toMatchObject({
      cost_source: "estimated",
      input_characters: 1000,
      cost_nanousd: 15_000_000n,
    });
  });

  it("tts-1 left before its audio starts, or timed out: estimated at its characters, never a $0 call", async () => {
    const left = `speech-early-${newCase()}`;
    const leave = new AbortController();
    setTimeout(() => leave.abort(), 100);
    await openai.audio.speech
      .create(say("tts-1"), {
        ...tagged(newCase(), { "x-mock-headers-delay-ms": "500", "x-tollgate-user-id": left }),
        signal: leave.signal,
      })
      .catch(() => {});
    const timedOut = `speech-timeout-${newCase()}`;
    const hang = {
      "x-mock-scenario": "hang",
      "x-tollgate-timeout-ms": "150",
      "x-tollgate-user-id": timedOut,
    };
    await expect(openai.audio.speech.create(say("tts-1"), tagged(newCase(), hang))).rejects.toMatchObject({
      status: 504,
    });
    for (const [user, error_type] of [
      [left, "client_disconnected"],
      [timedOut, "timeout"],
    ]) {
      const rec = async () => (await gatewayRecords(gw.runtime)).find((r) => r.user_id === user);
      await expect.poll(async () => (await rec())?.error_type).toBe(error_type);
      expect(await rec()).toMatchObject({
        cost_source: "estimated",
        priced: true,
        input_characters: 1000,
        input_uncached_tokens: 0,
        output_tokens: 0,
        cost_nanousd: 15_000_000n,
      });
    }
  });

  it("an event stream cut before speech.audio.done: estimated from its text, as the audio alone is", async () => {
    const user = `speech-cut-${newCase()}`;
    const res = await rawRequest(`${gw.url}/v1/audio/speech`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: "Bearer sk-test-123",
        "x-mock-scenario": "reset-mid-stream",
        "x-tollgate-user-id": user,
      },
      body: JSON.stringify(say("gpt-4o-mini-tts", { stream_format: "sse" })),
    }).catch((e: unknown) => e);
    expect(res).toBeDefined();
    const rec = async () => (await gatewayRecords(gw.runtime)).find((r) => r.user_id === user);
    await expect.poll(async () => (await rec())?.cost_source).toBe("estimated");
    expect(await rec()).toMatchObject({
      status: "error",
      input_uncached_tokens: 250,
      output_audio_tokens: 1389,
    });
  });

  it("in an agent run, the audio ends after its cost counts: a slow limit store lets no call past the ceiling", async () => {
    // A limit store that takes its time (Redis across a network): each settle lands 300 ms later.
    const store = gw.runtime.guard.store;
    const settle = store.settle.bind(store);
    store.settle = async (req) => {
      await new Promise((r) => setTimeout(r, 300));
      return settle(req);
    };
    try {
      await adminRequest(gw, "PUT", "/api/agents/speech-bot", { max_cost_usd: "0.02", max_llm_calls: 100 });
      const run = { "x-tollgate-agent-run-id": `run-${newCase()}`, "x-tollgate-agent-type": "speech-bot" };
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++)
        outcomes.push(
          await openai.audio.speech.create(say("tts-1"), tagged(newCase(), run)).then(
            async (r) => {
              await r.arrayBuffer();
              return "ok";
            },
            (e: { code?: string }) => String(e.code),
          ),
        );
      // $0.015 each: the second crosses $0.02, and nothing runs after it.
      expect(outcomes).toEqual(["ok", "ok", "agent_run_killed"]);
    } finally {
      store.settle = settle;
    }
  });

  it("bad input (no text, a body that is not JSON): the upstream's 400 reaches the client unchanged, recorded at no cost", async () => {
    for (const body of [
      JSON.stringify({ model: "tts-1", voice: "alloy" }),
      '{"model": "tts-1", "input": "hi"',
    ]) {
      const res = await rawRequest(`${gw.url}/v1/audio/speech`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test-123" },
        body,
      });
      expect(res.status, body).toBe(400);
      expect(JSON.parse(res.body).error.type).toBe("invalid_request_error");
      const rec = await recordByEventId(gw.runtime, String(res.headers["x-tollgate-event-id"]));
      expect(rec, body).toMatchObject({
        api: "openai.speech",
        status: "error",
        http_status: 400,
        cost_nanousd: 0n,
        input_characters: 0,
      });
    }
  });

  it("a budget holds a speech request's cost before it is sent: one that would pass it is refused", async () => {
    const user = `speech-user-${newCase()}`;
    const created = await adminRequest(gw, "POST", "/api/budgets", {
      id: `speech-cap-${user}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "0.02",
    });
    expect(created.status).toBe(201);
    const id = newCase();
    const as = tagged(id, { "x-tollgate-user-id": user });
    await (await openai.audio.speech.create(say("tts-1"), as)).arrayBuffer(); // $0.015 of $0.02
    // tts-1 is held at exactly its cost: a second $0.015 does not fit in the $0.005 left.
    await expect(openai.audio.speech.create(say("tts-1"), as)).rejects.toMatchObject({
      status: 429,
      code: "budget_exceeded",
    });
    // A short one still does: 300 characters, $0.0045.
    const short = await openai.audio.speech.create({ ...say("tts-1"), input: "a".repeat(300) }, as);
    expect(short.headers.get("x-tollgate-cost-usd")).toBe("0.0045");
    await short.arrayBuffer();
    expect(upstreamOf(id)).toHaveLength(2);
  });
});
