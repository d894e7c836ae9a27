// OpenAI Images API usage (generations and edits, whole and streamed): input text and images, image output
// apart from text output, priced exactly at the model's rates (costs worked by hand from its per-million
// prices), and the worst case a budget holds before the call.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  buildCallRecord,
  createSseUsageExtractor,
  defaultImageModel,
  extractFromResponse,
  normalizeUsage,
  PricingEngine,
  UsageError,
  worstCaseCost,
  worstCaseUsage,
} from "../src/index.js";

const text = (name: string) =>
  readFileSync(new URL(`./fixtures/openai-images/${name}`, import.meta.url), "utf8");
const AT = Date.parse("2026-12-01T00:00:00Z");
const engine = new PricingEngine();
const price = (model: string, usage: ReturnType<typeof normalizeUsage>) =>
  engine.price({ provider: "openai", model, usage, at: AT });

describe("OpenAI Images API usage", () => {
  it("gpt-image-1.5 (a real reply's usage): image output apart from text output, each at its own rate", () => {
    const extracted = extractFromResponse(
      "openai.images",
      JSON.parse(text("images-generation.gpt-image-1.5.forum-usage.json")),
    );
    expect(extracted.model).toBeNull(); // an Images API reply names no model: the request does
    expect(extracted.usage).toMatchObject({
      input_uncached_tokens: 48,
      image_tokens: 0,
      output_tokens: 481,
      output_image_tokens: 272,
      reasoning_tokens: 0,
    });
    // $5/M text in; $32/M image out, $10/M text out: 48×5 + 272×32 + 209×10 = 11,034 micro-USD.
    const p = price("gpt-image-1.5", extracted.usage);
    expect(p.priced).toBe(true);
    expect(p.cost.total_nanousd).toBe(11_034_000n);
    expect(p.cost.by_category.output).toBe(10_794_000n);
  });

  it("gpt-image-1 (the reference example): every output token is an image token; input images at their rate", () => {
    const extracted = extractFromResponse(
      "openai.images",
      JSON.parse(text("images-generation.gpt-image-1.reference.json")),
    );
    expect(extracted.usage).toMatchObject({
      input_uncached_tokens: 10,
      image_tokens: 40,
      output_tokens: 50,
      output_image_tokens: 50,
    });
    // $5/M text in, $10/M image in, $40/M out (gpt-image-1 has one output rate: its images'):
    // 10×5 + 40×10 + 50×40 = 2,450 micro-USD.
    const p = price("gpt-image-1", extracted.usage);
    expect(p.cost.total_nanousd).toBe(2_450_000n);
    expect(p.cost.by_category.image).toBe(400_000n);
  });

  it("a streamed generation: usage from its completed event, which ends the stream; partial images carry none", () => {
    const sse = text("images-generation.stream.gpt-image-1.reference.sse");
    const cut = sse.indexOf("event: image_generation.completed");
    const partial = createSseUsageExtractor("openai.images");
    partial.push(sse.slice(0, cut));
    expect(partial.result()).toBeNull();
    expect(partial.ended()).toBe(false);

    const whole = createSseUsageExtractor("openai.images");
    for (let i = 0; i < sse.length; i += 37) whole.push(sse.slice(i, i + 37));
    expect(whole.result()?.usage).toMatchObject({
      input_uncached_tokens: 10,
      image_tokens: 40,
      output_tokens: 50,
      output_image_tokens: 50,
    });
    expect(whole.ended()).toBe(true);
    expect(whole.error()).toBeNull();
  });

  it("a usage object whose parts exceed their totals is refused, naming the field", () => {
    const bad = (usage: unknown) => () => normalizeUsage("openai.images", usage);
    expect(
      bad({
        input_tokens: 5,
        output_tokens: 10,
        output_tokens_details: { image_tokens: 11, text_tokens: 0 },
      }),
    ).toThrow(expect.objectContaining({ field: "output_tokens_details.image_tokens" }) as UsageError);
    expect(bad({ input_tokens: 5, output_tokens: 10, input_tokens_details: { image_tokens: 6 } })).toThrow(
      expect.objectContaining({ field: "input_tokens_details.image_tokens" }) as UsageError,
    );
    expect(bad({ output_tokens: 10 })).toThrow(UsageError);
  });

  it("a record whose image output exceeds its output is refused, naming output_image_tokens", () => {
    const build = (usage: Record<string, number>) =>
      buildCallRecord(
        {
          event_id: "0190f5e2-7c3a-7b1e-8f00-000000000001",
          ts_start: AT,
          provider: "openai",
          model: "gpt-image-1",
          ...usage,
        },
        { workspaceId: "ws", engine },
      );
    const fields = (r: ReturnType<typeof build>) => (r.ok ? [] : r.errors.map((e) => e.field));
    expect(fields(build({ output_tokens: 10, output_image_tokens: 11 }))).toEqual(["output_image_tokens"]);
    expect(fields(build({ output_tokens: 10, reasoning_tokens: 6, output_image_tokens: 5 }))).toEqual([
      "output_image_tokens",
    ]);
    const ok = build({ output_tokens: 10, output_image_tokens: 10 });
    expect(ok.ok && ok.record.cost_output_nanousd).toBe(400_000n); // 10 × $40 per million
  });
});

