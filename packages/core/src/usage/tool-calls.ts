import { isObject, type JsonObject } from "./read.js";
import type { NormalizedUsage } from "./types.js";

/** The server-side tool calls of one response that are billed per call. */
export type ToolCalls = Pick<NormalizedUsage, "web_search_requests" | "file_search_requests">;

/**
 * OpenAI Responses report their hosted tool calls as output items, not in `usage`. A `web_search_call` is
 * billed when its action is a search (opening or reading a found page is not; the oldest items name no
 * action and were searches), a `file_search_call` always. Newer responses also count the billed web
 * searches themselves (`tool_usage.web_search.num_requests`): that count wins. Null when the response
 * has neither.
 */
export function responsesToolCalls(response: JsonObject): ToolCalls | null {
  const output = response.output;
  const reported = reportedWebSearches(response.tool_usage);
  if (!Array.isArray(output) && reported === null) return null;
  const calls = noToolCalls();
  if (Array.isArray(output)) for (const item of output) countResponsesItem(item, calls);
  if (reported !== null) calls.web_search_requests = reported;
  return calls;
}

function reportedWebSearches(toolUsage: unknown): number | null {
  if (!isObject(toolUsage) || !isObject(toolUsage.web_search)) return null;
  const n = toolUsage.web_search.num_requests;
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : null;
}

export const noToolCalls = (): ToolCalls => ({ web_search_requests: 0, file_search_requests: 0 });

/** Adds one Responses output item to `calls` when it is a billed tool call. */
export function countResponsesItem(item: unknown, calls: ToolCalls): void {
  if (!isObject(item)) return;
  if (item.type === "web_search_call") {
    const action = item.action;
    if (!isObject(action) || action.type === "search") calls.web_search_requests++;
  } else if (item.type === "file_search_call") calls.file_search_requests++;
}

/**
 * The billed tool calls a stream has shown as it went, for one cut off before its usage came: Responses
 * `response.output_item.done` items, Anthropic `server_tool_use` web_search blocks. Where the usage came,
 * its counts are the provider's own and at least these.
 */
export function streamedToolCall(event: JsonObject, calls: ToolCalls): void {
  if (event.type === "response.output_item.done") countResponsesItem(event.item, calls);
  else if (event.type === "content_block_start" && isObject(event.content_block)) {
    const block = event.content_block;
    if (block.type === "server_tool_use" && block.name === "web_search") calls.web_search_requests++;
  }
}

/** The larger count of each kind, into `usage`. */
export function atLeast(usage: ToolCalls, seen: ToolCalls): void {
  if (seen.web_search_requests > usage.web_search_requests)
    usage.web_search_requests = seen.web_search_requests;
  if (seen.file_search_requests > usage.file_search_requests)
    usage.file_search_requests = seen.file_search_requests;
}
