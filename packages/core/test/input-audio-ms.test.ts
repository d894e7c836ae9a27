// input_audio_ms (audio billed by its length) where it meets the rest: ingest beside a raw usage object, a
// model no rate prices audio for, a transcription cut short.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  buildCallRecord,
  emptyUsage,
  estimateCutShortUsage,
  PriceBook,
  PricingEngine,
  totalTokens,
  transcriptionBilling,
  worstCaseCost,
  worstCaseUsage,
} from "../src/index.js";

const AT = Date.parse("2026-12-01T00:00:00Z");
const engine = new PricingEngine();
const ctx = { workspaceId: "ws", engine };
const tokensUsage = JSON.parse(
  readFileSync(
    new URL("./fixtures/openai-audio/transcription.gpt-4o-mini-transcribe.json", import.meta.url),
    "utf8",
  ),
).usage;

describe("input_audio_ms", () => {
  it("ingest: a length that is not whole non-negative milliseconds is refused, naming the field", () => {
    const call = { event_id: "0190f5e2-7c3a-7b1e-8f00-0000000000a1", ts_start: AT, provider: "openai" };
    for (const input_audio_ms of [-1, 1.5, "2000", null, 1e13]) {
      const res = buildCallRecord({ ...call, model: "whisper-1", input_audio_ms }, ctx);
      expect(res.ok, String(input_audio_ms)).toBe(false);
      if (!res.ok) expect(res.errors.map((e) => e.field)).toEqual(["input_audio_ms"]);
    }
  });

  it("ingest: a duration given beside a token usage_raw does not drop the raw object's tokens (no silent $0)", () => {
    const res = buildCallRecord(
      {
        event_id: "0190f5e2-7c3a-7b1e-8f00-0000000000a1",
        ts_start: AT,
        provider: "openai",
        api: "openai.transcriptions",
        model: "gpt-4o-mini-transcribe",
        usage_raw: tokensUsage,
        // The client knows how long the audio it sent was, and says so.
        input_audio_ms: 4_000,
      },
      ctx,
    );
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    // 16 audio tokens × $3 + 8 out × $5 per million, as the same usage_raw alone is priced.
    expect(res.record).toMatchObject({
      input_audio_tokens: 16,
      output_tokens: 8,
      input_audio_ms: 4_000,
      cost_nanousd: 88_000n,
    });
  });

  it("pricing: audio by length on a model no audio rate prices is not a priced $0 (the hold calls it unpriced)", () => {
    const book = PriceBook.parse({
      name: "own",
      version: 1,
      models: [{ provider: "acme", model: "text-only", prices: { output_mtok: "1" } }],
    });
    const own = new PricingEngine(book);
    const usage = { ...emptyUsage(), input_audio_ms: 60_000 };
    const wc = worstCaseUsage("openai.transcriptions", { model: "text-only" }, { byteLength: 9_000 }, null);
    expect(worstCaseCost(own, "acme", "text-only", wc.usage, AT).priced).toBe(false);
    const p = own.price({ provider: "acme", model: "text-only", usage, at: AT });
    expect(p.priced).toBe(false);
  });

  it("estimate: a token-billed transcription cut short records no audio length it never measured", () => {
    const u = estimateCutShortUsage(null, {
      api: "openai.transcriptions",
      model: "gpt-4o-mini-transcribe",
      requestBytes: 1_920_300,
      events: 2,
      request: {
        model: "gpt-4o-mini-transcribe",
        stream: true,
        file: { filename: "minute.wav", size: 1_920_000 },
      },
      contextWindow: () => engine.contextWindow("openai", "gpt-4o-mini-transcribe"),
      // What the gateway and the SDK pass: the model's billing by its rates in force.
      billedBy: () => transcriptionBilling(engine, "openai", "gpt-4o-mini-transcribe", AT),
    });
    expect(u.usage).toMatchObject({ input_audio_tokens: 16_000, output_tokens: 16_000 });
    // 1.92 MB at 6 kbit/s is 2,560 s: the hold's bound for a model billed by the hour, not audio heard.
    expect(u.usage.input_audio_ms).toBe(0);
  });
});

describe("whisper-1's estimate", () => {
  it("a whisper-1 reply broken off is estimated by its upload's length only, no phantom tokens (tokens per minute, runs)", () => {
    const u = estimateCutShortUsage(null, {
      api: "openai.transcriptions",
      model: "whisper-1",
      requestBytes: 9_300,
      events: 0,
      request: { model: "whisper-1", file: { filename: "a.mp3", size: 9_000 } },
      contextWindow: () => engine.contextWindow("openai", "whisper-1"),
      billedBy: () => transcriptionBilling(engine, "openai", "whisper-1", AT),
    });
    expect(u.usage).toMatchObject({ input_audio_ms: 12_000, input_audio_tokens: 0, output_tokens: 0 });
    expect(totalTokens(u.usage)).toBe(0);
  });
});
