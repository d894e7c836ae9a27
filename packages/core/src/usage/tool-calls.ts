import { isObject, type JsonObject } from "./read.js";
import type { NormalizedUsage } from "./types.js";

/** The server-side tool calls of one response that are billed per call. */
export type ToolCalls = Pick<NormalizedUsage, "web_search_requests" | "file_search_requests">;

/**
 * OpenAI Responses report their hosted tool calls as output items, not in `usage`. A `web_search_call` is
 * billed when its action is a search (opening or reading a found page is not; the oldest items name no
 * action and were searches), a `file_search_call` always. Null when the response lists no output.
 */
export function responsesToolCalls(response: JsonObject): ToolCalls | null {
  const output = response.output;
  if (!Array.isArray(output)) return null;
  const calls: ToolCalls = { web_search_requests: 0, file_search_requests: 0 };
  for (const item of output) {
    if (!isObject(item)) continue;
    if (item.type === "web_search_call") {
      const action = item.action;
      if (!isObject(action) || action.type === "search") calls.web_search_requests++;
    } else if (item.type === "file_search_call") calls.file_search_requests++;
  }
  return calls;
}
