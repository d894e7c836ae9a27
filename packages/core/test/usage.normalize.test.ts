import { describe, expect, it } from "vitest";
import { PricingEngine } from "../src/pricing/index.js";
import {
  type Api,
  backgroundResponse,
  extractFromEvents,
  extractFromResponse,
  extractFromSse,
  FinalResponseReader,
  isFinished,
  isPending,
  type NormalizedUsage,
  normalizeUsage,
  USAGE_FIELDS,
  UsageError,
} from "../src/usage/index.js";
import { readFixtureJson, readFixtureJsonl, readFixtureText } from "./fixtures.js";

interface CostVector {
  source: string;
  api: string;
  usage_raw: unknown;
  expected: {
    input_tokens: number;
    cached_read_tokens: number;
    cache_write_tokens: number;
    output_tokens: number;
    reasoning_tokens: number;
  };
}

/** cost-vectors.json names APIs by provider ("deepseek.chat.completions", "gemini.generateContent (alt=sse)"). */
function apiOf(vectorApi: string): Api {
  const name = vectorApi.split(" ")[0]!;
  if (name === "openai.responses") return "openai.responses";
  if (name.startsWith("anthropic.")) return "anthropic.messages";
  if (name.startsWith("gemini.")) return "google.generate_content";
  if (name === "bedrock.converse") return "bedrock.converse";
  if (name.endsWith("chat.completions")) return "openai.chat"; // OpenAI, DeepSeek, Groq, Mistral
  throw new Error(`unmapped api ${vectorApi}`);
}

const totalInput = (u: NormalizedUsage) =>
  u.input_uncached_tokens +
  u.cache_read_tokens +
  u.cache_write_5m_tokens +
  u.cache_write_1h_tokens +
  u.input_audio_tokens +
  u.image_tokens;

const vectors = readFixtureJson("conformance/cost-vectors.json") as CostVector[];

/** Payloads with web_search_call output items: one search for "tallest mountain in Alberta". */
const SEARCHES_OUTSIDE_USAGE: Record<string, number> = {
  "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse": 1,
};

