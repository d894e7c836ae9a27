/**
 * The timeout the app set for a wrapped call (openai-node, anthropic-sdk): the request's own `timeout`
 * option, else its client's (given to the constructor or to `withOptions`); undefined when it set none. A
 * wait for room under the call's agent run counts against it. The SDKs' default (10 minutes) is left out:
 * an Anthropic call without a timeout of its own is refused when too long not to stream, which setting one
 * would skip.
 */
export function requestTimeoutOf(resource: unknown, options: unknown): number | undefined {
  const own = (options as { timeout?: unknown } | null | undefined)?.timeout;
  const client = (resource as { _client?: { _options?: { timeout?: unknown } } } | null)?._client;
  const ms = own ?? client?._options?.timeout;
  return typeof ms === "number" && ms >= 0 ? ms : undefined;
}

/**
 * A call's request options once it waited `waitedMs` for room: what is left of its timeout, as the SDKs take
 * it (a whole number of ms, 1 at the least).
 */
export function withTimeLeft(options: unknown, timeoutMs: number | undefined, waitedMs: number): unknown {
  if (timeoutMs === undefined) return options;
  const left = Math.max(1, Math.floor(timeoutMs - waitedMs));
  return { ...(options as object | null | undefined), timeout: left };
}
