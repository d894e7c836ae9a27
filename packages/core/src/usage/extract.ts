import { UsageError } from "./errors.js";
import { normalizeUsage } from "./normalize.js";
import type { JsonObject } from "./read.js";
import { isObject } from "./read.js";
import { responsesToolCalls, type ToolCalls } from "./tool-calls.js";
import type { Api, ExtractedUsage } from "./types.js";

/** Where each API puts the usage object and the model in a non-streamed response body. */
interface BodyShape {
  usage: (body: JsonObject) => unknown;
  model: (body: JsonObject) => unknown;
  tier?: (body: JsonObject) => unknown;
  /** Billed tool calls reported outside the usage object. */
  toolCalls?: (body: JsonObject) => ToolCalls | null;
  /** The response's own id, where the API lets a later request name it. */
  id?: (body: JsonObject) => unknown;
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
  "openai.responses": { ...OPENAI_LIKE, toolCalls: responsesToolCalls, id: (body) => body.id },
  "openai.embeddings": OPENAI_LIKE,
  "anthropic.messages": {
    usage: (body) => body.usage,
    model: (body) => body.model,
    tier: (body) => (isObject(body.usage) ? body.usage.service_tier : undefined),
  },
  "google.generate_content": { usage: (body) => body.usageMetadata, model: (body) => body.modelVersion },
  // Converse bodies carry no model id (it is in the request URL): the caller supplies it.
  "bedrock.converse": { usage: (body) => body.usage, model: () => null },
};

/** Finds and normalizes the usage of a whole non-streamed JSON response body. */
export function extractFromResponse(api: Api, body: unknown): ExtractedUsage {
  const shape = SHAPES[api];
  if (!shape) throw new UsageError("api", `unknown api ${JSON.stringify(api)}`);
  if (!isObject(body)) throw new UsageError("", "response body is not a JSON object");
  const usageRaw = shape.usage(body);
  if (usageRaw === undefined || usageRaw === null) {
    throw new UsageError(
      api === "google.generate_content" ? "usageMetadata" : "usage",
      "response has no usage",
    );
  }
  const usage = normalizeUsage(api, usageRaw);
  const toolCalls = shape.toolCalls?.(body);
  if (toolCalls) Object.assign(usage, toolCalls);
  return {
    model: reportedText(shape.model(body)),
    usage,
    usage_raw: usageRaw,
    service_tier: reportedText(shape.tier?.(body)),
    ...(shape.id ? { response_id: reportedText(shape.id(body)) } : {}),
  };
}

/** A model id or service tier as the provider reported it: a non-empty string; anything else is "not reported". */
export function reportedText(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}
