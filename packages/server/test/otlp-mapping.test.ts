// The OTel GenAI → call record mapping as a pure function: conventions current and legacy, disjoint usage
// without double counting, kinds, providers, attribution, and the spans it refuses.
import { setFlagsFromString } from "node:v8";
import { ATTRIBUTION_FIELDS, buildCallRecord, type Kind, PricingEngine } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { spanEventId } from "../src/ingest/otlp/event-id.js";
import { mapSpan } from "../src/ingest/otlp/genai-mapping.js";
import { readUsage, usageAttributes } from "../src/ingest/otlp/genai-usage.js";
import type { AttrMap, AttrValue, DecodedExport, DecodedSpan } from "../src/ingest/otlp/spans.js";
import { type SpanStore, storedRelatives } from "../src/ingest/otlp/stored-relatives.js";
import { uncountedSpans, WRAPPER } from "../src/ingest/otlp/wrappers.js";
import type { TraceSpan } from "../src/store/types.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const T0 = BigInt(Date.UTC(2025, 5, 1, 12)) * 1_000_000n;
const attrs = (o: Record<string, AttrValue>): AttrMap => ({ ...o });

function span(attributes: Record<string, AttrValue>, over: Partial<DecodedSpan> = {}): DecodedSpan {
  return {
    traceId: TRACE,
    spanId: "00f067aa0ba902b7",
    parentSpanId: "",
    name: "chat gpt-4o",
    kind: 3,
    startNs: T0,
    endNs: T0 + 1_250_000_000n,
    attributes: attrs(attributes),
    statusCode: 0,
    statusMessage: "",
    ...over,
  };
}

function mapped(attributes: Record<string, AttrValue>, over: Partial<DecodedSpan> = {}, resource = {}) {
  const m = mapSpan(span(attributes, over), attrs(resource));
  if (!m.ok) throw new Error(`${m.field}: ${m.reason}`);
  return m.input;
}

const engine = new PricingEngine();
function record(attributes: Record<string, AttrValue>, over: Partial<DecodedSpan> = {}, resource = {}) {
  const built = buildCallRecord(mapped(attributes, over, resource), { workspaceId: "ws", engine });
  if (!built.ok) throw new Error(JSON.stringify(built.errors));
  return built.record;
}

const chat = {
  "gen_ai.operation.name": "chat",
  "gen_ai.provider.name": "openai",
  "gen_ai.request.model": "gpt-4o",
};

