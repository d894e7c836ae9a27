import { isObject, type JsonObject } from "./read.js";
import { type NormalizedUsage, TOOL_CALL_FIELDS } from "./types.js";

/** The server-side tool calls of one response that are billed per call. */
export type ToolCalls = Pick<NormalizedUsage, (typeof TOOL_CALL_FIELDS)[number]>;

const noToolCalls = (): ToolCalls => ({
  web_search_requests: 0,
  file_search_requests: 0,
  web_search_preview_requests: 0,
});

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
  if (searchesArePreviews(response.tools)) calls.web_search_preview_requests = calls.web_search_requests;
  return calls;
}

function reportedWebSearches(toolUsage: unknown): number | null {
  if (!isObject(toolUsage) || !isObject(toolUsage.web_search)) return null;
  const n = toolUsage.web_search.num_requests;
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/**
 * Whether a Responses call's web searches ran on the older `web_search_preview` tool (or a dated
 * `web_search_preview_…` version), which OpenAI prices apart from `web_search`. A search item does not
 * say which tool ran it, so only a call whose web search tools (the `tools` the response repeats from its
 * request) are all preview ones counts its searches as preview searches.
 */
function searchesArePreviews(tools: unknown): boolean {
  if (!Array.isArray(tools)) return false;
  let preview = false;
  for (const tool of tools) {
    const type = isObject(tool) ? tool.type : undefined;
    if (typeof type !== "string" || !type.startsWith("web_search")) continue;
    if (!type.startsWith("web_search_preview")) return false;
    preview = true;
  }
  return preview;
}

/** Adds one Responses output item to `calls` when it is a billed tool call. */
function countResponsesItem(item: unknown, calls: ToolCalls): void {
  if (!isObject(item)) return;
  if (item.type === "web_search_call") {
    const action = item.action;
    if (!isObject(action) || action.type === "search") calls.web_search_requests++;
  } else if (item.type === "file_search_call") calls.file_search_requests++;
}

/**
 * The billed tool calls a stream shows as it goes, for one cut off before its usage came: Responses
 * `response.output_item.done` items (preview searches when the tools of its `response.created` are),
 * Anthropic `server_tool_use` web_search blocks. Where the usage came, its counts are the provider's own
 * and at least these.
 */
export function streamedToolCalls(): { push(event: JsonObject): void; seen(): ToolCalls } {
  const calls = noToolCalls();
  let previews = false;
  return {
    push(event) {
      if (event.type === "response.output_item.done") countResponsesItem(event.item, calls);
      else if (event.type === "response.created" && isObject(event.response))
        previews = searchesArePreviews(event.response.tools);
      else if (event.type === "content_block_start" && isObject(event.content_block)) {
        const block = event.content_block;
        if (block.type === "server_tool_use" && block.name === "web_search") calls.web_search_requests++;
      }
    },
    seen: () => ({ ...calls, web_search_preview_requests: previews ? calls.web_search_requests : 0 }),
  };
}

/** The larger count of each kind, into `usage`. */
export function atLeast(usage: ToolCalls, seen: ToolCalls): void {
  for (const field of TOOL_CALL_FIELDS) if (seen[field] > usage[field]) usage[field] = seen[field];
}
