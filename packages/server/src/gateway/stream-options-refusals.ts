import { streamOptionsUpstream } from "@tollgate/core";

/** The upstream a call of `base` and `pathAndQuery` (its upstream path) goes to, as far as stream_options go. */
export function streamOptionsUpstreamOf(base: string, pathAndQuery: string): string {
  return streamOptionsUpstream(base, apiVersionOf(pathAndQuery));
}

/** The `api-version` query parameter of a path (Azure OpenAI's), or null. */
function apiVersionOf(pathAndQuery: string): string | null {
  const q = pathAndQuery.indexOf("?");
  return q === -1 ? null : new URLSearchParams(pathAndQuery.slice(q + 1)).get("api-version");
}
