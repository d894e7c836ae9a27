import { describe, expect, it } from "vitest";
import {
  createSseUsageExtractor,
  createStreamExtractor,
  estimateCutShortUsage,
  extractFromEvents,
  extractFromSse,
  normalizeUsage,
} from "../src/usage/index.js";
import { readFixtureText } from "./fixtures.js";

describe("createStreamExtractor", () => {
  it("returns null until an event carries usage (e.g. OpenAI chat without include_usage)", () => {
    const extractor = createStreamExtractor("openai.chat");
    expect(extractor.result()).toBeNull();
    extractor.push({ model: "gpt-4o", choices: [{ delta: { content: "hi" } }], usage: null });
    expect(extractor.result()).toBeNull();
  });

  it("ignores events that are not objects", () => {
    const extractor = createStreamExtractor("openai.chat");
    for (const event of [null, 3, "[DONE]", [1]]) extractor.push(event);
    expect(extractor.result()).toBeNull();
  });

  it("Groq: usage under x_groq.usage only", () => {
    const result = extractFromEvents("openai.chat", [
      { model: "llama-3.3-70b-versatile", choices: [{ delta: { content: "a" } }] },
      {
        model: "llama-3.3-70b-versatile",
        choices: [],
        x_groq: { id: "req_1", usage: { prompt_tokens: 5, completion_tokens: 3 } },
      },
    ]);
    expect(result?.model).toBe("llama-3.3-70b-versatile");
    expect(result?.usage).toMatchObject({ input_uncached_tokens: 5, output_tokens: 3 });
  });

  it.each(["response.incomplete", "response.failed"])("Responses: %s carries the usage", (type) => {
    const result = extractFromEvents("openai.responses", [
      { type: "response.created", response: { model: "gpt-5", usage: null } },
      { type: "response.output_text.delta", delta: "x" },
      {
        type,
        response: {
          model: "gpt-5",
          usage: { input_tokens: 10, output_tokens: 4, output_tokens_details: { reasoning_tokens: 3 } },
        },
      },
    ]);
    expect(result?.model).toBe("gpt-5");
    expect(result?.usage).toMatchObject({ input_uncached_tokens: 10, output_tokens: 4, reasoning_tokens: 3 });
  });

  it("Anthropic: last value per field, never added; fields a delta omits or nulls keep message_start's", () => {
    const events = [
      {
        type: "message_start",
        message: {
          model: "claude-x",
          usage: {
            input_tokens: 20,
            cache_read_input_tokens: 100,
            cache_creation_input_tokens: 1500,
            cache_creation: { ephemeral_5m_input_tokens: 500, ephemeral_1h_input_tokens: 1000 },
            output_tokens: 1,
          },
        },
      },
      { type: "content_block_delta", delta: { text: "…" } },
      { type: "message_delta", usage: { output_tokens: 40, server_tool_use: { web_search_requests: 1 } } },
      {
        type: "message_delta",
        usage: { output_tokens: 90, input_tokens: null, server_tool_use: { web_search_requests: 3 } },
      },
      { type: "message_stop" },
    ];
    const result = extractFromEvents("anthropic.messages", events);
    expect(result?.model).toBe("claude-x");
    expect(result?.usage).toEqual({
      input_uncached_tokens: 20, // from message_start (delta omitted / null)
      cache_read_tokens: 100,
      cache_write_5m_tokens: 500, // TTL breakdown of message_start survives
      cache_write_1h_tokens: 1000,
      output_tokens: 90, // last cumulative value, not 1 + 40 + 90
      reasoning_tokens: 0,
      input_audio_tokens: 0,
      output_audio_tokens: 0,
      image_tokens: 0,
      web_search_requests: 3, // cumulative too: not 1 + 3
      file_search_requests: 0,
      web_search_preview_requests: 0,
      cache_audio_read_tokens: 0,
      cache_image_read_tokens: 0,
      output_image_tokens: 0,
      input_audio_ms: 0,
      input_characters: 0,
    });
    // usage_raw is the merged object: normalizing it again gives the same usage.
    expect(normalizeUsage("anthropic.messages", result?.usage_raw)).toEqual(result?.usage);
  });

  it("Anthropic: a message_delta without message_start still yields usage", () => {
    const result = extractFromEvents("anthropic.messages", [
      { type: "message_delta", usage: { input_tokens: 3, output_tokens: 4 } },
    ]);
    expect(result).toMatchObject({ model: null, usage: { input_uncached_tokens: 3, output_tokens: 4 } });
  });

  it("Gemini: the last cumulative usageMetadata wins (never summed)", () => {
    const chunk = (candidates: number) => ({
      modelVersion: "gemini-2.5-flash",
      usageMetadata: { promptTokenCount: 10, candidatesTokenCount: candidates, thoughtsTokenCount: 5 },
    });
    const result = extractFromEvents("google.generate_content", [chunk(1), chunk(7), chunk(12)]);
    expect(result?.usage).toMatchObject({
      input_uncached_tokens: 10,
      output_tokens: 17,
      reasoning_tokens: 5,
    });
  });

  it("Bedrock: accepts the SDK shape {metadata: {usage}} and the bare metadata payload {usage}", () => {
    const usage = { inputTokens: 7, outputTokens: 8, totalTokens: 15 };
    for (const event of [{ metadata: { usage } }, { usage, metrics: { latencyMs: 1 } }]) {
      const result = extractFromEvents("bedrock.converse", [{ messageStart: { role: "assistant" } }, event]);
      expect(result).toMatchObject({ model: null, usage: { input_uncached_tokens: 7, output_tokens: 8 } });
    }
  });

  it("throws UsageError from result() when the reported usage is malformed", () => {
    const extractor = createStreamExtractor("openai.chat");
    extractor.push({ usage: { prompt_tokens: -1, completion_tokens: 0 } });
    expect(() => extractor.result()).toThrow(/negative/);
  });
});

