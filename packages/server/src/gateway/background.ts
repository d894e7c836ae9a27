// Background responses as the gateway sees them on the wire; what a Responses object says of itself is in
// core (backgroundResponse).

const ONE_RESPONSE = /^\/v1\/responses\/[^/]+$/;
const STREAMED = /(^|&)stream=true(&|$)/;

/** A poll of one response: `GET /v1/responses/{id}`, not its input items, nor a resumed stream. */
export function isResponsePoll(method: string, path: string, query: string): boolean {
  return method === "GET" && ONE_RESPONSE.test(path) && !STREAMED.test(query);
}

/** A background response's stream resumed: `GET /v1/responses/{id}?stream=true[&starting_after=N]`. */
export function isResumedStream(method: string, path: string, query: string): boolean {
  return method === "GET" && ONE_RESPONSE.test(path) && STREAMED.test(query);
}
