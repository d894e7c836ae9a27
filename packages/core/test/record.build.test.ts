// buildCallRecord's kinds: model calls (llm, embedding) need a provider and a model and are priced;
// trace structure (tool, agent, other) may name neither and is never priced.
import { describe, expect, it } from "vitest";
import { PricingEngine } from "../src/pricing/index.js";
import { buildCallRecord, PRICE_REF_NO_USAGE, PRICE_REF_NOT_A_MODEL_CALL } from "../src/record/index.js";

const engine = new PricingEngine();
const ctx = { workspaceId: "ws", engine };
const base = { event_id: "0190f5e2-7c3a-7b1e-8f00-000000000001", ts_start: Date.UTC(2025, 5, 1) };
const llm = {
  ...base,
  provider: "openai",
  model: "gpt-4o-mini",
  input_uncached_tokens: 1000,
  output_tokens: 10,
};

function build(input: Record<string, unknown>) {
  const res = buildCallRecord(input, ctx);
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  return res.record;
}

describe("buildCallRecord: kinds", () => {
  it("llm and embedding records still require provider and model", () => {
    for (const kind of ["llm", "embedding"]) {
      const noProvider = buildCallRecord({ ...llm, kind, provider: undefined }, ctx);
      expect(noProvider).toEqual({
        ok: false,
        errors: [{ field: "provider", reason: `required for kind ${kind}` }],
      });
      const noModel = buildCallRecord({ ...llm, kind, model: undefined }, ctx);
      expect(noModel).toEqual({
        ok: false,
        errors: [{ field: "model", reason: "required (or model_requested)" }],
      });
    }
  });

  it.each(["tool", "agent", "other"])(
    "%s records may name no provider or model: stored as '', never priced",
    (kind) => {
      const rec = build({ ...base, kind });
      expect(rec).toMatchObject({
        kind,
        provider: "",
        model: "",
        priced: false,
        price_ref: PRICE_REF_NOT_A_MODEL_CALL,
        cost_nanousd: 0n,
        cost_source: "computed",
      });
    },
  );

  it("a tool record that names a known model with usage is still not priced", () => {
    const rec = build({ ...llm, kind: "agent" });
    expect(rec).toMatchObject({
      priced: false,
      price_ref: "none",
      cost_nanousd: 0n,
      input_uncached_tokens: 1000,
    });
  });

  it("usage_raw of a tool/agent record is kept as information, not normalized (no api needed)", () => {
    const raw = { "gen_ai.usage.input_tokens": 5 };
    const rec = build({ ...base, kind: "agent", usage_raw: raw });
    expect(rec.usage_raw).toEqual(raw);
    expect(rec.input_uncached_tokens).toBe(0);
  });

  it("a reported cost on a tool record is kept (a paid tool is real spend)", () => {
    const rec = build({ ...base, kind: "tool", cost_nanousd: 5000 });
    expect(rec).toMatchObject({
      priced: true,
      cost_source: "reported",
      price_ref: "reported",
      cost_nanousd: 5000n,
    });
  });

  it("a successful model call without any usage is stored with an unknown cost, not a made-up 0", () => {
    const rec = build({ ...base, provider: "openai", model: "gpt-4o-mini" });
    expect(rec).toMatchObject({
      kind: "llm",
      priced: false,
      price_ref: PRICE_REF_NO_USAGE,
      cost_nanousd: 0n,
    });
  });

  it("a failed model call without usage was not billed: priced as zero usage", () => {
    const rec = build({ ...base, provider: "openai", model: "gpt-4o-mini", status: "error" });
    expect(rec.priced).toBe(true);
    expect(rec.cost_nanousd).toBe(0n);
  });

  it("explicit zero usage is a reported usage and is priced", () => {
    const rec = build({ ...base, provider: "openai", model: "gpt-4o-mini", input_uncached_tokens: 0 });
    expect(rec.priced).toBe(true);
    expect(rec.price_ref).toMatch(/^genai-prices@/);
  });

  it("an llm record with a known model and usage is priced as before", () => {
    const rec = build(llm);
    const price = engine.price({ provider: "openai", model: "gpt-4o-mini", usage: rec, at: rec.ts_start });
    expect(rec.priced).toBe(true);
    expect(rec.cost_nanousd).toBe(price.cost.total_nanousd);
    expect(rec.cost_nanousd > 0n).toBe(true);
  });
});

