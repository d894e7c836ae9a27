// Apps that already emit OpenTelemetry GenAI spans need no SDK of ours: point the OTLP exporter at
// Tollgate's /v1/traces. The spans below carry the attributes GenAI instrumentations emit (usage with
// cache reads inside input_tokens, as the semantic conventions count them); Tollgate prices them.
// Run `npx tollgate serve` first, then: node examples/otel-genai.mjs
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { tollgateEnv } from "./tollgate-env.mjs";

const { url, apiKey } = tollgateEnv();
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "support-bot", "deployment.environment.name": "prod" }),
  spanProcessors: [
    new BatchSpanProcessor(
      new OTLPTraceExporter({ url: `${url}/v1/traces`, headers: { authorization: `Bearer ${apiKey}` } }),
    ),
  ],
});
const tracer = provider.getTracer("otel-genai-example");

// Attribution travels as span attributes (OTel does not copy them to child spans, so each span has them).
const attribution = {
  "user.id": "u-7",
  "tollgate.customer_id": "initech",
  "tollgate.feature": "ticket-triage",
};

// An agent span (never priced: its children carry the usage) with one tool call and one model call.
await tracer.startActiveSpan("invoke_agent triage", async (agent) => {
  agent.setAttributes({
    ...attribution,
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "triage",
    "gen_ai.agent.id": "asst_triage_v2",
  });
  tracer.startActiveSpan("execute_tool lookup_order", (tool) => {
    tool.setAttributes({
      ...attribution,
      "gen_ai.operation.name": "execute_tool",
      "gen_ai.tool.name": "lookup_order",
    });
    tool.end();
  });
  tracer.startActiveSpan("chat gpt-4o-mini", (llm) => {
    llm.setAttributes({
      ...attribution,
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
      "gen_ai.usage.input_tokens": 2400,
      "gen_ai.usage.cache_read.input_tokens": 2048,
      "gen_ai.usage.output_tokens": 120,
    });
    llm.end();
  });
  agent.end();
});

await provider.forceFlush();
await provider.shutdown();
console.log("spans exported: see `npx tollgate spend --by feature`");