describe("conformance cost vectors: usage_raw through normalizeUsage", () => {
  it("has the 13 vectors", () => {
    expect(vectors).toHaveLength(13);
  });

  it.each(vectors.map((v) => [v.source.split("copy: fixtures/")[1]!, v] as const))("%s", (payload, v) => {
    const api = apiOf(v.api);
    const usage = normalizeUsage(api, v.usage_raw);
    // expected.input_tokens is the TOTAL input (uncached + cache read + cache write).
    expect({
      input_tokens: totalInput(usage),
      cached_read_tokens: usage.cache_read_tokens,
      cache_write_tokens: usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
      output_tokens: usage.output_tokens,
      reasoning_tokens: usage.reasoning_tokens,
    }).toEqual({
      input_tokens: v.expected.input_tokens,
      cached_read_tokens: v.expected.cached_read_tokens,
      cache_write_tokens: v.expected.cache_write_tokens,
      output_tokens: v.expected.output_tokens,
      reasoning_tokens: v.expected.reasoning_tokens,
    });

    // The payload the vector was taken from yields the same usage through the extractors, plus the
    // searches a Responses payload lists as output items (outside usage_raw).
    const rel = payload.replace(/^fixtures\//, "");
    const fromPayload = rel.endsWith(".sse")
      ? extractFromSse(api, readFixtureText(rel))
      : rel.endsWith(".jsonl")
        ? extractFromEvents(api, readFixtureJsonl(rel))
        : extractFromResponse(api, readFixtureJson(rel));
    expect(fromPayload?.usage).toEqual({ ...usage, web_search_requests: SEARCHES_OUTSIDE_USAGE[rel] ?? 0 });
  });
});

describe("normalization rules beyond the fixtures", () => {
  it("OpenAI chat: audio and image input are taken out of prompt_tokens; output audio stays inside output", () => {
    const usage = normalizeUsage("openai.chat", {
      prompt_tokens: 1000,
      completion_tokens: 300,
      prompt_tokens_details: {
        cached_tokens: 400,
        cache_write_tokens: 100,
        audio_tokens: 150,
        image_tokens: 50,
      },
      completion_tokens_details: { reasoning_tokens: 20, audio_tokens: 200 },
    });
    expect(usage).toEqual({
      input_uncached_tokens: 300, // 1000 - 400 - 100 - 150 - 50
      cache_read_tokens: 400,
      cache_write_5m_tokens: 100,
      cache_write_1h_tokens: 0,
      output_tokens: 300,
      reasoning_tokens: 20,
      input_audio_tokens: 150,
      output_audio_tokens: 200,
      image_tokens: 50,
      web_search_requests: 0,
      file_search_requests: 0,
      web_search_preview_requests: 0,
      cache_audio_read_tokens: 0,
      cache_image_read_tokens: 0,
      output_image_tokens: 0,
      input_audio_ms: 0,
      input_characters: 0,
    });
  });

  it("OpenAI-compatible: the cached count may be spelled three ways; the largest wins", () => {
    const base = { prompt_tokens: 100, completion_tokens: 1 };
    expect(normalizeUsage("openai.chat", { ...base, prompt_cache_hit_tokens: 60 }).cache_read_tokens).toBe(
      60,
    );
    expect(normalizeUsage("openai.chat", { ...base, num_cached_tokens: 70 }).cache_read_tokens).toBe(70);
    expect(
      normalizeUsage("openai.chat", {
        ...base,
        prompt_tokens_details: { cached_tokens: 0 },
        prompt_cache_hit_tokens: 60,
      }).input_uncached_tokens,
    ).toBe(40);
  });

  it("openai.completions uses the chat shape; null details mean not reported", () => {
    expect(
      normalizeUsage("openai.completions", {
        prompt_tokens: 5,
        completion_tokens: 7,
        prompt_tokens_details: null,
        completion_tokens_details: null,
      }),
    ).toMatchObject({ input_uncached_tokens: 5, output_tokens: 7, reasoning_tokens: 0 });
  });

  it("Anthropic: 1h writes come from the breakdown; without one, and for any remainder, writes are 5m", () => {
    const withBreakdown = normalizeUsage("anthropic.messages", {
      input_tokens: 10,
      output_tokens: 5,
      cache_creation_input_tokens: 1500,
      cache_creation: { ephemeral_5m_input_tokens: 300, ephemeral_1h_input_tokens: 1000 },
    });
    // 1500 total: 1000 1h; 300 5m + 200 not covered by the breakdown (5m)
    expect(withBreakdown).toMatchObject({ cache_write_5m_tokens: 500, cache_write_1h_tokens: 1000 });
    const noBreakdown = normalizeUsage("anthropic.messages", {
      input_tokens: 10,
      output_tokens: 5,
      cache_creation_input_tokens: 1500,
    });
    expect(noBreakdown).toMatchObject({ cache_write_5m_tokens: 1500, cache_write_1h_tokens: 0 });
    const onlyBreakdown = normalizeUsage("anthropic.messages", {
      input_tokens: 10,
      output_tokens: 5,
      cache_creation: { ephemeral_5m_input_tokens: 3, ephemeral_1h_input_tokens: 4 },
    });
    expect(onlyBreakdown).toMatchObject({ cache_write_5m_tokens: 3, cache_write_1h_tokens: 4 });
  });

  it("Anthropic: a compaction iteration's tokens are billed beside the top-level counts, which leave them out", () => {
    // Server-side compaction (compact_20260112) samples the whole context once more to summarize it. Its
    // usage is an `iterations` entry of type "compaction", NOT included in the top-level fields (which sum
    // the `message` iterations), and billed at the model's rates all the same: the docs' example.
    const raw = {
      input_tokens: 23000,
      output_tokens: 1000,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      iterations: [
        {
          type: "compaction",
          input_tokens: 180000,
          output_tokens: 3500,
          cache_creation_input_tokens: 1200,
          cache_read_input_tokens: 40000,
          cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 1000 },
        },
        {
          type: "message",
          input_tokens: 23000,
          output_tokens: 1000,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
        },
      ],
    };
    const u = normalizeUsage("anthropic.messages", raw);
    expect(u).toMatchObject({
      input_uncached_tokens: 203000,
      cache_read_tokens: 40000,
      cache_write_5m_tokens: 200,
      cache_write_1h_tokens: 1000,
      output_tokens: 4500,
    });
    // Streamed, the final message_delta carries the iterations (cumulative, as the rest of its usage).
    const streamed = extractFromEvents("anthropic.messages", [
      {
        type: "message_start",
        message: { model: "claude-opus-4-6", usage: { input_tokens: 180000, output_tokens: 1 } },
      },
      { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: raw },
    ]);
    expect(streamed!.usage).toEqual(u);
    // Priced: $5/M in, $6.25/M 5m writes, $10/M 1h writes, $0.5/M reads, $25/M out (claude-opus-4-6).
    const price = new PricingEngine().price({
      provider: "anthropic",
      model: "claude-opus-4-6",
      usage: u,
      at: Date.parse("2026-09-01T12:00:00Z"),
    });
    expect(price.cost.total_nanousd).toBe(1_158_750_000n);
    // Only the same model's iterations add in: an advisor's (another model) and message ones do not.
    const others = normalizeUsage("anthropic.messages", {
      input_tokens: 10,
      output_tokens: 5,
      iterations: [
        { type: "message", input_tokens: 10, output_tokens: 5 },
        { type: "advisor_message", model: "claude-opus-4-6", input_tokens: 900, output_tokens: 700 },
      ],
    });
    expect(others).toMatchObject({ input_uncached_tokens: 10, output_tokens: 5 });
    expect(() =>
      normalizeUsage("anthropic.messages", {
        input_tokens: 1,
        output_tokens: 1,
        iterations: [{ type: "compaction", input_tokens: -3, output_tokens: 1 }],
      }),
    ).toThrow(/iterations\[0\]\.input_tokens/);
  });

  it("Bedrock: cacheDetails with ttl 1h split the writes", () => {
    const usage = normalizeUsage("bedrock.converse", {
      inputTokens: 3,
      outputTokens: 9,
      cacheReadInputTokens: 50,
      cacheWriteInputTokens: 700,
      cacheDetails: [
        { ttl: "5m", inputTokens: 200 },
        { ttl: "1h", inputTokens: 500 },
      ],
    });
    expect(usage).toMatchObject({
      input_uncached_tokens: 3,
      cache_read_tokens: 50,
      cache_write_5m_tokens: 200,
      cache_write_1h_tokens: 500,
      output_tokens: 9,
    });
  });

  it("Bedrock: the ...TokenCount twins are read when the documented keys are absent", () => {
    const usage = normalizeUsage("bedrock.converse", {
      inputTokens: 3,
      outputTokens: 9,
      cacheReadInputTokenCount: 11,
      cacheWriteInputTokenCount: 12,
    });
    expect(usage).toMatchObject({ cache_read_tokens: 11, cache_write_5m_tokens: 12 });
  });

  it("Gemini: audio and image prompt tokens are split out, minus their cached parts; output audio is reported", () => {
    const usage = normalizeUsage("google.generate_content", {
      promptTokenCount: 1000,
      cachedContentTokenCount: 300,
      promptTokensDetails: [
        { modality: "TEXT", tokenCount: 400 },
        { modality: "AUDIO", tokenCount: 500 },
        { modality: "DOCUMENT", tokenCount: 100 },
      ],
      cacheTokensDetails: [
        { modality: "TEXT", tokenCount: 100 },
        { modality: "AUDIO", tokenCount: 200 },
      ],
      candidatesTokenCount: 50,
      candidatesTokensDetails: [{ modality: "AUDIO", tokenCount: 40 }],
      thoughtsTokenCount: 10,
    });
    expect(usage).toEqual({
      input_uncached_tokens: 300, // 1000 - 300 cached - 300 audio - 100 document(image)
      cache_read_tokens: 100, // 300 cached - 200 of them audio
      cache_write_5m_tokens: 0,
      cache_write_1h_tokens: 0,
      output_tokens: 60, // 50 candidates + 10 thoughts
      reasoning_tokens: 10,
      input_audio_tokens: 300, // 500 - 200 cached
      output_audio_tokens: 40,
      image_tokens: 100,
      web_search_requests: 0,
      file_search_requests: 0,
      web_search_preview_requests: 0,
      cache_audio_read_tokens: 200,
      cache_image_read_tokens: 0,
      output_image_tokens: 0,
      input_audio_ms: 0,
      input_characters: 0,
    });
  });

  it("Gemini: image output is reported apart, priced at the model's image output rate", () => {
    // A gemini-2.5-flash-image reply: one image (1,290 tokens) and a line of text.
    const usage = normalizeUsage("google.generate_content", {
      promptTokenCount: 8,
      candidatesTokenCount: 1300,
      promptTokensDetails: [{ modality: "TEXT", tokenCount: 8 }],
      candidatesTokensDetails: [
        { modality: "IMAGE", tokenCount: 1290 },
        { modality: "TEXT", tokenCount: 10 },
      ],
    });
    expect(usage).toMatchObject({ output_tokens: 1300, output_image_tokens: 1290, output_audio_tokens: 0 });
    // $0.30/M in; $30/M image out, $2.50/M text out: 8×0.3 + 1,290×30 + 10×2.5 = 38,727.4 micro-USD,
    // as genai-prices' own calcPrice has it.
    const price = new PricingEngine().price({
      provider: "google",
      model: "gemini-2.5-flash-image",
      usage,
      at: Date.parse("2026-12-01T00:00:00Z"),
    });
    expect(price.cost.total_nanousd).toBe(38_727_400n);
    expect(() =>
      normalizeUsage("google.generate_content", {
        candidatesTokenCount: 100,
        candidatesTokensDetails: [
          { modality: "IMAGE", tokenCount: 80 },
          { modality: "AUDIO", tokenCount: 30 },
        ],
      }),
    ).toThrow(UsageError);
  });

  it("Gemini: cached tokens without a modality breakdown are attributed to text, then image, then audio", () => {
    const usage = normalizeUsage("google.generate_content", {
      promptTokenCount: 1000,
      cachedContentTokenCount: 800,
      promptTokensDetails: [
        { modality: "TEXT", tokenCount: 100 },
        { modality: "IMAGE", tokenCount: 300 },
        { modality: "AUDIO", tokenCount: 600 },
      ],
    });
    // 800 cached: 100 text + 300 image + 400 audio -> uncached audio 200
    expect(usage).toMatchObject({ input_uncached_tokens: 0, image_tokens: 0, input_audio_tokens: 200 });
  });

  it("Gemini: an empty usageMetadata (early stream chunk) is all zeros", () => {
    const usage = normalizeUsage("google.generate_content", {});
    expect(Object.keys(usage).sort()).toEqual([...USAGE_FIELDS].sort());
    expect(new Set(Object.values(usage))).toEqual(new Set([0]));
  });
});

