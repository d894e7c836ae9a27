// Every provider payload fixture through the public extractors, with the expected normalized
// numbers worked out by hand from the raw usage fields (the comment on each case shows how).
import { describe, expect, it } from "vitest";
import {
  type Api,
  createStreamExtractor,
  extractFromEvents,
  extractFromResponse,
  extractFromSse,
  type NormalizedUsage,
  SseParser,
} from "../src/usage/index.js";
import { readFixtureJson, readFixtureJsonl, readFixtureText } from "./fixtures.js";

/**
 * The nine token counts, in TOKEN_FIELDS order, so every expectation states every number; then the
 * billed tool calls (web searches, file searches, web_search_preview searches), the cached audio and
 * image tokens and the image output tokens, 0 unless stated.
 */
function tokens(
  input_uncached_tokens: number,
  cache_read_tokens: number,
  cache_write_5m_tokens: number,
  cache_write_1h_tokens: number,
  output_tokens: number,
  reasoning_tokens: number,
  input_audio_tokens: number,
  output_audio_tokens: number,
  image_tokens: number,
  web_search_requests = 0,
  file_search_requests = 0,
  web_search_preview_requests = 0,
  cache_audio_read_tokens = 0,
  cache_image_read_tokens = 0,
  output_image_tokens = 0,
): NormalizedUsage {
  return {
    input_uncached_tokens,
    cache_read_tokens,
    cache_write_5m_tokens,
    cache_write_1h_tokens,
    output_tokens,
    reasoning_tokens,
    input_audio_tokens,
    output_audio_tokens,
    image_tokens,
    web_search_requests,
    file_search_requests,
    web_search_preview_requests,
    cache_audio_read_tokens,
    cache_image_read_tokens,
    output_image_tokens,
    input_audio_ms: 0,
    input_characters: 0,
  };
}

interface Case {
  api: Api;
  model: string | null;
  usage: NormalizedUsage;
}

