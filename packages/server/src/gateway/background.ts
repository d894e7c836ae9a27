// Background responses as the gateway sees them on the wire; what a Responses object says of itself is in
// core (backgroundResponse).

/** A poll of one response: `GET /v1/responses/{id}`, not its input items, nor a resumed stream. */
export function isResponsePoll(method: string, path: string, query: string): boolean {
  return method === "GET" && /^\/v1\/responses\/[^/]+$/.test(path) && !/(^|&)stream=true(&|$)/.test(query);
}
