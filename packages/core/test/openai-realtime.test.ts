// OpenAI Realtime API usage (`response.done`), from real captured events: normalized into disjoint
// categories (cached audio and images apart from cached text) and priced exactly, costs worked by hand
// from OpenAI's per-million prices.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { extractFromResponse, normalizeUsage, PricingEngine, UsageError } from "../src/index.js";

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/openai-realtime/${name}`, import.meta.url), "utf8")) as {
    response: Record<string, unknown>;
  };

const AT = Date.parse("2026-12-01T00:00:00Z");
const engine = new PricingEngine();
const priced = (model: string, name: string) => {
  const extracted = extractFromResponse("openai.realtime", fixture(name).response);
  return { extracted, price: engine.price({ provider: "openai", model, usage: extracted.usage, at: AT }) };
};

describe("OpenAI Realtime usage (response.done)", () => {
  it("gpt-realtime, cached audio: the cached part of the audio apart, at its own rate", () => {
    const { extracted, price } = priced("gpt-realtime", "response-done.gpt-realtime.cached-audio.json");
    expect(extracted.model).toBeNull(); // a GA response.done names no model: the session does
    expect(extracted.response_id).toBe("resp_CsZyL5IuqSgPEut0cI82K");
    // input 132 = text 59 + audio 73; cached 64, all audio: 9 audio uncached.
    expect(extracted.usage).toMatchObject({
      input_uncached_tokens: 59,
      cache_read_tokens: 0,
      input_audio_tokens: 9,
      cache_audio_read_tokens: 64,
      cache_image_read_tokens: 0,
      output_image_tokens: 0,
      input_audio_ms: 0,
      input_characters: 0,
      image_tokens: 0,
      output_tokens: 188,
      output_audio_tokens: 147,
    });
    // $4/M text in, $32/M audio in, $0.40/M cached audio, $16/M text out, $64/M audio out:
    // 59×4 + 9×32 + 64×0.4 = 549.6; 41×16 + 147×64 = 10,064 (micro-USD) = 10,613,600 nano-USD.
    expect(price.priced).toBe(true);
    expect(price.cost.total_nanousd).toBe(10_613_600n);
    expect(price.cost.by_category).toMatchObject({
      input_uncached: 236_000n,
      input_audio: 288_000n,
      cache_read: 25_600n,
      output: 656_000n,
      output_audio: 9_408_000n,
    });
    // The same usage on gpt-realtime-mini, whose cached audio ($0.30/M) is not its cached text ($0.06/M):
    // 59×0.6 + 9×10 + 64×0.3 = 144.6; 41×2.4 + 147×20 = 3,038.4 (micro-USD).
    const mini = engine.price({
      provider: "openai",
      model: "gpt-realtime-mini",
      usage: extracted.usage,
      at: AT,
    });
    expect(mini.cost.total_nanousd).toBe(3_183_000n);
  });

  it("gpt-4o-mini-realtime-preview, cached text and audio (beta shape)", () => {
    const { extracted, price } = priced(
      "gpt-4o-mini-realtime-preview-2024-12-17",
      "response-done.gpt-4o-mini-realtime-preview.cached-text-audio.json",
    );
    // input 1786 = text 1493 + audio 293; cached 1728 = text 1472 + audio 256.
    expect(extracted.usage).toMatchObject({
      input_uncached_tokens: 21,
      cache_read_tokens: 1472,
      input_audio_tokens: 37,
      cache_audio_read_tokens: 256,
      output_tokens: 245,
      output_audio_tokens: 159,
    });
    // 21×0.6 + 1472×0.3 + 37×10 + 256×0.3 = 901; 86×2.4 + 159×20 = 3,386.4 (micro-USD).
    expect(price.cost.total_nanousd).toBe(4_287_400n);
  });

  it("gpt-4o-realtime-preview, October 2024 (no cached_tokens_details)", () => {
    const { extracted, price } = priced(
      "gpt-4o-realtime-preview",
      "response-done.gpt-4o-realtime-preview.no-cached-details.json",
    );
    expect(extracted.usage).toMatchObject({ input_uncached_tokens: 643, input_audio_tokens: 276 });
    // 643×5 + 276×40 = 14,255; 36×20 + 107×80 = 9,280 (micro-USD).
    expect(price.cost.total_nanousd).toBe(23_535_000n);
  });

  it("refuses counts that do not add up, naming the field", () => {
    const bad = (usage: unknown, field: string) => {
      try {
        normalizeUsage("openai.realtime", usage);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        expect((e as UsageError).field).toBe(field);
      }
    };
    const details = { text_tokens: 10, audio_tokens: 5, cached_tokens: 4 };
    bad({ output_tokens: 1 }, "input_tokens");
    bad(
      {
        input_tokens: 15,
        output_tokens: 1,
        input_token_details: { ...details, cached_tokens_details: { audio_tokens: 6 } },
      },
      "input_token_details.cached_tokens_details.audio_tokens",
    );
    bad(
      {
        input_tokens: 15,
        output_tokens: 1,
        input_token_details: { ...details, cached_tokens_details: { audio_tokens: 3, image_tokens: 2 } },
      },
      "input_token_details.cached_tokens_details.image_tokens",
    );
    bad({ input_tokens: 3, output_tokens: 1, input_token_details: details }, "input_token_details");
    bad(
      { input_tokens: 15, output_tokens: 1, output_token_details: { audio_tokens: 2 } },
      "output_token_details.audio_tokens",
    );
  });
});
