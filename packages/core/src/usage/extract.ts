import { totalTokens } from "../pricing/cost.js";
import { anthropicAdvisorCall } from "./advisor.js";
import { UsageError } from "./errors.js";
import { estimatedImageGeneration } from "./image-tool-estimate.js";
import { imageToolModel } from "./images.js";
import { normalizeUsage } from "./normalize.js";
import { normalizeOpenAIImages } from "./openai.js";
import { protoKey } from "./proto-json.js";
import type { JsonObject } from "./read.js";
import { isObject } from "./read.js";
import { responsesToolCalls, type ToolCalls } from "./tool-calls.js";
import type { Api, ExtractedUsage, NormalizedUsage, ToolModelCall } from "./types.js";

/**
 * Where each API puts the usage object, the model and the rest in a non-streamed response body (and in
 * the stream events that repeat all of it so far).
 */
interface BodyShape {
  usage: (body: JsonObject) => unknown;
  model: (body: JsonObject) => unknown;
  tier?: (body: JsonObject) => unknown;
  /** Billed tool calls reported outside the usage object. */
  toolCalls?: (body: JsonObject) => ToolCalls | null;
  /** The response's own id, where the API lets a later request name it. */
  id?: (body: JsonObject) => unknown;
  /** What a hosted tool used on a model of its own (the Responses image generation tool), raw. */
  toolModelUsage?: (body: JsonObject) => unknown;
  /** A hosted tool's call on a model of its own that the usage object itself reports (Anthropic's advisor). */
  usageToolCall?: (usage: unknown) => ToolModelCall | null;
}

const OPENAI_LIKE: BodyShape = {
  // Groq may report usage under x_groq.usage; the top-level object wins when both are present.
  usage: (body) => body.usage ?? (isObject(body.x_groq) ? body.x_groq.usage : undefined),
  model: (body) => body.model,
  tier: (body) => body.service_tier,
};

const SHAPES: Record<Api, BodyShape> = {
  "openai.chat": OPENAI_LIKE,
  "openai.completions": OPENAI_LIKE,
  "openai.responses": {
    ...OPENAI_LIKE,
    toolCalls: responsesToolCalls,
    id: (body) => body.id,
    toolModelUsage: (body) => (isObject(body.tool_usage) ? body.tool_usage.image_gen : undefined),
  },
  "openai.embeddings": OPENAI_LIKE,
  // A Realtime session's `response.done` event carries the response, usage included; the session names
  // the model (the response may not).
  "openai.realtime": { usage: (body) => body.usage, model: (body) => body.model, id: (body) => body.id },
  // An Images API body (and its stream's completed event) names no model: the request's is used.
  "openai.images": { usage: (body) => body.usage, model: (body) => body.model },
  // A transcription (and its stream's transcript.text.done) names no model either.
  "openai.transcriptions": { usage: (body) => body.usage, model: () => null },
  // A speech stream's speech.audio.done: the request names the model.
  "openai.speech": { usage: (body) => body.usage, model: () => null },
  "anthropic.messages": {
    usage: (body) => body.usage,
    model: (body) => body.model,
    tier: (body) => (isObject(body.usage) ? body.usage.service_tier : undefined),
    usageToolCall: anthropicAdvisorCall,
  },
  // Either proto3 JSON name (`usage_metadata`, `model_version`: a Python SDK's `model_dump()`), not both.
  "google.generate_content": {
    usage: (body) => body[protoKey(body, "usageMetadata")],
    model: (body) => body[protoKey(body, "modelVersion")],
  },
  // Converse bodies carry no model id (it is in the request URL): the caller supplies it.
  "bedrock.converse": { usage: (body) => body.usage, model: () => null },
};

