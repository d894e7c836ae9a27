/** Statuses worth retrying: rate limits and server-side failures. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

const BASE_MS = 250;
const CAP_MS = 8_000;
/** A provider's retry-after is honoured up to this; longer waits are the client's call, not ours. */
const MAX_RETRY_AFTER_MS = 10_000;

/**
 * Wait before retry number `attempt` (1 = first retry): the provider's `retry-after` when it gives a
 * short one, else exponential backoff with full jitter so synchronized clients do not stampede.
 */
export function backoffMs(attempt: number, retryAfter: string | null, random = Math.random): number {
  if (retryAfter !== null) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0 && seconds * 1000 <= MAX_RETRY_AFTER_MS)
      return seconds * 1000;
  }
  return Math.floor(random() * Math.min(CAP_MS, BASE_MS * 2 ** (attempt - 1)));
}