describe("the model of an Images API request that names none (OpenAI's documented defaults)", () => {
  it("an edit runs on gpt-image-1.5; a generation on dall-e-2, unless it sends a GPT image parameter", () => {
    expect(defaultImageModel("edit", { prompt: "x" })).toBe("gpt-image-1.5");
    expect(defaultImageModel("generation", { prompt: "x", size: "1024x1024", quality: "hd" })).toBe(
      "dall-e-2",
    );
    for (const gptOnly of [
      { quality: "high" },
      { output_format: "webp" },
      { stream: false },
      { background: "auto" },
    ])
      expect(defaultImageModel("generation", { prompt: "x", ...gptOnly }), JSON.stringify(gptOnly)).toBe(
        "gpt-image-1.5",
      );
  });
});

describe("the worst case of an Images API request", () => {
  const raw = (body: unknown) => {
    const b = Buffer.from(JSON.stringify(body));
    return { byteLength: b.length, includes: (s: string) => b.includes(s) };
  };

  it("n images of the size asked, at high quality's tokens by area, plus partial images and some text", () => {
    const body = { model: "gpt-image-1", prompt: "a cat", n: 2, size: "1024x1024", partial_images: 2 };
    const wc = worstCaseUsage("openai.images", body, raw(body), null);
    expect(wc.usage).toMatchObject({ input_uncached_tokens: 15, image_tokens: 0 });
    // 4,160 image tokens for 1024×1024 at high quality, 2 partial images × 100, 1,024 of text; twice.
    expect(wc.usage.output_tokens).toBe(2 * (4_160 + 200 + 1_024));
  });

  it("no size (auto): the largest GPT Image size; input images and a mask each held at 8,000 tokens", () => {
    // An edit's multipart body, parsed into its fields (its file parts as objects).
    const body = { model: "gpt-image-1", prompt: "add a hat", image: [{}, {}], mask: {} };
    const wc = worstCaseUsage("openai.images", body, { byteLength: 5_000_000 }, null);
    expect(wc.usage).toMatchObject({ input_uncached_tokens: 27, image_tokens: 24_000 });
    expect(wc.usage.output_tokens).toBe(6_240 + 1_024); // 1536×1024 at high quality
  });

  it("holds at least what the reference reply cost, and prices input images at their own rate", () => {
    const body = { model: "gpt-image-1", prompt: "x".repeat(4), size: "1024x1024", image: {} };
    const wc = worstCaseUsage("openai.images", body, raw(body), null);
    const held = worstCaseCost(engine, "openai", "gpt-image-1", wc.usage, AT);
    // 12 text × $5 + 8,000 image × $10 + (4,160 + 1,024) × $40 (per million) = 287,420 micro-USD.
    expect(held).toEqual({ priced: true, total_nanousd: 287_420_000n });
    expect(held.total_nanousd).toBeGreaterThan(2_450_000n);
  });

  it("gpt-image-1.5: output held at the dearer of its text and image output rates", () => {
    const body = { model: "gpt-image-1.5", prompt: "", size: "1024x1024" };
    const wc = worstCaseUsage("openai.images", body, raw(body), null);
    // (4,160 + 1,024) × $32 = 165,888 micro-USD.
    expect(worstCaseCost(engine, "openai", "gpt-image-1.5", wc.usage, AT).total_nanousd).toBe(165_888_000n);
  });
});
