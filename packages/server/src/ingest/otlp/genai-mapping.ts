import {
  ATTRIBUTION_FIELDS,
  type AttributionField,
  blankCallInput,
  isInferenceKind,
  type Kind,
  USAGE_FIELDS,
} from "@tollgate/core";
import { Attributes, TextFields } from "./attributes.js";
import { spanEventId } from "./event-id.js";
import { readUsage, UsageAttributeError, usageAttributes } from "./genai-usage.js";
import { type AttrMap, type AttrValue, type DecodedSpan, STATUS_ERROR } from "./spans.js";
import type { Uncounted } from "./wrappers.js";

/**
 * One OTLP span → one call-record input for core's buildCallRecord (which validates and prices it), after
 * the OTel GenAI semantic conventions and the legacy OpenLLMetry (Traceloop) names.
 *
 * - Inference spans (chat, text_completion, generate_content, embeddings) are kind llm/embedding, priced
 *   from their usage attributes. Tool, agent/workflow and other spans are kept as trace structure (kind
 *   tool/agent/other): never priced, and their usage attributes go to usage_raw only, so a wrapper that
 *   re-states its children's tokens adds nothing to any sum.
 * - `uncounted`: an inference-looking span whose usage is counted on another span (a framework wrapper
 *   around the client span, or the client span below a wrapper stored first: wrappers.ts): stored as kind
 *   other, for the same reason, with the entry saying why in its metadata.
 */
export type MappedSpan =
  | { ok: true; input: Record<string, unknown> }
  | { ok: false; field: string; reason: string };

const TRACELOOP = "traceloop.association.properties.";
const TOLLGATE_META = "tollgate.metadata.";
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO_ID = /^0+$/;

/** OTel gen_ai.provider.name (and legacy gen_ai.system) values → Tollgate / price-data provider ids. */
const PROVIDERS: Record<string, string> = {
  "gcp.gemini": "google",
  "gcp.vertex_ai": "google",
  "gcp.gen_ai": "google",
  gemini: "google",
  vertex_ai: "google",
  "aws.bedrock": "bedrock",
  aws: "bedrock",
  "azure.ai.openai": "azure",
  "az.ai.openai": "azure",
  "azure.ai.inference": "azure",
  "az.ai.inference": "azure",
  mistral_ai: "mistral",
  mistralai: "mistral",
  x_ai: "xai",
  moonshot_ai: "moonshot",
  // Frameworks that put their own provider ids in gen_ai.system: the Vercel AI SDK (once its API suffix
  // is off, below) and Pydantic AI.
  "google.generative-ai": "google",
  "google.vertex": "google",
  "amazon-bedrock": "bedrock",
  "google-gla": "google",
  "google-vertex": "google",
};
/** The Vercel AI SDK's gen_ai.system is "<provider>.<api>" ("openai.responses", "xai.chat", "google.vertex.chat"). */
const AI_SDK_API = /\.(?:chat|responses|completion|messages|embedding)$/;

const INFERENCE_OPERATIONS = new Set(["chat", "text_completion", "generate_content", "completion"]);
const AGENT_OPERATIONS = new Set(["invoke_agent", "create_agent", "invoke_workflow"]);

export function mapSpan(span: DecodedSpan, resource: AttrMap, uncounted?: Uncounted): MappedSpan {
  const problem = spanProblem(span);
  if (problem) return problem;

  const a = new Attributes(span.attributes, resource);
  const { provider, modelRequested, model, operation, kind: asSent } = identify(a);
  const kind = uncounted && isInferenceKind(asSent) ? "other" : asSent;

  const input = blankCallInput();
  input.event_id = spanEventId(span.traceId, span.spanId);
  input.trace_id = span.traceId;
  input.span_id = span.spanId;
  input.parent_span_id =
    span.parentSpanId && !ZERO_ID.test(span.parentSpanId) ? span.parentSpanId : undefined;
  input.ts_start = Number(span.startNs / 1_000_000n);
  input.ts_end = span.endNs === 0n ? undefined : Number(span.endNs / 1_000_000n);
  input.ttft_ms = ttftMs(a);
  input.kind = kind;
  input.provider = provider;
  input.api = provider ? apiOf(provider, operation, a) : undefined;
  input.model_requested = modelRequested;
  input.model = model;
  input.stream = a.bool("gen_ai.request.stream") ?? a.bool("llm.is_streaming");
  input.service_tier = a.text(SERVICE_TIER);
  input.status = span.statusCode === STATUS_ERROR ? "error" : "ok";
  input.http_status = httpStatus(a);
  input.error_type = a.text("error.type");
  input.usage_raw = usageAttributes(span.attributes) ?? undefined;
  input.metadata = metadataOf(a, span, kind, uncounted);
  input.tags = tagsOf(a);
  input.data_mode = a.text("tollgate.data_mode");
  ATTRIBUTION.readInto(a, input);
  // OTel's deployment.environment names production "production"; Tollgate's vocabulary (and its analytics
  // default) says "prod". A tollgate.deployment is taken as set.
  if (input.deployment === "production" && a.text("tollgate.deployment") === undefined)
    input.deployment = "prod";
  if (isInferenceKind(kind)) {
    try {
      const usage = readUsage(span.attributes);
      // No counts at all: no usage fields, so the record says "cost unknown" instead of a made-up 0.
      if (usage) for (const f of USAGE_FIELDS) input[f] = usage[f];
    } catch (e) {
      if (e instanceof UsageAttributeError) return refuse(e.field, e.message);
      throw e;
    }
  }
  return { ok: true, input };
}