/** Finds and normalizes the usage of a whole non-streamed JSON response body. */
export function extractFromResponse(api: Api, body: unknown): ExtractedUsage {
  const shape = SHAPES[api];
  if (!shape) throw new UsageError("api", `unknown api ${JSON.stringify(api)}`);
  if (!isObject(body)) throw new UsageError("", "response body is not a JSON object");
  const reader = snapshotReader(api);
  reader.push(body);
  const extracted = reader.result();
  if (!extracted)
    throw new UsageError(
      api === "google.generate_content" ? "usageMetadata" : "usage",
      "response has no usage",
    );
  return extracted;
}

/**
 * Reads complete snapshots of a response, each shaped as its whole body: one body, or the stream events
 * that repeat all of it so far (`bodyOf` finds the body in an event). The latest usage, model, tier,
 * billed tool calls and response id each win.
 */
export function snapshotReader(
  api: Api,
  bodyOf: (event: JsonObject) => unknown = (event) => event,
): { push(event: unknown): void; result(): ExtractedUsage | null; responseId(): string | null } {
  const shape = SHAPES[api];
  let usageRaw: unknown;
  let model: string | null = null;
  let tier: string | null = null;
  let toolCalls: ToolCalls | null = null;
  let id: string | null = null;
  let toolModelRaw: unknown;
  let toolModel: string | null = null;
  let output: unknown;
  // A snapshot whose fields cannot be read (a Gemini field under both its names): result() throws it.
  let unreadable: UsageError | null = null;
  return {
    push(event) {
      const body = isObject(event) ? bodyOf(event) : undefined;
      if (!isObject(body)) return;
      let usage: unknown;
      try {
        usage = shape.usage(body);
        model = reportedText(shape.model(body)) ?? model;
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        unreadable ??= e;
        return;
      }
      if (usage !== undefined && usage !== null) usageRaw = usage;
      tier = reportedText(shape.tier?.(body)) ?? tier;
      toolCalls = shape.toolCalls?.(body) ?? toolCalls;
      if (shape.id) id = reportedText(shape.id(body)) ?? id;
      if (shape.toolModelUsage) {
        const raw = shape.toolModelUsage(body);
        if (raw !== undefined && raw !== null) toolModelRaw = raw;
        toolModel = imageToolModel(body) ?? toolModel;
        if (Array.isArray(body.output)) output = body.output;
      }
    },
    result() {
      if (unreadable) throw unreadable;
      if (usageRaw === undefined) return null;
      const usage = normalizeUsage(api, usageRaw);
      if (toolCalls) Object.assign(usage, toolCalls);
      return {
        model,
        usage,
        usage_raw: usageRaw,
        service_tier: tier,
        ...(shape.id ? { response_id: id } : {}),
        ...(toolModelRaw !== undefined
          ? { tool_model_call: imageGeneration(toolModelRaw, toolModel) }
          : shape.toolModelUsage
            ? optional(estimatedImageGeneration(output, toolModel))
            : shape.usageToolCall
              ? optional(shape.usageToolCall(usageRaw))
              : {}),
      };
    },
    responseId: () => id,
  };
}

/**
 * The image generation tool's usage, in the Images API's shape; null where it made nothing (a response
 * reports zeros when the tool was offered and not used). Usage that does not read as that shape is a call
 * whose cost is unknown (`usage: null`), not none: the response's own usage is read all the same.
 */
function imageGeneration(raw: unknown, model: string | null): ToolModelCall | null {
  let usage: NormalizedUsage;
  try {
    usage = normalizeOpenAIImages(raw);
  } catch (e) {
    if (e instanceof UsageError) return { api: "openai.images", model, usage: null, usage_raw: raw };
    throw e;
  }
  if (totalTokens(usage) === 0) return null;
  return { api: "openai.images", model, usage, usage_raw: raw };
}

/** `{tool_model_call}` when there is one: a reply whose tool made nothing has no such key. */
function optional(call: ToolModelCall | null): { tool_model_call?: ToolModelCall } {
  return call ? { tool_model_call: call } : {};
}

/** A model id or service tier as the provider reported it: a non-empty string; anything else is "not reported". */
export function reportedText(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}
