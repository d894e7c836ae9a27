// OpenAI audio transcription usage: token usage (the Realtime shape) priced exactly; whisper-1's seconds
// refused as having no token price; the worst case a budget holds.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  extractFromResponse,
  extractFromSse,
  normalizeUsage,
  PricingEngine,
  type UsageError,
  worstCaseCost,
  worstCaseUsage,
} from "../src/index.js";

const text = (name: string) =>
  readFileSync(new URL(`./fixtures/openai-audio/${name}`, import.meta.url), "utf8");
const AT = Date.parse("2026-12-01T00:00:00Z");
const engine = new PricingEngine();

describe("OpenAI audio transcription usage", () => {
  it("tokens: audio input apart from text, priced at the audio rate (gpt-4o-mini-transcribe)", () => {
    const body = extractFromResponse(
      "openai.transcriptions",
      JSON.parse(text("transcription.gpt-4o-mini-transcribe.json")),
    );
    const streamed = extractFromSse(
      "openai.transcriptions",
      text("transcription.stream.gpt-4o-mini-transcribe.sse"),
    );
    for (const u of [body, streamed!]) {
      expect(u.model).toBeNull();
      expect(u.usage).toMatchObject({ input_uncached_tokens: 0, input_audio_tokens: 16, output_tokens: 8 });
    }
    // 16 × $3 + 8 × $5 per million = 88 micro-USD.
    const p = engine.price({
      provider: "openai",
      model: "gpt-4o-mini-transcribe",
      usage: body.usage,
      at: AT,
    });
    expect(p.cost.total_nanousd).toBe(88_000n);
    expect(p.cost.by_category.input_audio).toBe(48_000n);
  });

  it("whisper-1's seconds have no token price: refused, naming the field, so the call's cost is unknown", () => {
    const usage = JSON.parse(text("transcription.whisper-1.json")).usage;
    expect(() => normalizeUsage("openai.transcriptions", usage)).toThrow(
      expect.objectContaining({ field: "type" }) as UsageError,
    );
  });

  it("a budget holds the model's context window of audio in and of text out, plus the prompt", () => {
    const body = { model: "gpt-4o-mini-transcribe", prompt: "names: Ada", file: { filename: "a.wav" } };
    const wc = worstCaseUsage("openai.transcriptions", body, { byteLength: 25_000_000 }, 16_000);
    expect(wc.usage).toMatchObject({
      input_uncached_tokens: 30,
      input_audio_tokens: 16_000,
      output_tokens: 16_000,
    });
    // 30 × $1.25 + 16,000 × $3 + 16,000 × $5 per million, rounded up: 128,037.5 micro-USD.
    expect(worstCaseCost(engine, "openai", "gpt-4o-mini-transcribe", wc.usage, AT).total_nanousd).toBe(
      128_037_500n,
    );
  });

  it("whisper-1, priced by the minute, has no rate for the audio a budget holds: its worst case is unpriced", () => {
    const wc = worstCaseUsage("openai.transcriptions", { model: "whisper-1" }, { byteLength: 1_000 }, null);
    expect(worstCaseCost(engine, "openai", "whisper-1", wc.usage, AT)).toEqual({
      priced: false,
      total_nanousd: 0n,
    });
  });
});