// biome-ignore format: one compact entry per fixture keeps the table reviewable
// tokens(uncached, cacheRead, write5m, write1h, output, reasoning, inAudio, outAudio, image)
const JSON_CASES: Record<string, Case> = {
  // ---- OpenAI Chat Completions
  "providers/openai/chat-completion.gpt-4.1-nano.json": {
    api: "openai.chat", model: "gpt-4.1-nano-2025-04-14",
    usage: tokens(16, 0, 0, 0, 363, 0, 0, 0, 0), // 16 prompt, all detail counts 0; 363 completion
  },
  "providers/openai/chat-completion.gpt-5.6-sol.cache-read.json": {
    api: "openai.chat", model: "gpt-5.6-sol",
    usage: tokens(8, 4012, 0, 0, 4, 0, 0, 0, 0), // 4020 prompt - 4012 cached = 8
  },
  "providers/openai/chat-completion.gpt-5.6-sol.cache-write.json": {
    api: "openai.chat", model: "gpt-5.6-sol",
    usage: tokens(8, 0, 4012, 0, 4, 0, 0, 0, 0), // 4020 prompt - 4012 cache_write_tokens (5m) = 8
  },
  "providers/openai/chat-completion.o3-mini.reasoning.json": {
    api: "openai.chat", model: "o3-mini-2025-01-31",
    usage: tokens(577, 0, 0, 0, 2320, 1792, 0, 0, 0), // 2320 completion includes 1792 reasoning
  },
  "conformance/payloads/openai/chat-completion.gpt-5-mini.reasoning.json": {
    api: "openai.chat", model: "gpt-5-mini-2025-08-07",
    usage: tokens(156, 0, 0, 0, 561, 512, 0, 0, 0), // 156 prompt; 561 completion incl. 512 reasoning
  },
  // ---- OpenAI Responses
  "providers/openai/responses.gpt-4o.cached.json": {
    api: "openai.responses", model: "gpt-4o-2024-08-06",
    usage: tokens(325, 1024, 0, 0, 10, 0, 0, 0, 0), // 1349 input - 1024 cached = 325
  },
  "providers/openai/responses.gpt-5.6-sol.cache-read.json": {
    api: "openai.responses", model: "gpt-5.6-sol",
    usage: tokens(8, 4012, 0, 0, 5, 0, 0, 0, 0), // 4020 input - 4012 cached = 8
  },
  "providers/openai/responses.gpt-5.6-sol.cache-write.json": {
    api: "openai.responses", model: "gpt-5.6-sol",
    usage: tokens(8, 0, 4012, 0, 5, 0, 0, 0, 0), // 4020 input - 4012 cache_write_tokens = 8
  },
  "providers/openai/responses.gpt-5.cached-reasoning.json": {
    api: "openai.responses", model: "gpt-5-2025-08-07",
    usage: tokens(213, 1280, 0, 0, 125, 64, 0, 0, 0), // 1493 input - 1280 cached = 213; 125 out incl. 64 reasoning
  },
  "conformance/payloads/openai/responses.gpt-5.cached.json": {
    api: "openai.responses", model: "gpt-5-2025-08-07",
    usage: tokens(39, 2048, 0, 0, 124, 0, 0, 0, 0), // 2087 input - 2048 cached = 39
  },
  // ---- OpenAI Embeddings
  "providers/openai/embeddings.text-embedding-3-small.json": {
    api: "openai.embeddings", model: "text-embedding-3-small",
    usage: tokens(4, 0, 0, 0, 0, 0, 0, 0, 0), // prompt_tokens 4, no output
  },
  "providers/openai/embeddings.text-embedding-3-small.vectors-truncated.json": {
    api: "openai.embeddings", model: "text-embedding-3-small",
    usage: tokens(12, 0, 0, 0, 0, 0, 0, 0, 0), // prompt_tokens 12, no output
  },
  // ---- Mistral (OpenAI-compatible)
  "providers/mistral/chat.mistral-small.json": {
    api: "openai.chat", model: "mistral-small-latest",
    usage: tokens(13, 0, 0, 0, 434, 0, 0, 0, 0), // 13 prompt, 434 completion, no details
  },
  "providers/mistral/chat.mistral-large.num-cached-tokens.json": {
    api: "openai.chat", model: "mistral-large-latest",
    usage: tokens(1, 99, 0, 0, 29, 0, 0, 0, 0), // 100 prompt - 99 top-level num_cached_tokens = 1
  },
  "providers/mistral/chat.mistral-large.prompt-tokens-details-cached.json": {
    api: "openai.chat", model: "mistral-large-latest",
    usage: tokens(44, 224, 0, 0, 5, 0, 0, 0, 0), // 268 prompt - 224 cached = 44
  },
  "conformance/payloads/mistral/chat.mistral-large.num-cached-tokens.json": {
    api: "openai.chat", model: "mistral-large-latest",
    usage: tokens(1, 9, 0, 0, 224, 0, 0, 0, 0), // 10 prompt - 9 num_cached_tokens = 1
  },
  // ---- Groq (OpenAI-compatible; timing floats in usage are ignored)
  "providers/groq/chat.llama-3.3-70b.json": {
    api: "openai.chat", model: "llama-3.3-70b-versatile",
    usage: tokens(45, 0, 0, 0, 607, 0, 0, 0, 0), // 45 prompt, 607 completion
  },
  "providers/groq/chat.gpt-oss-120b.cached-reasoning.json": {
    api: "openai.chat", model: "openai/gpt-oss-120b",
    usage: tokens(80, 256, 0, 0, 96, 59, 0, 0, 0), // 336 prompt - 256 cached = 80; 96 out incl. 59 reasoning
  },
  "conformance/payloads/groq/chat.gpt-oss-120b.reasoning.json": {
    api: "openai.chat", model: "openai/gpt-oss-120b",
    usage: tokens(84, 0, 0, 0, 105, 95, 0, 0, 0), // 84 prompt; 105 completion incl. 95 reasoning
  },
  // ---- DeepSeek (OpenAI-compatible; prompt_cache_hit_tokens + miss = prompt_tokens)
  "providers/deepseek/chat.deepseek-chat.json": {
    api: "openai.chat", model: "deepseek-chat",
    usage: tokens(13, 0, 0, 0, 300, 0, 0, 0, 0), // 13 prompt = 0 hit + 13 miss
  },
  "providers/deepseek/chat.deepseek-reasoner.json": {
    api: "openai.chat", model: "deepseek-reasoner",
    usage: tokens(12, 0, 0, 0, 789, 415, 0, 0, 0), // 12 prompt (all miss); 789 completion incl. 415 reasoning
  },
  "providers/deepseek/chat.deepseek-v4-flash.cache-hit.json": {
    api: "openai.chat", model: "deepseek-v4-flash",
    usage: tokens(80, 896, 0, 0, 61, 25, 0, 0, 0), // 976 prompt - 896 hit = 80 (= miss)
  },
  "conformance/payloads/deepseek/chat.deepseek-v4-flash.cache-hit.json": {
    api: "openai.chat", model: "deepseek-v4-flash",
    usage: tokens(51, 512, 0, 0, 116, 60, 0, 0, 0), // 563 prompt - 512 hit = 51 (= miss)
  },
  // ---- Anthropic Messages (input_tokens already excludes cache reads and writes)
  "providers/anthropic/messages.claude-sonnet-4-5.text.json": {
    api: "anthropic.messages", model: "claude-sonnet-4-5-20250929",
    usage: tokens(12, 0, 0, 0, 29, 0, 0, 0, 0), // input 12, output 29, cache 0
  },
  "providers/anthropic/messages.claude-sonnet-4-5.cache-read.json": {
    api: "anthropic.messages", model: "claude-sonnet-4-5-20250929",
    usage: tokens(3, 1111, 0, 0, 406, 0, 0, 0, 0), // input 3 + cache_read 1111
  },
  "providers/anthropic/messages.claude-sonnet-4-5.cache-read-and-write.json": {
    api: "anthropic.messages", model: "claude-sonnet-4-5-20250929",
    usage: tokens(3, 1111, 418, 0, 33, 0, 0, 0, 0), // input 3, read 1111, creation 418 = ephemeral_5m 418
  },
  "conformance/payloads/anthropic/messages.claude-sonnet-4-5.cache-read-write.json": {
    api: "anthropic.messages", model: "claude-sonnet-4-5-20250929",
    usage: tokens(6, 1069, 85, 0, 110, 0, 0, 0, 0), // input 6, read 1069, creation 85 = ephemeral_5m 85
  },
  "conformance/payloads/anthropic/messages.claude-opus-4-8.cache-write.json": {
    api: "anthropic.messages", model: "claude-opus-4-8",
    usage: tokens(2, 0, 1590, 0, 4, 0, 0, 0, 0), // input 2, creation 1590 = ephemeral_5m 1590; thinking_tokens 0
  },
  // ---- Bedrock Converse (inputTokens excludes cache; no model in the body)
  "providers/bedrock/converse.text.json": {
    api: "bedrock.converse", model: null,
    usage: tokens(22, 0, 0, 0, 57, 0, 0, 0, 0), // inputTokens 22, outputTokens 57
  },
  "providers/bedrock/converse.claude-sonnet-4-5.cache-read.json": {
    api: "bedrock.converse", model: null,
    usage: tokens(2, 1322, 0, 0, 5, 0, 0, 0, 0), // inputTokens 2 + cacheRead 1322 (= totalTokens 1329 - 5 out)
  },
  "providers/bedrock/converse.claude-sonnet-4-5.cache-write.json": {
    api: "bedrock.converse", model: null,
    usage: tokens(2, 0, 1322, 0, 5, 0, 0, 0, 0), // inputTokens 2 + cacheWrite 1322, no cacheDetails -> 5m
  },
  "providers/bedrock/converse.claude-sonnet-4-5.cache-read-write-cachedetails.json": {
    api: "bedrock.converse", model: null,
    usage: tokens(3, 2074, 297, 0, 61, 0, 0, 0, 0), // read 2074, write 297 = cacheDetails [{ttl 5m, 297}]
  },
  "providers/bedrock/converse.nova-pro.cache-write.json": {
    api: "bedrock.converse", model: null,
    usage: tokens(2326, 0, 1505, 0, 37, 0, 0, 0, 0), // inputTokens 2326 + cacheWrite 1505 (+37 out = total 3868)
  },
  "conformance/payloads/bedrock/converse.claude-sonnet-4-5.cache-read-write.json": {
    api: "bedrock.converse", model: null,
    usage: tokens(3, 1712, 236, 0, 121, 0, 0, 0, 0), // read 1712, write 236 = cacheDetails [{ttl 5m, 236}]
  },
  // ---- Google Gemini / Vertex (promptTokenCount includes cached; candidates exclude thoughts)
  "providers/google/generate-content.gemini-2.5-flash.cached-content.json": {
    api: "google.generate_content", model: "gemini-2.5-flash",
    usage: tokens(8, 3512, 0, 0, 44, 42, 0, 0, 0), // 3520 prompt - 3512 cached = 8; 2 candidates + 42 thoughts
  },
  "providers/google/generate-content.gemini-2.5-flash.implicit-cache-thoughts.json": {
    api: "google.generate_content", model: "gemini-2.5-flash",
    // prompt 373 = TEXT 115 + IMAGE 258; cached 204 = TEXT 63 + IMAGE 141;
    // image uncached 258 - 141 = 117; text uncached 373 - 204 - 117 = 52; output 89 + 167 thoughts;
    // the 141 cached image tokens apart from the 63 cached text ones (priced apart where a model says)
    usage: tokens(52, 63, 0, 0, 256, 167, 0, 0, 117, 0, 0, 0, 0, 141),
  },
  "providers/google/generate-content.gemini-3-flash-preview.tool-use-prompt.json": {
    api: "google.generate_content", model: "gemini-3-flash-preview",
    usage: tokens(1989, 0, 0, 0, 943, 773, 0, 0, 0), // 257 prompt + 1732 toolUsePrompt; 170 candidates + 773 thoughts
  },
  "providers/google/generate-content.gemini-3-pro-preview.reasoning.json": {
    api: "google.generate_content", model: "gemini-3-pro-preview",
    usage: tokens(9, 0, 0, 0, 311, 282, 0, 0, 0), // 9 prompt; 29 candidates + 282 thoughts
  },
  "providers/google/vertex.generate-content.gemini-2.5-flash.json": {
    api: "google.generate_content", model: "gemini-2.5-flash",
    usage: tokens(7, 0, 0, 0, 80, 73, 0, 0, 0), // 7 prompt; 7 candidates + 73 thoughts
  },
  "conformance/payloads/google/generate-content.gemini-2.5-flash.implicit-cache.json": {
    api: "google.generate_content", model: "gemini-2.5-flash",
    usage: tokens(265, 594, 0, 0, 28, 0, 0, 0, 0), // 859 prompt - 594 cached (TEXT) = 265
  },
};

