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
  return seesAttempts(clientOf(resource))
    ? { ...given, [FIRST_ATTEMPT_TIMEOUT]: left }
    : { ...given, timeout: left };
}

/** An attempt of a request, as its client built it: the retries made before it, its timeout, when it went. */
export interface Attempt {
  retryCount: number;
  timeoutMs: number;
  atMs: number;
}

/**
 * `options` under which each attempt of the request is told to `watch` as its client builds it; as they are
 * for a client that builds none so (seesAttempts).
 */
export function watchingAttempts(resource: unknown, options: unknown, watch: (a: Attempt) => void): unknown {
  if (!seesAttempts(clientOf(resource))) return options;
  return { ...(options as object | null | undefined), [ATTEMPT_WATCH]: watch };
}

/**
 * The options of the app's own request, sent in place of `refused`, the attempt an upstream refused for
 * what the wrapper changed (Prepare.refusedBy): one request to the app, as openai-node makes one, so it
 * goes on with what is left of it: its first attempt with what is left of the refused one's timeout, its
 * retries those the request had left (a refusal the app's request would not have met costs it none), and
 * each attempt counted on from the refused one to the upstream (the SDKs' X-Stainless-Retry-Count): the
 * re-send is the attempt after it. As they are when no attempt was seen.
 */
export function inPlaceOf(resource: unknown, options: unknown, refused: Attempt | null): unknown {
  if (!refused) return options;
  const given = options as { maxRetries?: unknown } | null | undefined;
  const maxRetries =
    given?.maxRetries ?? (clientOf(resource) as { maxRetries?: unknown } | undefined)?.maxRetries;
  const left = Math.max(1, Math.floor(refused.timeoutMs - (performance.now() - refused.atMs)));
  return {
    ...given,
    [FIRST_ATTEMPT_TIMEOUT]: left,
    [ATTEMPTS_BEFORE]: refused.retryCount + 1,
    ...(typeof maxRetries === "number" ? { maxRetries: Math.max(0, maxRetries - refused.retryCount) } : {}),
  };
}

/**
 * The options keys its first attempt's timeout, the watcher of its attempts, and the attempts made before
 * the request (a re-sent one's) go to the client under (the SDKs copy the options as they are).
 */
const FIRST_ATTEMPT_TIMEOUT = Symbol("tollgate.firstAttemptTimeout");
const ATTEMPT_WATCH = Symbol("tollgate.attemptWatch");
const ATTEMPTS_BEFORE = Symbol("tollgate.attemptsBefore");

interface AttemptOptions {
  [FIRST_ATTEMPT_TIMEOUT]?: number;
  [ATTEMPT_WATCH]?: (a: Attempt) => void;
  [ATTEMPTS_BEFORE]?: number;
}

type BuildRequest = (options: unknown, attempt?: { retryCount?: number }) => unknown;
type Built = { timeout?: number; req?: { headers?: unknown } };

/** Where the SDKs tell the server an attempt's timeout, in whole seconds (when they tell it). */
const TIMEOUT_HEADER = "x-stainless-timeout";

const seeing = new WeakSet<object>();

/**
 * Lets `client` give a request's first attempt the timeout its options carry under FIRST_ATTEMPT_TIMEOUT
 * (and name that one to the server), tell each attempt to the watcher under ATTEMPT_WATCH, and count its
 * attempts to the server on from ATTEMPTS_BEFORE. openai-node and anthropic-sdk build every attempt of a
 * request with `buildRequest(options, {retryCount})`, whose result names the attempt's timeout, and its
 * request the request's whole timeout and the retry count in headers. False for a client that builds none so.
 */
function seesAttempts(client: unknown): boolean {
  const c = client as { buildRequest?: BuildRequest } | undefined;
  if (typeof c?.buildRequest !== "function") return false;
  if (seeing.has(c)) return true;
  const build = c.buildRequest;
  c.buildRequest = function buildRequest(this: unknown, options, attempt) {
    const {
      [FIRST_ATTEMPT_TIMEOUT]: first,
      [ATTEMPT_WATCH]: watch,
      [ATTEMPTS_BEFORE]: before,
    } = (options ?? {}) as AttemptOptions;
    const retryCount = attempt?.retryCount ?? 0;
    const built = build.call(
      this,
      options,
      before === undefined ? attempt : { ...attempt, retryCount: before + retryCount },
    );
    if (first === undefined && watch === undefined) return built;
    const seen = (b: Built) => {
      const timed =
        first === undefined || retryCount > 0
          ? b
          : { ...b, timeout: first, req: namingTimeout(b.req, first) };
      if (typeof timed.timeout === "number")
        watch?.({ retryCount, timeoutMs: timed.timeout, atMs: performance.now() });
      return timed;
    };
    return built instanceof Promise ? built.then(seen) : seen(built as Built);
  };
  seeing.add(c);
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
