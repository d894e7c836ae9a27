// When the gateway retries, and how long it waits: the provider's requested wait when it names one,
// else exponential backoff with full jitter.
import { describe, expect, it } from "vitest";
import { backoffMs, isRetryable, MAX_RETRY_AFTER_MS } from "../src/gateway/retry.js";

const NOW = Date.UTC(2026, 11, 5, 12, 0, 0);

describe("backoffMs", () => {
  it("without a requested wait: full jitter under a cap that doubles per attempt, up to 8 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => backoffMs(a, null, () => 0.999_999))).toEqual([
      249, 499, 999, 1999, 3999, 7999, 7999,
    ]);
    expect(backoffMs(3, null, () => 0)).toBe(0);
    expect(backoffMs(3, {}, () => 0.5)).toBe(500);
  });

  it("honours retry-after-ms first, then retry-after in seconds or as an HTTP date", () => {
    expect(backoffMs(1, { "retry-after-ms": "1500", "retry-after": "9" }, () => 0)).toBe(1500);
    expect(backoffMs(1, { "retry-after": "2" }, () => 0)).toBe(2000);
    expect(backoffMs(1, { "retry-after": "0.25" }, () => 0)).toBe(250);
    expect(backoffMs(1, { "retry-after": new Date(NOW + 3000).toUTCString() }, () => 0, NOW)).toBe(3000);
    // A date already past (clock skew) falls back to the jittered backoff, not to an immediate retry.
    expect(backoffMs(1, { "retry-after": new Date(NOW - 3000).toUTCString() }, () => 0.5, NOW)).toBe(125);
  });

  it("without retry-after: when OpenAI's spent rate limits refill (x-ratelimit-reset-* of those at 0)", () => {
    const spent = (requests: string, tokens: string) => ({
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": requests,
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": tokens,
    });
    expect(backoffMs(1, spent("1s", "250ms"), () => 0)).toBe(1000); // the later of the two
    expect(backoffMs(1, spent("1.5s", "6m0s"), () => 0)).toBeNull(); // past the limit: no retry
    expect(backoffMs(1, spent("20ms", "1h"), () => 0)).toBeNull();
    // A limit not spent does not hold the retry back; an unreadable reset leaves the jittered backoff.
    const tokensLeft = { ...spent("2s", "6m0s"), "x-ratelimit-remaining-tokens": "149984" };
    expect(backoffMs(1, tokensLeft, () => 0)).toBe(2000);
    expect(backoffMs(2, spent("soon", "1x"), () => 0.5)).toBe(250);
    // retry-after, when sent, wins.
    expect(backoffMs(1, { ...spent("9s", "9s"), "retry-after": "1" }, () => 0)).toBe(1000);
  });

  it("a requested wait past the limit means no retry (null): the answer goes back to the client", () => {
    expect(backoffMs(1, { "retry-after": "30" })).toBeNull();
    expect(backoffMs(1, { "retry-after-ms": String(MAX_RETRY_AFTER_MS + 1) })).toBeNull();
    expect(backoffMs(1, { "retry-after": String(MAX_RETRY_AFTER_MS / 1000) })).toBe(MAX_RETRY_AFTER_MS);
  });

  it("an unreadable or negative requested wait falls back to the jittered backoff", () => {
    for (const h of [
      { "retry-after": "soon" },
      { "retry-after": "-1" },
      { "retry-after": "" },
      { "retry-after-ms": "x" },
      { "retry-after-ms": " " },
    ])
      expect(backoffMs(2, h, () => 0.5)).toBe(250);
    // An unusable retry-after-ms leaves the decision to retry-after.
    expect(backoffMs(1, { "retry-after-ms": "-1", "retry-after": "2" }, () => 0.5)).toBe(2000);
    expect(backoffMs(1, { "retry-after-ms": "-1", "retry-after": "30" }, () => 0.5)).toBeNull();
  });
});

it("retries rate limits and server errors, nothing else, and never what the provider says not to", () => {
  for (const no of ["false", "False", " false "])
    for (const status of [429, 500, 529])
      expect(isRetryable(status, { "x-should-retry": no }), no).toBe(false);
  expect(isRetryable(429, { "x-should-retry": "true" })).toBe(true);
  expect([408, 409, 429, 500, 502, 503, 529, 400, 404].map((s) => isRetryable(s, {}))).toEqual([
    false,
    false,
    true,
    true,
    true,
    true,
    true,
    false,
    false,
  ]);
});