// biome-ignore format: one compact entry per fixture keeps the table reviewable
const SSE_CASES: Record<string, Case> = {
  "providers/openai/chat-completion.stream.gpt-4o-mini.include-usage.sse": {
    api: "openai.chat", model: "gpt-4o-mini-2024-07-18",
    usage: tokens(53, 0, 0, 0, 15, 0, 0, 0, 0), // final chunk (choices: []): 53 prompt, 15 completion
  },
  "conformance/payloads/openai/chat-completion.stream.gpt-4o.include-usage.sse": {
    api: "openai.chat", model: "gpt-4o-2024-08-06",
    usage: tokens(448, 0, 0, 0, 62, 0, 0, 0, 0), // final chunk: 448 prompt, 62 completion
  },
  "providers/openai/responses.stream.gpt-5.reasoning.sse": {
    api: "openai.responses", model: "gpt-5-2025-08-07",
    usage: tokens(53, 0, 0, 0, 469, 448, 0, 0, 0), // response.completed: 53 in; 469 out incl. 448 reasoning
  },
  "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse": {
    api: "openai.responses", model: "gpt-5.2-2025-12-11",
    // response.completed: 8234 in; 79 out incl. 34 reasoning; one web_search_call searching "tallest mountain in Alberta"
    usage: tokens(8234, 0, 0, 0, 79, 34, 0, 0, 0, 1),
  },
  "providers/anthropic/messages.stream.claude-sonnet-4.thinking.sse": {
    api: "anthropic.messages", model: "claude-sonnet-4-20250514",
    usage: tokens(43, 0, 0, 0, 282, 0, 0, 0, 0), // message_delta (cumulative): input 43, output 282 (not 1 + 282)
  },
  "providers/anthropic/messages.stream.claude-sonnet-4-6.code-execution.sse": {
    api: "anthropic.messages", model: "claude-sonnet-4-6",
    usage: tokens(4714, 0, 0, 0, 304, 0, 0, 0, 0), // message_delta input 4714 replaces message_start's 2293
  },
  "providers/google/stream-generate-content.gemini-2.5-flash.sse": {
    api: "google.generate_content", model: "gemini-2.5-flash",
    usage: tokens(18, 0, 0, 0, 115, 35, 0, 0, 0), // last chunk: 18 prompt; 80 candidates + 35 thoughts
  },
  "conformance/payloads/google/stream-generate-content.gemini-2.5-pro.thinking.sse": {
    api: "google.generate_content", model: "gemini-2.5-pro",
    usage: tokens(34, 0, 0, 0, 1256, 787, 0, 0, 0), // last chunk: 34 prompt; 469 candidates + 787 thoughts
  },
};