describe("UsageError", () => {
  const bad: [string, Api, unknown, string][] = [
    // The usage object itself is the root: its field path is empty.
    ["not an object (string)", "openai.chat", "12 tokens", ""],
    ["not an object (null)", "anthropic.messages", null, ""],
    ["not an object (array)", "bedrock.converse", [1, 2], ""],
    ["negative count", "openai.chat", { prompt_tokens: -1, completion_tokens: 1 }, "prompt_tokens"],
    ["NaN count", "openai.responses", { input_tokens: Number.NaN, output_tokens: 1 }, "input_tokens"],
    ["infinite count", "anthropic.messages", { input_tokens: 1, output_tokens: Infinity }, "output_tokens"],
    ["fractional count", "bedrock.converse", { inputTokens: 1.5, outputTokens: 1 }, "inputTokens"],
    ["count as a string", "openai.chat", { prompt_tokens: "12", completion_tokens: 1 }, "prompt_tokens"],
    ["missing required count", "openai.embeddings", { total_tokens: 4 }, "prompt_tokens"],
    [
      "cached > prompt",
      "openai.chat",
      { prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 11 } },
      "prompt_tokens_details.cached_tokens",
    ],
    [
      "reasoning > completion",
      "openai.chat",
      { prompt_tokens: 10, completion_tokens: 1, completion_tokens_details: { reasoning_tokens: 2 } },
      "completion_tokens_details.reasoning_tokens",
    ],
    [
      "cached + write + audio > prompt",
      "openai.chat",
      {
        prompt_tokens: 10,
        completion_tokens: 1,
        prompt_tokens_details: { cached_tokens: 6, audio_tokens: 5 },
      },
      "prompt_tokens_details",
    ],
    [
      "Gemini cached > prompt",
      "google.generate_content",
      { promptTokenCount: 5, cachedContentTokenCount: 6 },
      "cachedContentTokenCount",
    ],
    [
      "Anthropic TTL breakdown > cache_creation_input_tokens",
      "anthropic.messages",
      {
        input_tokens: 1,
        output_tokens: 1,
        cache_creation_input_tokens: 10,
        cache_creation: { ephemeral_5m_input_tokens: 6, ephemeral_1h_input_tokens: 6 },
      },
      "cache_creation",
    ],
    [
      "Bedrock cacheDetails > cacheWriteInputTokens",
      "bedrock.converse",
      {
        inputTokens: 1,
        outputTokens: 1,
        cacheWriteInputTokens: 10,
        cacheDetails: [{ ttl: "1h", inputTokens: 11 }],
      },
      "cacheDetails",
    ],
    [
      "Bedrock unknown TTL",
      "bedrock.converse",
      {
        inputTokens: 1,
        outputTokens: 1,
        cacheWriteInputTokens: 10,
        cacheDetails: [{ ttl: "2h", inputTokens: 10 }],
      },
      "cacheDetails[0].ttl",
    ],
    [
      "details not an object",
      "openai.chat",
      { prompt_tokens: 1, completion_tokens: 1, prompt_tokens_details: 5 },
      "prompt_tokens_details",
    ],
    ["unknown api", "openai.moderations" as Api, { prompt_tokens: 1 }, "api"],
  ];

  it.each(bad)("%s", (_name, api, raw, field) => {
    let caught: unknown;
    try {
      normalizeUsage(api, raw);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect(caught).toBeInstanceOf(Error);
    expect((caught as UsageError).field).toBe(field);
    expect((caught as UsageError).message).toContain(field);
  });

  it("extractFromResponse rejects a body that is not an object or has no usage", () => {
    expect(() => extractFromResponse("openai.chat", "oops")).toThrow(UsageError);
    expect(() => extractFromResponse("openai.chat", { model: "gpt-4o", usage: null })).toThrow(UsageError);
    expect(() => extractFromResponse("google.generate_content", { modelVersion: "g" })).toThrow(
      /usageMetadata/,
    );
  });
});

