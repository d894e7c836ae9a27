// OpenAI bills a web search by the tool that ran it and the model: `web_search` $10 per thousand calls on
// every model; the older `web_search_preview` $10 on reasoning models (o-series, gpt-5) and $25 on
// non-reasoning ones (gpt-4o, gpt-4.1 and their minis), whose search content tokens are free. Expected
// costs below are worked out by hand from those rates and genai-prices' token rates.
import { describe, expect, it } from "vitest";
import { computeCost, PriceBook, PricingEngine } from "../src/pricing/index.js";
import {
  createSseUsageExtractor,
  createStreamExtractor,
  emptyUsage,
  extractFromResponse,
  type NormalizedUsage,
} from "../src/usage/index.js";
import { readFixtureText } from "./fixtures.js";

/**
 * A real gpt-4o Responses reply with the `web_search_preview` tool and one search, recorded 2025-08-25:
 * pydantic/pydantic-ai @ 6d0cde46c73f, tests/models/cassettes/test_openai_responses/
 * test_openai_responses_model_web_search_tool.yaml. Fields as recorded; the answer's message item is left
 * out. Its 319 input tokens hold no search results: on this tool and model they are not billed.
 */
const GPT_4O_PREVIEW_SEARCH = {
  created_at: 1756110386,
  id: "resp_68ac1e32b0108192973c8cfec29c2e61014ed998995dd5ee",
  model: "gpt-4o-2024-08-06",
  object: "response",
  output: [
    {
      action: { query: "latest news in Iceland October 2023", type: "search" },
      id: "ws_68ac1e339ee8819289d2eb5604ce44ce014ed998995dd5ee",
      status: "completed",
      type: "web_search_call",
    },
  ],
  service_tier: "default",
  status: "completed",
  tools: [
    {
      search_context_size: "medium",
      type: "web_search_preview",
      user_location: { city: null, country: "US", region: null, timezone: null, type: "approximate" },
    },
  ],
  usage: {
    input_tokens: 319,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 556,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 875,
  },
};

/** A real gpt-5.2 Responses stream with the `web_search` tool and one search (pydantic-ai, see SOURCES.md). */
const GPT_52_WEB_SEARCH_STREAM = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";

const at = Date.parse("2026-09-01T12:00:00Z");
const engine = new PricingEngine();
const price = (model: string, usage: NormalizedUsage) =>
  engine.price({ provider: "openai", model, usage, at });
const searches = (web: number, preview: number): NormalizedUsage => ({
  ...emptyUsage(),
  web_search_requests: web,
  web_search_preview_requests: preview,
});

describe("counting an OpenAI Responses call's web searches by tool", () => {
  it("a real web_search_preview reply: its search is a preview search", () => {
    expect(extractFromResponse("openai.responses", GPT_4O_PREVIEW_SEARCH).usage).toMatchObject({
      input_uncached_tokens: 319,
      output_tokens: 556,
      web_search_requests: 1,
      web_search_preview_requests: 1,
    });
  });

  it("a real web_search stream: its search is not", () => {
    const x = createSseUsageExtractor("openai.responses");
    x.push(readFixtureText(GPT_52_WEB_SEARCH_STREAM));
    expect(x.result()?.usage).toMatchObject({ web_search_requests: 1, web_search_preview_requests: 0 });
  });

  it("by the tools the reply repeats: a dated preview version counts, a call offering both tools does not", () => {
    const withTools = (...types: string[]) => ({
      ...GPT_4O_PREVIEW_SEARCH,
      tools: [...types.map((type) => ({ type })), { type: "function", name: "web_search_preview" }],
    });
    const previews = (body: unknown) =>
      extractFromResponse("openai.responses", body).usage.web_search_preview_requests;
    expect(previews(withTools("web_search_preview_2025_03_11"))).toBe(1);
    expect(previews(withTools("file_search", "web_search_preview"))).toBe(1);
    // The search items do not say which tool ran them: with both offered, none is taken for a preview one.
    expect(previews(withTools("web_search_preview", "web_search"))).toBe(0);
    expect(previews(withTools("web_search_2025_08_26"))).toBe(0);
    expect(previews(withTools())).toBe(0);
    expect(previews({ ...GPT_4O_PREVIEW_SEARCH, tools: undefined })).toBe(0);
    // The reply's own count of its searches (tool_usage) is the count of preview searches too.
    const reported = { ...GPT_4O_PREVIEW_SEARCH, tool_usage: { web_search: { num_requests: 3 } } };
    expect(extractFromResponse("openai.responses", reported).usage).toMatchObject({
      web_search_requests: 3,
      web_search_preview_requests: 3,
    });
  });

  it("a stream cut short: its searches are preview ones when its response.created tools are", () => {
    const [search] = GPT_4O_PREVIEW_SEARCH.output;
    const created = (tools: unknown) => ({
      type: "response.created",
      response: { model: "gpt-4o-2024-08-06", output: [], tools, usage: null },
    });
    const cut = (tools: unknown) => {
      const x = createStreamExtractor("openai.responses");
      for (const ev of [created(tools), { type: "response.output_item.done", item: search }]) x.push(ev);
      return x.shown().toolCalls;
    };
    expect(cut(GPT_4O_PREVIEW_SEARCH.tools)).toEqual({
      web_search_requests: 1,
      file_search_requests: 0,
      web_search_preview_requests: 1,
    });
    expect(cut([{ type: "web_search" }])).toMatchObject({
      web_search_requests: 1,
      web_search_preview_requests: 0,
    });
  });
});

