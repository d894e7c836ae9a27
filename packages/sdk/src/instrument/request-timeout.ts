/**
 * The timeout the app set for a wrapped call (openai-node, anthropic-sdk): the request's own `timeout`
 * option, else its client's (given to the constructor or to `withOptions`); undefined when it set none. A
 * wait for room under the call's agent run counts against it. The SDKs' default (10 minutes) is left out:
 * an Anthropic call without a timeout of its own is refused when too long not to stream, which setting one
 * would skip.
 */
export function requestTimeoutOf(resource: unknown, options: unknown): number | undefined {
  const own = (options as { timeout?: unknown } | null | undefined)?.timeout;
  const ms =
    own ?? (clientOf(resource) as { _options?: { timeout?: unknown } } | undefined)?._options?.timeout;
  return typeof ms === "number" && ms >= 0 ? ms : undefined;
}

/**
 * A call's request options once it waited `waitedMs` for room: its first attempt goes out with what is left
 * of its timeout (a whole number of ms, 1 at the least), the SDK's retries of it with the whole timeout, as
 * without the wait (the SDKs give each attempt the request's timeout; the wait came before the first only).
 */
export function withTimeLeft(
  resource: unknown,
  options: unknown,
  timeoutMs: number | undefined,
  waitedMs: number,
): unknown {
  if (timeoutMs === undefined) return options;
  const left = Math.max(1, Math.floor(timeoutMs - waitedMs));
  const given = options as object | null | undefined;
  // A client that builds its attempts otherwise gets what is left for every attempt.
  return timesFirstAttempts(clientOf(resource))
    ? { ...given, [FIRST_ATTEMPT_TIMEOUT]: left }
    : { ...given, timeout: left };
}

/** The options key its first attempt's timeout goes to the client under (the SDKs copy the options as they are). */
const FIRST_ATTEMPT_TIMEOUT = Symbol("tollgate.firstAttemptTimeout");

type BuildRequest = (options: unknown, attempt?: { retryCount?: number }) => unknown;
type Built = { timeout?: number; req?: { headers?: unknown } };

/** Where the SDKs tell the server an attempt's timeout, in whole seconds (when they tell it). */
const TIMEOUT_HEADER = "x-stainless-timeout";

const timing = new WeakSet<object>();

/**
 * Lets `client` give a request's first attempt the timeout its options carry under FIRST_ATTEMPT_TIMEOUT,
 * and name that one to the server. openai-node and anthropic-sdk build every attempt of a request with
 * `buildRequest(options, {retryCount})`, whose result names the attempt's timeout, and its request the
 * request's whole timeout in a header. False for a client that builds none so.
 */
function timesFirstAttempts(client: unknown): boolean {
  const c = client as { buildRequest?: BuildRequest } | undefined;
  if (typeof c?.buildRequest !== "function") return false;
  if (timing.has(c)) return true;
  const build = c.buildRequest;
  c.buildRequest = function buildRequest(this: unknown, options, attempt) {
    const built = build.call(this, options, attempt);
    const first = (options as { [FIRST_ATTEMPT_TIMEOUT]?: number } | null)?.[FIRST_ATTEMPT_TIMEOUT];
    if (first === undefined || (attempt?.retryCount ?? 0) > 0) return built;
    const timed = (b: Built) => ({ ...b, timeout: first, req: namingTimeout(b.req, first) });
    return built instanceof Promise ? built.then(timed) : timed(built as Built);
  };
  timing.add(c);
  return true;
}

/**
 * A built attempt's request, its timeout header (built from the request's whole timeout) naming `ms`
 * instead, as the SDK names it: whole seconds, truncated. Left as it is where the SDK named none.
 */
function namingTimeout(req: Built["req"], ms: number): Built["req"] {
  const headers = req?.headers;
  if (!(headers instanceof Headers) || !headers.has(TIMEOUT_HEADER)) return req;
  const named = new Headers(headers);
  named.set(TIMEOUT_HEADER, String(Math.trunc(ms / 1000)));
  return { ...req, headers: named };
}

function clientOf(resource: unknown): unknown {
  return (resource as { _client?: unknown } | null | undefined)?._client;
}