// biome-ignore format: one compact entry per fixture keeps the table reviewable
const JSONL_CASES: Record<string, Case> = {
  "providers/anthropic/messages.stream.claude-sonnet-4-5.text.chunks.jsonl": {
    api: "anthropic.messages", model: "claude-sonnet-4-5-20250929",
    usage: tokens(12, 0, 0, 0, 30, 0, 0, 0, 0), // message_delta: input 12, output 30 (cumulative, not 1 + 30)
  },
  "conformance/payloads/anthropic/messages.stream.claude-sonnet-5.prompt-cache-code-execution.chunks.jsonl": {
    api: "anthropic.messages", model: "claude-sonnet-5",
    // final message_delta: input 6, read 6289, creation 3337 (no TTL breakdown; message_start's
    // 5m 3068 covers part, the rest is 5m too), output 198
    usage: tokens(6, 6289, 3337, 0, 198, 0, 0, 0, 0),
  },
  "providers/bedrock/converse-stream.text.chunks.jsonl": {
    api: "bedrock.converse", model: null,
    usage: tokens(22, 0, 0, 0, 55, 0, 0, 0, 0), // metadata.usage: inputTokens 22, outputTokens 55
  },
  "providers/deepseek/chat.stream.deepseek-chat.chunks.jsonl": {
    api: "openai.chat", model: "deepseek-chat",
    usage: tokens(13, 0, 0, 0, 400, 0, 0, 0, 0), // final chunk: 13 prompt (13 miss), 400 completion
  },
  "providers/groq/chat.stream.llama-3.3-70b.chunks.jsonl": {
    api: "openai.chat", model: "llama-3.3-70b-versatile",
    usage: tokens(45, 0, 0, 0, 662, 0, 0, 0, 0), // final chunk usage (= x_groq.usage): 45 prompt, 662 completion
  },
  "providers/mistral/chat.stream.mistral-small.chunks.jsonl": {
    api: "openai.chat", model: "mistral-small-latest",
    usage: tokens(13, 0, 0, 0, 8, 0, 0, 0, 0), // final chunk: 13 prompt, 8 completion
  },
};

