// How Anthropic served a call, which it prices apart: US-only inference (`inference_geo: "us"`, 1.1× on
// Claude Opus 4.6, Sonnet 4.6 and later; the models before refuse it: Anthropic's "Enable US-only
// inference" billing note) and fast mode (`speed: "fast"`: Opus 4.6 and 4.7 at 6×, Opus 4.8 at 2×, across
// the whole context window: Anthropic's fast mode page). The reply's usage says both.
import { describe, expect, it } from "vitest";
import {
  buildCallRecord,
  emptyUsage,
  extractFromResponse,
  PricingEngine,
  type ServedAs,
  servedAsOf,
  uuidv7,
  worstCaseCost,
} from "../src/index.js";

const engine = new PricingEngine();
const at = Date.parse("2026-09-01T12:00:00Z");
const usage = { ...emptyUsage(), input_uncached_tokens: 1_000_000, output_tokens: 100_000 };
const served = (inferenceGeo: string | null, speed: string | null = null): ServedAs => ({
  inferenceGeo,
  speed,
});
const price = (model: string, servedAs: ServedAs | null, batch = false) =>
  engine.price({ provider: "anthropic", model, usage, at, servedAs, batch });
// claude-opus-4-6 (and 4-7, 4-8): $5 in, $25 out per million.
const OPUS = 5_000_000_000n + 2_500_000_000n;

describe("US-only inference", () => {
  it("is 1.1× on Opus 4.6 and later, with the multiplier in the price ref; global and older models are not", () => {
    expect(price("claude-opus-4-6", null).cost.total_nanousd).toBe(OPUS);
    expect(price("claude-opus-4-6", served("global")).cost.total_nanousd).toBe(OPUS);
    const us = price("claude-opus-4-6", served("us"));
    expect(us.cost.total_nanousd).toBe((OPUS * 11n) / 10n);
    expect(us.price_ref).toMatch(/;us-only=1\.1$/);
    // With the batch discount as well: both apply.
    expect(price("claude-opus-4-6", served("us"), true).cost.total_nanousd).toBe((OPUS * 11n) / 20n);
    const older = [
      "claude-sonnet-4-5",
      "claude-sonnet-4-5-20250929",
      "claude-opus-4-1",
      "claude-sonnet-4-20250514",
    ];
    for (const model of [...older, "claude-3-5-haiku-20241022"]) {
      const p = price(model, served("us"));
      expect(p.price_ref, model).not.toMatch(/us-only/);
      expect(p.cost.total_nanousd, model).toBe(price(model, null).cost.total_nanousd);
    }
    const otherProvider = engine.price({
      provider: "openai",
      model: "gpt-5",
      usage,
      at,
      servedAs: served("us"),
    });
    expect(otherProvider.price_ref).not.toMatch(/us-only/);
  });
});

describe("fast mode", () => {
  it("is 6× on Opus 4.6 and 4.7 and 2× on Opus 4.8, stacking with US-only; standard speed and other models are not", () => {
    for (const model of ["claude-opus-4-6", "claude-opus-4-7"]) {
      const fast = price(model, served(null, "fast"));
      expect(fast.cost.total_nanousd, model).toBe(OPUS * 6n);
      expect(fast.price_ref, model).toMatch(/;fast=6$/);
    }
    expect(price("claude-opus-4-8", served(null, "fast")).cost.total_nanousd).toBe(OPUS * 2n);
    expect(price("claude-opus-4-6", served(null, "standard")).cost.total_nanousd).toBe(OPUS);
    const both = price("claude-opus-4-6", served("us", "fast"));
    expect(both.cost.total_nanousd).toBe((OPUS * 66n) / 10n);
    expect(both.price_ref).toMatch(/;us-only=1\.1;fast=6$/);
    // A model without fast mode ran at standard speed and price.
    expect(price("claude-sonnet-4-6", served(null, "fast")).price_ref).not.toMatch(/fast/);
  });
});

describe("where a call's serving is read from", () => {
  it("a record priced from its usage_raw (events API, SDK) is priced as the reply says it was served", () => {
    const body = {
      model: "claude-opus-4-6",
      usage: { input_tokens: 1000, output_tokens: 200, inference_geo: "us", speed: "fast" },
    };
    const u = extractFromResponse("anthropic.messages", body);
    expect(servedAsOf(u.usage_raw)).toEqual(served("us", "fast"));
    expect(servedAsOf({ input_tokens: 1 })).toBeNull();
    const input = {
      event_id: uuidv7(),
      ts_start: at,
      provider: "anthropic",
      api: "anthropic.messages",
      model: "claude-opus-4-6",
      usage_raw: u.usage_raw,
    };
    const built = buildCallRecord(input, { workspaceId: "default", engine });
    if (!built.ok) throw new Error(JSON.stringify(built.errors));
    expect(built.record.cost_nanousd).toBe(((1000n * 5_000n + 200n * 25_000n) * 66n) / 10n);
    expect(built.record.price_ref).toMatch(/;us-only=1\.1;fast=6$/);
  });

  it("a budget's hold for a request asking for them is at the same rates", () => {
    const held = (s: ServedAs | null) =>
      worstCaseCost(engine, "anthropic", "claude-opus-4-6", usage, at, null, s).total_nanousd;
    expect(held(servedAsOf({ inference_geo: "us" }))).toBe((held(null) * 11n) / 10n);
    expect(held(servedAsOf({ speed: "fast" }))).toBe(held(null) * 6n);
  });
});