describe("buildCallRecord: server-side tool calls", () => {
  const responsesUsage = {
    input_tokens: 1000,
    output_tokens: 10,
    input_tokens_details: { cached_tokens: 0 },
  };

  it("counts given beside usage_raw are kept (a Responses usage object has none) and priced per call", () => {
    const input = { ...base, provider: "openai", model: "gpt-4o-mini", api: "openai.responses" };
    const plain = build({ ...input, usage_raw: responsesUsage });
    const rec = build({
      ...input,
      usage_raw: responsesUsage,
      web_search_requests: 2,
      file_search_requests: 1,
    });
    expect(plain).toMatchObject({ input_uncached_tokens: 1000, output_tokens: 10, web_search_requests: 0 });
    expect(rec).toMatchObject({
      input_uncached_tokens: 1000,
      output_tokens: 10,
      web_search_requests: 2,
      file_search_requests: 1,
      // gpt-4o-mini in genai-prices: web searches $10, file searches $2.50 per thousand
      cost_tool_calls_nanousd: 22_500_000n,
    });
    expect(rec.cost_nanousd).toBe(plain.cost_nanousd + 22_500_000n);
  });

  it("web_search_preview searches, some of the web searches, are priced at their own rate", () => {
    const input = { ...base, provider: "openai", model: "gpt-4o", api: "openai.responses" };
    const plain = build({ ...input, usage_raw: responsesUsage, web_search_requests: 3 });
    const rec = build({
      ...input,
      usage_raw: responsesUsage,
      web_search_requests: 3,
      web_search_preview_requests: 2,
    });
    // gpt-4o: web_search $10, web_search_preview $25 per thousand
    expect(plain).toMatchObject({ web_search_preview_requests: 0, cost_tool_calls_nanousd: 30_000_000n });
    expect(rec).toMatchObject({ web_search_preview_requests: 2, cost_tool_calls_nanousd: 60_000_000n });
    expect(
      buildCallRecord({ ...input, usage_raw: responsesUsage, web_search_preview_requests: 1 }, ctx),
    ).toEqual({
      ok: false,
      errors: [
        {
          field: "web_search_preview_requests",
          reason: "must not exceed web_search_requests (preview searches are some of the web searches)",
        },
      ],
    });
  });

  it("Anthropic's usage_raw carries its web searches", () => {
    const rec = build({
      ...base,
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      api: "anthropic.messages",
      usage_raw: { input_tokens: 10, output_tokens: 5, server_tool_use: { web_search_requests: 4 } },
    });
    expect(rec).toMatchObject({ web_search_requests: 4, cost_tool_calls_nanousd: 40_000_000n });
  });

  it("token counts sent beside a raw object that reports searches (a client from before they were counted)", () => {
    const raw = { input_tokens: 10, output_tokens: 5, server_tool_use: { web_search_requests: 4 } };
    const anthropic = {
      ...base,
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      api: "anthropic.messages",
    };
    const rec = build({ ...anthropic, input_uncached_tokens: 10, output_tokens: 5, usage_raw: raw });
    expect(rec).toMatchObject({ web_search_requests: 4, cost_tool_calls_nanousd: 40_000_000n });
    // Counts given win; a raw object that does not normalize is information there, not an error.
    expect(build({ ...anthropic, output_tokens: 5, usage_raw: raw, web_search_requests: 1 })).toMatchObject({
      web_search_requests: 1,
    });
    const odd = { output_tokens: "many", server_tool_use: { web_search_requests: 4 } };
    expect(build({ ...anthropic, output_tokens: 5, usage_raw: odd })).toMatchObject({
      web_search_requests: 0,
    });
  });

  it("refuses a count that is not one", () => {
    const res = buildCallRecord({ ...llm, web_search_requests: -1 }, ctx);
    expect(res).toEqual({
      ok: false,
      errors: [{ field: "web_search_requests", reason: "must not be negative" }],
    });
    expect(buildCallRecord({ ...llm, file_search_requests: 1.5 }, ctx)).toEqual({
      ok: false,
      errors: [{ field: "file_search_requests", reason: "must be an integer" }],
    });
  });
});

describe("buildCallRecord: money and times of the wrong form", () => {
  // Each of these fails both forms a field takes (a number, or a string): the reason must still say why.
  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ["a fractional cost", { cost_nanousd: 1.5 }, "cost_nanousd", /integer/],
    [
      "a cost that is a boolean",
      { cost_nanousd: true },
      "cost_nanousd",
      /integer.*string of at most 18 digits/,
    ],
    ["a null cost", { cost_nanousd: null }, "cost_nanousd", /integer.*string of at most 18 digits/],
    [
      "a fractional category",
      { cost_nanousd: 2, cost_output_nanousd: 0.5 },
      "cost_output_nanousd",
      /integer/,
    ],
    ["a fractional epoch ms", { ts_start: Date.UTC(2025, 5, 1) + 0.5 }, "ts_start", /integer/],
    ["a boolean time", { ts_start: true }, "ts_start", /epoch milliseconds.*ISO-8601/],
    ["a fractional ts_end", { ts_end: Date.UTC(2025, 5, 1) + 1.5 }, "ts_end", /integer/],
  ])("%s names the field and what it takes", (_, over, field, reason) => {
    const res = buildCallRecord({ ...llm, ...over }, ctx);
    expect(res.ok).toBe(false);
    const errors = res.ok ? [] : res.errors;
    expect(errors.map((e) => e.field)).toEqual([field]);
    expect(errors[0]!.reason).toMatch(reason);
    expect(errors[0]!.reason).not.toBe("Invalid input");
  });

  it("a cost past 2^53 as a number is told to come as a string, not that it is no integer", () => {
    expect(buildCallRecord({ ...llm, cost_nanousd: 2 ** 60 }, ctx)).toEqual({
      ok: false,
      errors: [{ field: "cost_nanousd", reason: "exceeds 2^53; send it as a string" }],
    });
  });
});

describe("buildCallRecord: what a priced call says of its own price", () => {
  it.each([
    ["a price_ref", { price_ref: "mine" }, "price_ref"],
    ["priced: false", { priced: false }, "priced"],
    ["cost_source reported", { cost_source: "reported" }, "cost_source"],
  ])("%s without a reported cost is refused, naming it, not dropped for Tollgate's own", (_, over, field) => {
    const res = buildCallRecord({ ...llm, ...over }, ctx);
    expect(res.ok).toBe(false);
    expect(res.ok ? [] : res.errors.map((e) => e.field)).toEqual([field]);
  });

  it("beside a reported cost they are kept; an estimate Tollgate prices stays estimated", () => {
    expect(build({ ...llm, cost_nanousd: "5", price_ref: "mine", priced: false })).toMatchObject({
      cost_nanousd: 5n,
      cost_source: "reported",
      price_ref: "mine",
      priced: false,
    });
    expect(build({ ...llm, cost_source: "estimated" })).toMatchObject({
      cost_source: "estimated",
      priced: true,
    });
  });
});
