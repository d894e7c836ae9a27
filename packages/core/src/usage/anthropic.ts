import type { JsonObject } from "./read.js";
import {
  checkSubset,
  count,
  isObject,
  optionalArray,
  optionalCount,
  optionalObject,
  requiredCount,
  requireObject,
} from "./read.js";
import type { NormalizedUsage } from "./types.js";

/**
 * Anthropic Messages: `input_tokens` is already the uncached part; cache reads and writes are
 * reported beside it. Writes are priced by TTL, so `cache_creation_input_tokens` is split with the
 * `cache_creation` breakdown when there is one.
 */
export function normalizeAnthropicMessages(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  const outputTotal = requiredCount(usage, "output_tokens", "output_tokens");
  const outDetails = optionalObject(usage, "output_tokens_details", "output_tokens_details");
  // Thinking is billed as output and already inside output_tokens; newer responses also report it apart.
  const thinking = count(outDetails, "thinking_tokens", "output_tokens_details.thinking_tokens");
  checkSubset(thinking, "output_tokens_details.thinking_tokens", outputTotal, "output_tokens");

  const writes = splitCacheWrites(
    usage,
    optionalCount(usage, "cache_creation_input_tokens", "cache_creation_input_tokens"),
  );
  const compaction = compactionTokens(usage);
  return {
    input_uncached_tokens: requiredCount(usage, "input_tokens", "input_tokens") + compaction.input,
    cache_read_tokens:
      count(usage, "cache_read_input_tokens", "cache_read_input_tokens") + compaction.cacheRead,
    cache_write_5m_tokens: writes.fiveMinute + compaction.fiveMinute,
    cache_write_1h_tokens: writes.oneHour + compaction.oneHour,
    output_tokens: outputTotal + compaction.output,
    reasoning_tokens: thinking,
    input_audio_tokens: 0,
    output_audio_tokens: 0,
    image_tokens: 0,
    cache_audio_read_tokens: 0,
    cache_image_read_tokens: 0,
    output_image_tokens: 0,
    input_audio_ms: 0,
    input_characters: 0,
    web_search_requests: webSearchRequests(usage),
    file_search_requests: 0,
    web_search_preview_requests: 0,
  };
}

/**
 * Server-side compaction (`compact_20260112`) samples the context once more, on the same model, to summarize
 * it: a `compaction` entry of `usage.iterations`, whose tokens the top-level fields leave out (they sum the
 * `message` iterations) and which is billed all the same. Its tokens, by category, to add to the top-level ones.
 * Other entries are either in the top-level fields already (`message`) or another model's (`advisor_message`).
 */
function compactionTokens(usage: JsonObject): {
  input: number;
  cacheRead: number;
  fiveMinute: number;
  oneHour: number;
  output: number;
} {
  const sum = { input: 0, cacheRead: 0, fiveMinute: 0, oneHour: 0, output: 0 };
  const iterations = optionalArray(usage, "iterations", "iterations");
  if (!iterations) return sum;
  for (const [i, entry] of iterations.entries()) {
    if (!isObject(entry) || entry.type !== "compaction") continue;
    const at = `iterations[${i}].`;
    const writes = splitCacheWrites(
      entry,
      optionalCount(entry, "cache_creation_input_tokens", `${at}cache_creation_input_tokens`),
      `${at}cache_creation_input_tokens`,
    );
    sum.input += requiredCount(entry, "input_tokens", `${at}input_tokens`);
    sum.cacheRead += count(entry, "cache_read_input_tokens", `${at}cache_read_input_tokens`);
    sum.fiveMinute += writes.fiveMinute;
    sum.oneHour += writes.oneHour;
    sum.output += requiredCount(entry, "output_tokens", `${at}output_tokens`);
  }
  return sum;
}

/**
 * Web searches of the server-side web search tool (`server_tool_use.web_search_requests`), billed per
 * search beside the tokens. Web fetches are free and code execution is billed by container time, so
 * neither is counted. Shared with the Admin usage report, which reports them the same way.
 */
export function webSearchRequests(usage: JsonObject): number {
  const serverTools = optionalObject(usage, "server_tool_use", "server_tool_use");
  return count(serverTools, "web_search_requests", "server_tool_use.web_search_requests");
}

/**
 * Splits cache writes by TTL. Without a breakdown every write is a 5-minute write (the default
 * TTL); if the breakdown covers less than the total, the remainder is 5-minute too. Only the
 * 1-hour part needs to be known exactly, because it is the one priced differently.
 * Shared with the Admin usage report, which has the breakdown but no total.
 */
export function splitCacheWrites(
  usage: JsonObject,
  total: number | undefined,
  totalField = "cache_creation_input_tokens",
): { fiveMinute: number; oneHour: number } {
  const breakdown = optionalObject(usage, "cache_creation", "cache_creation");
  const fiveMinute = count(
    breakdown,
    "ephemeral_5m_input_tokens",
    "cache_creation.ephemeral_5m_input_tokens",
  );
  const oneHour = count(breakdown, "ephemeral_1h_input_tokens", "cache_creation.ephemeral_1h_input_tokens");
  if (total === undefined) return { fiveMinute, oneHour };
  const label = "cache_creation.ephemeral_5m + ephemeral_1h";
  checkSubset(fiveMinute + oneHour, "cache_creation", total, totalField, label);
  return { fiveMinute: total - oneHour, oneHour };
}
