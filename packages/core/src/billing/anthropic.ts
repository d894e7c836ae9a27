import { splitCacheWrites, webSearchRequests } from "../usage/anthropic.js";
import { count, isObject, requiredCount, requireObject } from "../usage/read.js";
import type { NormalizedUsage } from "../usage/types.js";
import { centsDecimalToNano } from "./decimal.js";
import { BillingError } from "./errors.js";
import { bucketResults, type CostRow, checkUsd, normalizeAt, type UsageRow } from "./pages.js";

/**
 * One result of the Admin API usage report for messages (GET /v1/organizations/usage_report/messages).
 * Input is already split: uncached, cache reads and cache writes by TTL; there is no total.
 */
export function normalizeAnthropicUsageReportResult(result: unknown): NormalizedUsage {
  const r = requireObject(result, "result");
  const writes = splitCacheWrites(r, undefined);
  return {
    input_uncached_tokens: requiredCount(r, "uncached_input_tokens", "uncached_input_tokens"),
    cache_read_tokens: count(r, "cache_read_input_tokens", "cache_read_input_tokens"),
    cache_write_5m_tokens: writes.fiveMinute,
    cache_write_1h_tokens: writes.oneHour,
    output_tokens: requiredCount(r, "output_tokens", "output_tokens"),
    reasoning_tokens: 0, // not reported in the usage report
    input_audio_tokens: 0,
    output_audio_tokens: 0,
    image_tokens: 0,
    cache_audio_read_tokens: 0,
    cache_image_read_tokens: 0,
    output_image_tokens: 0,
    input_audio_ms: 0,
    input_characters: 0,
    web_search_requests: webSearchRequests(r),
    file_search_requests: 0,
    web_search_preview_requests: 0,
  };
}

/** `amount` of one cost_report result: a decimal string in CENTS ("123.45" = $1.2345), to exact nano-USD. */
export function anthropicCostResultToNano(result: unknown, field = "result"): bigint {
  if (!isObject(result)) throw new BillingError(field, "expected a result object");
  checkUsd(result.currency, `${field}.currency`);
  const amount = result.amount;
  if (typeof amount !== "string") {
    // A float here would already have lost the exact value; refuse rather than round.
    throw new BillingError(
      `${field}.amount`,
      `expected a decimal string in cents, got ${JSON.stringify(amount)}`,
    );
  }
  return centsDecimalToNano(amount, `${field}.amount`);
}

/** A page of the Admin usage report (messages) to normalized rows. */
export function readAnthropicUsageReport(page: unknown): UsageRow[] {
  return bucketResults(page).map(({ field, ...row }) => ({
    ...row,
    usage: normalizeAt(field, row.result, normalizeAnthropicUsageReportResult),
  }));
}

/** A page of the Admin cost report to exact nano-USD rows. */
export function readAnthropicCostReport(page: unknown): CostRow[] {
  return bucketResults(page).map(({ field, ...row }) => ({
    ...row,
    amount_nanousd: anthropicCostResultToNano(row.result, field),
  }));
}
