// US-only inference (Anthropic's `inference_geo: "us"`): billed at 1.1× the standard rates on Claude Opus
// 4.6, Sonnet 4.6 and later models (Anthropic's "Enable US-only inference" billing note); the models before
// refuse the parameter and bill at their standard rates. The reply's usage says where inference ran.
import { describe, expect, it } from "vitest";
import {
  buildCallRecord,
  emptyUsage,
  extractFromResponse,
  inferenceGeoOf,
  PricingEngine,
  uuidv7,
  worstCaseCost,
} from "../src/index.js";

const engine = new PricingEngine();
const at = Date.parse("2026-09-01T12:00:00Z");
const usage = { ...emptyUsage(), input_uncached_tokens: 1_000_000, output_tokens: 100_000 };
const price = (model: string, inferenceGeo: string | null, batch = false) =>
  engine.price({ provider: "anthropic", model, usage, at, inferenceGeo, batch });

describe("US-only inference", () => {
  it("is 1.1× on Opus 4.6 and later, with the multiplier in the price ref; global and older models are not", () => {
    // claude-opus-4-6: $5 in, $25 out per million.
    const standard = 5_000_000_000n + 2_500_000_000n;
    expect(price("claude-opus-4-6", null).cost.total_nanousd).toBe(standard);
    expect(price("claude-opus-4-6", "global").cost.total_nanousd).toBe(standard);
    const us = price("claude-opus-4-6", "us");
    expect(us.cost.total_nanousd).toBe((standard * 11n) / 10n);
    expect(us.price_ref).toMatch(/;us-only=1\.1$/);
    // With the batch discount as well: both apply.
    expect(price("claude-opus-4-6", "us", true).cost.total_nanousd).toBe((standard * 11n) / 20n);
    for (const older of [
      "claude-sonnet-4-5",
      "claude-sonnet-4-5-20250929",
      "claude-opus-4-1",
      "claude-sonnet-4-20250514",
      "claude-3-5-haiku-20241022",
    ]) {
      const p = price(older, "us");
      expect(p.price_ref, older).not.toMatch(/us-only/);
      expect(p.cost.total_nanousd, older).toBe(price(older, null).cost.total_nanousd);
    }
    const otherProvider = engine.price({ provider: "openai", model: "gpt-5", usage, at, inferenceGeo: "us" });
    expect(otherProvider.price_ref).not.toMatch(/us-only/);
  });

  it("a record priced from its usage_raw (events API, SDK) says where inference ran, and is priced so", () => {
    const body = {
      model: "claude-sonnet-4-6",
      usage: { input_tokens: 1000, output_tokens: 200, inference_geo: "us" },
    };
    const u = extractFromResponse("anthropic.messages", body);
    expect(inferenceGeoOf(u.usage_raw)).toBe("us");
    const input = {
      event_id: uuidv7(),
      ts_start: at,
      provider: "anthropic",
      api: "anthropic.messages",
      model: "claude-sonnet-4-6",
      usage_raw: u.usage_raw,
    };
    const built = buildCallRecord(input, { workspaceId: "default", engine });
    if (!built.ok) throw new Error(JSON.stringify(built.errors));
    // claude-sonnet-4-6: $3 in, $15 out per million, × 1.1.
    expect(built.record.cost_nanousd).toBe(((1000n * 3_000n + 200n * 15_000n) * 11n) / 10n);
    expect(built.record.price_ref).toMatch(/;us-only=1\.1$/);
  });

  it("a budget's hold for a request asking for it is at the same rates", () => {
    const held = (geo: string | null) =>
      worstCaseCost(engine, "anthropic", "claude-opus-4-6", usage, at, null, geo).total_nanousd;
    expect(held("us")).toBe((held(null) * 11n) / 10n);
  });
});
