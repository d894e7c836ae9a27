// OpenAI audio transcriptions through the gateway, driven by the official `openai` SDK against the local mock
// upstream (real captured usage objects, packages/core/test/fixtures/openai-audio): priced from their token
// usage, whole and streamed; whisper-1 by its audio's seconds; the text formats, which report no usage, recorded
// with the cost unknown; budgets held by the model's context window (whisper-1: the upload's longest play).
import type OpenAI from "openai";
import { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { adminRequest, collect, gatewayRecords, recordByEventId, testCases } from "./helpers.js";
import type { MockUpstream } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
let openai: OpenAI;
openaiThroughGateway((s) => ({ mock, gw, openai } = s));

const { newCase, tagged, upstreamOf } = testCases("tr", () => mock.requests);
/** A WAV header and bytes that are not UTF-8: the upload must reach the upstream as sent. */
const AUDIO = Buffer.concat([
  Buffer.from("RIFF\x24\x00\x00\x00WAVEfmt ", "latin1"),
  Buffer.from([0xff, 0x00, 0x80]),
]);
const file = () => toFile(AUDIO, "hello.wav", { type: "audio/wav" });

describe("gateway: OpenAI audio transcriptions", () => {
  it("gpt-4o-mini-transcribe: the SDK gets the reply; audio in and text out each at its rate", async () => {
    const id = newCase();
    const { data, response } = await openai.audio.transcriptions
      .create({ model: "gpt-4o-mini-transcribe", file: await file() }, tagged(id))
      .withResponse();
    expect(data.text).toBe("Hello from the Gateway Probe.");
    expect(upstreamOf(id)[0]!.bytes.indexOf(AUDIO)).toBeGreaterThan(0);
    // 16 audio tokens × $3 + 8 out × $5 per million = 88 micro-USD.
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.000088");
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      kind: "llm",
      api: "openai.transcriptions",
      model: "gpt-4o-mini-transcribe",
      input_audio_tokens: 16,
      input_uncached_tokens: 0,
      output_tokens: 8,
      cost_nanousd: 88_000n,
    });
  });

  it("streamed: every event reaches the SDK; the usage of transcript.text.done is recorded", async () => {
    const stream = await openai.audio.transcriptions.create({
      model: "gpt-4o-mini-transcribe",
      file: await file(),
      stream: true,
    });
    const events = await collect(stream);
    expect(events.map((e) => e.type)).toEqual([
      "transcript.text.delta",
      "transcript.text.delta",
      "transcript.text.done",
    ]);
    const rec = (await gatewayRecords(gw.runtime)).find((r) => r.api === "openai.transcriptions" && r.stream);
    expect(rec).toMatchObject({ status: "ok", cost_source: "computed", cost_nanousd: 88_000n });
  });

  it("whisper-1: priced by the seconds of audio its usage reports, at $0.36 an hour", async () => {
    const { data, response } = await openai.audio.transcriptions
      .create({ model: "whisper-1", file: await file() })
      .withResponse();
    expect(data.text).toBe("Hello world");
    // 2 s × $0.36 / 3,600 s = $0.0002.
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.0002");
    expect(await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"))).toMatchObject({
      status: "ok",
      error_type: null,
      priced: true,
      input_audio_ms: 2_000,
      input_audio_tokens: 0,
      cost_input_audio_nanousd: 200_000n,
      cost_nanousd: 200_000n,
      usage_raw: { type: "duration", seconds: 2 },
    });
  });

  it("the text format (no usage): an ok call recorded with the cost unknown, never $0", async () => {
    const text = await openai.audio.transcriptions
      .create({ model: "gpt-4o-mini-transcribe", file: await file(), response_format: "text" })
      .withResponse();
    expect(text.data).toBe("Hello from the Gateway Probe.\n");
    expect(text.response.headers.get("x-tollgate-cost-usd")).toBe("unknown");
    expect(await recordByEventId(gw.runtime, text.response.headers.get("x-tollgate-event-id"))).toMatchObject(
      {
        status: "ok",
        error_type: "usage_unreadable",
        priced: false,
      },
    );
  });

  it("a budget holds the model's context window of audio in and text out: a call that could pass it is refused", async () => {
    const user = `tr-user-${newCase()}`;
    // gpt-4o-mini-transcribe: 16,000 × $3 + 16,000 × $5 per million = $0.128 held.
    await adminRequest(gw, "POST", "/api/budgets", {
      id: `tr-cap-${user}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "0.10",
    });
    const id = newCase();
    const call = openai.audio.transcriptions.create(
      { model: "gpt-4o-mini-transcribe", file: await file() },
      tagged(id, { "x-tollgate-user-id": user }),
    );
    await expect(call).rejects.toMatchObject({ status: 429, code: "budget_exceeded" });
    expect(upstreamOf(id)).toHaveLength(0);
  });

  it("a form that repeats its model is refused (400, naming it) before the upstream: it would be held as no model at $0", async () => {
    const user = `tr-user-${newCase()}`;
    // Under the $0.128 either model holds, and unpriced calls let through: read as neither, the call was held at $0.
    await adminRequest(gw, "POST", "/api/budgets", {
      id: `tr-twice-${user}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "0.10",
      unpriced: "allow",
    });
    const id = newCase();
    // The SDK sends a field once: a form written by hand, its model twice.
    const form = new FormData();
    form.append("model", "gpt-4o-mini-transcribe");
    form.append("file", new Blob([AUDIO], { type: "audio/wav" }), "hello.wav");
    form.append("model", "gpt-4o-transcribe");
    const res = await fetch(`${gw.url}/v1/audio/transcriptions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-test", "x-test-case": id, "x-tollgate-user-id": user },
      body: form,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        type: "invalid_request_error",
        code: "repeated_parameter",
        param: "model",
        message: expect.stringContaining('form field "model" is repeated'),
      },
    });
    expect(upstreamOf(id)).toHaveLength(0);
  });

  it("a call answered without usage (response_format text) counts its held worst case: its cost is unknown, not $0", async () => {
    const user = `tr-user-${newCase()}`;
    // $0.128 held per call: one fits under $0.20, and then, its cost unknown, it counts as held.
    await adminRequest(gw, "POST", "/api/budgets", {
      id: `tr-text-${user}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "0.20",
    });
    const id = newCase();
    const call = async () =>
      openai.audio.transcriptions.create(
        { model: "gpt-4o-mini-transcribe", file: await file(), response_format: "text" },
        tagged(id, { "x-tollgate-user-id": user }),
      );
    expect(await call()).toBe("Hello from the Gateway Probe.\n");
    await expect(call()).rejects.toMatchObject({ status: 429, code: "budget_exceeded" });
    expect(upstreamOf(id)).toHaveLength(1);
  });

  it("whisper-1 is held at the longest its upload can play (6 kbit/s): a budget that cannot take it refuses it", async () => {
    // 1.5 MB of audio: up to 2,000 s at 6 kbit/s, $0.20 (and a little more for the form around it).
    const upload = async () => toFile(Buffer.alloc(1_500_000, 1), "long.mp3", { type: "audio/mpeg" });
    const user = `tr-user-${newCase()}`;
    for (const [id, limit] of [
      ["small", "0.15"],
      ["strict", "10"],
    ])
      await adminRequest(gw, "POST", "/api/budgets", {
        id: `tr-${id}-${user}`,
        scope: { user_id: user, ...(id === "small" ? { feature: "small" } : {}) },
        window: "day",
        limit_usd: limit,
        unpriced: "block",
      });
    const refused = newCase();
    const call = openai.audio.transcriptions.create(
      { model: "whisper-1", file: await upload() },
      tagged(refused, { "x-tollgate-user-id": user, "x-tollgate-feature": "small" }),
    );
    await expect(call).rejects.toMatchObject({ status: 429, code: "budget_exceeded" });
    expect(upstreamOf(refused)).toHaveLength(0);
    // Priced, so a budget that blocks unpriced models lets it through, and counts what it cost: 2 s.
    const passed = newCase();
    const { response } = await openai.audio.transcriptions
      .create({ model: "whisper-1", file: await upload() }, tagged(passed, { "x-tollgate-user-id": user }))
      .withResponse();
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.0002");
    expect(upstreamOf(passed)).toHaveLength(1);
    const spend = async () => (await adminRequest(gw, "GET", `/api/budgets/tr-strict-${user}`)).json;
    await expect.poll(spend).toMatchObject({ spend_nanousd: "200000", reserved_nanousd: "0" });
  });

  it("a stream cut off before transcript.text.done is estimated at its worst case, not its upload's bytes as text", async () => {
    const id = newCase();
    // A minute of 16 kHz 16-bit mono audio: ~1.9 MB, some 600 audio tokens.
    const minute = toFile(Buffer.alloc(1_920_000, 1), "minute.wav", { type: "audio/wav" });
    const stream = await openai.audio.transcriptions.create(
      { model: "gpt-4o-mini-transcribe", file: await minute, stream: true },
      tagged(id, { "x-mock-scenario": "reset-mid-stream" }),
    );
    await expect(collect(stream)).rejects.toThrow();
    const rec = (await gatewayRecords(gw.runtime)).find(
      (r) => r.api === "openai.transcriptions" && r.cost_source === "estimated",
    );
    // As a budget held it: the context window of audio in and of text out, $0.128 (not 480,000 text tokens).
    expect(rec).toMatchObject({
      status: "error",
      error_type: "upstream_stream_broken",
      input_uncached_tokens: 0,
      input_audio_tokens: 16_000,
      output_tokens: 16_000,
      cost_nanousd: 128_000_000n,
    });
    // A whole reply broken off likewise.
    const whole = openai.audio.transcriptions.create(
      { model: "gpt-4o-mini-transcribe", file: await minute },
      tagged(newCase(), { "x-mock-scenario": "reset-mid-stream" }),
    );
    await expect(whole).rejects.toThrow();
    const recs = (await gatewayRecords(gw.runtime)).filter(
      (r) => r.api === "openai.transcriptions" && r.cost_source === "estimated" && !r.stream,
    );
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({
      input_uncached_tokens: 0,
      input_audio_tokens: 16_000,
      output_tokens: 16_000,
    });
  });
});