/** Decodes SSE with the incremental parser, then JSON events through the stream extractor. */
function viaParserAndExtractor(api: Api, text: string) {
  const parser = new SseParser();
  const events = [...parser.push(text), ...parser.flush()];
  const extractor = createStreamExtractor(api);
  for (const event of events) {
    if (event.data === "[DONE]") continue;
    extractor.push(JSON.parse(event.data));
  }
  return extractor.result();
}

describe("non-streamed JSON bodies (extractFromResponse)", () => {
  it.each(Object.entries(JSON_CASES))("%s", (file, c) => {
    const body = readFixtureJson(file);
    const result = extractFromResponse(c.api, body);
    expect(result.usage).toEqual(c.usage);
    expect(result.model).toBe(c.model);
    const usageKey = c.api === "google.generate_content" ? "usageMetadata" : "usage";
    expect(result.usage_raw).toBe((body as Record<string, unknown>)[usageKey]); // verbatim, same object
  });
});

describe("SSE captures (SseParser + createStreamExtractor)", () => {
  it.each(Object.entries(SSE_CASES))("%s", (file, c) => {
    const text = readFixtureText(file);
    const result = viaParserAndExtractor(c.api, text);
    expect(result?.usage).toEqual(c.usage);
    expect(result?.model).toBe(c.model);
    // The one-call helper (filters events before JSON decoding) agrees.
    expect(extractFromSse(c.api, text)).toEqual(result);
  });
});

describe("decoded event captures, one JSON event per line (createStreamExtractor)", () => {
  it.each(Object.entries(JSONL_CASES))("%s", (file, c) => {
    const events = readFixtureJsonl(file);
    const extractor = createStreamExtractor(c.api);
    for (const event of events) extractor.push(event);
    const result = extractor.result();
    expect(result?.usage).toEqual(c.usage);
    expect(result?.model).toBe(c.model);
    expect(extractFromEvents(c.api, events)).toEqual(result);
  });
});

describe("the service tier a provider says it served the call on", () => {
  it.each([
    ["providers/openai/chat-completion.gpt-4.1-nano.json", "openai.chat", "default"],
    ["providers/openai/responses.gpt-5.cached-reasoning.json", "openai.responses", "default"],
    [
      "providers/anthropic/messages.claude-sonnet-4-5.cache-read-and-write.json",
      "anthropic.messages",
      "standard",
    ],
    ["providers/openai/embeddings.text-embedding-3-small.json", "openai.embeddings", null],
  ] as const)("body %s: %s", (file, api, tier) => {
    expect(extractFromResponse(api, readFixtureJson(file)).service_tier).toBe(tier);
  });

  it.each([
    ["providers/openai/chat-completion.stream.gpt-4o-mini.include-usage.sse", "openai.chat", "default"],
    ["providers/openai/responses.stream.gpt-5.reasoning.sse", "openai.responses", "flex"],
    ["providers/anthropic/messages.stream.claude-sonnet-4.thinking.sse", "anthropic.messages", "standard"],
  ] as const)("stream %s: %s", (file, api, tier) => {
    expect(extractFromSse(api, readFixtureText(file))?.service_tier).toBe(tier);
  });
});