/** Whether the span is a model call as sent (before any wrapper rule), with ids and times the mapping takes. */
export function isModelCall(span: DecodedSpan, resource: AttrMap): boolean {
  return spanProblem(span) === null && isInferenceKind(kindAsSent(span, resource));
}

/** The kind the span says it is (before any wrapper rule). */
export function kindAsSent(span: DecodedSpan, resource: AttrMap): Kind {
  return identify(new Attributes(span.attributes, resource)).kind;
}

/** What the span says it is: its provider, models, operation and kind. */
function identify(a: Attributes) {
  const provider = providerOf(a);
  const modelRequested = a.text("gen_ai.request.model");
  const model = a.text("gen_ai.response.model") ?? modelRequested;
  const operation = a.text("gen_ai.operation.name");
  return {
    provider,
    modelRequested,
    model,
    operation,
    kind: kindOf(a, operation, provider !== undefined && model !== undefined),
  };
}

function refuse(field: string, reason: string): MappedSpan {
  return { ok: false, field, reason };
}

/** The refusal of a span whose ids or times cannot make a record; null when they can. */
function spanProblem(span: DecodedSpan): MappedSpan | null {
  if (!HEX32.test(span.traceId) || ZERO_ID.test(span.traceId))
    return refuse("trace_id", "must be 16 bytes (32 hex digits), not all zero");
  if (!HEX16.test(span.spanId) || ZERO_ID.test(span.spanId))
    return refuse("span_id", "must be 8 bytes (16 hex digits), not all zero");
  if (span.parentSpanId !== "" && !HEX16.test(span.parentSpanId))
    return refuse("parent_span_id", "must be empty or 8 bytes (16 hex digits)");
  if (span.startNs === 0n) return refuse("start_time_unix_nano", "required");
  if (span.endNs !== 0n && span.endNs < span.startNs)
    return refuse("end_time_unix_nano", "must not be before start_time_unix_nano");
  return null;
}

function providerOf(a: Attributes): string | undefined {
  const name = a.text(PROVIDER)?.toLowerCase().replace(AI_SDK_API, "");
  return name === undefined ? undefined : (PROVIDERS[name] ?? name);
}

function kindOf(a: Attributes, operation: string | undefined, namesAModel: boolean): Kind {
  if (operation !== undefined) {
    if (operation === "embeddings") return "embedding";
    if (INFERENCE_OPERATIONS.has(operation)) return "llm";
    if (operation === "execute_tool") return "tool";
    if (AGENT_OPERATIONS.has(operation)) return "agent";
  }
  // The Vercel AI SDK sets no operation name: its tool executions say so in its own attribute.
  if (a.text("ai.operationId") === "ai.toolCall") return "tool";
  const traceloop = a.text("traceloop.span.kind");
  if (traceloop === "tool") return "tool";
  if (traceloop === "agent" || traceloop === "workflow") return "agent";
  const requestType = a.text("llm.request.type");
  if (requestType === "embedding" || requestType === "embeddings") return "embedding";
  if (requestType === "chat" || requestType === "completion") return "llm";
  // Unknown operations (image generation, say) that name a provider and a model are model calls too.
  return traceloop === undefined && namesAModel ? "llm" : "other";
}

/** The wire API where the span makes it unambiguous; OpenLLMetry reports Chat Completions and Responses alike as "chat". */
function apiOf(provider: string, operation: string | undefined, a: Attributes): string | undefined {
  switch (provider) {
    case "openai":
    case "azure": {
      if (operation === "embeddings") return "openai.embeddings";
      if (operation === "text_completion") return "openai.completions";
      const type = a.text("openai.api.type");
      return type === "responses"
        ? "openai.responses"
        : type === "chat_completions"
          ? "openai.chat"
          : undefined;
    }
    case "anthropic":
      return operation === "chat" ? "anthropic.messages" : undefined;
    case "google":
      return operation === "generate_content" || operation === "chat" ? "google.generate_content" : undefined;
    default:
      return undefined;
  }
}

/** Only a real HTTP status: a stray value must not cost the span. */
function httpStatus(a: Attributes): number | undefined {
  const v = a.number("http.response.status_code");
  return v !== undefined && Number.isInteger(v) && v >= 100 && v <= 599 ? v : undefined;
}

