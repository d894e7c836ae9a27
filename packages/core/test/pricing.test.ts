import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { calcPrice, findProvider } from "@pydantic/genai-prices";
import { describe, expect, it } from "vitest";
import { usdToNano } from "../src/money/index.js";
import {
  computeCost,
  GENAI_PRICES_VERSION,
  PriceBook,
  PricingEngine,
  ratesFrom,
  totalInputTokens,
} from "../src/pricing/index.js";
import { normalizeUsage } from "../src/usage/index.js";
import { type Api, emptyUsage, type NormalizedUsage } from "../src/usage/types.js";
import { fixturePath } from "./fixtures.js";

interface Vector {
  provider: string;
  api: string;
  model: string;
  timestamp: string;
  usage_raw: unknown;
  priced_model: string;
  expected: { input_cost_usd: number; output_cost_usd: number; total_cost_usd: number };
}

const vectors: Vector[] = JSON.parse(readFileSync(fixturePath("conformance/cost-vectors.json"), "utf8"));

/** The vectors name APIs the way their sources do; map them to DESIGN.md's `api` values. */
function apiOf(v: Vector): Api {
  const a = v.api.split(" ")[0]!;
  if (a.startsWith("openai.responses")) return "openai.responses";
  if (a.startsWith("anthropic")) return "anthropic.messages";
  if (a.startsWith("gemini")) return "google.generate_content";
  if (a.startsWith("bedrock")) return "bedrock.converse";
  return "openai.chat"; // OpenAI, DeepSeek, Groq, Mistral chat completions
}

const INPUT_CATEGORIES = [
  "input_uncached",
  "cache_read",
  "cache_write_5m",
  "cache_write_1h",
  "input_audio",
  "image",
] as const;

describe("conformance cost vectors", () => {
  it("has all 13 vectors", () => expect(vectors).toHaveLength(13));
  const engine = new PricingEngine();
  for (const v of vectors) {
    it(`${v.provider} ${v.model} (${v.api}) matches to the nano-dollar`, () => {
      const usage = normalizeUsage(apiOf(v), v.usage_raw);
      const res = engine.price({ provider: v.provider, model: v.model, usage, at: new Date(v.timestamp) });
      expect(res.priced).toBe(true);
      expect(res.price_ref).toBe(`genai-prices@0.1.8:${v.priced_model}`);
      const input = INPUT_CATEGORIES.reduce((s, c) => s + res.cost.by_category[c], 0n);
      expect(input).toBe(usdToNano(String(v.expected.input_cost_usd)));
      expect(res.cost.by_category.output + res.cost.by_category.output_audio).toBe(
        usdToNano(String(v.expected.output_cost_usd)),
      );
      expect(res.cost.total_nanousd).toBe(usdToNano(String(v.expected.total_cost_usd)));
    });
  }
});

it("pins the genai-prices version it reports in price_ref", () => {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve("@pydantic/genai-prices").replace(/dist[\\/].*$/, "package.json");
  expect(JSON.parse(readFileSync(pkgPath, "utf8")).version).toBe(GENAI_PRICES_VERSION);
});

/** Deterministic PRNG so the property test is reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomUsage(rnd: () => number): NormalizedUsage {
  const int = (max: number) => (rnd() < 0.3 ? 0 : Math.floor(rnd() ** 3 * max));
  const u = emptyUsage();
  u.input_uncached_tokens = int(400_000);
  u.cache_read_tokens = int(200_000);
  u.cache_write_5m_tokens = int(50_000);
  u.cache_write_1h_tokens = int(20_000);
  u.input_audio_tokens = int(10_000);
  u.image_tokens = int(10_000);
  u.reasoning_tokens = int(20_000);
  u.output_audio_tokens = int(5_000);
  u.output_tokens = u.reasoning_tokens + u.output_audio_tokens + int(30_000);
  u.web_search_requests = int(20);
  u.file_search_requests = int(20);
  return u;
}

/** Our disjoint usage in genai-prices' nested form (totals include their subsets). */
function toGenaiUsage(u: NormalizedUsage): Record<string, number> {
  return {
    input_tokens: totalInputTokens(u),
    cache_read_tokens: u.cache_read_tokens,
    cache_write_tokens: u.cache_write_5m_tokens + u.cache_write_1h_tokens,
    cache_write_1h_tokens: u.cache_write_1h_tokens,
    input_audio_tokens: u.input_audio_tokens,
    input_image_tokens: u.image_tokens,
    output_tokens: u.output_tokens,
    output_audio_tokens: u.output_audio_tokens,
    output_reasoning_tokens: u.reasoning_tokens,
    web_searches: u.web_search_requests,
    storage_searches: u.file_search_requests,
  };
}

