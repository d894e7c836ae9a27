import { type HeaderMap, headerValue } from "./headers.js";

/**
 * Answers worth retrying: rate limits and server-side failures, unless the provider says not to
 * (`x-should-retry: false`: Anthropic sends it, and so does Tollgate's own refusal that will not clear).
 */
export function isRetryable(status: number, headers: HeaderMap): boolean {
  if (headerValue(headers, "x-should-retry")?.trim().toLowerCase() === "false") return false;
  return status === 429 || status >= 500;
}

const BASE_MS = 250;
const CAP_MS = 8_000;
/** A provider's requested wait is honoured up to this; a longer one is the client's call, not ours. */
export const MAX_RETRY_AFTER_MS = 10_000;

/**
 * Wait before retry number `attempt` (1 = first retry), or null when there should be none.
 * - The provider's own wait when it names one: `retry-after-ms` (OpenAI), else `retry-after` in seconds
 *   or as an HTTP date, else when its spent rate limit refills (OpenAI's `x-ratelimit-reset-*`). Past
 *   MAX_RETRY_AFTER_MS: null, so its answer (retry-after included) goes back to the client rather than
 *   a retry the provider has said it will refuse.
 * - Otherwise exponential backoff with full jitter, so synchronized clients do not stampede.
 */
export function backoffMs(
  attempt: number,
  upstreamHeaders: HeaderMap | null,
  random = Math.random,
  now = Date.now(),
): number | null {
  const asked = upstreamHeaders ? requestedWaitMs(upstreamHeaders, now) : null;
  if (asked !== null) return asked <= MAX_RETRY_AFTER_MS ? asked : null;
  return Math.floor(random() * Math.min(CAP_MS, BASE_MS * 2 ** (attempt - 1)));
}

/**
 * The wait an upstream reply asks for, in ms; null when it names none, an unreadable one, or a date
 * already past (clock skew: the jittered backoff is safer than an immediate retry). Without a
 * retry-after, OpenAI's rate-limit headers say when a spent limit refills.
 */
function requestedWaitMs(headers: HeaderMap, now: number): number | null {
  const ms = numberOrNull(headerValue(headers, "retry-after-ms"));
  if (ms !== null && ms >= 0) return Math.ceil(ms); // an unusable one: retry-after may still say
  const after = headerValue(headers, "retry-after");
  if (after === null) return rateLimitResetMs(headers);
  const seconds = numberOrNull(after);
  if (seconds !== null) return seconds >= 0 ? Math.ceil(seconds * 1000) : null;
  const at = Date.parse(after);
  return Number.isNaN(at) || at <= now ? null : at - now;
}

/**
 * When OpenAI's spent rate limits refill: `x-ratelimit-reset-requests` / `-tokens` (durations such as
 * `20ms`, `1s`, `6m0s`) of the limits whose `x-ratelimit-remaining-*` is 0; the later one. Null when no
 * spent limit names a readable reset.
 */
function rateLimitResetMs(headers: HeaderMap): number | null {
  let wait: number | null = null;
  for (const limit of ["requests", "tokens"]) {
    if (headerValue(headers, `x-ratelimit-remaining-${limit}`)?.trim() !== "0") continue;
    const reset = durationMs(headerValue(headers, `x-ratelimit-reset-${limit}`));
    if (reset !== null && (wait === null || reset > wait)) wait = reset;
  }
  return wait;
}

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go-style duration (`1h2m3.5s`, `250ms`) in ms, rounded up; null when it is not one. */
function durationMs(v: string | null): number | null {
  const text = v?.trim();
  if (!text) return null;
  DURATION_PART.lastIndex = 0;
  let ms = 0;
  let read = 0;
  for (let m = DURATION_PART.exec(text); m; m = DURATION_PART.exec(text)) {
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    read = DURATION_PART.lastIndex;
  }
  return read === text.length ? Math.ceil(ms) : null;
}

/** A header's number; null when absent, blank or not a number (Number("") would be 0). */
function numberOrNull(v: string | null): number | null {
  if (v === null || v.trim() === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * The wait before retrying an answer, or null when it is not retried: its status is not retryable, no
 * retries are left (`attempt` > `retries`), or it asks for a longer wait than a gateway holds a request.
 */
export function retryWaitMs(
  status: number,
  headers: HeaderMap,
  attempt: number,
  retries: number,
): number | null {
  return isRetryable(status, headers) && attempt <= retries ? backoffMs(attempt, headers) : null;
}