function ttftMs(a: Attributes): number | undefined {
  const seconds = a.number("gen_ai.response.time_to_first_chunk");
  return seconds === undefined || seconds < 0 ? undefined : Math.round(seconds * 1000);
}

/** OTel conventions for attribution fields (Tollgate's own tollgate.<field> comes first, then these). */
const OTEL_ATTRIBUTION: Partial<Record<AttributionField, readonly string[]>> = {
  user_id: ["user.id"],
  deployment: ["deployment.environment.name", "deployment.environment"],
  prompt_version: ["traceloop.prompt.version"],
  // gen_ai.agent.id names the agent (an assistant id), not one run of it: it goes to metadata.
  agent_type: ["gen_ai.agent.name"],
  session_id: ["session.id", "gen_ai.conversation.id"],
};
/**
 * Where each attribution field comes from: tollgate.<field>, the OTel conventions, then the OpenLLMetry
 * association property of the same name (each looked up on the span, then on its resource).
 */
const ATTRIBUTION = new TextFields(
  ATTRIBUTION_FIELDS.map(
    (f) => [f, [`tollgate.${f}`, ...(OTEL_ATTRIBUTION[f] ?? []), `${TRACELOOP}${f}`]] as const,
  ),
);
const ATTRIBUTION_PROPERTIES: ReadonlySet<string> = new Set(ATTRIBUTION_FIELDS);
/** OTLP SpanKind numbers (0 is unspecified). */
const SPAN_KINDS: readonly (string | undefined)[] = [
  undefined,
  "internal",
  "server",
  "client",
  "producer",
  "consumer",
];
/** A status message is free text: enough of it to say what failed, within a metadata value's limit. */
const MAX_STATUS_MESSAGE = 500;
const SERVICE_TIER = [
  "openai.response.service_tier",
  "gen_ai.openai.response.service_tier",
  "openai.request.service_tier",
  "gen_ai.openai.request.service_tier",
];
const PROVIDER = ["gen_ai.provider.name", "gen_ai.system"];

const METADATA_ATTRIBUTES = [
  "gen_ai.response.id",
  "gen_ai.agent.id",
  "gen_ai.tool.name",
  "gen_ai.tool.call.id",
];

/** Context worth keeping that has no column: other association properties, tollgate.metadata.*, ids. */
function metadataOf(
  a: Attributes,
  span: DecodedSpan,
  kind: Kind,
  uncounted: Uncounted | undefined,
): Record<string, string> {
  const meta: Record<string, string> = {};
  const service = a.text("service.name");
  if (service) meta["service.name"] = service;
  for (const k of METADATA_ATTRIBUTES) {
    const v = a.text(k);
    if (v) meta[k] = v;
  }
  // A model call is named by its model; name and span kind are what tell tool, agent and other spans
  // apart (`span.name`, the key the SDK's traced() spans use too).
  if (!isInferenceKind(kind)) {
    if (span.name) meta["span.name"] = span.name;
    const spanKind = SPAN_KINDS[span.kind];
    if (spanKind) meta["otel.span.kind"] = spanKind;
  }
  if (span.statusCode === STATUS_ERROR && span.statusMessage)
    meta["otel.status.message"] = span.statusMessage.slice(0, MAX_STATUS_MESSAGE);
  if (uncounted) meta[uncounted[0]] = uncounted[1];
  extraMetadata(span.attributes, meta, true);
  // On the resource too, as every attribution attribute is (service-wide values): the span's win.
  extraMetadata(a.resource, meta, false);
  return meta;
}

/** Other association properties and tollgate.metadata.<key> of one attribute map into `meta`. */
function extraMetadata(attrs: AttrMap, meta: Record<string, string>, own: boolean): void {
  // The key first: most attributes are neither, and turning a number into text costs.
  for (const k in attrs) {
    if (k.startsWith(TRACELOOP)) {
      const prop = k.slice(TRACELOOP.length);
      const text = scalarText(attrs[k]!);
      if (text !== undefined && !ATTRIBUTION_PROPERTIES.has(prop)) meta[prop] ??= text;
    } else if (k.startsWith(TOLLGATE_META)) {
      const text = scalarText(attrs[k]!);
      const key = k.slice(TOLLGATE_META.length);
      if (text !== undefined) {
        if (own) meta[key] = text;
        else meta[key] ??= text;
      }
    }
  }
}

function scalarText(v: AttrValue): string | undefined {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean" || typeof v === "bigint"
    ? String(v)
    : undefined;
}

/** tollgate.tags: a string array, or one comma-separated string (as the x-tollgate-tags header). */
function tagsOf(a: Attributes): string[] | undefined {
  const v = a.raw("tollgate.tags");
  if (Array.isArray(v)) return v.filter((t): t is string => typeof t === "string");
  if (typeof v === "string")
    return v
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
  return undefined;
}