describe("billed server-side tool calls", () => {
  const usage = { input_tokens: 100, output_tokens: 20, input_tokens_details: { cached_tokens: 0 } };
  const output = [
    { type: "web_search_call", status: "completed", action: { type: "search", query: "a" } },
    { type: "web_search_call", status: "completed", action: { type: "open_page", url: "https://x" } },
    { type: "web_search_call", status: "completed" }, // the oldest shape names no action: a search
    { type: "file_search_call", status: "completed", queries: ["b"] },
    { type: "function_call", name: "f", arguments: "{}" },
    { type: "message", content: [] },
  ];

  it("Responses: web_search_call searches (not page reads) and file_search_call items, from output", () => {
    const body = extractFromResponse("openai.responses", { model: "gpt-5", output, usage });
    expect(body.usage).toMatchObject({
      input_uncached_tokens: 100,
      web_search_requests: 2,
      file_search_requests: 1,
    });
    // Streamed: response.completed lists the same output; earlier events list less.
    const streamed = extractFromEvents("openai.responses", [
      { type: "response.created", response: { model: "gpt-5", output: [], usage: null } },
      { type: "response.output_item.done", item: output[0] },
      { type: "response.completed", response: { model: "gpt-5", output, usage } },
    ]);
    expect(streamed?.usage).toEqual(body.usage);
  });

  it("Responses: tool_usage.web_search.num_requests, where the response has it, is the count", () => {
    const body = (n: unknown, out: unknown[] | undefined = output) => ({
      model: "gpt-5.6-sol",
      ...(out ? { output: out } : {}),
      usage,
      tool_usage: { image_gen: { input_tokens: 0, output_tokens: 0 }, web_search: { num_requests: n } },
    });
    expect(extractFromResponse("openai.responses", body(3)).usage).toMatchObject({
      web_search_requests: 3,
      file_search_requests: 1,
    });
    expect(extractFromResponse("openai.responses", body(0, [])).usage.web_search_requests).toBe(0);
    expect(extractFromResponse("openai.responses", body(4, undefined)).usage.web_search_requests).toBe(4);
    // A count that is not one is not the provider's: the output items are counted instead.
    for (const bad of [-1, 1.5, "3", null])
      expect(extractFromResponse("openai.responses", body(bad)).usage.web_search_requests, String(bad)).toBe(
        2,
      );
    // The real payload's (no searches): still 0, its other usage as before.
    const real = readFixtureJson("providers/openai/responses.gpt-5.6-sol.cache-read.json");
    expect(extractFromResponse("openai.responses", real).usage).toMatchObject({
      web_search_requests: 0,
      cache_read_tokens: 4012,
    });
  });

  it("Anthropic: server_tool_use.web_search_requests; web fetches are free", () => {
    const u = normalizeUsage("anthropic.messages", {
      input_tokens: 10,
      output_tokens: 5,
      server_tool_use: { web_search_requests: 2, web_fetch_requests: 7 },
    });
    expect(u).toMatchObject({ web_search_requests: 2, file_search_requests: 0 });
    expect(() =>
      normalizeUsage("anthropic.messages", {
        input_tokens: 10,
        output_tokens: 5,
        server_tool_use: { web_search_requests: -1 },
      }),
    ).toThrow(/server_tool_use\.web_search_requests/);
  });

  it("Perplexity-style chat usage: num_search_queries", () => {
    const u = normalizeUsage("openai.chat", {
      prompt_tokens: 10,
      completion_tokens: 5,
      num_search_queries: 3,
    });
    expect(u.web_search_requests).toBe(3);
  });
});

