// The call a hosted tool makes on a model of its own inside another call (the Responses API's image
// generation tool on gpt-image-1, Anthropic's advisor tool on its advisor model): a record of its own,
// beside its response's, so that each model's tokens are priced at its own rates and every dollar names
// the model that cost it.
import { advisorToolModel } from "../usage/advisor.js";
import { DEFAULT_IMAGE_TOOL_MODEL, imageToolModel } from "../usage/images.js";
import type { Api, ToolModelCall } from "../usage/types.js";
import { ATTRIBUTION_FIELDS } from "./call-record.js";

/**
 * The model the tool's call ran on: as the response names it, else as the request did, else the image
 * tool's documented default (an advisor's entries always name theirs).
 */
export function toolCallModel(tool: ToolModelCall, requested: string | null): string {
  return tool.model ?? requested ?? (tool.api === "openai.images" ? DEFAULT_IMAGE_TOOL_MODEL : "unknown");
}

/** The model a request's hosted tool names for its own calls (a Responses image tool's, an advisor's). */
export function requestedToolModel(api: Api | null, body: Record<string, unknown> | null): string | null {
  if (api === "openai.responses") return imageToolModel(body);
  if (api === "anthropic.messages") return advisorToolModel(body);
  return null;
}

/** What the tool's call takes of its response's record: the same time, request, attempt and attribution. */
const FROM_PARENT = [
  "trace_id",
  "ts_start",
  "ts_end",
  "provider",
  "stream",
  "batch",
  "http_status",
  "attempt",
  "request_id",
  "tags",
  "metadata",
  "data_mode",
  "key_id",
  ...ATTRIBUTION_FIELDS,
] as const;

/** The response's record as stored (CallRecord) or as an SDK sends it (a record input). */
export type ToolCallParent = Readonly<
  Partial<Record<(typeof FROM_PARENT)[number] | "span_id", unknown>> & { event_id: string }
>;

/**
 * The record input of the tool's call, from its response's record: what FROM_PARENT names; a span under
 * the response's; the tool's API, model and usage (none readable: its cost unknown, `usage_unreadable`).
 * `requested` is the model the request's tool named.
 */
export function toolModelCallInput(
  parent: ToolCallParent,
  tool: ToolModelCall,
  requested: string | null,
  eventId: string,
): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const f of FROM_PARENT) if (parent[f] !== undefined) input[f] = parent[f];
  // Its own, not the response's: a sink that changes one record's (a tag added) must not change the other's.
  if (Array.isArray(input.tags)) input.tags = [...input.tags];
  if (typeof input.metadata === "object" && input.metadata !== null) input.metadata = { ...input.metadata };
  input.event_id = eventId;
  input.parent_span_id = parent.span_id ?? null;
  input.parent_event_id = parent.event_id;
  input.kind = "llm";
  input.api = tool.api;
  input.model_requested = requested;
  input.model = toolCallModel(tool, requested);
  // The tool made its images (gave its advice) whatever became of the response after: they are billed.
  input.status = "ok";
  input.error_type = tool.usage ? null : "usage_unreadable";
  if (tool.usage) {
    Object.assign(input, tool.usage);
    input.usage_raw = tool.usage_raw;
  }
  if (tool.estimated) input.cost_source = "estimated";
  return input;
}