describe("pricing OpenAI web searches by tool and model", () => {
  it("web_search_preview on gpt-4o: $25 per thousand calls, the reply's tokens at gpt-4o's rates", () => {
    const { usage } = extractFromResponse("openai.responses", GPT_4O_PREVIEW_SEARCH);
    const res = price("gpt-4o-2024-08-06", usage);
    expect(res.price_ref).toBe("genai-prices@0.1.8:openai:gpt-4o");
    expect(res.cost.by_category).toMatchObject({
      input_uncached: 797_500n, // 319 × $2.50 per million
      output: 5_560_000n, // 556 × $10 per million
      tool_calls: 25_000_000n, // 1 × $25 / 1000
    });
    expect(res.cost.total_nanousd).toBe(31_357_500n);
  });

  it("web_search on gpt-5.2 (a real stream): $10 per thousand calls, the search results' tokens as input", () => {
    const x = createSseUsageExtractor("openai.responses");
    x.push(readFixtureText(GPT_52_WEB_SEARCH_STREAM));
    const res = price("gpt-5.2-2025-12-11", x.result()!.usage);
    expect(res.cost.by_category).toMatchObject({
      input_uncached: 14_409_500n, // 8234 × $1.75 per million
      output: 1_106_000n, // 79 (34 reasoning) × $14 per million
      tool_calls: 10_000_000n, // 1 × $10 / 1000
    });
    expect(res.cost.total_nanousd).toBe(25_515_500n);
  });

  it("web_search on the non-reasoning models and web_search_preview on reasoning ones: $10 per thousand", () => {
    for (const model of ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"])
      expect(price(model, searches(2, 0)).cost.total_nanousd, model).toBe(20_000_000n);
    for (const model of ["gpt-5", "gpt-5-mini", "o3", "o4-mini"])
      expect(price(model, searches(2, 2)).cost.total_nanousd, model).toBe(20_000_000n);
  });

  it("web_search_preview on gpt-4o-mini, gpt-4.1 and gpt-4.1-mini: $25 per thousand, a discount applies", () => {
    for (const model of ["gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"])
      expect(price(model, searches(2, 2)).cost.total_nanousd, model).toBe(50_000_000n);
    // 3 searches, 2 of them preview ones: 2 × $0.025 + 1 × $0.01.
    expect(price("gpt-4.1-mini", searches(3, 2)).cost.by_category.tool_calls).toBe(60_000_000n);
    const discounted = new PricingEngine(
      PriceBook.parse({ name: "d", version: 1, discounts: [{ provider: "openai", multiplier: "0.9" }] }),
    );
    const res = discounted.price({ provider: "openai", model: "gpt-4o", usage: searches(1, 1), at });
    expect(res.cost.total_nanousd).toBe(22_500_000n); // $0.025 × 0.9
  });

  it("a price book model may price preview searches; without the rate they are priced as web searches", () => {
    const book = PriceBook.parse({
      name: "own",
      version: 1,
      models: [
        {
          provider: "acme",
          model: "priced",
          prices: { web_searches_kcount: "8", web_search_previews_kcount: "20" },
        },
        { provider: "acme", model: "plain", prices: { web_searches_kcount: "8" } },
      ],
    });
    const own = new PricingEngine(book);
    const acme = (model: string) => own.price({ provider: "acme", model, usage: searches(3, 1), at });
    expect(acme("priced").cost.total_nanousd).toBe(36_000_000n); // 2 × $0.008 + 1 × $0.020
    expect(acme("plain").cost.total_nanousd).toBe(24_000_000n); // 3 × $0.008
  });

  it("prices OpenAI's gpt-4o the same whether or not Azure's gpt-4o (the same genai-prices prices) came first", () => {
    // genai-prices resolves Azure's gpt-4o to OpenAI's model data; only OpenAI's gets the $25 preview rate.
    const fresh = new PricingEngine();
    const azure = fresh.price({ provider: "azure", model: "gpt-4o", usage: searches(1, 1), at });
    expect(azure.cost.total_nanousd).toBe(10_000_000n);
    const openai = fresh.price({ provider: "openai", model: "gpt-4o", usage: searches(1, 1), at });
    expect(openai.cost.total_nanousd).toBe(25_000_000n);
    expect(openai.rates?.web_search_previews_kcount).toEqual({ units: 25n, scale: 0 });
  });

  it("refuses more preview searches than web searches", () => {
    const rates = engine.price({ provider: "openai", model: "gpt-4o", usage: emptyUsage(), at }).rates!;
    expect(rates.web_search_previews_kcount).toEqual({ units: 25n, scale: 0 });
    expect(() => computeCost(searches(1, 2), rates)).toThrow(RangeError);
  });
});