describe("background responses (backgroundResponse)", () => {
  const base = { object: "response", id: "resp_1", background: true, created_at: 1_760_000_000.5 };
  it("reads a background Responses object: its id, status, creation and failure", () => {
    expect(backgroundResponse({ ...base, status: "queued" })).toEqual({
      id: "resp_1",
      status: "queued",
      createdMs: 1_760_000_000_500,
      failure: null,
    });
    expect(isPending(backgroundResponse({ ...base, status: "in_progress" })!)).toBe(true);
    expect(isFinished(backgroundResponse({ ...base, status: "incomplete" })!)).toBe(true);
  });
  it("names a failure by its error's code, else its type, else its status", () => {
    const failed = (error: unknown) => backgroundResponse({ ...base, status: "failed", error })!.failure;
    expect(failed({ code: "server_error", message: "x" })).toBe("server_error");
    expect(failed({ type: "rate_limit" })).toBe("rate_limit");
    expect(failed(null)).toBe("failed");
    expect(failed({ code: "x".repeat(100) })).toHaveLength(64);
    expect(backgroundResponse({ ...base, status: "cancelled" })!.failure).toBe("cancelled");
  });
  it("is null for a reply not run in the background, or without an id or status", () => {
    expect(backgroundResponse({ ...base, background: false, status: "completed" })).toBeNull();
    expect(backgroundResponse({ ...base, id: "", status: "completed" })).toBeNull();
    expect(backgroundResponse({ ...base })).toBeNull();
    expect(backgroundResponse({ ...base, status: "completed", created_at: "soon" })!.createdMs).toBeNull();
  });
});

