// Background responses as the gateway sees them on the wire; what a Responses object says of itself is in
// core (backgroundResponse).

/** How a client reads one background response: polled, or its stream resumed. */
export type ResponseRead = "poll" | "resumed";

/**
 * A read of one response: a poll (`GET /v1/responses/{id}`, not its input items) or its stream resumed
 * (`GET /v1/responses/{id}?stream=true[&starting_after=N]`); null for any other request.
 */
export function responseRead(method: string, path: string, query: string): ResponseRead | null {
  if (method !== "GET" || !/^\/v1\/responses\/[^/]+$/.test(path)) return null;
  return /(^|&)stream=true(&|$)/.test(query) ? "resumed" : "poll";
}

/** The response id a read of one (`/responses/{id}`, as it goes upstream) names; null if none. */
export function responseIdOf(upstreamPath: string): string | null {
  const m = /^\/responses\/([^/?]+)/.exec(upstreamPath);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return null; // malformed escapes: not an id anyone submitted
  }
}