describe("OTLP GenAI mapping: usage", () => {
  it("OTel counts cache reads/writes inside input_tokens and reasoning inside output_tokens: made disjoint once", () => {
    const u = readUsage(
      attrs({
        "gen_ai.usage.input_tokens": 1493,
        "gen_ai.usage.cache_read.input_tokens": 1280,
        "gen_ai.usage.cache_creation.input_tokens": 13,
        "gen_ai.usage.output_tokens": 125,
        "gen_ai.usage.reasoning.output_tokens": 64,
      }),
    );
    expect(u).toMatchObject({
      input_uncached_tokens: 200,
      cache_read_tokens: 1280,
      cache_write_5m_tokens: 13,
      output_tokens: 125,
      reasoning_tokens: 64,
    });
  });

  it("legacy OpenLLMetry names count the same way", () => {
    const u = readUsage(
      attrs({
        "gen_ai.usage.prompt_tokens": 4020,
        "gen_ai.usage.cache_read_input_tokens": 4012,
        "gen_ai.usage.cache_creation_input_tokens": 0,
        "gen_ai.usage.completion_tokens": 2320,
        "gen_ai.usage.reasoning_tokens": 1792,
        "llm.usage.total_tokens": 6340,
      }),
    );
    expect(u).toMatchObject({
      input_uncached_tokens: 8,
      cache_read_tokens: 4012,
      output_tokens: 2320,
      reasoning_tokens: 1792,
    });
  });

  it("the current name wins over the legacy one (never both added)", () => {
    const u = readUsage(
      attrs({
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.prompt_tokens": 10,
        "gen_ai.usage.output_tokens": 2,
      }),
    );
    expect(u).toMatchObject({ input_uncached_tokens: 10, output_tokens: 2 });
  });

  it("per-modality input: audio and image are their own categories, their cached parts too (out of cache_read)", () => {
    const u = readUsage(
      attrs({
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.cache_read.input_tokens": 300,
        "gen_ai.usage.audio.input_tokens": 200,
        "gen_ai.usage.audio.cache_read.input_tokens": 50,
        "gen_ai.usage.image.input_tokens": 100,
        "gen_ai.usage.text.input_tokens": 700,
        "gen_ai.usage.output_tokens": 40,
        "gen_ai.usage.audio.output_tokens": 30,
      }),
    );
    expect(u).toMatchObject({
      input_uncached_tokens: 1000 - 300 - 150 - 100,
      cache_read_tokens: 250,
      cache_audio_read_tokens: 50,
      input_audio_tokens: 150,
      image_tokens: 100,
      output_tokens: 40,
      output_audio_tokens: 30,
    });
  });

  it("cached audio and image input are their own categories (priced at their own rates), as the SDK and gateway record them", () => {
    // Gemini 2.5 Flash: 1M tokens of cached audio, as Gemini's own usage reports it.
    const native = buildCallRecord(
      {
        event_id: "01970000-0000-7000-8000-000000000001",
        kind: "llm",
        provider: "google",
        api: "google.generate_content",
        model: "gemini-2.5-flash",
        ts_start: Date.UTC(2025, 5, 1, 12),
        usage_raw: {
          promptTokenCount: 1_000_000,
          cachedContentTokenCount: 1_000_000,
          promptTokensDetails: [{ modality: "AUDIO", tokenCount: 1_000_000 }],
          cacheTokensDetails: [{ modality: "AUDIO", tokenCount: 1_000_000 }],
          candidatesTokenCount: 0,
        },
      },
      { workspaceId: "ws", engine },
    );
    if (!native.ok) throw new Error(JSON.stringify(native.errors));
    const otlp = record({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "gcp.gemini",
      "gen_ai.request.model": "gemini-2.5-flash",
      "gen_ai.usage.input_tokens": 1_000_000,
      "gen_ai.usage.cache_read.input_tokens": 1_000_000,
      "gen_ai.usage.audio.input_tokens": 1_000_000,
      "gen_ai.usage.audio.cache_read.input_tokens": 1_000_000,
      "gen_ai.usage.output_tokens": 0,
    });
    expect(native.record).toMatchObject({ cache_audio_read_tokens: 1_000_000, cost_nanousd: 100_000_000n });
    expect(otlp).toMatchObject({ cache_read_tokens: 0, cache_audio_read_tokens: 1_000_000 });
    expect(otlp.cost_nanousd).toBe(native.record.cost_nanousd); // was $0.03 (cached text) of $0.10
    // Cached media beyond the cache reads cannot be inside them.
    expect(() =>
      readUsage(
        attrs({
          "gen_ai.usage.input_tokens": 100,
          "gen_ai.usage.cache_read.input_tokens": 10,
          "gen_ai.usage.audio.input_tokens": 50,
          "gen_ai.usage.audio.cache_read.input_tokens": 20,
        }),
      ),
    ).toThrow(/exceed gen_ai.usage.cache_read.input_tokens/);
  });

  it("an emitter that counts cache tokens beside input (Anthropic's own convention) is read that way", () => {
    // Anthropic: input_tokens 3 excludes cache_read 1111 and cache_creation 418; they cannot be inside 3.
    const u = readUsage(
      attrs({
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 1111,
        "gen_ai.usage.cache_creation.input_tokens": 418,
        "gen_ai.usage.output_tokens": 33,
      }),
    );
    expect(u).toMatchObject({
      input_uncached_tokens: 3,
      cache_read_tokens: 1111,
      cache_write_5m_tokens: 418,
    });
    const v = readUsage(
      attrs({ "gen_ai.usage.output_tokens": 100, "gen_ai.usage.reasoning.output_tokens": 400 }),
    );
    expect(v).toMatchObject({ output_tokens: 500, reasoning_tokens: 400 });
  });

  it("Pydantic AI (Logfire): cache reads and writes in gen_ai.usage.details.*, inside input_tokens; priced as the provider's own usage", () => {
    // Anthropic's usage {input_tokens: 3, cache_read_input_tokens: 1111, cache_creation_input_tokens: 418,
    // output_tokens: 33}, as Pydantic AI records it (RunUsage.opentelemetry_attributes): its input_tokens
    // includes the cache tokens, which it reports as details.
    const native = buildCallRecord(
      {
        event_id: "01970000-0000-7000-8000-000000000002",
        kind: "llm",
        provider: "anthropic",
        api: "anthropic.messages",
        model: "claude-sonnet-4-5",
        ts_start: Date.UTC(2025, 5, 1, 12),
        usage_raw: {
          input_tokens: 3,
          cache_read_input_tokens: 1111,
          cache_creation_input_tokens: 418,
          output_tokens: 33,
        },
      },
      { workspaceId: "ws", engine },
    );
    if (!native.ok) throw new Error(JSON.stringify(native.errors));
    const otlp = record({
      "gen_ai.operation.name": "chat",
      "gen_ai.system": "anthropic",
      "gen_ai.request.model": "claude-sonnet-4-5",
      "gen_ai.usage.input_tokens": 1532,
      "gen_ai.usage.output_tokens": 33,
      "gen_ai.usage.details.cache_read_tokens": 1111,
      "gen_ai.usage.details.cache_write_tokens": 418,
    });
    expect(otlp).toMatchObject({
      input_uncached_tokens: 3,
      cache_read_tokens: 1111,
      cache_write_5m_tokens: 418,
      output_tokens: 33,
    });
    expect(otlp.cost_nanousd).toBe(native.record.cost_nanousd);
    // OpenAI's reasoning, inside output_tokens as OTel counts it.
    const u = readUsage(
      attrs({
        "gen_ai.usage.input_tokens": 4020,
        "gen_ai.usage.output_tokens": 2320,
        "gen_ai.usage.details.cache_read_tokens": 4012,
        "gen_ai.usage.details.reasoning_tokens": 1792,
      }),
    );
    expect(u).toMatchObject({
      input_uncached_tokens: 8,
      cache_read_tokens: 4012,
      output_tokens: 2320,
      reasoning_tokens: 1792,
    });
  });

  it("usage_raw keeps an int64 past 2^53 as its digits inside arrays and kvlists too (JSON has no bigint)", () => {
    const rec = record({
      ...chat,
      "gen_ai.usage.input_tokens": 5,
      "gen_ai.usage.output_tokens": 1,
      "gen_ai.usage.details": { big: 2n ** 60n, list: [1, 2n ** 61n] },
    });
    expect(rec.usage_raw).toEqual({
      "gen_ai.usage.input_tokens": 5,
      "gen_ai.usage.output_tokens": 1,
      "gen_ai.usage.details": { big: "1152921504606846976", list: [1, "2305843009213693952"] },
    });
  });

  it("no input or output count is no usage (null), not zero", () => {
    expect(readUsage(attrs({ "llm.usage.total_tokens": 12 }))).toBeNull();
  });

  it.each<[string, AttrValue]>([
    ["a negative count", -1],
    ["a fraction", 1.5],
    ["text", "many"],
    ["an int64 beyond 2^53", 2n ** 60n],
    ["more than 1e12", 2e12],
    ["an array", [1, 2]],
  ])("a token count that is %s refuses the span, naming the attribute", (_, value) => {
    const m = mapSpan(span({ ...chat, "gen_ai.usage.input_tokens": value }), attrs({}));
    expect(m).toMatchObject({ ok: false, field: "gen_ai.usage.input_tokens" });
  });

  it("integral doubles and digit strings are counts", () => {
    expect(
      readUsage(attrs({ "gen_ai.usage.input_tokens": 12.0, "gen_ai.usage.output_tokens": "7" })),
    ).toMatchObject({
      input_uncached_tokens: 12,
      output_tokens: 7,
    });
  });

  it("usage_raw keeps the gen_ai.usage.* and llm.usage.* attributes verbatim", () => {
    const input = mapped({
      ...chat,
      "gen_ai.usage.input_tokens": 5,
      "gen_ai.usage.output_tokens": 1,
      "llm.usage.total_tokens": 6,
    });
    expect(input.usage_raw).toEqual({
      "gen_ai.usage.input_tokens": 5,
      "gen_ai.usage.output_tokens": 1,
      "llm.usage.total_tokens": 6,
    });
  });
});

