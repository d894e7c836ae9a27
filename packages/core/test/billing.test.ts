import { describe, expect, it } from "vitest";
import {
  anthropicCostResultToNano,
  BillingError,
  centsDecimalToNano,
  normalizeAnthropicUsageReportResult,
  normalizeOpenAIUsageCompletionsResult,
  openAICostResultToNano,
  readAnthropicCostReport,
  readAnthropicUsageReport,
  readOpenAICostsPage,
  readOpenAIUsagePage,
  usdDecimalToNano,
  usdNumberToNano,
} from "../src/billing/index.js";
import { type NormalizedUsage, UsageError } from "../src/usage/index.js";
import { readFixtureJson } from "./fixtures.js";

/** All nine fields, in USAGE_FIELDS order. */
/** The nine token counts in TOKEN_FIELDS order, then web searches (0 unless given). */
function tokens(
  ...n: [number, number, number, number, number, number, number, number, number, number?, number?, number?]
): NormalizedUsage {
  const [a, b, c, d, e, f, g, h, i, webSearches = 0, cachedAudio = 0, cachedImage = 0] = n;
  return {
    input_uncached_tokens: a,
    cache_read_tokens: b,
    cache_write_5m_tokens: c,
    cache_write_1h_tokens: d,
    output_tokens: e,
    reasoning_tokens: f,
    input_audio_tokens: g,
    output_audio_tokens: h,
    image_tokens: i,
    web_search_requests: webSearches,
    file_search_requests: 0,
    web_search_preview_requests: 0,
    cache_audio_read_tokens: cachedAudio,
    cache_image_read_tokens: cachedImage,
    output_image_tokens: 0,
    input_audio_ms: 0,
    input_characters: 0,
  };
}

describe("exact decimal → nano-USD", () => {
  it("parses USD numbers through their shortest decimal string, never a float multiply", () => {
    expect(1.005 * 1e9).toBe(1004999999.9999999); // why: the float product is off
    expect(usdNumberToNano(1.005)).toBe(1_005_000_000n);
    expect(0.000123 * 1e9).toBe(123000.00000000001);
    expect(usdNumberToNano(0.000123)).toBe(123_000n);
    expect(usdNumberToNano(0.06)).toBe(60_000_000n);
    expect(usdNumberToNano(0.1 + 0.2)).toBe(300_000_000n); // "0.30000000000000004" rounds to nano
    expect(usdNumberToNano(1e-7)).toBe(100n); // String(1e-7) === "1e-7"
    expect(usdNumberToNano(1.5e9)).toBe(1_500_000_000_000_000_000n); // "1500000000"
  });

  it("rounds half-up to the nano (half away from zero for credits)", () => {
    expect(usdDecimalToNano("0.0000000015")).toBe(2n);
    expect(usdDecimalToNano("0.0000000025")).toBe(3n); // not banker's rounding
    expect(usdDecimalToNano("0.00000000249999")).toBe(2n);
    expect(usdNumberToNano(5e-10)).toBe(1n);
    expect(usdNumberToNano(4e-10)).toBe(0n);
    expect(usdDecimalToNano("-0.0000000015")).toBe(-2n);
  });

  it("reads cents strings (Anthropic cost_report)", () => {
    expect(centsDecimalToNano("123.45")).toBe(1_234_500_000n); // $1.2345
    expect(centsDecimalToNano("123.78912")).toBe(1_237_891_200n);
    expect(centsDecimalToNano("0.00000005")).toBe(1n); // 0.5 nano rounds up
    expect(centsDecimalToNano("100")).toBe(1_000_000_000n);
    expect(centsDecimalToNano(".5")).toBe(5_000_000n);
    expect(centsDecimalToNano("+7.")).toBe(70_000_000n);
  });

  it("accepts exactly int64 nano-USD and refuses more", () => {
    expect(usdDecimalToNano("9223372036.854775807")).toBe(9_223_372_036_854_775_807n);
    expect(() => usdDecimalToNano("9223372036.854775808")).toThrow(BillingError);
    expect(() => usdNumberToNano(1e21)).toThrow(BillingError); // String(1e21) === "1e+21": parsed, then too large
    expect(() => usdDecimalToNano("1e500")).toThrow(BillingError);
    expect(() => usdDecimalToNano("1e-500")).toThrow(BillingError); // exponents this far out are not money
  });

  it.each(["", ".", "1.2.3", "abc", "NaN", "Infinity", " 1", "1e", "0x10", "1,5", "--1"])(
    "rejects %j",
    (text) => {
      expect(() => usdDecimalToNano(text)).toThrow(BillingError);
    },
  );

  it("rejects non-finite numbers", () => {
    expect(() => usdNumberToNano(Number.NaN)).toThrow(BillingError);
    expect(() => usdNumberToNano(Number.POSITIVE_INFINITY)).toThrow(BillingError);
  });
});

