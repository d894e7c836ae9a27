#!/usr/bin/env node
// OTLP trace ingest throughput: POST /v1/traces with protobuf exports of 500 GenAI spans each (made with the
// real OpenTelemetry SDK and serialized by its OTLP protobuf serializer, as the exporter sends them), several
// in flight, into a real `tollgate serve` (DuckDB, durable acks); then the same calls as JSON records through
// POST /v1/events as a baseline. Usage: npm run bench:otlp [-- --spans 200000 --batch 500 --concurrency 4]
import { SpanKind } from "@opentelemetry/api";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { uuidv7 } from "@tollgate/core";
import { benchArgs } from "./args.mjs";
import { cpuSeconds, openDayStart, rssKb, startServe } from "./serve.mjs";

const { values } = benchArgs(import.meta.url, {
  spans: { type: "string", default: "200000" },
  batch: { type: "string", default: "500" },
  concurrency: { type: "string", default: "4" },
});
const total = Number(values.spans);
const batchSize = Number(values.batch);
const concurrency = Number(values.concurrency);

const MODELS = [
  ["openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"],
  ["openai", "gpt-5", "gpt-5-2025-08-07"],
  ["anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"],
  ["gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash"],
];
const FEATURES = ["chat", "search", "summarize", "agent"];

/** The attributes a GenAI instrumentation sets on one chat span (counts in OTel's inclusive convention). */
function genaiAttributes(i) {
  const [provider, model, responseModel] = MODELS[i % MODELS.length];
  const cacheRead = i % 3 === 0 ? 1024 : 0;
  const uncached = 500 + (i % 1500);
  const reasoning = model === "gpt-5" ? 50 : 0;
  return {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": provider,
    "gen_ai.request.model": model,
    "gen_ai.request.max_tokens": 1024,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.response.model": responseModel,
    "gen_ai.response.id": `resp_${i.toString(36)}`,
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.usage.input_tokens": uncached + cacheRead,
    "gen_ai.usage.cache_read.input_tokens": cacheRead,
    "gen_ai.usage.output_tokens": 100 + (i % 400) + reasoning,
    "gen_ai.usage.reasoning.output_tokens": reasoning,
    "server.address": "api.example.com",
    "user.id": `user-${i % 5000}`,
    "session.id": `sess-${i % 20000}`,
    "tollgate.customer_id": `cust-${i % 300}`,
    "tollgate.feature": FEATURES[i % FEATURES.length],
    "tollgate.prompt_version": "v3",
  };
}

// Spans are made and serialized before the clock starts: the client's own work is not the server's throughput.
const memory = new InMemorySpanExporter();
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "bench-app", "deployment.environment.name": "prod" }),
  spanProcessors: [new SimpleSpanProcessor(memory)],
});
const tracer = provider.getTracer("bench");
const start = openDayStart();
const otlpBodies = [];
const eventBodies = [];
for (let b = 0; b < total / batchSize; b++) {
  for (let k = 0; k < batchSize; k++) {
    const i = b * batchSize + k;
    const ts = start + i;
    const s = tracer.startSpan(`chat ${i}`, {
      kind: SpanKind.CLIENT,
      attributes: genaiAttributes(i),
      startTime: ts,
    });
    s.end(ts + 900);
  }
  const spans = memory.getFinishedSpans().slice();
  memory.reset();
  otlpBodies.push(ProtobufTraceSerializer.serializeRequest(spans));
  eventBodies.push(JSON.stringify(spans.map((s, k) => eventOf(s, b * batchSize + k))));
}

/** The same call as a /v1/events record (disjoint usage, same attribution), for the baseline. */
function eventOf(span, i) {
  const a = span.attributes;
  const [provider] = MODELS[i % MODELS.length];
  const ts = start + i;
  return {
    event_id: uuidv7(ts),
    trace_id: span.spanContext().traceId,
    span_id: span.spanContext().spanId,
    ts_start: ts,
    ts_end: ts + 900,
    provider: provider === "gcp.gemini" ? "google" : provider,
    model_requested: a["gen_ai.request.model"],
    model: a["gen_ai.response.model"],
    input_uncached_tokens: a["gen_ai.usage.input_tokens"] - a["gen_ai.usage.cache_read.input_tokens"],
    cache_read_tokens: a["gen_ai.usage.cache_read.input_tokens"],
    output_tokens: a["gen_ai.usage.output_tokens"],
    reasoning_tokens: a["gen_ai.usage.reasoning.output_tokens"],
    user_id: a["user.id"],
    session_id: a["session.id"],
    customer_id: a["tollgate.customer_id"],
    feature: a["tollgate.feature"],
    prompt_version: a["tollgate.prompt_version"],
    deployment: "prod",
    metadata: { "service.name": "bench-app", "gen_ai.response.id": a["gen_ai.response.id"] },
  };
}

async function run(path, contentType, bodies) {
  const server = await startServe();
  const cpuStart = cpuSeconds(server.pid);
  const started = performance.now();
  let next = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const res = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${server.token}`, "content-type": contentType },
          body,
        });
        const reply = new Uint8Array(await res.arrayBuffer());
        if (res.status !== 200)
          throw new Error(`HTTP ${res.status}: ${new TextDecoder().decode(reply).slice(0, 300)}`);
        // /v1/events answers per item; /v1/traces answers an empty ExportTraceServiceResponse when all were taken.
        if (path === "/v1/events") refused += JSON.parse(new TextDecoder().decode(reply)).rejected;
        else if (reply.byteLength) refused++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(server.pid) - cpuStart;
  const rss = rssKb(server.pid);
  await server.stop();
  if (refused) throw new Error(`${path}: ${refused} refusals`);
  return { seconds, cpu, rss, rate: total / seconds, bytes: bodies.reduce((a, b) => a + b.length, 0) };
}

const otlp = await run("/v1/traces", "application/x-protobuf", otlpBodies);
const events = await run("/v1/events", "application/json", eventBodies);

console.log(
  `otlp bench: ${total.toLocaleString()} GenAI spans in exports of ${batchSize}, ${concurrency} concurrent requests`,
);
for (const [name, r] of [
  ["POST /v1/traces (protobuf)", otlp],
  ["POST /v1/events (JSON)", events],
]) {
  console.log(`  ${name}`);
  console.log(`    body size        ${(r.bytes / 1e6).toFixed(0)} MB`);
  console.log(`    wall time        ${r.seconds.toFixed(2)} s`);
  console.log(`    throughput       ${Math.round(r.rate).toLocaleString()} spans/s`);
  console.log(
    `    server CPU       ${r.cpu.toFixed(2)} s (${(r.cpu / r.seconds).toFixed(2)} cores), ${Math.round((r.cpu * 1e6) / total)} CPU-µs/span, RSS ${(r.rss / 1024).toFixed(0)} MB at end`,
  );
}
console.log(
  `  OTLP / events ratio  ${(otlp.rate / events.rate).toFixed(2)}x (target >= 30,000 spans/s: ${otlp.rate >= 30_000 ? "met" : "NOT met"})`,
);