describe("property: exact engine equals genai-prices calcPrice within 1 nano-USD", () => {
  const providers = [
    "openai",
    "anthropic",
    "google",
    "aws",
    "mistral",
    "groq",
    "deepseek",
    "x-ai",
    "azure",
    "together",
  ];
  const models = providers.flatMap((p) =>
    (findProvider({ providerId: p })?.models ?? []).map((m) => ({ p, id: m.id })),
  );

  it(`covers many built-in models (${models.length})`, () => expect(models.length).toBeGreaterThan(300));

  it("agrees on random usage and random times", () => {
    const rnd = mulberry32(20261123);
    const engine = new PricingEngine();
    let compared = 0;
    const quiet = console.warn;
    console.warn = () => {}; // genai-prices warns about price keys outside the standard units
    try {
      for (const { p, id } of models) {
        for (let i = 0; i < 5; i++) {
          const usage = randomUsage(rnd);
          const at = new Date(Date.UTC(2025, 0, 1) + Math.floor(rnd() * 700 * 86_400_000));
          let expected: ReturnType<typeof calcPrice>;
          try {
            expected = calcPrice(toGenaiUsage(usage), id, { providerId: p, timestamp: at });
          } catch {
            continue; // genai-prices rejects a few price shapes outright; nothing to compare against
          }
          const ours = engine.price({ provider: p, model: id, usage, at });
          expect(ours.priced, `${p}:${id}`).toBe(expected !== null);
          if (!expected) continue;
          const gp = Math.round(expected.total_price * 1e9);
          expect(
            Math.abs(Number(ours.cost.total_nanousd) - gp),
            `${p}:${id} ${JSON.stringify(usage)}`,
          ).toBeLessThanOrEqual(1);
          compared++;
        }
      }
    } finally {
      console.warn = quiet;
    }
    expect(compared).toBeGreaterThan(1500);
  });
});

