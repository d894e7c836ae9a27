import { UsageError } from "./errors.js";
import type { JsonObject } from "./read.js";
import {
  checkCount,
  checkSubset,
  isObject,
  optionalArray,
  optionalCount,
  requiredCount,
  requireObject,
} from "./read.js";
import type { NormalizedUsage } from "./types.js";

/**
 * Bedrock Converse / ConverseStream: `inputTokens` excludes cache reads and writes (totalTokens
 * includes them). Writes may come with `cacheDetails` [{ttl, inputTokens}] giving the TTL split.
 */
export function normalizeBedrockConverse(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  const details = cacheDetails(usage);
  const cacheWrite = cacheCount(usage, "cacheWriteInputTokens", "cacheWriteInputTokenCount") ?? details.all;
  checkSubset(
    details.all,
    "cacheDetails",
    cacheWrite,
    "cacheWriteInputTokens",
    "sum of cacheDetails[].inputTokens",
  );
  return {
    input_uncached_tokens: requiredCount(usage, "inputTokens", "inputTokens"),
    cache_read_tokens: cacheCount(usage, "cacheReadInputTokens", "cacheReadInputTokenCount") ?? 0,
    // Writes not covered by a 1h detail entry are 5-minute writes (the default TTL).
    cache_write_5m_tokens: cacheWrite - details.oneHour,
    cache_write_1h_tokens: details.oneHour,
    output_tokens: requiredCount(usage, "outputTokens", "outputTokens"),
    reasoning_tokens: 0,
    input_audio_tokens: 0,
    output_audio_tokens: 0,
    image_tokens: 0,
    cache_audio_read_tokens: 0,
    cache_image_read_tokens: 0,
    output_image_tokens: 0,
    input_audio_ms: 0,
    input_characters: 0,
    web_search_requests: 0,
    file_search_requests: 0,
    web_search_preview_requests: 0,
  };
}

/** Some responses carry a legacy-looking `...TokenCount` twin beside the documented key; prefer the documented one. */
function cacheCount(usage: JsonObject, key: string, twin: string): number | undefined {
  return optionalCount(usage, key, key) ?? optionalCount(usage, twin, twin);
}

function cacheDetails(usage: JsonObject): { all: number; oneHour: number } {
  const details = optionalArray(usage, "cacheDetails", "cacheDetails");
  let all = 0;
  let oneHour = 0;
  details?.forEach((entry, i) => {
    const field = `cacheDetails[${i}]`;
    if (!isObject(entry)) throw new UsageError(field, "expected an object");
    const tokens = checkCount(entry.inputTokens ?? 0, `${field}.inputTokens`);
    all += tokens;
    if (entry.ttl === "1h") oneHour += tokens;
    else if (entry.ttl !== "5m" && entry.ttl !== undefined) {
      // An unknown TTL would be priced wrongly whichever way we filed it.
      throw new UsageError(`${field}.ttl`, `unknown cache TTL ${JSON.stringify(entry.ttl)}`);
    }
  });
  return { all, oneHour };
}
