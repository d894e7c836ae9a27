// POST /v1/traces end to end: the official OpenTelemetry SDK and exporters (protobuf and JSON, gzip), and
// OpenLLMetry's OpenAI instrumentation around the real `openai` SDK, export GenAI spans to a real Tollgate
// server on 127.0.0.1. Every priced span must cost exactly what the gateway records for the same payload
// (the same request is sent through the gateway too), or, where an instrumentation drops a field, the
// test says so and asserts what it really emits.
import { gzipSync } from "node:zlib";
import { type Attributes, context, type Span, SpanKind, type Tracer, trace } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { CompressionAlgorithm } from "@opentelemetry/otlp-exporter-base";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  NodeTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-node";
import { type CallRecord, PricingEngine, USAGE_FIELDS } from "@tollgate/core";
import { OpenAIInstrumentation } from "@traceloop/instrumentation-openai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportTraceServiceResponse } from "../src/ingest/otlp/otlp-proto.js";
import {
  ANTHROPIC_HEADERS,
  createKey,
  type Json,
  openTestRuntime,
  recordByEventId,
  startTestGateway,
} from "./helpers.js";
import { FX, fixture, type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { ExportTraceServiceRequest, lenField, SpanMessage } from "./otlp-request-proto.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let ingestKey: string;
let viaGateway: OpenAI;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 0 });
  gw = await startTestGateway(mock.url);
  const created = await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "ingest");
  ingestKey = created.json.key;
  viaGateway = new OpenAI({ apiKey: "sk-test-123", baseURL: `${gw.url}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const tracesUrl = () => `${gw.url}/v1/traces`;
const authHeaders = () => ({ authorization: `Bearer ${ingestKey}` });

function protoExporter(compression = CompressionAlgorithm.GZIP): SpanExporter {
  return new ProtoExporter({ url: tracesUrl(), headers: authHeaders(), compression });
}

/** One export through a real OTLP exporter; resolves with its result code (throws on failure). */
async function exportSpans(exporter: SpanExporter, spans: ReadableSpan[]): Promise<void> {
  const res = await new Promise<{ code: ExportResultCode; error?: Error }>((r) => exporter.export(spans, r));
  if (res.code !== ExportResultCode.SUCCESS) throw res.error ?? new Error("export failed");
}

/** Spans made with the real tracer API, collected in memory and exported on demand. */
function tracing(resource: Attributes = { "service.name": "otlp-test" }) {
  const memory = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes(resource),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer("tollgate-otlp-test");
  return {
    provider,
    tracer,
    memory,
    /** Takes the finished spans (and forgets them). */
    take(): ReadableSpan[] {
      const spans = memory.getFinishedSpans().slice();
      memory.reset();
      return spans;
    },
  };
}

async function storedSpans(traceId: string): Promise<CallRecord[]> {
  await gw.runtime.recorder.flush();
  const rows = await gw.runtime.store.query({ workspaceId: "default", limit: 100_000 });
  return rows.filter((r) => r.trace_id === traceId);
}

async function storedSpan(span: ReadableSpan): Promise<CallRecord> {
  const ctx = span.spanContext();
  const rec = (await storedSpans(ctx.traceId)).find((r) => r.span_id === ctx.spanId);
  expect(rec, `record of span ${span.name}`).toBeDefined();
  return rec!;
}

async function countAll(): Promise<number> {
  return gw.runtime.store.count({ workspaceId: "default" });
}

/** Usage and cost of an OTLP-ingested record are exactly the gateway's for the same payload. */
function expectSameCost(otlp: CallRecord, gateway: CallRecord) {
  expect(gateway.priced).toBe(true);
  expect(otlp.priced).toBe(true);
  expect(otlp.provider).toBe(gateway.provider);
  expect(otlp.model).toBe(gateway.model);
  for (const f of USAGE_FIELDS) expect(otlp[f], f).toBe(gateway[f]);
  expect(otlp.price_ref).toBe(gateway.price_ref);
  expect(otlp.cost_nanousd).toBe(gateway.cost_nanousd);
  expect(otlp.cost_nanousd > 0n).toBe(true);
}

// ---------------------------------------------------------------------------------------------------
// the official SDK: spans with the attributes a semconv GenAI instrumentation sets for a payload

/**
 * The gen_ai.* attributes an OTel GenAI semconv instrumentation sets for a recorded provider response: the
 * input total includes cache reads and writes (Anthropic's own input_tokens does not, so they are added),
 * the output total includes reasoning.
 */
function semconvAttributes(
  api: "openai.chat" | "openai.responses" | "anthropic.messages",
  body: Json,
): Attributes {
  const u = body.usage;
  const common = { "gen_ai.response.model": body.model, "gen_ai.response.id": body.id };
  if (api === "anthropic.messages")
    return {
      ...common,
      "gen_ai.provider.name": "anthropic",
      "gen_ai.operation.name": "chat",
      "gen_ai.usage.input_tokens": u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens,
      "gen_ai.usage.cache_read.input_tokens": u.cache_read_input_tokens,
      "gen_ai.usage.cache_creation.input_tokens": u.cache_creation_input_tokens,
      "gen_ai.usage.output_tokens": u.output_tokens,
    };
  const chat = api === "openai.chat";
  const inDetails = chat ? u.prompt_tokens_details : u.input_tokens_details;
  const outDetails = chat ? u.completion_tokens_details : u.output_tokens_details;
  return {
    ...common,
    "gen_ai.provider.name": "openai",
    "gen_ai.operation.name": "chat",
    "openai.api.type": chat ? "chat_completions" : "responses",
    "gen_ai.usage.input_tokens": chat ? u.prompt_tokens : u.input_tokens,
    "gen_ai.usage.cache_read.input_tokens": inDetails?.cached_tokens ?? 0,
    "gen_ai.usage.cache_creation.input_tokens": inDetails?.cache_write_tokens ?? 0,
    "gen_ai.usage.output_tokens": chat ? u.completion_tokens : u.output_tokens,
    "gen_ai.usage.reasoning.output_tokens": outDetails?.reasoning_tokens ?? 0,
  };
}

const messages = [{ role: "user" as const, content: "What is the capital of the UK?" }];

/** The gateway's record for one request (the mock answers with the fixture the model selects). */
async function gatewayRecordFor(
  api: "openai.chat" | "openai.responses" | "anthropic.messages",
  model: string,
) {
  if (api === "openai.chat") {
    const { response } = await viaGateway.chat.completions.create({ model, messages }).withResponse();
    return recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
  }
  if (api === "openai.responses") {
    const { response } = await viaGateway.responses.create({ model, input: "hi" }).withResponse();
    return recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
  }
  const res = await fetch(`${gw.url}/v1/messages`, {
    method: "POST",
    headers: ANTHROPIC_HEADERS,
    body: JSON.stringify({ model, max_tokens: 64, messages }),
  });
  await res.arrayBuffer();
  return recordByEventId(gw.runtime, res.headers.get("x-tollgate-event-id"));
}

const PAYLOADS = [
  ["openai.chat", "gpt-5.6-sol", FX.chatCacheRead, "cache reads"],
  ["openai.chat", "o3-mini", FX.chatReasoning, "reasoning"],
  ["openai.responses", "gpt-5", FX.responsesReasoning, "cache reads and reasoning"],
  ["anthropic.messages", "claude-sonnet-4-5-cache", FX.messagesCache, "cache reads and writes"],
] as const;

describe("OTLP ingest: the official OpenTelemetry SDK and exporters", () => {
  it.each(PAYLOADS)(
    "%s %s (%s), protobuf + gzip: same usage and cost as the gateway",
    async (api, model, fx) => {
      const t = tracing();
      const body = JSON.parse(fixture(fx));
      t.tracer
        .startSpan(`chat ${model}`, {
          kind: SpanKind.CLIENT,
          attributes: { "gen_ai.request.model": model, ...semconvAttributes(api, body) },
        })
        .end();
      const [span] = t.take();
      await exportSpans(protoExporter(), [span!]);
      const otlp = await storedSpan(span!);
      expectSameCost(otlp, await gatewayRecordFor(api, model));
      expect(otlp).toMatchObject({ kind: "llm", model_requested: model, api, status: "ok" });
      expect(otlp.usage_raw).toMatchObject({ "gen_ai.usage.input_tokens": expect.any(Number) });
      expect(otlp.metadata).toMatchObject({ "service.name": "otlp-test", "gen_ai.response.id": body.id });
    },
  );

  it("OTLP/HTTP JSON with gzip, through the real BatchSpanProcessor pipeline", async () => {
    const exporter = new JsonExporter({
      url: tracesUrl(),
      headers: authHeaders(),
      compression: CompressionAlgorithm.GZIP,
    });
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({
        "service.name": "json-svc",
        "deployment.environment.name": "staging",
      }),
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    const body = JSON.parse(fixture(FX.responsesReasoning));
    const span = provider.getTracer("t").startSpan("chat gpt-5", {
      kind: SpanKind.CLIENT,
      attributes: {
        "gen_ai.request.model": "gpt-5",
        ...semconvAttributes("openai.responses", body),
        "user.id": "u-json",
        "tollgate.feature": "search",
        "tollgate.tags": ["a", "b"],
      },
    });
    span.end();
    await provider.forceFlush();
    await provider.shutdown();
    const ctx = span.spanContext();
    const [otlp] = (await storedSpans(ctx.traceId)).filter((r) => r.span_id === ctx.spanId);
    expectSameCost(otlp!, await gatewayRecordFor("openai.responses", "gpt-5"));
    expect(otlp).toMatchObject({
      user_id: "u-json",
      feature: "search",
      deployment: "staging",
      tags: ["a", "b"],
    });
  });

  it("uncompressed protobuf works too, and the response is an ExportTraceServiceResponse", async () => {
    const t = tracing();
    t.tracer
      .startSpan("chat", {
        attributes: {
          "gen_ai.request.model": "o3-mini",
          ...semconvAttributes("openai.chat", JSON.parse(fixture(FX.chatReasoning))),
        },
      })
      .end();
    const [span] = t.take();
    await exportSpans(protoExporter(CompressionAlgorithm.NONE), [span!]);
    expect((await storedSpan(span!)).priced).toBe(true);
  });

  it("an exporter's retry of the same spans is stored once and counted once", async () => {
    const t = tracing();
    const attributes = {
      "gen_ai.request.model": "o3-mini",
      ...semconvAttributes("openai.chat", JSON.parse(fixture(FX.chatReasoning))),
    };
    t.tracer.startSpan("a", { attributes }).end();
    t.tracer.startSpan("b", { attributes }).end();
    const spans = t.take();
    const exporter = protoExporter();
    await exportSpans(exporter, spans);
    const before = await countAll();
    await exportSpans(exporter, spans);
    await exportSpans(protoExporter(CompressionAlgorithm.NONE), spans);
    expect(await countAll()).toBe(before);
    for (const s of spans) expect(await storedSpan(s)).toBeDefined();
    const traces = new Set(spans.map((s) => s.spanContext().traceId));
    let stored = 0;
    for (const tr of traces) stored += (await storedSpans(tr)).length;
    expect(stored).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------------
// agents, tools and wrappers: trace structure, priced once

/** A day's budget on one user's calls (what the spans' user.id attributes them to). */
async function createUserBudget(id: string, userId: string): Promise<void> {
  const res = await gw.runtime.app.request("/api/budgets", {
    method: "POST",
    headers: { authorization: `Bearer ${gw.runtime.rootToken}`, "content-type": "application/json" },
    body: JSON.stringify({ id, scope: { user_id: userId }, window: "day", limit_usd: "100.00" }),
  });
  expect(res.status).toBe(201);
}

async function budgetSpendOf(id: string): Promise<bigint> {
  const res = await gw.runtime.app.request(`/api/budgets/${id}`, {
    headers: { authorization: `Bearer ${gw.runtime.rootToken}` },
  });
  return BigInt(((await res.json()) as Json).spend_nanousd);
}

describe("OTLP ingest: an agent run with tools and wrapper spans", () => {
  it("the agent span and a framework wrapper re-state usage but only the client spans are priced", async () => {
    const t = tracing({ "service.name": "agent-svc" });
    const llmBody = JSON.parse(fixture(FX.chatReasoning));
    const llmAttrs = { "gen_ai.request.model": "o3-mini", ...semconvAttributes("openai.chat", llmBody) };
    const runId = `run-${Date.now()}`;
    const { tracer } = t;
    // Parents passed explicitly: this provider registers no global context manager.
    const under = (parent: Span) => trace.setSpan(context.active(), parent);
    const agent = tracer.startSpan("invoke_agent Planner", {
      attributes: {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "Planner",
        "gen_ai.agent.id": "asst_123",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "o3-mini",
        "gen_ai.usage.input_tokens": 2 * llmBody.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": 2 * llmBody.usage.completion_tokens,
        "tollgate.agent_run_id": runId,
      },
    });
    const inRun = { "tollgate.agent_run_id": runId };
    tracer.startSpan("chat o3-mini", { attributes: { ...llmAttrs, ...inRun } }, under(agent)).end();
    tracer
      .startSpan(
        "execute_tool get_weather",
        {
          attributes: {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            ...inRun,
          },
        },
        under(agent),
      )
      .end();
    // A framework span (OpenLLMetry's LangChain style: llm.request.type, legacy names) around the client span.
    const wrapper = tracer.startSpan(
      "ChatOpenAI.chat",
      {
        attributes: {
          "llm.request.type": "chat",
          "gen_ai.system": "openai",
          "gen_ai.request.model": "o3-mini",
          "gen_ai.usage.prompt_tokens": llmBody.usage.prompt_tokens,
          "gen_ai.usage.completion_tokens": llmBody.usage.completion_tokens,
          ...inRun,
        },
      },
      under(agent),
    );
    tracer.startSpan("chat o3-mini", { attributes: { ...llmAttrs, ...inRun } }, under(wrapper)).end();
    wrapper.end();
    agent.end();
    const spans = t.take();
    expect(spans).toHaveLength(5);
    await exportSpans(protoExporter(), spans);

    const recs = await storedSpans(agent.spanContext().traceId);
    expect(recs).toHaveLength(5);
    const byName = (name: string) =>
      recs.filter((r) => spans.find((s) => s.spanContext().spanId === r.span_id)!.name === name);
    const [agentRec] = byName("invoke_agent Planner");
    expect(agentRec).toMatchObject({
      kind: "agent",
      agent_type: "Planner",
      priced: false,
      price_ref: "none",
      cost_nanousd: 0n,
      input_uncached_tokens: 0,
      output_tokens: 0,
    });
    expect(agentRec!.metadata).toMatchObject({ "gen_ai.agent.id": "asst_123" });
    const [toolRec] = byName("execute_tool get_weather");
    expect(toolRec).toMatchObject({ kind: "tool", provider: "", model: "", priced: false, cost_nanousd: 0n });
    expect(toolRec!.parent_span_id).toBe(agent.spanContext().spanId);
    const [wrapperRec] = byName("ChatOpenAI.chat");
    expect(wrapperRec).toMatchObject({ kind: "other", priced: false, cost_nanousd: 0n, output_tokens: 0 });
    const clients = byName("chat o3-mini");
    expect(clients).toHaveLength(2);
    const gateway = await gatewayRecordFor("openai.chat", "o3-mini");
    for (const c of clients) expectSameCost(c, gateway);
    const total = recs.reduce((a, r) => a + r.cost_nanousd, 0n);
    expect(total).toBe(2n * gateway.cost_nanousd);

    const [run] = await gw.runtime.store.runUsage("default", 0, runId);
    expect(run).toMatchObject({ llm_calls: 2, tool_calls: 1, cost_nanousd: 2n * gateway.cost_nanousd });
    expect(run!.total_tokens).toBe(2 * (llmBody.usage.prompt_tokens + llmBody.usage.completion_tokens));

    // Neither the tool, the agent nor the wrapper is a coverage gap; an unknown model is.
    t.tracer
      .startSpan("chat mystery", {
        attributes: {
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "openai",
          "gen_ai.request.model": "mystery-model-9",
          "gen_ai.usage.input_tokens": 10,
          "gen_ai.usage.output_tokens": 1,
        },
      })
      .end();
    await exportSpans(protoExporter(), t.take());
    const res = await gw.runtime.app.request("/api/prices/unpriced?since=1d", {
      headers: { authorization: `Bearer ${gw.runtime.rootToken}` },
    });
    const { models } = (await res.json()) as { models: { provider: string; model: string }[] };
    expect(models).toContainEqual(expect.objectContaining({ provider: "openai", model: "mystery-model-9" }));
    expect(models.filter((m) => m.model === "" || m.model === "o3-mini")).toEqual([]);
  });
});

describe("OTLP ingest: a wrapper span and the call it wraps, exported apart", () => {
  const USER = "u-wrapped";
  const llmBody = JSON.parse(fixture(FX.chatReasoning));
  let gateway: CallRecord;

  beforeAll(async () => {
    gateway = await gatewayRecordFor("openai.chat", "o3-mini");
    await createUserBudget("wrapped", USER);
  });

  /**
   * A client span and a framework's span around it (named as LangChain's are under OpenLLMetry), which
   * re-states its model and usage: whichever of the two is priced, the call costs the gateway's price.
   */
  function wrappedCall(tracer: Tracer, wrapperAttributes: Attributes = {}, wrapperKind = SpanKind.INTERNAL) {
    const attributes = {
      "user.id": USER,
      "gen_ai.request.model": "o3-mini",
      ...semconvAttributes("openai.chat", llmBody),
    };
    const wrapper = tracer.startSpan("ChatOpenAI.chat", {
      kind: wrapperKind,
      attributes: { ...attributes, ...wrapperAttributes },
    });
    tracer
      .startSpan(
        "chat o3-mini",
        { kind: SpanKind.CLIENT, attributes },
        trace.setSpan(context.active(), wrapper),
      )
      .end();
    wrapper.end();
    return wrapper.spanContext();
  }

  /** The two spans of a wrapped call, to export as a test pleases: the call ended first. */
  function spansOfWrappedCall(wrapperAttributes: Attributes = {}, wrapperKind = SpanKind.INTERNAL) {
    const t = tracing();
    const { traceId, spanId } = wrappedCall(t.tracer, wrapperAttributes, wrapperKind);
    const [child, wrapper] = t.take();
    expect(wrapper!.spanContext().spanId).toBe(spanId);
    return { child: child!, wrapper: wrapper!, traceId };
  }

  /** The call is stored once priced, at the gateway's cost, and its wrapper as trace structure. */
  async function expectPricedOnce(traceId: string) {
    const recs = await storedSpans(traceId);
    expect(recs).toHaveLength(2);
    const priced = recs.filter((r) => r.kind === "llm");
    expect(priced).toHaveLength(1);
    expectSameCost(priced[0]!, gateway);
    const other = recs.find((r) => r.kind !== "llm")!;
    expect(other).toMatchObject({ kind: "other", priced: false, cost_nanousd: 0n, output_tokens: 0 });
    expect(recs.reduce((a, r) => a + r.cost_nanousd, 0n)).toBe(gateway.cost_nanousd);
    return { priced: priced[0]!, other };
  }

  const budgetSpend = () => budgetSpendOf("wrapped");

  it("the call first, then its wrapper (children end first): the wrapper is not priced, nor charged", async () => {
    const spent = await budgetSpend();
    const { child, wrapper, traceId } = spansOfWrappedCall();
    await exportSpans(protoExporter(), [child]);
    await exportSpans(protoExporter(), [wrapper]);
    const { priced, other } = await expectPricedOnce(traceId);
    expect(priced.span_id).toBe(child.spanContext().spanId);
    expect(other.metadata).toMatchObject({ "tollgate.wrapper": "usage reported by descendant spans" });
    // Retries of either export, or of both spans together, change nothing.
    await exportSpans(protoExporter(), [wrapper]);
    await exportSpans(protoExporter(), [child, wrapper]);
    await exportSpans(protoExporter(), [child]);
    await expectPricedOnce(traceId);
    expect((await budgetSpend()) - spent).toBe(gateway.cost_nanousd);
  });

  it("a framework's wrapper made a CLIENT span (OpenLLMetry's LangChain model spans), exported after its call: not priced, nor charged", async () => {
    const spent = await budgetSpend();
    // As OpenLLMetry's LangChain callback handler makes it: SpanKind.CLIENT, llm.request.type, traceloop.*.
    const { child, wrapper, traceId } = spansOfWrappedCall(
      { "llm.request.type": "chat", "traceloop.workflow.name": "support" },
      SpanKind.CLIENT,
    );
    await exportSpans(protoExporter(), [child]);
    await exportSpans(protoExporter(), [wrapper]);
    const { priced, other } = await expectPricedOnce(traceId);
    expect(priced.span_id).toBe(child.spanContext().spanId);
    expect(other.metadata).toMatchObject({ "tollgate.wrapper": "usage reported by descendant spans" });
    expect((await budgetSpend()) - spent).toBe(gateway.cost_nanousd);
  });

  it("the wrapper first (an export retried late): the call it wraps is not priced again, nor charged", async () => {
    const spent = await budgetSpend();
    const { child, wrapper, traceId } = spansOfWrappedCall();
    await exportSpans(protoExporter(), [wrapper]);
    await exportSpans(protoExporter(), [child]);
    const { priced, other } = await expectPricedOnce(traceId);
    expect(priced.span_id).toBe(wrapper.spanContext().spanId);
    expect(other.metadata).toMatchObject({ "tollgate.usage_counted_on": wrapper.spanContext().spanId });
    await exportSpans(protoExporter(), [child, wrapper]);
    await expectPricedOnce(traceId);
    expect((await budgetSpend()) - spent).toBe(gateway.cost_nanousd);
  });

  it("the wrapper first but unpriced (it names a deployment alias): the call it wraps is priced and charged, as in one export", async () => {
    const spent = await budgetSpend();
    const alias = { "gen_ai.request.model": "my-o3-deployment", "gen_ai.response.model": "my-o3-deployment" };
    for (const apart of [true, false]) {
      const { child, wrapper, traceId } = spansOfWrappedCall(alias);
      if (apart) {
        await exportSpans(protoExporter(), [wrapper]);
        await exportSpans(protoExporter(), [child]);
      } else await exportSpans(protoExporter(), [child, wrapper]);
      const call = await storedSpan(child);
      expect(call.metadata["tollgate.usage_counted_on"]).toBeUndefined();
      expectSameCost(call, gateway);
      expect(await storedSpan(wrapper)).toMatchObject({ priced: false, cost_nanousd: 0n });
      const recs = await storedSpans(traceId);
      expect(recs.reduce((a, r) => a + r.cost_nanousd, 0n)).toBe(gateway.cost_nanousd);
    }
    expect((await budgetSpend()) - spent).toBe(2n * gateway.cost_nanousd);
  });

  it("both exports at once, in either order, and through the real SimpleSpanProcessor: priced and charged once", async () => {
    const spent = await budgetSpend();
    const traces: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { child, wrapper, traceId } = spansOfWrappedCall();
      const spans = i % 2 ? [wrapper, child] : [child, wrapper];
      await Promise.all(spans.map((s) => exportSpans(protoExporter(), [s])));
      traces.push(traceId);
    }
    // SimpleSpanProcessor exports each span as it ends, without waiting for the one before.
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ "service.name": "otlp-test" }),
      spanProcessors: [new SimpleSpanProcessor(protoExporter())],
    });
    for (let i = 0; i < 4; i++) traces.push(wrappedCall(provider.getTracer("t")).traceId);
    await provider.forceFlush();
    await provider.shutdown();
    for (const traceId of traces) await expectPricedOnce(traceId);
    expect((await budgetSpend()) - spent).toBe(BigInt(traces.length) * gateway.cost_nanousd);
  });
});

describe("OTLP ingest: a call refused below its wrapper (its usage stored nowhere)", () => {
  const USER = "u-refused-below";
  const llmBody = JSON.parse(fixture(FX.chatReasoning));
  const call = {
    "user.id": USER,
    "gen_ai.request.model": "o3-mini",
    ...semconvAttributes("openai.chat", llmBody),
  };
  const badUsage = { "gen_ai.usage.output_tokens": -1 };
  // Refused by the mapping (a token count that is no count), or by the record's validation.
  const REFUSED_CALLS = [
    ["a token count that is no count", { ...call, ...badUsage }],
    ["a user id past 256 characters", { ...call, "user.id": "u".repeat(300) }],
  ] as const;
  let gateway: CallRecord;

  beforeAll(async () => {
    gateway = await gatewayRecordFor("openai.chat", "o3-mini");
    await createUserBudget("refused-below", USER);
  });
  const budgetSpend = () => budgetSpendOf("refused-below");

  /** Spans nested in the order given (each the parent of the next), as they end: innermost first. */
  function nested(...attributes: Attributes[]): ReadableSpan[] {
    const t = tracing();
    let ctx = context.active();
    const open = attributes.map((a, i) => {
      const kind = i === attributes.length - 1 ? SpanKind.CLIENT : SpanKind.INTERNAL;
      const span = t.tracer.startSpan(`span ${i}`, { kind, attributes: a }, ctx);
      ctx = trace.setSpan(ctx, span);
      return span;
    });
    for (const span of open.reverse()) span.end();
    return t.take();
  }

  const traceOf = (span: ReadableSpan) => span.spanContext().traceId;
  const isStored = async (span: ReadableSpan) =>
    (await storedSpans(traceOf(span))).some((r) => r.span_id === span.spanContext().spanId);

  /** The trace costs the call's price once, on `priced`. */
  async function expectPricedOn(priced: ReadableSpan) {
    expectSameCost(await storedSpan(priced), gateway);
    const recs = await storedSpans(traceOf(priced));
    expect(recs.reduce((a, r) => a + r.cost_nanousd, 0n)).toBe(gateway.cost_nanousd);
  }

  it.each(REFUSED_CALLS)(
    "the call refused (%s), exported with its wrapper in either order: the wrapper is priced and charged",
    async (_, refusedCall) => {
      const spent = await budgetSpend();
      for (const reversed of [false, true]) {
        const [child, wrapper] = nested(call, refusedCall);
        await exportSpans(protoExporter(), reversed ? [wrapper!, child!] : [child!, wrapper!]);
        expect(await isStored(child!)).toBe(false);
        await expectPricedOn(wrapper!);
        expect((await storedSpan(wrapper!)).metadata).not.toHaveProperty("tollgate.wrapper");
        // A retry of the export changes nothing.
        await exportSpans(protoExporter(), [child!, wrapper!]);
        await expectPricedOn(wrapper!);
      }
      expect((await budgetSpend()) - spent).toBe(2n * gateway.cost_nanousd);
    },
  );

  it.each(REFUSED_CALLS)(
    "the call refused (%s), exported apart from its wrapper in either order: the wrapper is priced and charged once",
    async (_, refusedCall) => {
      const spent = await budgetSpend();
      for (const wrapperFirst of [false, true]) {
        const [child, wrapper] = nested(call, refusedCall);
        const exports = wrapperFirst ? [[wrapper!], [child!]] : [[child!], [wrapper!]];
        for (const spans of exports) await exportSpans(protoExporter(), spans);
        await expectPricedOn(wrapper!);
      }
      expect((await budgetSpend()) - spent).toBe(2n * gateway.cost_nanousd);
    },
  );

  it("the innermost call that is not refused is priced, however deep the wrappers", async () => {
    const [refused, inner, outer] = nested(call, call, { ...call, ...badUsage });
    await exportSpans(protoExporter(), [refused!, inner!, outer!]);
    expect(await isStored(refused!)).toBe(false);
    await expectPricedOn(inner!);
    expect((await storedSpan(outer!)).metadata).toMatchObject({ "tollgate.wrapper": expect.any(String) });

    // The span between refused as well once priced (its own token count is bad too): the outer one is priced.
    const [innermost, between, top] = nested(call, { ...call, ...badUsage }, { ...call, ...badUsage });
    await exportSpans(protoExporter(), [innermost!, between!, top!]);
    expect(await isStored(innermost!)).toBe(false);
    expect(await isStored(between!)).toBe(false);
    await expectPricedOn(top!);
  });

  it("a wrapper of a call stored by an earlier export stays a wrapper when its other call is refused", async () => {
    const t = tracing();
    const wrapper = t.tracer.startSpan("wrapper", { attributes: call });
    const under = trace.setSpan(context.active(), wrapper);
    t.tracer.startSpan("first", { kind: SpanKind.CLIENT, attributes: call }, under).end();
    t.tracer.startSpan("retry", { kind: SpanKind.CLIENT, attributes: REFUSED_CALLS[0][1] }, under).end();
    wrapper.end();
    const [first, retry, wrapperSpan] = t.take();
    await exportSpans(protoExporter(), [first!]);
    await exportSpans(protoExporter(), [retry!, wrapperSpan!]);
    expect(await isStored(retry!)).toBe(false);
    await expectPricedOn(first!);
    expect(await storedSpan(wrapperSpan!)).toMatchObject({ kind: "other", priced: false, cost_nanousd: 0n });
  });
});

describe("OTLP ingest: a model call whose tool calls and sub-agents call models", () => {
  const llmBody = JSON.parse(fixture(FX.chatReasoning));
  const llmAttrs = { "gen_ai.request.model": "o3-mini", ...semconvAttributes("openai.chat", llmBody) };

  /**
   * Google ADK's shape: its call_llm span (a model call with its own usage) stays the current span while
   * the tools the model asked for run, and while the agent it transfers to runs, so their model calls
   * are its descendants, under an execute_tool or invoke_agent span. Each of the three is a call of its own.
   */
  function callWithToolsBelow() {
    const t = tracing();
    const under = (parent: Span) => trace.setSpan(context.active(), parent);
    const outer = t.tracer.startSpan("call_llm", { attributes: llmAttrs });
    const tool = t.tracer.startSpan(
      "execute_tool research",
      { attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "research" } },
      under(outer),
    );
    t.tracer.startSpan("chat o3-mini", { attributes: llmAttrs }, under(tool)).end();
    tool.end();
    const agent = t.tracer.startSpan(
      "invoke_agent Helper",
      { attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Helper" } },
      under(outer),
    );
    t.tracer.startSpan("chat o3-mini", { attributes: llmAttrs }, under(agent)).end();
    agent.end();
    outer.end();
    const spans = t.take();
    expect(spans.map((s) => s.name)).toEqual([
      "chat o3-mini",
      "execute_tool research",
      "chat o3-mini",
      "invoke_agent Helper",
      "call_llm",
    ]);
    return { spans, outer: spans[4]!, traceId: outer.spanContext().traceId };
  }

  it("the outer call is priced, not taken for a wrapper: in one export, exported apart in either order", async () => {
    const gateway = await gatewayRecordFor("openai.chat", "o3-mini");
    const orders: ((spans: ReadableSpan[]) => ReadableSpan[][])[] = [
      (spans) => [spans],
      (spans) => [spans.slice(0, 4), spans.slice(4)], // the calls below first: children end first
      (spans) => [spans.slice(4), spans.slice(0, 4)], // the outer call first (a retry of the rest, late)
    ];
    for (const order of orders) {
      const { spans, outer, traceId } = callWithToolsBelow();
      for (const part of order(spans)) await exportSpans(protoExporter(), part);
      const calls = (await storedSpans(traceId)).filter((r) => r.kind === "llm");
      expect(calls).toHaveLength(3);
      for (const c of calls) expectSameCost(c, gateway);
      expect((await storedSpan(outer)).metadata).not.toHaveProperty("tollgate.wrapper");
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// OpenLLMetry: @traceloop/instrumentation-openai around the real openai SDK

describe("OTLP ingest: OpenLLMetry's OpenAI instrumentation", () => {
  const t = tracing({ "service.name": "openllmetry-app" });
  let direct: OpenAI;
  let instrumentation: OpenAIInstrumentation;
  const engine = new PricingEngine();

  beforeAll(() => {
    instrumentation = new OpenAIInstrumentation({ traceContent: false });
    instrumentation.setTracerProvider(t.provider);
    instrumentation.manuallyInstrument(OpenAI);
    direct = new OpenAI({ apiKey: "sk-test-123", baseURL: `${mock.url}/v1`, maxRetries: 0 });
  });
  afterAll(() => instrumentation.disable());

  /** One instrumented call straight to the mock, its span exported over OTLP, and the record. */
  async function instrumentedCall(
    call: () => Promise<unknown>,
  ): Promise<{ span: ReadableSpan; rec: CallRecord }> {
    t.take(); // the gateway client is instrumented too: only this call's span is exported
    await call();
    const spans = t.take();
    expect(spans).toHaveLength(1);
    await exportSpans(protoExporter(), spans);
    return { span: spans[0]!, rec: await storedSpan(spans[0]!) };
  }

  it("chat completion without cache or reasoning: same usage and cost as the gateway", async () => {
    const params = { model: "gpt-4.1-nano", messages };
    const { span, rec } = await instrumentedCall(() => direct.chat.completions.create(params));
    expect(span.attributes).toMatchObject({
      "gen_ai.provider.name": "openai",
      "gen_ai.operation.name": "chat",
    });
    expectSameCost(rec, await gatewayRecordFor("openai.chat", "gpt-4.1-nano"));
    expect(rec).toMatchObject({ kind: "llm", model_requested: "gpt-4.1-nano", api: null });
    expect(rec.metadata).toMatchObject({ "service.name": "openllmetry-app" });
  });

  it("reasoning: the instrumentation reports completion_tokens (reasoning included) but not the reasoning split: same cost, reasoning_tokens 0", async () => {
    const { span, rec } = await instrumentedCall(() =>
      direct.chat.completions.create({ model: "o3-mini", messages }),
    );
    expect(Object.keys(span.attributes).filter((k) => k.includes("reasoning"))).toEqual([]);
    const gateway = await gatewayRecordFor("openai.chat", "o3-mini");
    expect(rec.output_tokens).toBe(gateway.output_tokens);
    expect(gateway.reasoning_tokens).toBe(1792);
    expect(rec.reasoning_tokens).toBe(0); // dropped by the instrumentation, so unknown here
    expect(rec.cost_nanousd).toBe(gateway.cost_nanousd); // reasoning is billed as output either way
  });

  it("cache reads: the instrumentation drops cached_tokens, so the OTLP record bills them as uncached input (documented gap)", async () => {
    const { span, rec } = await instrumentedCall(() =>
      direct.chat.completions.create({ model: "gpt-5.6-sol", messages }),
    );
    expect(Object.keys(span.attributes).filter((k) => k.includes("cache"))).toEqual([]);
    expect(span.attributes["gen_ai.usage.input_tokens"]).toBe(4020); // prompt_tokens, cached included
    const gateway = await gatewayRecordFor("openai.chat", "gpt-5.6-sol");
    expect(gateway).toMatchObject({ cache_read_tokens: 4012, input_uncached_tokens: 8 });
    expect(rec).toMatchObject({
      cache_read_tokens: 0,
      input_uncached_tokens: 4020,
      output_tokens: gateway.output_tokens,
    });
    const expected = engine.price({ provider: "openai", model: rec.model, usage: rec, at: rec.ts_start });
    expect(rec.cost_nanousd).toBe(expected.cost.total_nanousd);
    expect(rec.cost_nanousd > gateway.cost_nanousd).toBe(true);
  });

  it("Responses API: reported as operation chat (api unknown) with input/output totals only; cached input billed as uncached", async () => {
    const { span, rec } = await instrumentedCall(() =>
      direct.responses.create({ model: "gpt-5", input: "hi" }),
    );
    expect(span.attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.usage.input_tokens": 1493,
      "gen_ai.usage.output_tokens": 125,
    });
    const gateway = await gatewayRecordFor("openai.responses", "gpt-5");
    expect(rec).toMatchObject({
      api: null,
      input_uncached_tokens: 1493,
      cache_read_tokens: 0,
      output_tokens: 125,
      reasoning_tokens: 0,
    });
    expect(gateway).toMatchObject({
      input_uncached_tokens: 213,
      cache_read_tokens: 1280,
      reasoning_tokens: 64,
    });
    expect(rec.cost_nanousd > gateway.cost_nanousd).toBe(true);
  });

  it("streaming: the instrumentation records no usage for a stream, so the record's cost is unknown, not 0", async () => {
    const { span, rec } = await instrumentedCall(async () => {
      const stream = await direct.chat.completions.create({
        model: "gpt-4o-mini",
        messages,
        stream: true,
        stream_options: { include_usage: true },
      });
      for await (const _ of stream);
    });
    expect(Object.keys(span.attributes).filter((k) => k.startsWith("gen_ai.usage."))).toEqual([]);
    expect(rec).toMatchObject({
      kind: "llm",
      priced: false,
      price_ref: "no_usage",
      cost_nanousd: 0n,
      model: "gpt-4o-mini-2024-07-18",
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// bad input: typed errors, nothing stored

async function post(
  body: Uint8Array | string,
  headers: Record<string, string>,
  key: string | null = ingestKey,
) {
  const res = await fetch(tracesUrl(), {
    method: "POST",
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    body: body as NonNullable<RequestInit["body"]>,
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    bytes,
    json: () => JSON.parse(new TextDecoder().decode(bytes)),
  };
}

const PB = { "content-type": "application/x-protobuf" };
const JSON_CT = { "content-type": "application/json" };
const hex = (n: number, len: number) => n.toString(16).padStart(len, "0");
const bytesOf = (h: string) => Buffer.from(h, "hex");
let seq = 1;

/** A protobuf export built with Tollgate's own descriptor (to make invalid-but-decodable requests). */
function pbExport(spans: Record<string, unknown>[], resource: Record<string, unknown>[] = []) {
  return ExportTraceServiceRequest.encode({
    resourceSpans: [{ resource: { attributes: resource }, scopeSpans: [{ spans }] }],
  }).finish();
}
/** A chat span's attributes in OTLP's KeyValue form (JSON sends the input count as an int64 string). */
function chatKeyValues(inputTokens: number | string = 100) {
  return [
    { key: "gen_ai.operation.name", value: { stringValue: "chat" } },
    { key: "gen_ai.provider.name", value: { stringValue: "openai" } },
    { key: "gen_ai.request.model", value: { stringValue: "gpt-4o-mini" } },
    { key: "gen_ai.usage.input_tokens", value: { intValue: inputTokens } },
    { key: "gen_ai.usage.output_tokens", value: { intValue: 10 } },
  ];
}
/** A valid span of a fresh trace: ids as bytes for protobuf, as hex for JSON. */
function testSpan(format: "protobuf" | "json", over: Record<string, unknown>) {
  const n = seq++;
  const start = BigInt(Date.now() - 1000) * 1_000_000n;
  const json = format === "json";
  return {
    traceId: json ? hex(n, 32) : bytesOf(hex(n, 32)),
    spanId: json ? hex(n, 16) : bytesOf(hex(n, 16)),
    name: "chat",
    kind: 3,
    startTimeUnixNano: start.toString(),
    endTimeUnixNano: (start + 5_000_000n).toString(),
    attributes: chatKeyValues(json ? "100" : 100),
    status: { code: 1 },
    ...over,
  };
}
const pbSpan = (over: Record<string, unknown> = {}) => testSpan("protobuf", over);
const jsonSpan = (over: Record<string, unknown> = {}) => testSpan("json", over);
const jsonExport = (spans: unknown[]) =>
  JSON.stringify({
    resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ scope: { name: "x" }, spans }] }],
  });

describe("OTLP ingest: bad input", () => {
  const refused: [string, () => Promise<Awaited<ReturnType<typeof post>>>, number, string][] = [
    [
      "wrong content-type",
      () => post(pbExport([pbSpan()]), { "content-type": "text/plain" }),
      415,
      "unsupported_media_type",
    ],
    ["no content-type", () => post(pbExport([pbSpan()]), {}), 415, "unsupported_media_type"],
    [
      "an unknown content-encoding",
      () => post(pbExport([pbSpan()]), { ...PB, "content-encoding": "br" }),
      415,
      "unsupported_content_encoding",
    ],
    [
      "garbage protobuf",
      () => post(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]), PB),
      400,
      "invalid_otlp",
    ],
    ["a protobuf wire-type error", () => post(new Uint8Array([0x0f, 0x01]), PB), 400, "invalid_otlp"],
    ["JSON sent as protobuf", () => post(jsonExport([jsonSpan()]), PB), 400, "invalid_otlp"],
    ["invalid UTF-8 in a protobuf string", () => post(badUtf8Protobuf(), PB), 400, "invalid_otlp"],
    [
      "a body that is not gzip",
      () => post(pbExport([pbSpan()]), { ...PB, "content-encoding": "gzip" }),
      400,
      "invalid_gzip",
    ],
    [
      "truncated gzip",
      () => post(gzipSync(pbExport([pbSpan()])).subarray(0, 20), { ...PB, "content-encoding": "gzip" }),
      400,
      "invalid_gzip",
    ],
    [
      "a gzip bomb",
      () => post(gzipSync(Buffer.alloc(80 * 1024 * 1024)), { ...PB, "content-encoding": "gzip" }),
      413,
      "body_too_large",
    ],
    ["not JSON", () => post("{resourceSpans:", JSON_CT), 400, "invalid_otlp"],
    ["invalid UTF-8 JSON", () => post(new Uint8Array([0x7b, 0xff, 0x7d]), JSON_CT), 400, "invalid_otlp"],
    [
      "resourceSpans not an array",
      () => post(JSON.stringify({ resourceSpans: 5 }), JSON_CT),
      400,
      "invalid_otlp",
    ],
    [
      "a time that is not an integer",
      () => post(jsonExport([jsonSpan({ startTimeUnixNano: "soon" })]), JSON_CT),
      400,
      "invalid_otlp",
    ],
    [
      "an id that is not a string",
      () => post(jsonExport([jsonSpan({ traceId: 42 })]), JSON_CT),
      400,
      "invalid_otlp",
    ],
    [
      "an AnyValue of the wrong type",
      () => post(jsonExport([jsonSpan({ attributes: [{ key: "k", value: { intValue: "x" } }] })]), JSON_CT),
      400,
      "invalid_otlp",
    ],
    [
      "an attribute value nested too deep",
      () => post(jsonExport([jsonSpan({ attributes: [{ key: "k", value: deepValue(40) }] })]), JSON_CT),
      400,
      "invalid_otlp",
    ],
    [
      "more than 10,000 spans",
      () => post(pbExport(Array.from({ length: 10_001 }, () => pbSpan())), PB),
      413,
      "batch_too_large",
    ],
    // ~60 KB gzip bodies that inflate (within the limit) to 30 million empty spans: refused at the limit,
    // not decoded whole first (that ran the process out of heap).
    [
      "30 million empty protobuf spans",
      () => post(gzipSync(emptySpansProtobuf(30_000_000)), { ...PB, "content-encoding": "gzip" }),
      413,
      "batch_too_large",
    ],
    [
      "30 million empty protobuf resourceSpans",
      () =>
        post(gzipSync(Buffer.alloc(60_000_000, Uint8Array.from([0x0a, 0x00]))), {
          ...PB,
          "content-encoding": "gzip",
        }),
      413,
      "batch_too_large",
    ],
    ["no key", () => post(pbExport([pbSpan()]), PB, null), 401, "missing_api_key"],
  ];

  it.each(refused)("%s → typed error, nothing stored", async (_, send, status, code) => {
    const before = await countAll();
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.json()).toMatchObject({
      error: { type: expect.any(String), code, message: expect.any(String) },
    });
    expect(await countAll()).toBe(before);
  });

  it("a read key may not export", async () => {
    const read = await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "read");
    const res = await post(pbExport([pbSpan()]), PB, read.json.key);
    expect(res.status).toBe(403);
  });

  it("invalid spans are refused by name in partial_success (protobuf response); the valid ones are stored", async () => {
    const good = pbSpan();
    const spans = [
      good,
      pbSpan({ traceId: new Uint8Array() }),
      pbSpan({ spanId: bytesOf("0000000000000000") }),
      pbSpan({ startTimeUnixNano: "0" }),
      pbSpan({
        attributes: [...chatKeyValues(), { key: "user.id", value: { stringValue: "u".repeat(10_000) } }],
      }),
      pbSpan({
        attributes: [
          ...chatKeyValues().slice(0, 3),
          { key: "gen_ai.usage.input_tokens", value: { intValue: "1152921504606846976" } },
        ],
      }),
    ];
    const before = await countAll();
    const res = await post(pbExport(spans), PB);
    expect(res.status).toBe(200);
    expect(res.type).toBe("application/x-protobuf");
    const decoded = ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(res.bytes), {
      longs: Number,
    }) as Json;
    expect(decoded.partialSuccess.rejectedSpans).toBe(5);
    const msg: string = decoded.partialSuccess.errorMessage;
    for (const part of [
      "trace_id",
      "span_id",
      "start_time_unix_nano",
      "user_id: must be at most 256 characters",
      "gen_ai.usage.input_tokens: token count is too large",
    ])
      expect(msg).toContain(part);
    expect(await countAll()).toBe(before + 1);
  });

  it("JSON: spans missing ids are refused in a JSON partialSuccess; a full success has none", async () => {
    const res = await post(
      jsonExport([jsonSpan(), jsonSpan({ traceId: undefined }), jsonSpan({ spanId: "xyz" })]),
      JSON_CT,
    );
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      partialSuccess: {
        rejectedSpans: "2",
        errorMessage: expect.stringContaining("trace_id: must be 16 bytes"),
      },
    });
    const ok = await post(jsonExport([jsonSpan()]), JSON_CT);
    expect(ok.json()).toEqual({});
    const empty = await post(pbExport([]), PB);
    expect(empty.status).toBe(200);
    expect(empty.bytes.byteLength).toBe(0);
  });

  it("JSON: int64 and uint64 sent as JSON numbers past 2^53 are taken, as the protobuf JSON mapping allows", async () => {
    // OpenTelemetry JS's own JSON encoder sends nanosecond times as numbers where BigInt is missing (and
    // older exporters always did): every real time is past 2^53, so it arrives as an integral double.
    const startMs = Date.now() - 1000;
    const span = jsonSpan({
      startTimeUnixNano: startMs * 1e6,
      endTimeUnixNano: (startMs + 5) * 1e6,
      attributes: [
        ...chatKeyValues("100"),
        { key: "app.request.bytes", value: { intValue: 2 ** 60 } }, // an attribute Tollgate does not read
      ],
    });
    const before = await countAll();
    const res = await post(jsonExport([span]), JSON_CT);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({});
    expect(await countAll()).toBe(before + 1);
    const rec = (await storedSpans(span.traceId as string))[0]!;
    // A double holds a nanosecond time to within 256 ns: the millisecond may come out one less.
    expect(Math.abs(rec.ts_start - startMs)).toBeLessThanOrEqual(1);
    expect(Math.abs(rec.ts_end! - (startMs + 5))).toBeLessThanOrEqual(1);
    expect(rec.priced).toBe(true);

    // A token count past 2^53 is still refused by name (the span only), not the export.
    const big = jsonSpan({
      attributes: [
        ...chatKeyValues("100").filter((kv) => kv.key !== "gen_ai.usage.output_tokens"),
        { key: "gen_ai.usage.output_tokens", value: { intValue: 2 ** 60 } },
      ],
    });
    const refused = await post(jsonExport([big]), JSON_CT);
    expect(refused.status).toBe(200);
    expect(refused.json().partialSuccess).toMatchObject({
      rejectedSpans: "1",
      errorMessage: expect.stringContaining("gen_ai.usage.output_tokens: token count is too large"),
    });
    // A fraction is still no integer.
    const notInt = await post(jsonExport([jsonSpan({ startTimeUnixNano: 1.5 })]), JSON_CT);
    expect(notInt.status).toBe(400);
    expect(notInt.json().error.message).toContain("startTimeUnixNano");
  });

  it("an int64 past 2^53 inside a gen_ai.usage.* array or kvlist is stored as its digits, not a 500 for the export", async () => {
    const span = jsonSpan({
      attributes: [
        ...chatKeyValues("100"),
        {
          key: "gen_ai.usage.details",
          value: { kvlistValue: { values: [{ key: "big", value: { intValue: "1152921504606846976" } }] } },
        },
      ],
    });
    const before = await countAll();
    const res = await post(jsonExport([span, jsonSpan()]), JSON_CT);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({});
    expect(await countAll()).toBe(before + 2);
    const rec = (await storedSpans(span.traceId as string))[0]!;
    expect(rec.usage_raw).toMatchObject({ "gen_ai.usage.details": { big: "1152921504606846976" } });
  });

  it("a store that is down answers 503 (exporters retry it), nothing half-written", async () => {
    const rt = await openTestRuntime();
    try {
      const append = rt.store.append.bind(rt.store);
      rt.store.append = async () => {
        throw new Error("disk full");
      };
      const res = await rt.app.request("/v1/traces", {
        method: "POST",
        headers: { authorization: `Bearer ${rt.rootToken}`, ...PB },
        body: pbExport([pbSpan(), pbSpan()]),
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: "store_unavailable" } });
      rt.store.append = append;
      expect(await rt.store.count({ workspaceId: "default" })).toBe(0);
    } finally {
      await rt.close();
    }
  });

  it("a store that cannot be read (to find a wrapper's call) answers 503 too, nothing stored", async () => {
    const rt = await openTestRuntime();
    try {
      // INTERNAL spans (a framework's), whose calls an earlier export may have stored: the store is read.
      const body = pbExport([pbSpan({ kind: 1 }), pbSpan({ kind: 1 })]);
      const post = () =>
        rt.app.request("/v1/traces", {
          method: "POST",
          headers: { authorization: `Bearer ${rt.rootToken}`, ...PB },
          body,
        });
      const traceSpans = rt.store.traceSpans;
      rt.store.traceSpans = async () => {
        throw new Error("connection refused");
      };
      // A 500 is not retried by OTLP exporters: the export, and the calls in it, would be lost.
      const res = await post();
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: "store_unavailable" } });
      expect(await rt.store.count({ workspaceId: "default" })).toBe(0);
      rt.store.traceSpans = traceSpans;
      expect((await post()).status).toBe(200);
      expect(await rt.store.count({ workspaceId: "default" })).toBe(2);
    } finally {
      await rt.close();
    }
  });
});

describe("OTLP ingest: how much an export may hold", () => {
  it("a 58 KB gzip JSON export of 20 million empty spans is refused at once by name, not parsed for seconds", async () => {
    const spans = `${"{},".repeat(20_000_000 - 1)}{}`;
    const body = gzipSync(`{"resourceSpans":[{"scopeSpans":[{"spans":[${spans}]}]}]}`, { level: 9 });
    expect(body.byteLength).toBeLessThan(60_000);
    const before = await countAll();
    const started = performance.now();
    const res = await post(body, { ...JSON_CT, "content-encoding": "gzip" });
    const ms = performance.now() - started;
    expect(res.status).toBe(413);
    expect(res.json().error).toMatchObject({
      type: "invalid_request_error",
      code: "batch_too_large",
      message: expect.stringMatching(/at most 2000000 objects and arrays .*lower the exporter's batch size/),
    });
    // JSON.parse alone took ~20 s over the 60 MB; the refusal reads ~6 MB of it (generous for a shared box).
    expect(ms).toBeLessThan(3_000);
    expect(await countAll()).toBe(before);
  });

  it("a full export (10,000 spans of 35 attributes, 45 MB of JSON: far past the raw body limit) is stored whole through gzip", async () => {
    const spans = Array.from({ length: 10_000 }, (_, i) =>
      jsonSpan({
        attributes: [
          ...chatKeyValues("100"),
          ...Array.from({ length: 30 }, (_, k) => ({
            key: `gen_ai.prompt.${k}.content`,
            value: { stringValue: `{"step": ${k}, "text": "[${"word ".repeat(8)}]", "span": ${i}}` },
          })),
        ],
      }),
    );
    const json = jsonExport(spans);
    expect(json.length).toBeGreaterThan(45_000_000);
    const before = await countAll();
    const res = await post(gzipSync(json), { ...JSON_CT, "content-encoding": "gzip" });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({});
    expect(await countAll()).toBe(before + 10_000);
  });

  it("a 39 KB gzip protobuf export of one attribute of 20 million empty array values is refused at once by name, not decoded for seconds", async () => {
    const key = lenField(1, Buffer.from("gen_ai.usage.x"));
    const values = lenField(2, lenField(5, Buffer.alloc(40_000_000, Uint8Array.from([0x0a, 0x00]))));
    const span = Buffer.concat([
      SpanMessage.encode(pbSpan()).finish(),
      lenField(9, Buffer.concat([key, values])),
    ]);
    const body = gzipSync(oneScopeProtobuf(lenField(2, span)), { level: 9 });
    expect(body.byteLength).toBeLessThan(40_000);
    const before = await countAll();
    const started = performance.now();
    const res = await post(body, { ...PB, "content-encoding": "gzip" });
    const ms = performance.now() - started;
    expect(res.status).toBe(413);
    expect(res.json().error).toMatchObject({
      type: "invalid_request_error",
      code: "batch_too_large",
      message: expect.stringMatching(/at most 2000000 attribute values .*lower the exporter's batch size/),
    });
    // Decoding them all took ~1 s and mapping the span (then refused: its usage_raw was too long) ~2 s
    // more; the refusal inflates the 40 MB and decodes 4 MB of them (generous for a shared box).
    expect(ms).toBeLessThan(1_500);
    expect(await countAll()).toBe(before);
  });

  it("a full protobuf export (10,000 spans of 156 attribute values: 1.56 million, 49 MB) is stored whole through gzip", async () => {
    const spans = Array.from({ length: 10_000 }, (_, i) =>
      pbSpan({
        attributes: [
          ...chatKeyValues(),
          ...Array.from({ length: 100 }, (_, k) => ({
            key: `app.attribute.${k}`,
            value: { stringValue: `value ${k} of span ${i}` },
          })),
          {
            key: "app.steps",
            value: { arrayValue: { values: Array.from({ length: 50 }, (_, k) => ({ intValue: k + 1 })) } },
          },
        ],
      }),
    );
    const before = await countAll();
    const bytes = pbExport(spans);
    expect(bytes.length).toBeGreaterThan(49_000_000);
    const res = await post(gzipSync(bytes), { ...PB, "content-encoding": "gzip" });
    expect(res.status).toBe(200);
    expect(res.bytes.byteLength).toBe(0); // a full success: an empty ExportTraceServiceResponse
    expect(await countAll()).toBe(before + 10_000);
  });
});

/** One resourceSpans holding one scopeSpans of `spans` (encoded Span fields, each a field 2). */
const oneScopeProtobuf = (spans: Uint8Array) => lenField(1, lenField(2, spans));

/** One resourceSpans holding one scopeSpans of `n` empty spans (2 bytes each). */
function emptySpansProtobuf(n: number): Buffer {
  return oneScopeProtobuf(Buffer.alloc(2 * n, Uint8Array.from([0x12, 0x00])));
}

function deepValue(depth: number): unknown {
  let v: unknown = { stringValue: "x" };
  for (let i = 0; i < depth; i++) v = { arrayValue: { values: [v] } };
  return v;
}

/** A span whose name field holds bytes that are not UTF-8 (proto3 strings must be). */
function badUtf8Protobuf(): Uint8Array {
  const ok = pbExport([pbSpan({ name: "AAAA" })]);
  const at = Buffer.from(ok).indexOf(Buffer.from("AAAA"));
  const bad = Buffer.from(ok);
  bad[at] = 0xff;
  bad[at + 1] = 0xfe;
  return bad;
}