describe("OpenAI billing exports", () => {
  it("providers/openai/billing.costs-api.example.json", () => {
    const rows = readOpenAICostsPage(readFixtureJson("providers/openai/billing.costs-api.example.json"));
    expect(
      rows.map(({ starting_at, ending_at, amount_nanousd }) => ({ starting_at, ending_at, amount_nanousd })),
    ).toEqual([
      // bucket 1730419200..1730505600 (unix s); amount.value 0.06 USD
      {
        starting_at: "2024-11-01T00:00:00.000Z",
        ending_at: "2024-11-02T00:00:00.000Z",
        amount_nanousd: 60_000_000n,
      },
    ]);
    expect(rows[0]?.result.object).toBe("organization.costs.result");
  });

  it("providers/openai/billing.costs-api.result-by-line-item.example.json", () => {
    const result = readFixtureJson("providers/openai/billing.costs-api.result-by-line-item.example.json");
    expect(openAICostResultToNano(result)).toBe(60_000_000n); // 0.06 USD for line_item input_tokens
  });

  it("providers/openai/billing.usage-api.completions.example.json", () => {
    const rows = readOpenAIUsagePage(
      readFixtureJson("providers/openai/billing.usage-api.completions.example.json"),
      "completions",
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.starting_at).toBe("2024-11-01T00:00:00.000Z");
    // input 1000 - 400 cached - 100 cache write - (50 audio - 50 cached) - (50 image - 50 cached) = 500;
    // output 500 incl. 50 audio; of the 400 cached, 50 audio and 50 image (priced apart), 300 text
    expect(rows[0]?.usage).toEqual(tokens(500, 300, 100, 0, 500, 0, 0, 50, 0, 0, 50, 50));
  });

  it("providers/openai/billing.usage-api.completions-result.grouped.example.json", () => {
    const result = readFixtureJson(
      "providers/openai/billing.usage-api.completions-result.grouped.example.json",
    );
    // audio 300 - 100 cached = 200; image 200 - 200 cached = 0;
    // input 5000 - 1800 cached - 200 write - 200 audio - 0 image = 2800 (2800 + 200 = input_uncached_tokens 3000);
    // of the 1800 cached, 100 audio and 200 image (priced apart), 1500 text
    expect(normalizeOpenAIUsageCompletionsResult(result)).toEqual(
      tokens(2800, 1500, 200, 0, 1000, 0, 200, 100, 0, 0, 100, 200),
    );
  });

  it("providers/openai/billing.usage-api.embeddings.example.json", () => {
    const rows = readOpenAIUsagePage(
      readFixtureJson("providers/openai/billing.usage-api.embeddings.example.json"),
      "embeddings",
    );
    expect(rows.map((r) => r.usage)).toEqual([tokens(16, 0, 0, 0, 0, 0, 0, 0, 0)]); // input_tokens 16
  });

  it("refuses other currencies and malformed amounts", () => {
    expect(() => openAICostResultToNano({ amount: { value: 1, currency: "eur" } })).toThrow(BillingError);
    expect(() => openAICostResultToNano({ amount: { value: null, currency: "usd" } })).toThrow(BillingError);
    expect(openAICostResultToNano({ amount: { value: "0.123456789", currency: "usd" } })).toBe(123_456_789n);
  });

  it("reports the position of a bad result in the page", () => {
    const page = {
      data: [{ start_time: 0, end_time: 1, results: [{ input_tokens: 1, output_tokens: -1 }] }],
    };
    expect(() => readOpenAIUsagePage(page, "completions")).toThrow(UsageError);
    try {
      readOpenAIUsagePage(page, "completions");
    } catch (error) {
      expect((error as UsageError).field).toBe("data[0].results[0].output_tokens");
    }
  });
});

describe("Anthropic billing exports", () => {
  it("providers/anthropic/billing.admin-cost-report.example.json", () => {
    const rows = readAnthropicCostReport(
      readFixtureJson("providers/anthropic/billing.admin-cost-report.example.json"),
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.starting_at).toBe("2025-08-01T00:00:00Z");
    expect(rows[0]?.amount_nanousd).toBe(1_237_891_200n); // "123.78912" cents = $1.2378912
    expect(rows[0]?.result.token_type).toBe("uncached_input_tokens");
  });

  it("providers/anthropic/billing.admin-usage-report-messages.example.json", () => {
    const rows = readAnthropicUsageReport(
      readFixtureJson("providers/anthropic/billing.admin-usage-report-messages.example.json"),
    );
    // uncached 1500, cache read 200, writes 5m 500 / 1h 1000, output 500; 10 web searches
    expect(rows.map((r) => r.usage)).toEqual([tokens(1500, 200, 500, 1000, 500, 0, 0, 0, 0, 10)]);
    expect(rows[0]?.result.model).toBe("claude-sonnet-4-20250514");
  });

  it("providers/anthropic/billing.admin-usage-report-empty.third-party-capture.json", () => {
    const page = readFixtureJson(
      "providers/anthropic/billing.admin-usage-report-empty.third-party-capture.json",
    );
    expect(readAnthropicUsageReport(page)).toEqual([]); // one bucket, results: []
  });

  it("providers/anthropic/billing.admin-usage-report-result.third-party-capture.json", () => {
    const result = readFixtureJson(
      "providers/anthropic/billing.admin-usage-report-result.third-party-capture.json",
    );
    // uncached 107, cache read 16549, writes 5m 17355 / 1h 0, output 448
    expect(normalizeAnthropicUsageReportResult(result)).toEqual(
      tokens(107, 16549, 17355, 0, 448, 0, 0, 0, 0),
    );
  });

  it("refuses a cost amount that is not a decimal string, or not USD", () => {
    expect(() => anthropicCostResultToNano({ amount: 123.45, currency: "USD" })).toThrow(BillingError);
    expect(() => anthropicCostResultToNano({ amount: "1", currency: "GBP" })).toThrow(BillingError);
  });
});
