// Google parses JSON by proto3 rules: every field by its lowerCamelCase JSON name or its proto name
// (snake_case, as Python's `model_dump()` and `MessageToDict(preserving_proto_field_name=True)` write it).
// The real Gemini and Vertex AI payloads, their keys put in snake_case here, read and cost as they do.
import { describe, expect, it } from "vitest";
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
