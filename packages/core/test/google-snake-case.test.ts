// Google parses JSON by proto3 rules: every field by its lowerCamelCase JSON name or its proto name
// (snake_case, as Python's `model_dump()` and `MessageToDict(preserving_proto_field_name=True)` write it).
// The real Gemini and Vertex AI payloads, their keys put in snake_case here, read and cost as they do.
import { describe, expect, it } from "vitest";
import {
  choicesOf,
  IMAGE_ALLOWANCE_TOKENS,
  outputCapOf,
  RequestFieldError,
  reserveLessHint,
  worstCaseCost,
  worstCaseUsage,
} from "../src/limits/index.js";
import { usdToNano } from "../src/money/index.js";
import { PricingEngine } from "../src/pricing/index.js";
import {
  type Api,
  extractFromEvents,
  extractFromResponse,
  extractFromSse,
  normalizeUsage,
  UsageError,
} from "../src/usage/index.js";
import { listFixtureFiles, readFixtureJson, readFixtureText } from "./fixtures.js";
import { snakeKeys } from "./snake-keys.js";

const API: Api = "google.generate_content";

/** An SSE capture with each event's JSON data in snake_case. */
function snakeSse(text: string): string {
  return text.replace(
    /^data: (.*)$/gm,
    (_, json: string) => `data: ${JSON.stringify(snakeKeys(JSON.parse(json)))}`,
  );
}

const engine = new PricingEngine();
const AT = Date.parse("2026-09-01T12:00:00Z");
const costOf = (model: string, usage: ReturnType<typeof normalizeUsage>) =>
  engine.price({ provider: "google", model, usage, at: AT }).cost.total_nanousd;

interface CostVector {
  provider: string;
  model: string;
  usage_raw: unknown;
  expected: { total_cost_usd: number };
  rates_per_mtok: { output_mtok: number };
}
const vectors = (readFixtureJson("conformance/cost-vectors.json") as CostVector[]).filter(
  (v) => v.provider === "google",
);

describe("Gemini usage in snake_case", () => {
  it.each(vectors.map((v) => [v.model, v] as const))(
    "the %s cost vector's usage costs the same to the nano-USD",
    (model, v) => {
      const snake = normalizeUsage(API, snakeKeys(v.usage_raw));
      expect(snake).toEqual(normalizeUsage(API, v.usage_raw));
      expect(costOf(model, snake)).toBe(usdToNano(String(v.expected.total_cost_usd)));
    },
  );

  const replies = [
    ...listFixtureFiles("providers/google"),
    ...listFixtureFiles("conformance/payloads/google"),
  ];
  it.each(replies)("%s reads the same, model and cost included", (rel) => {
    const read = rel.endsWith(".sse")
      ? (text: string) => extractFromSse(API, text)
      : (text: string) => extractFromResponse(API, JSON.parse(text));
    const text = readFixtureText(rel);
    const camel = read(text)!;
    const snake = read(rel.endsWith(".sse") ? snakeSse(text) : JSON.stringify(snakeKeys(JSON.parse(text))))!;
    expect(snake.usage_raw).toEqual(snakeKeys(camel.usage_raw));
    expect(snake.model).toBe(camel.model);
    expect(snake.usage).toEqual(camel.usage);
    expect(costOf(camel.model!, snake.usage)).toBe(costOf(camel.model!, camel.usage));
  });

  // The cached-content fixture's usageMetadata: 3,520 prompt tokens, 3,512 of them cached.
  const cached = (
    readFixtureJson("providers/google/generate-content.gemini-2.5-flash.cached-content.json") as {
      usageMetadata: Record<string, unknown>;
    }
  ).usageMetadata;
  const errorOf = (raw: unknown) => {
    try {
      normalizeUsage(API, raw);
    } catch (e) {
      if (e instanceof UsageError) return { field: e.field, message: e.message };
    }
    throw new Error("no UsageError");
  };

  it("is refused as camelCase is, naming the field as the report spells it", () => {
    const overCached = { ...cached, cachedContentTokenCount: 3521 };
    expect(errorOf(overCached)).toEqual({
      field: "cachedContentTokenCount",
      message: "cachedContentTokenCount: cachedContentTokenCount (3521) exceeds promptTokenCount (3520)",
    });
    expect(errorOf(snakeKeys(overCached))).toEqual({
      field: "cached_content_token_count",
      message:
        "cached_content_token_count: cached_content_token_count (3521) exceeds prompt_token_count (3520)",
    });
    expect(errorOf(snakeKeys({ ...cached, promptTokenCount: -1 }))).toEqual({
      field: "prompt_token_count",
      message: "prompt_token_count: token count is negative (-1)",
    });
    const fractional = { ...cached, promptTokensDetails: [{ modality: "TEXT", tokenCount: 1.5 }] };
    expect(errorOf(snakeKeys(fractional))).toEqual({
      field: "prompt_tokens_details[0].token_count",
      message: "prompt_tokens_details[0].token_count: token count is not an integer (1.5)",
    });
    expect(errorOf(snakeKeys({ ...cached, cacheTokensDetails: 5 })).field).toBe("cache_tokens_details");
    expect(
      errorOf(snakeKeys({ ...cached, cacheTokensDetails: [{ modality: "TEXT", tokenCount: 3513 }] })),
    ).toEqual({
      field: "cache_tokens_details",
      message:
        "cache_tokens_details: sum of cache_tokens_details (3513) exceeds cached_content_token_count (3512)",
    });
  });

  it("a field sent under both names is refused, as Google refuses it, whatever the values", () => {
    expect(errorOf({ ...cached, prompt_token_count: 3520 })).toEqual({
      field: "promptTokenCount",
      message:
        "promptTokenCount: sent both as promptTokenCount and as prompt_token_count, the same field twice " +
        "(Google refuses such a body): send one",
    });
    const entry = { modality: "TEXT", tokenCount: 3520, token_count: 3520 };
    expect(errorOf({ ...cached, promptTokensDetails: [entry] }).field).toBe(
      "promptTokensDetails[0].tokenCount",
    );
    const snakeCached = snakeKeys(cached) as Record<string, unknown>;
    expect(
      errorOf({ ...snakeCached, candidatesTokensDetails: [], candidates_tokens_details: [] }).field,
    ).toBe("candidatesTokensDetails");
    // A null is no value (proto3 JSON reads it as the default): the other name's value is read.
    expect(normalizeUsage(API, { ...snakeCached, promptTokenCount: null })).toEqual(
      normalizeUsage(API, cached),
    );
  });

  it("a reply or stream chunk with usage or model under both names is refused, not read by one", () => {
    const body = {
      usageMetadata: cached,
      usage_metadata: snakeKeys(cached),
      modelVersion: "gemini-2.5-flash",
    };
    expect(() => extractFromResponse(API, body)).toThrow(
      /^usageMetadata: sent both as usageMetadata and as usage_metadata/,
    );
    const chunks = [
      { usageMetadata: cached, modelVersion: "gemini-2.5-flash" },
      { usageMetadata: cached, modelVersion: "gemini-2.5-flash", model_version: "gemini-2.5-pro" },
    ];
    expect(() => extractFromEvents(API, chunks)).toThrow(
      /modelVersion: sent both as modelVersion and as model_version/,
    );
  });
});