describe("gateway: a transcription cut short is recorded in the measures its model bills", () => {
  it("gpt-4o-mini-transcribe (billed by tokens) is not recorded with an audio length it never heard", async () => {
    const minute = toFile(Buffer.alloc(1_920_000, 1), "minute.wav", { type: "audio/wav" });
    const stream = await openai.audio.transcriptions.create(
      { model: "gpt-4o-mini-transcribe", file: await minute, stream: true },
      tagged(newCase(), { "x-mock-scenario": "reset-mid-stream" }),
    );
    await expect(collect(stream)).rejects.toThrow();
    const rec = (await gatewayRecords(gw.runtime)).find(
      (r) => r.model === "gpt-4o-mini-transcribe" && r.cost_source === "estimated",
    );
    expect(rec).toMatchObject({
      input_audio_tokens: 16_000,
      output_tokens: 16_000,
      cost_nanousd: 128_000_000n,
    });
    // Not 2,560,000 ms (42 minutes): the hold's bound for a model billed by the hour.
    expect(rec!.input_audio_ms).toBe(0);
  });

  it("whisper-1 (billed by the hour) broken off: its length held, no tokens it does not bill", async () => {
    const upload = toFile(Buffer.alloc(9_000, 1), "a.mp3", { type: "audio/mpeg" });
    const whole = openai.audio.transcriptions.create(
      { model: "whisper-1", file: await upload },
      tagged(newCase(), { "x-mock-scenario": "reset-mid-stream" }),
    );
    await expect(whole).rejects.toThrow();
    const rec = (await gatewayRecords(gw.runtime)).find(
      (r) => r.model === "whisper-1" && r.cost_source === "estimated",
    );
    // 9,000 bytes at 6 kbit/s: 12 s, $0.0012.
    expect(rec).toMatchObject({ input_audio_ms: 12_000, cost_nanousd: 1_200_000n });
    expect(rec).toMatchObject({ input_uncached_tokens: 0, input_audio_tokens: 0, output_tokens: 0 });
  });
});