describe("pricing engine", () => {
  const usage = { ...emptyUsage(), input_uncached_tokens: 1_000_000, output_tokens: 1_000_000 };

  it("returns priced=false with an explicit ref for unknown models, never a silent zero", () => {
    const res = new PricingEngine().price({
      provider: "openai",
      model: "no-such-model-xyz",
      usage,
      at: Date.now(),
    });
    expect(res.priced).toBe(false);
    expect(res.price_ref).toBe("unpriced:openai:no-such-model-xyz");
  });

  it("resolves dated snapshots and Bedrock cross-region ids through genai-prices matching", () => {
    const e = new PricingEngine();
    const at = new Date("2026-09-01T12:00:00Z");
    expect(e.price({ provider: "openai", model: "gpt-4o-2024-08-06", usage, at }).price_ref).toBe(
      "genai-prices@0.1.8:openai:gpt-4o",
    );
    expect(
      e.price({ provider: "bedrock", model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", usage, at })
        .priced,
    ).toBe(true);
  });

  it("prices a model id that restates its provider (openai/gpt-4o, Google's models/…) as the model", () => {
    const e = new PricingEngine();
    const at = new Date("2026-09-01T12:00:00Z");
    for (const [provider, prefixed, plain] of [
      ["openai", "openai/gpt-4o", "gpt-4o"],
      ["anthropic", "anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"],
      ["google", "models/gemini-2.5-pro", "gemini-2.5-pro"],
      ["gemini", "google/gemini-2.5-pro", "gemini-2.5-pro"],
    ]) {
      const got = e.price({ provider: provider!, model: prefixed!, usage, at });
      const want = e.price({ provider: provider!, model: plain!, usage, at });
      expect(got.priced, prefixed).toBe(true); // was unpriced:<provider>:<prefixed id>
      expect(got.price_ref).toBe(want.price_ref);
      expect(got.cost.total_nanousd).toBe(want.cost.total_nanousd);
    }
    // Another provider's prefix is not this provider's model; OpenRouter's own ids keep theirs.
    expect(e.price({ provider: "openai", model: "anthropic/claude-sonnet-4-5", usage, at }).priced).toBe(
      false,
    );
    expect(
      e.price({ provider: "openrouter", model: "anthropic/claude-sonnet-4.5", usage, at }).price_ref,
    ).toBe("genai-prices@0.1.8:openrouter:anthropic/claude-sonnet-4.5");
  });

  it("a price book's alias applies to its id restating the provider too (azure/prod-gpt4o)", () => {
    const at = new Date("2026-09-01T12:00:00Z");
    const e = new PricingEngine(
      PriceBook.parse({
        name: "acme",
        version: 1,
        aliases: [{ provider: "azure", model: "prod-gpt4o", to: { provider: "openai", model: "gpt-4o" } }],
      }),
    );
    const want = e.price({ provider: "azure", model: "prod-gpt4o", usage, at });
    expect(want.price_ref).toBe("genai-prices@0.1.8:openai:gpt-4o");
    const got = e.price({ provider: "azure", model: "azure/prod-gpt4o", usage, at }); // was unpriced
    expect(got.price_ref).toBe(want.price_ref);
    expect(got.cost.total_nanousd).toBe(want.cost.total_nanousd);
    expect(e.contextWindow("azure", "azure/prod-gpt4o")).toBe(e.contextWindow("openai", "gpt-4o"));
    // No alias for it either way: unpriced under the id as written.
    expect(e.price({ provider: "azure", model: "azure/other-deployment", usage, at }).price_ref).toBe(
      "unpriced:azure:azure/other-deployment",
    );
  });

  it("a price book's entries for a model price its id restating the provider too (not the list price)", () => {
    const at = new Date("2026-09-01T12:00:00Z");
    const e = new PricingEngine(
      PriceBook.parse({
        name: "acme",
        version: 1,
        models: [{ provider: "openai", model: "gpt-4o", prices: { input_mtok: "2", output_mtok: "8" } }],
        discounts: [{ provider: "anthropic", model: "claude-sonnet-4-5", multiplier: "0.8" }],
      }),
    );
    for (const [provider, prefixed, plain] of [
      ["openai", "openai/gpt-4o", "gpt-4o"],
      ["anthropic", "anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"],
    ]) {
      const want = e.price({ provider: provider!, model: plain!, usage, at });
      const got = e.price({ provider: provider!, model: prefixed!, usage, at });
      expect(got.price_ref, prefixed).toBe(want.price_ref); // was the list price, the book's rates ignored
      expect(got.cost.total_nanousd).toBe(want.cost.total_nanousd);
    }
    // An entry for the id as written wins over the model's.
    const own = new PricingEngine(
      PriceBook.parse({
        name: "own",
        version: 1,
        models: [
          { provider: "openai", model: "gpt-4o", prices: { input_mtok: "2", output_mtok: "8" } },
          { provider: "openai", model: "openai/gpt-4o", prices: { input_mtok: "1", output_mtok: "4" } },
        ],
      }),
    );
    expect(own.price({ provider: "openai", model: "openai/gpt-4o", usage, at }).cost.total_nanousd).toBe(
      own.price({ provider: "openai", model: "gpt-4o", usage, at }).cost.total_nanousd / 2n,
    );
  });

  it("uses time-of-day prices (deepseek-v4-flash peak vs off-peak)", () => {
    const e = new PricingEngine();
    const peak = e.price({
      provider: "deepseek",
      model: "deepseek-v4-flash",
      usage,
      at: new Date("2026-09-01T02:00:00Z"),
    });
    const off = e.price({
      provider: "deepseek",
      model: "deepseek-v4-flash",
      usage,
      at: new Date("2026-09-01T12:00:00Z"),
    });
    expect(peak.cost.total_nanousd).not.toBe(off.cost.total_nanousd);
  });

  it("applies tiered prices by total input tokens", () => {
    const rates = ratesFrom({
      input_mtok: { base: 1.25, tiers: [{ start: 200_000, price: 2.5 }] },
      output_mtok: 10,
    });
    const small = computeCost({ ...emptyUsage(), input_uncached_tokens: 200_000 }, rates);
    const big = computeCost(
      { ...emptyUsage(), input_uncached_tokens: 150_000, cache_read_tokens: 50_001 },
      rates,
    );
    expect(small.total_nanousd).toBe(250_000_000n); // 200k × $1.25/M
    expect(big.by_category.input_uncached).toBe(375_000_000n); // 150k × $2.50/M: over the tier
  });

  it("prices cached audio and image tokens without a cache rate at the audio and image rates, as genai-prices", () => {
    const rates = ratesFrom({ input_mtok: 2.5, input_audio_mtok: 32, input_image_mtok: 5 });
    const cached = (u: Partial<NormalizedUsage>) =>
      computeCost({ ...emptyUsage(), ...u }, rates).total_nanousd;
    expect(cached({ cache_audio_read_tokens: 1_000_000 })).toBe(32_000_000_000n);
    expect(cached({ cache_image_read_tokens: 1_000_000 })).toBe(5_000_000_000n);
    // With a cache rate and no rate of its own, a cached audio token is a cache read.
    const withCache = ratesFrom({ input_mtok: 2.5, cache_read_mtok: 1.25 });
    expect(
      computeCost({ ...emptyUsage(), cache_audio_read_tokens: 1_000_000 }, withCache).total_nanousd,
    ).toBe(1_250_000_000n);
    // A real model priced so: gpt-audio (audio $32, text $2.50 per million, no cache rates).
    const at = new Date("2026-09-01T12:00:00Z");
    const ours = new PricingEngine().price({
      provider: "openai",
      model: "gpt-audio",
      usage: { ...emptyUsage(), input_uncached_tokens: 1_000, cache_audio_read_tokens: 4_000 },
      at,
    });
    const theirs = calcPrice(
      {
        input_tokens: 5_000,
        input_audio_tokens: 4_000,
        cache_read_tokens: 4_000,
        cache_audio_read_tokens: 4_000,
      },
      "gpt-audio",
      { providerId: "openai", timestamp: at },
    );
    expect(ours.cost.total_nanousd).toBe(BigInt(Math.round(theirs!.total_price * 1e9)));
  });

  it("keeps per-category costs summing to the total", () => {
    const rates = ratesFrom({ input_mtok: "0.3333", cache_read_mtok: "0.03333", output_mtok: "1.1111" });
    const c = computeCost(
      { ...emptyUsage(), input_uncached_tokens: 7, cache_read_tokens: 11, output_tokens: 13 },
      rates,
    );
    const sum = Object.values(c.by_category).reduce((a, b) => a + b, 0n);
    expect(sum).toBe(c.total_nanousd);
    // 7×333.3 + 11×33.33 + 13×1111.1 = 2333.1 + 366.63 + 14444.3 = 17144.03 nano
    expect(c.total_nanousd).toBe(17_144n);
  });
});

describe("price book", () => {
  const book = PriceBook.parse({
    name: "acme",
    version: 3,
    aliases: [{ provider: "azure", model: "prod-gpt4o", to: { provider: "openai", model: "gpt-4o" } }],
    models: [
      {
        provider: "acme-ft",
        model: "ft:gpt-4o-mini:acme:*",
        prices: { input_mtok: "0.30", output_mtok: "1.20" },
      },
      {
        provider: "acme-ft",
        model: "ft:gpt-4o-mini:acme:*",
        effective_from: "2026-06-01",
        prices: { input_mtok: "0.20", output_mtok: "0.80" },
      },
    ],
    discounts: [{ provider: "openai", multiplier: "0.9", effective_from: "2026-01-01" }],
    batch: [{ provider: "openai", multiplier: "0.4" }],
  });
  const engine = new PricingEngine(book);
  const usage = { ...emptyUsage(), input_uncached_tokens: 1_000_000, output_tokens: 1_000_000 };

  it("prices custom fine-tuned models by effective date", () => {
    const before = engine.price({
      provider: "acme-ft",
      model: "ft:gpt-4o-mini:acme:support:x1",
      usage,
      at: Date.parse("2026-05-31T23:59:59Z"),
    });
    const after = engine.price({
      provider: "acme-ft",
      model: "ft:gpt-4o-mini:acme:support:x1",
      usage,
      at: Date.parse("2026-06-01T00:00:00Z"),
    });
    expect(before.price_ref).toBe("pricebook:acme@3");
    expect(before.cost.total_nanousd).toBe(1_500_000_000n);
    expect(after.cost.total_nanousd).toBe(1_000_000_000n);
  });

  it("leaves tokens a book entry has no rate for unpriced, never at $0", () => {
    const partial = new PricingEngine(
      PriceBook.parse({
        name: "partial",
        version: 1,
        models: [
          { provider: "acme", model: "in-only", prices: { input_mtok: "1" } },
          // A correction of a built-in model's audio rates that leaves its text rates out.
          {
            provider: "openai",
            model: "gpt-4o-audio-preview",
            prices: { input_audio_mtok: "40", output_audio_mtok: "80" },
          },
        ],
      }),
    );
    const at = Date.parse("2026-09-01T12:00:00Z");
    const inOnly = (u: Partial<NormalizedUsage>) =>
      partial.price({ provider: "acme", model: "in-only", usage: { ...emptyUsage(), ...u }, at });
    expect(inOnly({ input_uncached_tokens: 1_000_000, cache_read_tokens: 10 }).cost.total_nanousd).toBe(
      1_000_010_000n, // cache reads fall back to the input rate
    );
    const withOutput = inOnly({ input_uncached_tokens: 1_000_000, output_tokens: 1_000 });
    expect(withOutput.priced).toBe(false);
    expect(withOutput.price_ref).toBe("unpriced:acme:in-only");
    const audio = partial.price({
      provider: "openai",
      model: "gpt-4o-audio-preview",
      usage: { ...emptyUsage(), input_audio_tokens: 1_000, input_uncached_tokens: 100 },
      at,
    });
    expect(audio.priced).toBe(false);
  });

  it("maps Azure deployments to models and applies discount and batch multipliers", () => {
    const at = Date.parse("2026-09-01T12:00:00Z");
    const plain = new PricingEngine().price({ provider: "openai", model: "gpt-4o", usage, at });
    const res = engine.price({ provider: "azure", model: "prod-gpt4o", usage, at, batch: true });
    expect(res.price_ref).toBe("genai-prices@0.1.8:openai:gpt-4o;discount=0.9;batch=0.4");
    expect(res.cost.total_nanousd).toBe((plain.cost.total_nanousd * 36n) / 100n);
  });

  it("prices OpenAI's flex tier at the batch rate (the price book's, else the published half)", () => {
    const at = Date.parse("2026-09-01T12:00:00Z");
    const builtin = new PricingEngine();
    const plain = builtin.price({ provider: "openai", model: "gpt-4o", usage, at });
    const flex = builtin.price({ provider: "openai", model: "gpt-4o", usage, at, serviceTier: "flex" });
    expect(flex.price_ref).toBe(`${plain.price_ref};flex=0.5`);
    expect(flex.cost.total_nanousd).toBe(plain.cost.total_nanousd / 2n);
    expect(
      engine.price({ provider: "openai", model: "gpt-4o", usage, at, serviceTier: "flex" }).price_ref,
    ).toBe("genai-prices@0.1.8:openai:gpt-4o;discount=0.9;flex=0.4");
    // Other tiers (default, priority, Anthropic's standard) and other providers' "flex" are list price.
    for (const [provider, model, serviceTier] of [
      ["openai", "gpt-4o", "default"],
      ["openai", "gpt-4o", "priority"],
      ["anthropic", "claude-sonnet-4-5", "standard"],
      ["anthropic", "claude-sonnet-4-5", "flex"],
    ] as const) {
      const tiered = builtin.price({ provider, model, usage, at, serviceTier });
      expect(tiered, `${provider} ${serviceTier}`).toEqual(builtin.price({ provider, model, usage, at }));
    }
  });

  it("gives the published batch and flex rates to every spelling of a provider its prices resolve", () => {
    const at = Date.parse("2026-09-01T12:00:00Z");
    const builtin = new PricingEngine();
    for (const [provider, model] of [
      ["gemini", "gemini-2.5-flash"],
      ["vertex_ai", "gemini-2.5-flash"],
      ["amazon", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"],
      ["azure-openai", "gpt-4o"],
    ] as const) {
      const plain = builtin.price({ provider, model, usage, at });
      const batch = builtin.price({ provider, model, usage, at, batch: true });
      expect(batch.price_ref, provider).toBe(`${plain.price_ref};batch=0.5`);
      expect(batch.cost.total_nanousd, provider).toBe(plain.cost.total_nanousd / 2n);
    }
    const flex = builtin.price({ provider: "azure-openai", model: "gpt-4o", usage, at, serviceTier: "flex" });
    expect(flex.price_ref).toBe("genai-prices@0.1.8:azure:gpt-4o;flex=0.5");
  });

  it("prices server-side tool calls per call: discounts apply to them, batch and flex rates do not", () => {
    const at = Date.parse("2026-09-01T12:00:00Z");
    // gpt-4o: web searches $10 and file ("storage") searches $2.50 per thousand calls in genai-prices.
    const searches = { ...emptyUsage(), web_search_requests: 3, file_search_requests: 2 };
    const builtin = new PricingEngine();
    const list = builtin.price({ provider: "openai", model: "gpt-4o", usage: searches, at });
    expect(list.cost.total_nanousd).toBe(35_000_000n); // 3 × $0.01 + 2 × $0.0025
    expect(list.cost.by_category.tool_calls).toBe(35_000_000n);
    expect(
      builtin.price({ provider: "openai", model: "gpt-4o", usage: searches, at, batch: true }).cost,
    ).toEqual(list.cost);
    expect(
      builtin.price({ provider: "openai", model: "gpt-4o", usage: searches, at, serviceTier: "flex" }).cost,
    ).toEqual(list.cost);
    // The price book's 0.9 discount applies; its 0.4 batch rate does not.
    const both = { ...searches, input_uncached_tokens: 1_000_000 };
    const res = engine.price({ provider: "openai", model: "gpt-4o", usage: both, at, batch: true });
    expect(res.cost.by_category.tool_calls).toBe(31_500_000n);
    expect(res.cost.by_category.input_uncached).toBe(900_000_000n); // $2.50 × 0.9 × 0.4
    expect(res.cost.total_nanousd).toBe(931_500_000n);
  });

  it("prices service tiers the book names: a multiplier, or the tier's own prices over the model's", () => {
    const at = Date.parse("2026-09-01T12:00:00Z");
    const tiered = new PricingEngine(
      PriceBook.parse({
        name: "tiers",
        version: 1,
        tiers: [
          { provider: "openai", model: "gpt-5*", tier: "priority", multiplier: "2" },
          // gpt-4.1's published priority prices; its cached-input and web search rates stay the list ones.
          {
            provider: "openai",
            model: "gpt-4.1",
            tier: "priority",
            prices: { input_mtok: "3.50", output_mtok: "14" },
          },
          { provider: "openai", tier: "flex", multiplier: "0.6", effective_from: "2026-08-01" },
        ],
      }),
    );
    const builtin = new PricingEngine();
    const tokens = { ...emptyUsage(), input_uncached_tokens: 1_000_000, output_tokens: 1_000_000 };
    const price = (e: PricingEngine, model: string, serviceTier: string | null, usage = tokens) =>
      e.price({ provider: "openai", model, usage, at, serviceTier });

    const gpt5 = price(tiered, "gpt-5", "priority");
    expect(gpt5.price_ref).toBe("genai-prices@0.1.8:openai:gpt-5;priority=2");
    expect(gpt5.cost.total_nanousd).toBe(2n * price(builtin, "gpt-5", null).cost.total_nanousd);

    const gpt41 = price(tiered, "gpt-4.1", "priority", {
      ...tokens,
      cache_read_tokens: 1_000_000,
      web_search_requests: 1,
    });
    expect(gpt41.price_ref).toBe("genai-prices@0.1.8:openai:gpt-4.1;priority=pricebook:tiers@1");
    expect(gpt41.cost.by_category).toMatchObject({
      input_uncached: 3_500_000_000n,
      output: 14_000_000_000n,
      cache_read: 500_000_000n, // list: $0.50 per million
      tool_calls: 10_000_000n,
    });
    // A book's flex entry replaces the batch-rate default; the tier name is matched case-insensitively.
    expect(price(tiered, "gpt-4o", "FLEX").price_ref).toBe("genai-prices@0.1.8:openai:gpt-4o;FLEX=0.6");
    expect(price(tiered, "gpt-4o", "default")).toEqual(price(builtin, "gpt-4o", null));
    // Before the flex entry's effective_from: the default (batch rate) again.
    expect(
      tiered.price({
        provider: "openai",
        model: "gpt-4o",
        usage: tokens,
        at: Date.parse("2026-07-01"),
        serviceTier: "flex",
      }).price_ref,
    ).toMatch(/;flex=0\.5$/);
    expect(() =>
      PriceBook.parse({ name: "x", version: 1, tiers: [{ provider: "openai", tier: "priority" }] }),
    ).toThrow(/tiers\.0: give either multiplier or prices/);
  });

  it("names the failing path on invalid input", () => {
    expect(() =>
      PriceBook.parse({
        name: "x",
        version: 1,
        models: [{ provider: "p", model: "m", prices: { input_mtok: "-1" } }],
      }),
    ).toThrow(/models\.0\.prices\.input_mtok/);
    expect(() =>
      PriceBook.parse({
        name: "x",
        version: 1,
        models: [{ provider: "p", model: "m", prices: { inputmtok: 1 } }],
      }),
    ).toThrow(/inputmtok/);
  });
});