describe("a Responses stream's final response (FinalResponseReader)", () => {
  const sse = readFixtureText("providers/openai/responses.stream.gpt-5.reasoning.sse");
  const bytes = new TextEncoder().encode(sse);
  const read = (cuts: number[]) => {
    const reader = new FinalResponseReader();
    let from = 0;
    for (const to of [...cuts, bytes.length]) {
      reader.push(bytes.subarray(from, to));
      from = to;
    }
    return reader.end();
  };
  const final = JSON.parse(
    sse
      .split("\n")
      .find((l) => l.includes('"response.completed"'))!
      .slice(6),
  ).response;

  it("is the response its response.completed carries, however the bytes were split", () => {
    expect(read([])).toEqual(final);
    // Every 7 bytes: inside multi-byte characters, field names and line endings.
    const cuts = Array.from({ length: Math.floor(bytes.length / 7) }, (_, i) => (i + 1) * 7);
    expect(read(cuts)).toEqual(final);
    expect(extractFromResponse("openai.responses", read(cuts)!)).toEqual(
      extractFromSse("openai.responses", sse),
    );
  });

  it("is null for a stream cut before its final event, or inside it", () => {
    const at = sse.indexOf("event: response.completed");
    const reader = (end: number) => {
      const r = new FinalResponseReader();
      r.push(bytes.subarray(0, new TextEncoder().encode(sse.slice(0, end)).length));
      return r.end();
    };
    expect(reader(at)).toBeNull();
    expect(reader(at + 200)).toBeNull();
    expect(reader(sse.length)).toEqual(final);
  });

  it("also ends with response.failed or response.incomplete, never with an earlier event", () => {
    const r = new FinalResponseReader();
    const failed = { id: "resp_9", object: "response", status: "failed", error: { code: "server_error" } };
    const ev = (type: string, response: object) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, response })}\n\n`;
    r.push(new TextEncoder().encode(ev("response.in_progress", { id: "resp_9", status: "in_progress" })));
    r.push(new TextEncoder().encode(ev("response.failed", failed)));
    expect(r.end()).toEqual(failed);
  });
});