describe("a Gemini request in snake_case holds the same worst case", () => {
  const png = { inlineData: { mimeType: "image/png", data: "A".repeat(4_000) } };
  const camel = {
    contents: [{ role: "user", parts: [{ text: "Describe both." }, png, png] }],
    generationConfig: { maxOutputTokens: 3_000, candidateCount: 2, thinkingConfig: { thinkingBudget: 0 } },
  };
  const snake = snakeKeys(camel) as Record<string, unknown>;
  const size = (body: unknown) => {
    const json = JSON.stringify(body);
    return { byteLength: Buffer.byteLength(json), includes: (s: string) => json.includes(s) };
  };

  it("its output cap and candidates are read from generation_config, and cost the same", () => {
    expect(snake.generation_config).toEqual({
      max_output_tokens: 3_000,
      candidate_count: 2,
      thinking_config: { thinking_budget: 0 },
    });
    const wcCamel = worstCaseUsage(API, camel, size(camel), 1_048_576);
    const wcSnake = worstCaseUsage(API, snake, size(snake), 1_048_576);
    expect(wcSnake.outputFrom).toBe("request");
    expect(wcSnake.usage.output_tokens).toBe(6_000);
    expect({ ...wcSnake.usage, input_uncached_tokens: 0 }).toEqual({
      ...wcCamel.usage,
      input_uncached_tokens: 0,
    });
    // Both images found either way (their base64 out of the byte bound, an allowance each instead).
    for (const [body, part, wc] of [
      [camel, png, wcCamel],
      [snake, snakeKeys(png), wcSnake],
    ] as const)
      expect(wc.usage.input_uncached_tokens).toBe(
        size(body).byteLength - 2 * JSON.stringify(part).length + 2 * IMAGE_ALLOWANCE_TOKENS,
      );

    // Its 2 × 3,000 output tokens are held at gemini-2.5-flash's output rate, as the camelCase request's are.
    const flash = vectors.find((v) => v.model === "gemini-2.5-flash")!;
    const outputHeld = (6_000n * usdToNano(String(flash.rates_per_mtok.output_mtok))) / 1_000_000n;
    for (const wc of [wcCamel, wcSnake]) {
      const held = (output_tokens: number) =>
        worstCaseCost(engine, "google", "gemini-2.5-flash", { ...wc.usage, output_tokens }, AT).total_nanousd;
      expect(held(wc.usage.output_tokens) - held(0)).toBe(outputHeld);
    }

    expect(outputCapOf(API, snake)).toEqual({ field: "max_output_tokens", tokens: 3_000 });
    expect(choicesOf(API, snake)).toEqual({ count: 2, field: "candidate_count" });
    expect(reserveLessHint(API, snake, wcSnake)).toBe(
      "This call's max_output_tokens of 3000 is reserved whole as output: a lower one reserves less. " +
        "Each of its 2 choices (candidate_count) reserves as much.",
    );
  });

  it("a setting under both names is refused, naming it as the request spells its path", () => {
    const refusal = (body: Record<string, unknown>) => {
      try {
        worstCaseUsage(API, body, size(body), null);
      } catch (e) {
        if (e instanceof RequestFieldError) return e.message;
      }
      throw new Error("no RequestFieldError");
    };
    expect(refusal({ ...camel, generation_config: snake.generation_config })).toBe(
      "generationConfig: sent both as generationConfig and as generation_config, the same field twice " +
        "(Google refuses such a body): send one",
    );
    expect(refusal({ generation_config: { max_output_tokens: 10, maxOutputTokens: 10 } })).toMatch(
      /^generation_config\.maxOutputTokens: sent both as maxOutputTokens and as max_output_tokens/,
    );
    expect(refusal({ generationConfig: { candidateCount: 1, candidate_count: 4 } })).toMatch(
      /^generationConfig\.candidateCount: sent both/,
    );
    // Only Gemini's settings are read by either name: a chat call's max_output_tokens is no cap of its API.
    const chat = { max_tokens: 5, max_output_tokens: 9 };
    expect(outputCapOf("openai.chat", chat)).toEqual({ field: "max_tokens", tokens: 5 });
  });
});
