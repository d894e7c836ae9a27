/** Statuses worth retrying: rate limits and server-side failures. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

const BASE_MS = 250;
const CAP_MS = 8_000;
/** A provider's requested wait is honoured up to this; a longer one is the client's call, not ours. */
export const MAX_RETRY_AFTER_MS = 10_000;

type Headers = Record<string, string | string[] | undefined>;

/**
 * Wait before retry number `attempt` (1 = first retry), or null when there should be none.
 * - The provider's own wait when it names one: `retry-after-ms` (OpenAI), else `retry-after` in seconds
 *   or as an HTTP date. Past MAX_RETRY_AFTER_MS: null, so its answer (retry-after included) goes back to
 *   the client rather than a retry the provider has said it will refuse.
 * - Otherwise exponential backoff with full jitter, so synchronized clients do not stampede.
 */
export function backoffMs(
  attempt: number,
  upstreamHeaders: Headers | null,
  random = Math.random,
  now = Date.now(),
): number | null {
  const asked = upstreamHeaders ? requestedWaitMs(upstreamHeaders, now) : null;
  if (asked !== null) return asked <= MAX_RETRY_AFTER_MS ? asked : null;
  return Math.floor(random() * Math.min(CAP_MS, BASE_MS * 2 ** (attempt - 1)));
}

/** The wait an upstream reply asks for, in ms, or null when it names none (or an unreadable one). */
function requestedWaitMs(headers: Headers, now: number): number | null {
  const ms = Number(first(headers["retry-after-ms"]) ?? Number.NaN);
  if (Number.isFinite(ms) && ms >= 0) return Math.ceil(ms);
  const after = first(headers["retry-after"]);
  if (after === undefined) return null;
  const seconds = Number(after);
  if (after.trim() !== "" && Number.isFinite(seconds)) return seconds >= 0 ? Math.ceil(seconds * 1000) : null;
  const at = Date.parse(after);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