describe("extractFromSse", () => {
  it("skips [DONE] and non-JSON data, and reads the model from the first event", () => {
    const text = [
      'data: {"model":"gpt-4o","choices":[{"delta":{"content":"a"}}]}',
      "",
      ": keep-alive",
      "",
      "data: not json",
      "",
      'data: {"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}',
      "",
      "data: [DONE]",
      "",
      "",
    ].join("\n");
    const result = extractFromSse("openai.chat", text);
    expect(result?.model).toBe("gpt-4o");
    expect(result?.usage).toMatchObject({ input_uncached_tokens: 9, output_tokens: 2 });
  });
});

describe("streams cut short: what they showed of their billed tool calls and output", () => {
  const rel = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse"; // one real web search

  it("a Responses stream cut before response.completed still shows its search", () => {
    const text = readFixtureText(rel);
    const cut = text.slice(0, text.indexOf("event: response.completed"));
    const whole = createSseUsageExtractor("openai.responses");
    whole.push(text);
    expect(whole.result()?.usage.web_search_requests).toBe(1);
    const partial = createSseUsageExtractor("openai.responses");
    partial.push(cut);
    expect(partial.result()).toBeNull();
    expect(partial.shown().toolCalls).toEqual({
      web_search_requests: 1,
      file_search_requests: 0,
      web_search_preview_requests: 0, // its tool is web_search
    });
    const est = estimateCutShortUsage(null, {
      api: "openai.responses",
      model: "gpt-5.2",
      requestBytes: 400,
      events: 30,
      shown: partial.shown(),
    });
    expect(est.usage).toMatchObject({
      input_uncached_tokens: 100,
      output_tokens: 30,
      web_search_requests: 1,
    });
  });

  it("Anthropic: searches and output shown after message_start raise its partial usage; a final report wins", () => {
    const start = {
      type: "message_start",
      message: { model: "claude-x", usage: { input_tokens: 50, output_tokens: 1 } },
    };
    const search = (i: number) => ({
      type: "content_block_start",
      index: i,
      content_block: { type: "server_tool_use", id: `srvtoolu_${i}`, name: "web_search", input: {} },
    });
    const fetch = {
      type: "content_block_start",
      index: 9,
      content_block: { type: "server_tool_use", name: "web_fetch" },
    };
    const x = createStreamExtractor("anthropic.messages");
    for (const ev of [start, search(1), fetch, search(2)]) x.push(ev);
    expect(x.shown().toolCalls).toMatchObject({ web_search_requests: 2, file_search_requests: 0 }); // web fetches are free
    const partial = x.result();
    // The provider's counts so far (none yet); what the stream showed applies when it is cut short.
    expect(partial?.usage).toMatchObject({
      input_uncached_tokens: 50,
      output_tokens: 1,
      web_search_requests: 0,
    });
    const cut = estimateCutShortUsage(partial, {
      api: "anthropic.messages",
      model: "claude-x",
      requestBytes: 400,
      events: 120,
      shown: x.shown(),
    });
    expect(cut.usage).toMatchObject({
      input_uncached_tokens: 50,
      output_tokens: 120,
      web_search_requests: 2,
    });
    // Elsewhere a reported usage is the final one: not raised by the event count.
    const openai = { ...partial!, usage: { ...partial!.usage, output_tokens: 7 } };
    const stream = { api: "openai.chat" as const, model: null, requestBytes: 1, events: 12 };
    expect(estimateCutShortUsage(openai, stream).usage.output_tokens).toBe(7);
    // The provider's cumulative count, once it comes, is the count: a search that failed is not billed.
    x.push({
      type: "message_delta",
      usage: { output_tokens: 300, server_tool_use: { web_search_requests: 1 } },
    });
    expect(x.result()?.usage).toMatchObject({ output_tokens: 300, web_search_requests: 1 });
  });
});