describe("OTLP GenAI mapping: kinds and pricing", () => {
  it("a chat span is an llm record priced from its usage", () => {
    const rec = record({
      ...chat,
      "gen_ai.response.model": "gpt-4o-2024-08-06",
      "gen_ai.usage.input_tokens": 1000,
      "gen_ai.usage.output_tokens": 100,
    });
    const price = engine.price({
      provider: "openai",
      model: "gpt-4o-2024-08-06",
      usage: rec,
      at: rec.ts_start,
    });
    expect(rec).toMatchObject({
      kind: "llm",
      provider: "openai",
      model: "gpt-4o-2024-08-06",
      model_requested: "gpt-4o",
      priced: true,
    });
    expect(rec.cost_nanousd).toBe(price.cost.total_nanousd);
  });

  it.each([
    [{ "gen_ai.operation.name": "embeddings" }, "embedding"],
    [{ "gen_ai.operation.name": "text_completion" }, "llm"],
    [{ "gen_ai.operation.name": "generate_content" }, "llm"],
    [{ "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search" }, "tool"],
    [{ "gen_ai.operation.name": "invoke_agent" }, "agent"],
    [{ "gen_ai.operation.name": "create_agent" }, "agent"],
    [{ "traceloop.span.kind": "tool" }, "tool"],
    [{ "traceloop.span.kind": "agent" }, "agent"],
    [{ "traceloop.span.kind": "workflow" }, "agent"],
    [{ "traceloop.span.kind": "task" }, "other"],
    // The Vercel AI SDK's tool execution span (no gen_ai.operation.name)
    [{ "ai.operationId": "ai.toolCall", "ai.toolCall.name": "get_weather" }, "tool"],
    [{ "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o" }, "llm"],
    [
      { "llm.request.type": "embedding", "gen_ai.system": "openai", "gen_ai.request.model": "x" },
      "embedding",
    ],
    [{ "gen_ai.operation.name": "retrieval" }, "other"],
    [{ "http.method": "GET" }, "other"],
  ] as [Record<string, AttrValue>, string][])("%j → kind %s", (a, kind) => {
    expect(mapped(a).kind).toBe(kind);
  });

  it("tool/agent spans keep their usage attributes in usage_raw only: never priced, no tokens counted", () => {
    const rec = record({
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o",
      "gen_ai.agent.name": "Support",
      "gen_ai.usage.input_tokens": 5000,
      "gen_ai.usage.output_tokens": 500,
    });
    expect(rec).toMatchObject({
      kind: "agent",
      priced: false,
      price_ref: "none",
      cost_nanousd: 0n,
      input_uncached_tokens: 0,
      output_tokens: 0,
    });
    expect(rec.usage_raw).toEqual({ "gen_ai.usage.input_tokens": 5000, "gen_ai.usage.output_tokens": 500 });
    expect(rec.agent_type).toBe("Support");
  });

  it("a tool span without provider or model is stored with '' for both, its name in metadata", () => {
    const rec = record(
      { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather" },
      { name: "execute_tool get_weather" },
    );
    expect(rec).toMatchObject({ kind: "tool", provider: "", model: "", priced: false });
    expect(rec.metadata).toMatchObject({
      "gen_ai.tool.name": "get_weather",
      "span.name": "execute_tool get_weather",
      "otel.span.kind": "client",
    });
  });

  it("an llm span without usage attributes: stored, cost unknown (priced=false, no_usage), never a made-up 0", () => {
    const rec = record(chat);
    expect(rec).toMatchObject({ kind: "llm", priced: false, price_ref: "no_usage", cost_nanousd: 0n });
  });

  it("an llm span that is a wrapper (usage reported below it) becomes kind other", () => {
    const m = mapSpan(
      span({ ...chat, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1 }),
      attrs({}),
      WRAPPER,
    );
    expect(m.ok && m.input).toMatchObject({
      kind: "other",
      metadata: { "tollgate.wrapper": "usage reported by descendant spans" },
    });
    expect(m.ok && m.input.input_uncached_tokens).toBeUndefined();
  });

  it.each([
    ["openai", "openai"],
    ["anthropic", "anthropic"],
    ["gcp.gemini", "google"],
    ["gcp.vertex_ai", "google"],
    ["aws.bedrock", "bedrock"],
    ["azure.ai.openai", "azure"],
    ["mistral_ai", "mistral"],
    ["groq", "groq"],
    ["deepseek", "deepseek"],
    ["x_ai", "xai"],
    ["Some.New.Vendor", "some.new.vendor"],
  ])("provider %s → %s", (otel, ours) => {
    expect(mapped({ "gen_ai.provider.name": otel }).provider).toBe(ours);
    expect(mapped({ "gen_ai.system": otel }).provider).toBe(ours);
  });

  it.each([
    // The Vercel AI SDK's provider ids ("<provider>.<api>")
    ["openai.chat", "openai"],
    ["openai.responses", "openai"],
    ["anthropic.messages", "anthropic"],
    ["google.generative-ai", "google"],
    ["google.vertex.chat", "google"],
    ["amazon-bedrock", "bedrock"],
    ["azure.chat", "azure"],
    ["mistral.chat", "mistral"],
    ["xai.chat", "xai"],
    ["deepseek.chat", "deepseek"],
    ["groq.chat", "groq"],
    // Pydantic AI's Gemini models
    ["google-gla", "google"],
    ["google-vertex", "google"],
  ])("a framework's own provider id in gen_ai.system: %s → %s", (system, ours) => {
    expect(mapped({ "gen_ai.system": system }).provider).toBe(ours);
  });

  it("a Vercel AI SDK model span (no operation name, gen_ai.system its provider id) is priced as the provider's", () => {
    // The attributes of an ai.generateText.doGenerate span.
    for (const [system, model] of [
      ["xai.chat", "grok-3"],
      ["deepseek.chat", "deepseek-chat"],
      ["openai.chat", "gpt-4o"],
    ]) {
      const rec = record(
        {
          "ai.operationId": "ai.generateText.doGenerate",
          "ai.model.provider": system!,
          "gen_ai.system": system!,
          "gen_ai.request.model": model!,
          "gen_ai.response.model": model!,
          "gen_ai.usage.input_tokens": 1000,
          "gen_ai.usage.output_tokens": 100,
        },
        { name: "ai.generateText.doGenerate" },
      );
      expect(rec, system).toMatchObject({ kind: "llm", provider: system!.split(".")[0], priced: true });
    }
  });

  it("api where the span makes it clear", () => {
    expect(mapped({ ...chat, "openai.api.type": "responses" }).api).toBe("openai.responses");
    expect(mapped({ ...chat, "openai.api.type": "chat_completions" }).api).toBe("openai.chat");
    expect(mapped({ ...chat, "gen_ai.operation.name": "embeddings" }).api).toBe("openai.embeddings");
    expect(mapped({ ...chat, "gen_ai.provider.name": "anthropic" }).api).toBe("anthropic.messages");
    // OpenLLMetry reports Chat Completions and Responses both as "chat": not guessed.
    expect(mapped(chat).api).toBeUndefined();
  });
});

describe("OTLP GenAI mapping: identity, time, status, attribution", () => {
  it("ids in hex, times in ms, a deterministic event id from (trace_id, span_id)", () => {
    const input = mapped(chat, { parentSpanId: "b7ad6b7169203331" });
    expect(input).toMatchObject({
      trace_id: TRACE,
      span_id: "00f067aa0ba902b7",
      parent_span_id: "b7ad6b7169203331",
      ts_start: Date.UTC(2025, 5, 1, 12),
      ts_end: Date.UTC(2025, 5, 1, 12) + 1250,
      event_id: spanEventId(TRACE, "00f067aa0ba902b7"),
    });
    expect(input.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(spanEventId(TRACE, "00f067aa0ba902b8")).not.toBe(input.event_id);
  });

  it("span status ERROR → status error, error.type → error_type; stream, ttft, service tier, http status", () => {
    const rec = record(
      {
        ...chat,
        "error.type": "RateLimitError",
        "gen_ai.request.stream": true,
        "gen_ai.response.time_to_first_chunk": 0.321,
        "openai.response.service_tier": "default",
        "http.response.status_code": 429,
      },
      { statusCode: 2, statusMessage: "429" },
    );
    expect(rec.metadata).toMatchObject({ "otel.status.message": "429" });
    expect(rec).toMatchObject({
      status: "error",
      error_type: "RateLimitError",
      stream: true,
      ttft_ms: 321,
      service_tier: "default",
      http_status: 429,
    });
  });

  it("attribution: tollgate.* first, then OTel, then OpenLLMetry association properties; resource too", () => {
    const rec = record(
      {
        ...chat,
        "user.id": "u-otel",
        "session.id": "s-1",
        "traceloop.association.properties.user_id": "u-traceloop",
        "traceloop.association.properties.customer_id": "acme",
        "traceloop.association.properties.ticket": "T-9",
        "tollgate.feature": "support-bot",
        "tollgate.prompt_version": "v7",
        "tollgate.agent_run_id": "run-42",
        "tollgate.tags": ["beta", "eu"],
        "tollgate.metadata.team": "growth",
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.response.id": "chatcmpl-123",
        "gen_ai.agent.id": "asst_1",
      },
      {},
      {
        "service.name": "checkout",
        "deployment.environment.name": "staging",
        "tollgate.customer_id": "from-resource",
      },
    );
    expect(rec).toMatchObject({
      user_id: "u-otel",
      customer_id: "acme",
      feature: "support-bot",
      prompt_version: "v7",
      agent_run_id: "run-42",
      session_id: "s-1",
      deployment: "staging",
      tags: ["beta", "eu"],
    });
    expect(rec.metadata).toEqual({
      "service.name": "checkout",
      "gen_ai.response.id": "chatcmpl-123",
      "gen_ai.agent.id": "asst_1",
      ticket: "T-9",
      team: "growth",
    });
    expect(record({ ...chat, "tollgate.tags": "a, b" }).tags).toEqual(["a", "b"]);
    expect(record(chat, {}, { "deployment.environment": "prod" }).deployment).toBe("prod");
    // OTel's "production" is Tollgate's "prod" (the analytics default); one set as tollgate.deployment is kept.
    expect(record(chat, {}, { "deployment.environment.name": "production" }).deployment).toBe("prod");
    expect(record({ ...chat, "deployment.environment": "production" }).deployment).toBe("prod");
    expect(record({ ...chat, "tollgate.deployment": "production" }).deployment).toBe("production");
  });

  it("tollgate.metadata.<key> and association properties on the resource are metadata too; the span's win", () => {
    const rec = record(
      { ...chat, "tollgate.metadata.team": "span-team", "traceloop.association.properties.ticket": "T-1" },
      {},
      {
        "service.name": "checkout",
        "tollgate.metadata.team": "resource-team",
        "tollgate.metadata.cost_center": "cc-7",
        "traceloop.association.properties.ticket": "T-resource",
        "traceloop.association.properties.region": "eu",
        "tollgate.tags": ["from-resource"],
      },
    );
    expect(rec.metadata).toEqual({
      "service.name": "checkout",
      team: "span-team",
      cost_center: "cc-7",
      ticket: "T-1",
      region: "eu",
    });
    expect(rec.tags).toEqual(["from-resource"]);
  });

  it.each<[string, Partial<DecodedSpan>, string]>([
    ["no trace id", { traceId: "" }, "trace_id"],
    ["an all-zero trace id", { traceId: "0".repeat(32) }, "trace_id"],
    ["a short span id", { spanId: "abcd" }, "span_id"],
    ["no span id", { spanId: "" }, "span_id"],
    ["a bad parent id", { parentSpanId: "xyz" }, "parent_span_id"],
    ["no start time", { startNs: 0n }, "start_time_unix_nano"],
    ["an end before the start", { endNs: T0 - 1n }, "end_time_unix_nano"],
  ])("refuses a span with %s", (_, over, field) => {
    expect(mapSpan(span(chat, over), attrs({}))).toMatchObject({ ok: false, field });
  });
});

describe("OTLP: wrapper detection within one export", () => {
  it("marks every ancestor of a span that reports tokens, in the same trace only", () => {
    const root = span({}, { spanId: "1000000000000001" });
    const mid = span(chat, { spanId: "1000000000000002", parentSpanId: "1000000000000001" });
    const leaf = span(
      { ...chat, "gen_ai.usage.input_tokens": 1 },
      { spanId: "1000000000000003", parentSpanId: "1000000000000002" },
    );
    const otherTrace = span(chat, { traceId: "a".repeat(32), spanId: "1000000000000002" });
    const sibling = span(chat, { spanId: "1000000000000004", parentSpanId: "1000000000000001" });
    const req: DecodedExport = [{ resource: attrs({}), spans: [leaf, sibling, otherTrace, mid, root] }];
    expect(uncountedSpans(req, [])).toEqual(new Map([mid, root].map((s) => [s, WRAPPER])));
  });

  it("a span refused when priced makes no span above it a wrapper, but still links those below it to them", () => {
    const usage = { "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1 };
    const wrapper = span({ ...chat, ...usage }, { spanId: "6000000000000001" });
    const mid = span({ ...chat, ...usage }, { spanId: "6000000000000002", parentSpanId: wrapper.spanId });
    const call = span({ ...chat, ...usage }, { spanId: "6000000000000003", parentSpanId: mid.spanId });
    const exportOf = (...spans: DecodedSpan[]): DecodedExport => [{ resource: attrs({}), spans }];
    // Its only call refused: the wrapper is the call.
    expect(uncountedSpans(exportOf(mid, wrapper), [], new Set([mid]))).toEqual(new Map());
    // The span between refused: the call below it is still wrapped by both.
    expect(uncountedSpans(exportOf(call, mid, wrapper), [], new Set([mid]))).toEqual(
      new Map([mid, wrapper].map((s) => [s, WRAPPER])),
    );
    // A copy of the call refused beside one that is not (the store keeps that one): still a wrapper.
    const copy: DecodedSpan = {
      ...mid,
      attributes: attrs({ ...mid.attributes, "user.id": "u".repeat(300) }),
    };
    expect(uncountedSpans(exportOf(mid, copy, wrapper), [], new Set([copy]))).toEqual(
      new Map([[wrapper, WRAPPER]]),
    );
  });

  it("a parent cycle ends", () => {
    const a = span(
      { "gen_ai.usage.input_tokens": 1 },
      { spanId: "2000000000000001", parentSpanId: "2000000000000002" },
    );
    const b = span(
      { "gen_ai.usage.input_tokens": 1 },
      { spanId: "2000000000000002", parentSpanId: "2000000000000001" },
    );
    expect(uncountedSpans([{ resource: attrs({}), spans: [a, b] }], [])).toEqual(
      new Map([a, b].map((s) => [s, WRAPPER])),
    );
  });
});

describe("OTLP: wrapper detection across exports (spans stored by earlier ones)", () => {
  const usage = { "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1 };
  /** A span as this route stored it: its kind, and its usage attributes as usage_raw. */
  const stored = (s: DecodedSpan, kind: Kind, over: Partial<TraceSpan> = {}): TraceSpan => ({
    event_id: spanEventId(s.traceId, s.spanId),
    trace_id: s.traceId,
    span_id: s.spanId,
    parent_span_id: s.parentSpanId || null,
    kind,
    usage_raw: usageAttributes(s.attributes),
    priced: kind === "llm" || kind === "embedding",
    ...over,
  });
  const exportOf = (...spans: DecodedSpan[]): DecodedExport => [{ resource: attrs({}), spans }];
  const wrapper = span({ ...chat, ...usage }, { spanId: "3000000000000001" });
  const mid = span({}, { spanId: "3000000000000002", parentSpanId: "3000000000000001" });
  const call = span({ ...chat, ...usage }, { spanId: "3000000000000003", parentSpanId: "3000000000000002" });

  it("a span above a stored span that reports tokens is a wrapper, through stored spans between", () => {
    expect(uncountedSpans(exportOf(wrapper), [stored(call, "llm"), stored(mid, "other")])).toEqual(
      new Map([[wrapper, WRAPPER]]),
    );
    // The span between arriving with it links them too.
    expect(uncountedSpans(exportOf(wrapper, mid), [stored(call, "llm")])).toEqual(
      new Map([
        [wrapper, WRAPPER],
        [mid, WRAPPER],
      ]),
    );
    // Without the span between, nothing links them.
    expect(uncountedSpans(exportOf(wrapper), [stored(call, "llm")])).toEqual(new Map());
  });

  it("a span that reports tokens below a stored priced call restates it; below a stored wrapper it is the call", () => {
    expect(uncountedSpans(exportOf(call), [stored(wrapper, "llm"), stored(mid, "other")])).toEqual(
      new Map([[call, ["tollgate.usage_counted_on", wrapper.spanId]]]),
    );
    expect(uncountedSpans(exportOf(call, mid), [stored(wrapper, "llm")])).toEqual(
      new Map([
        [call, ["tollgate.usage_counted_on", wrapper.spanId]],
        [mid, WRAPPER],
      ]),
    );
    // The wrapper stored first but unpriced (its model has no price): it counted no money, the call does.
    expect(
      uncountedSpans(exportOf(call), [stored(wrapper, "llm", { priced: false }), stored(mid, "other")]),
    ).toEqual(new Map());
    // The wrapper stored as one (its call came first), a second call of the same wrapper is priced.
    expect(uncountedSpans(exportOf(call), [stored(wrapper, "other"), stored(mid, "other")])).toEqual(
      new Map(),
    );
  });

  it("a retry: what the store holds decides, whatever the export's own copy says", () => {
    // The wrapper was stored priced (its call came later): the call is not priced, whether the
    // wrapper comes again with it or not.
    const heldPriced = [stored(wrapper, "llm"), stored(mid, "other")];
    expect(uncountedSpans(exportOf(wrapper, mid, call), heldPriced).get(call)).toEqual([
      "tollgate.usage_counted_on",
      wrapper.spanId,
    ]);
    // The call was stored priced: a retry of it alone is the call again (a duplicate).
    expect(uncountedSpans(exportOf(call), [stored(call, "llm")])).toEqual(new Map());
    // The wrapper was stored priced, and its call since (counted on it): a retry of the wrapper, alone or
    // with its call, is priced as stored (the write that stored it may have failed: its retry is charged).
    const since = [...heldPriced, stored(call, "other")];
    expect(uncountedSpans(exportOf(wrapper), since)).toEqual(new Map());
    expect(uncountedSpans(exportOf(wrapper, mid, call), heldPriced).has(wrapper)).toBe(false);
  });

  it("a model span above a tool or agent span is a call of its own: the calls made within them are theirs", () => {
    // Google ADK: call_llm stays current while its tools and the agent it hands over to run.
    const outer = span({ ...chat, ...usage }, { spanId: "5000000000000001" });
    const tool = span(
      { "gen_ai.operation.name": "execute_tool" },
      { spanId: "5000000000000002", parentSpanId: outer.spanId },
    );
    const agent = span(
      { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Helper" },
      { spanId: "5000000000000003", parentSpanId: outer.spanId },
    );
    const inTool = span({ ...chat, ...usage }, { spanId: "5000000000000004", parentSpanId: tool.spanId });
    const inAgent = span({ ...chat, ...usage }, { spanId: "5000000000000005", parentSpanId: agent.spanId });
    const all = uncountedSpans(exportOf(inTool, tool, inAgent, agent, outer), []);
    expect([outer, inTool, inAgent].map((s) => all.get(s))).toEqual([undefined, undefined, undefined]);
    // The calls stored first, then the outer call; the outer call stored first, then the calls.
    expect(uncountedSpans(exportOf(outer), [stored(inTool, "llm"), stored(tool, "tool")]).get(outer)).toBe(
      undefined,
    );
    expect(uncountedSpans(exportOf(inAgent), [stored(outer, "llm"), stored(agent, "agent")])).toEqual(
      new Map(),
    );
    // A wrapper below the tool is still one.
    const client = span({ ...chat, ...usage }, { spanId: "5000000000000006", parentSpanId: inTool.spanId });
    expect(
      uncountedSpans(exportOf(inTool), [stored(client, "llm"), stored(outer, "llm"), stored(tool, "tool")]),
    ).toEqual(new Map([[inTool, WRAPPER]]));
    // A tool or agent span that sums up its calls' tokens re-states theirs, not the outer call's.
    const counting = (s: DecodedSpan) => ({ ...s, attributes: attrs({ ...s.attributes, ...usage }) });
    const sums = [counting(tool), counting(agent)];
    expect(uncountedSpans(exportOf(...sums, outer), []).get(outer)).toBe(undefined);
    expect(
      uncountedSpans(
        exportOf(outer),
        sums.map((s, i) => stored(s, i ? "agent" : "tool")),
      ).get(outer),
    ).toBe(undefined);
    // The outer call stored first: their usage is not counted on it either.
    expect(uncountedSpans(exportOf(...sums), [stored(outer, "llm")])).toEqual(new Map());
  });

  it("only spans this route stored count (their event id names them), and stored cycles end", () => {
    const events = stored(call, "llm", { event_id: "01900000-0000-7000-8000-000000000001" });
    expect(uncountedSpans(exportOf(wrapper), [events, stored(mid, "other")])).toEqual(new Map());
    const a = span({}, { spanId: "4000000000000001", parentSpanId: "4000000000000002" });
    const b = span({ ...chat, ...usage }, { spanId: "4000000000000002", parentSpanId: "4000000000000001" });
    expect(uncountedSpans(exportOf(a), [stored(b, "other")])).toEqual(new Map([[a, WRAPPER]]));
    const c = span({ ...chat, ...usage }, { spanId: "4000000000000003", parentSpanId: "4000000000000001" });
    expect(uncountedSpans(exportOf(c), [stored(a, "other"), stored(b, "other")])).toEqual(new Map());
  });
});

describe("OTLP: what ingest reads of the store", () => {
  const usage = { "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1 };
  /** A store that records its reads and holds nothing. */
  function reads() {
    const ranges: [from: number, to: number][] = [];
    const store: SpanStore = {
      traceSpans: async (_ws, _traces, from, to) => {
        ranges.push([from, to]);
        return [];
      },
      storedIds: async () => new Set<string>(),
    };
    return { store, ranges };
  }

  it("a span that claims to have lasted since 1970 costs a read of its last hour, not of the store's whole history", async () => {
    const { store, ranges } = reads();
    const end = T0;
    // An INTERNAL span (a framework's): it may wrap calls stored before it.
    const long = span({ ...chat, ...usage }, { startNs: 1_000_000n, endNs: end, kind: 1 });
    await storedRelatives(store, "ws", [{ resource: attrs({}), spans: [long] }], [long]);
    expect(ranges).toHaveLength(1);
    const [from, to] = ranges[0]!;
    expect(to - from).toBeLessThanOrEqual(3_600_000 + 2_001);
    expect(to).toBe(Number(end / 1_000_000n) + 1_001);
    // A call of a few seconds is read over its own time, give or take a second.
    const { store: s2, ranges: r2 } = reads();
    const short = span({ ...chat, ...usage }, { kind: 1 });
    await storedRelatives(s2, "ws", [{ resource: attrs({}), spans: [short] }], [short]);
    expect(r2).toEqual([[Number(T0 / 1_000_000n) - 1_000, Number(T0 / 1_000_000n) + 1_250 + 1_001]]);
  });

  it("a CLIENT span (the request itself, as GenAI instrumentations make it) wraps nothing: no read for it", async () => {
    const { store, ranges } = reads();
    const client = span({ ...chat, ...usage }, { kind: 3 });
    await storedRelatives(store, "ws", [{ resource: attrs({}), spans: [client] }], [client]);
    expect(ranges).toEqual([]);
  });

  it("a CLIENT span a framework made (OpenLLMetry's LangChain model span) may wrap a call stored before it: read", async () => {
    const marked: Record<string, string>[] = [
      { "llm.request.type": "chat" },
      { "traceloop.workflow.name": "support" },
      { "gen_ai.system": "Langchain" },
    ];
    for (const marks of marked) {
      const { store, ranges } = reads();
      const client = span({ ...chat, ...usage, ...marks }, { kind: 3 });
      await storedRelatives(store, "ws", [{ resource: attrs({}), spans: [client] }], [client]);
      expect(ranges).toHaveLength(1);
    }
  });
});

describe("OTLP GenAI mapping: the input's shape", () => {
  it("a span with every attribution field and full usage maps to one fast object, not a hash table", () => {
    // V8 keeps an object given many new keys by computed name as a dictionary: ~4 KB a span to collect.
    setFlagsFromString("--allow-natives-syntax");
    const hasFastProperties = new Function("o", "return %HasFastProperties(o)") as (o: object) => boolean;
    const attribution = Object.fromEntries(ATTRIBUTION_FIELDS.map((f) => [`tollgate.${f}`, `${f}-1`]));
    const input = mapped({
      ...chat,
      ...attribution,
      "gen_ai.usage.input_tokens": 1493,
      "gen_ai.usage.cache_read.input_tokens": 1280,
      "gen_ai.usage.output_tokens": 125,
      "gen_ai.usage.reasoning.output_tokens": 64,
    });
    expect(input.feature).toBe("feature-1");
    expect(input.reasoning_tokens).toBe(64);
    expect(hasFastProperties(input)).toBe(true);
  });
});
