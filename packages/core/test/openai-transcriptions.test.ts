// OpenAI audio transcription usage: token usage (the Realtime shape) and whisper-1's seconds priced exactly;
// the worst case a budget holds.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  emptyUsage,
  extractFromResponse,
  extractFromSse,
  normalizeUsage,
  PriceBook,
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

  it("whisper-1's seconds: the audio's length, priced at $0.36 an hour (genai-prices' input_audio_hours)", () => {
    const body = JSON.parse(text("transcription.whisper-1.json"));
    const u = extractFromResponse("openai.transcriptions", body);
    expect(u.usage).toEqual({ ...emptyUsage(), input_audio_ms: 2_000 });
    expect(u.usage_raw).toEqual({ type: "duration", seconds: 2 });
    // 2 s × $0.36 / 3,600 s = $0.0002.
    const p = engine.price({ provider: "openai", model: "whisper-1", usage: u.usage, at: AT });
    expect(p.priced).toBe(true);
    expect(p.cost.total_nanousd).toBe(200_000n);
    expect(p.cost.by_category.input_audio).toBe(200_000n);
    // A fraction of a second is kept to the millisecond: 61.2345 s → 61,235 ms → $0.0061235 (6,123,500 nano).
    const long = normalizeUsage("openai.transcriptions", { type: "duration", seconds: 61.2345 });
    expect(long.input_audio_ms).toBe(61_235);
    const cost = engine.price({ provider: "openai", model: "whisper-1", usage: long, at: AT }).cost;
    expect(cost.total_nanousd).toBe(6_123_500n);
  });

  it("a duration that is not a length, or a usage type not known, is refused naming the field", () => {
    for (const seconds of [-1, "2", null, Number.POSITIVE_INFINITY, 400 * 86_400])
      expect(() => normalizeUsage("openai.transcriptions", { type: "duration", seconds })).toThrow(
        expect.objectContaining({ field: "seconds" }) as UsageError,
      );
    expect(() => normalizeUsage("openai.transcriptions", { type: "characters", characters: 9 })).toThrow(
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

  it("whisper-1 is held at the longest its upload can play: its bytes at 6 kbit/s, at $0.36 an hour", () => {
    const body = { model: "whisper-1", file: { filename: "a.mp3", size: 960_000 } };
    const wc = worstCaseUsage("openai.transcriptions", body, { byteLength: 1_000_000 }, null);
    // The whole multipart body: 1,000,000 bytes × 8 / 6,000 bit/s = 1,333.33… s, held as 1,333,334 ms.
    expect(wc.usage.input_audio_ms).toBe(1_333_334);
    // 1,333,334 ms × $0.36 / 3,600,000 ms = $0.1333334 (133,333,400 nano-USD).
    expect(worstCaseCost(engine, "openai", "whisper-1", wc.usage, AT)).toEqual({
      priced: true,
      total_nanousd: 133_333_400n,
    });
    // Where the body's size is not known (the SDK's estimate of a reply cut short), the file's own size.
    const fromFile = worstCaseUsage("openai.transcriptions", body, { byteLength: 0 }, null);
    expect(fromFile.usage.input_audio_ms).toBe(1_280_000);
    // Neither known: OpenAI's largest upload, 25 MB.
    const unknown = worstCaseUsage("openai.transcriptions", { model: "whisper-1" }, { byteLength: 0 }, null);
    expect(unknown.usage.input_audio_ms).toBe(Math.ceil((25 * 1024 * 1024 * 8 * 1000) / 6_000));
  });

  it("a price book prices a model by the hour of audio (a self-hosted one); audio no rate prices holds unpriced", () => {
    const book = PriceBook.parse({
      name: "own",
      version: 1,
      models: [
        { provider: "acme", model: "asr", prices: { input_audio_hours: "0.5" } },
        { provider: "acme", model: "text-only", prices: { output_mtok: "1" } },
      ],
    });
    const own = new PricingEngine(book);
    const usage = normalizeUsage("openai.transcriptions", { type: "duration", seconds: 7.2 });
    // 7,200 ms × $0.50 / 3,600,000 ms = $0.001.
    expect(own.price({ provider: "acme", model: "asr", usage, at: AT }).cost.total_nanousd).toBe(1_000_000n);
    const wc = worstCaseUsage("openai.transcriptions", { model: "m" }, { byteLength: 9_000 }, null);
    // 9,000 bytes at 6 kbit/s: 12 s, $0.5 an hour: $0.0016667 rounded up.
    expect(worstCaseCost(own, "acme", "asr", wc.usage, AT)).toEqual({
      priced: true,
      total_nanousd: 1_666_667n,
    });
    expect(worstCaseCost(own, "acme", "text-only", wc.usage, AT)).toEqual({
      priced: false,
      total_nanousd: 0n,
    });
  });
});
