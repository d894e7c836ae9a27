import { checkSubset, count, isObject, requiredCount, requireObject } from "../usage/read.js";
import { emptyUsage, type NormalizedUsage } from "../usage/types.js";
import { usdDecimalToNano, usdNumberToNano } from "./decimal.js";
import { BillingError } from "./errors.js";
import { bucketResults, type CostRow, checkUsd, normalizeAt, type UsageRow } from "./pages.js";

/**
 * One result of GET /v1/organization/usage/completions. `input_tokens` includes cached and
 * cache-write tokens; the audio and image counts include their cached parts
 * (`input_cached_audio_tokens`, `input_cached_image_tokens`), which are cache reads (and in
 * `input_cached_tokens`).
 */
export function normalizeOpenAIUsageCompletionsResult(result: unknown): NormalizedUsage {
  const r = requireObject(result, "result");
  const input = requiredCount(r, "input_tokens", "input_tokens");
  const output = requiredCount(r, "output_tokens", "output_tokens");
  const cached = count(r, "input_cached_tokens", "input_cached_tokens");
  const cacheWrite = count(r, "input_cache_write_tokens", "input_cache_write_tokens");
  const audio = count(r, "input_audio_tokens", "input_audio_tokens");
  const cachedAudio = count(r, "input_cached_audio_tokens", "input_cached_audio_tokens");
  const image = count(r, "input_image_tokens", "input_image_tokens");
  const cachedImage = count(r, "input_cached_image_tokens", "input_cached_image_tokens");
  const outAudio = count(r, "output_audio_tokens", "output_audio_tokens");

  checkSubset(cachedAudio, "input_cached_audio_tokens", audio, "input_audio_tokens");
  checkSubset(cachedImage, "input_cached_image_tokens", image, "input_image_tokens");
  const cachedMedia = "input_cached_audio_tokens + input_cached_image_tokens";
  checkSubset(cachedAudio + cachedImage, "input_cached_tokens", cached, "input_cached_tokens", cachedMedia);
  const uncachedAudio = audio - cachedAudio;
  const uncachedImage = image - cachedImage;
  const subsets = cached + cacheWrite + uncachedAudio + uncachedImage;
  const label = "cached + cache-write + uncached audio + image tokens";
  checkSubset(subsets, "input_tokens", input, "input_tokens", label);
  checkSubset(outAudio, "output_audio_tokens", output, "output_tokens");

  return {
    input_uncached_tokens: input - subsets,
    cache_read_tokens: cached - cachedAudio - cachedImage,
    cache_write_5m_tokens: cacheWrite, // OpenAI has a single cache-write price
    cache_write_1h_tokens: 0,
    output_tokens: output,
    reasoning_tokens: 0, // not reported by the Usage API
    input_audio_tokens: uncachedAudio,
    output_audio_tokens: outAudio,
    image_tokens: uncachedImage,
    cache_audio_read_tokens: cachedAudio,
    cache_image_read_tokens: cachedImage,
    output_image_tokens: 0,
    input_audio_ms: 0,
    input_characters: 0,
    // The completions usage report has no tool calls (OpenAI reports those apart).
    web_search_requests: 0,
    file_search_requests: 0,
    web_search_preview_requests: 0,
  };
}

/** One result of GET /v1/organization/usage/embeddings: input only. */
export function normalizeOpenAIUsageEmbeddingsResult(result: unknown): NormalizedUsage {
  const r = requireObject(result, "result");
  const usage = emptyUsage();
  usage.input_uncached_tokens = requiredCount(r, "input_tokens", "input_tokens");
  return usage;
}

/**
 * `amount` of one Costs API result ({value, currency}) to exact nano-USD. `value` is a JSON number
 * in dollars; a string is accepted too and parsed as a decimal.
 */
export function openAICostResultToNano(result: unknown, field = "result"): bigint {
  if (!isObject(result) || !isObject(result.amount)) {
    throw new BillingError(`${field}.amount`, "expected an amount object");
  }
  const { value, currency } = result.amount;
  checkUsd(currency, `${field}.amount.currency`);
  if (typeof value === "string") return usdDecimalToNano(value, `${field}.amount.value`);
  if (typeof value === "number") return usdNumberToNano(value, `${field}.amount.value`);
  throw new BillingError(`${field}.amount.value`, `expected a USD amount, got ${JSON.stringify(value)}`);
}

/** A page of the OpenAI Usage API (completions or embeddings) to normalized rows. */
export function readOpenAIUsagePage(page: unknown, kind: "completions" | "embeddings"): UsageRow[] {
  const normalize =
    kind === "completions" ? normalizeOpenAIUsageCompletionsResult : normalizeOpenAIUsageEmbeddingsResult;
  return bucketResults(page).map(({ field, ...row }) => ({
    ...row,
    usage: normalizeAt(field, row.result, normalize),
  }));
}

/** A page of the OpenAI Costs API to exact nano-USD rows. */
export function readOpenAICostsPage(page: unknown): CostRow[] {
  return bucketResults(page).map(({ field, ...row }) => ({
    ...row,
    amount_nanousd: openAICostResultToNano(row.result, field),
  }));
}
