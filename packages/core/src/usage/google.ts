import { UsageError } from "./errors.js";
import { protoKey, protoKeys } from "./proto-json.js";
import type { JsonObject } from "./read.js";
import { checkCount, checkSubset, count, isObject, optionalArray, requireObject } from "./read.js";
import type { NormalizedUsage } from "./types.js";

/** The usageMetadata fields read, by their JSON names. */
const USAGE_FIELDS = [
  "promptTokenCount",
  "cachedContentTokenCount",
  "candidatesTokenCount",
  "thoughtsTokenCount",
  "toolUsePromptTokenCount",
  "promptTokensDetails",
  "cacheTokensDetails",
  "candidatesTokensDetails",
] as const;

/**
 * Gemini API and Vertex AI `usageMetadata`:
 * - `promptTokenCount` includes `cachedContentTokenCount`;
 * - `candidatesTokenCount` excludes `thoughtsTokenCount` (thoughts are billed as output);
 * - `toolUsePromptTokenCount` (e.g. code execution) is billed as input on top of the prompt;
 * - per-modality details split the prompt (and the cached part) so audio and image input, cached or
 *   not, can be priced at their own rates, and the candidates so audio and image output can be (an
 *   image model's images cost far more than its text). DOCUMENT (PDF pages) is tokenized as images, so it
 *   counts as image, as genai-prices does; VIDEO and TEXT are billed at the text rates (input_uncached, output).
 * Every field is optional: early stream chunks omit `candidatesTokenCount`. Each may be sent by its proto
 * name too (`prompt_token_count`, as Python's `usage_metadata.model_dump()` writes it), never by both.
 */
export function normalizeGoogleGenerateContent(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  // Each field under the name the report sends it by (camelCase or snake_case), which its errors name.
  const k = protoKeys(usage, USAGE_FIELDS);
  const prompt = count(usage, k.promptTokenCount, k.promptTokenCount);
  const cached = count(usage, k.cachedContentTokenCount, k.cachedContentTokenCount);
  checkSubset(cached, k.cachedContentTokenCount, prompt, k.promptTokenCount);

  const promptBy = modalities(usage, k.promptTokensDetails);
  const cachedBy = modalities(usage, k.cacheTokensDetails);
  const mediaLabel = `${k.promptTokensDetails} AUDIO + IMAGE`;
  checkSubset(promptBy.audio + promptBy.image, k.promptTokensDetails, prompt, k.promptTokenCount, mediaLabel);
  checkSubset(
    cachedBy.all,
    k.cacheTokensDetails,
    cached,
    k.cachedContentTokenCount,
    `sum of ${k.cacheTokensDetails}`,
  );
  checkSubset(cachedBy.audio, k.cacheTokensDetails, promptBy.audio, "prompt AUDIO", "cached AUDIO");
  checkSubset(cachedBy.image, k.cacheTokensDetails, promptBy.image, "prompt IMAGE", "cached IMAGE");

  let audio = promptBy.audio - cachedBy.audio;
  let image = promptBy.image - cachedBy.image;
  let cachedAudio = cachedBy.audio;
  let cachedImage = cachedBy.image;
  let other = prompt - cached - audio - image;
  if (other < 0) {
    // Cached tokens without a per-modality breakdown must have come from image/audio input.
    // Attribute them to image before audio: audio keeps its (higher) rate when in doubt.
    let deficit = -other;
    const fromImage = Math.min(deficit, image);
    image -= fromImage;
    cachedImage += fromImage;
    deficit -= fromImage;
    audio -= deficit; // stays >= 0: the deficit is at most audio + image - (prompt - cached)
    cachedAudio += deficit;
    other = 0;
  }

  const candidates = count(usage, k.candidatesTokenCount, k.candidatesTokenCount);
  const thoughts = count(usage, k.thoughtsTokenCount, k.thoughtsTokenCount);
  const output = candidates + thoughts;
  const outBy = modalities(usage, k.candidatesTokensDetails);
  const outMedia = outBy.audio + outBy.image;
  checkSubset(
    outMedia,
    k.candidatesTokensDetails,
    candidates,
    k.candidatesTokenCount,
    "candidates AUDIO + IMAGE",
  );

  return {
    input_uncached_tokens: other + count(usage, k.toolUsePromptTokenCount, k.toolUsePromptTokenCount),
    // Stays >= 0: the media moved to the cache above are at most what the cache holds beyond its text.
    cache_read_tokens: cached - cachedAudio - cachedImage,
    cache_write_5m_tokens: 0, // explicit-cache storage is billed per hour, not per call
    cache_write_1h_tokens: 0,
    output_tokens: output,
    reasoning_tokens: thoughts,
    input_audio_tokens: audio,
    output_audio_tokens: outBy.audio,
    image_tokens: image,
    cache_audio_read_tokens: cachedAudio,
    cache_image_read_tokens: cachedImage,
    output_image_tokens: outBy.image,
    input_audio_ms: 0,
    input_characters: 0,
    web_search_requests: 0,
    file_search_requests: 0,
    web_search_preview_requests: 0,
  };
}

/** Sums a `[{modality, tokenCount}]` list into the categories we price apart. */
function modalities(usage: JsonObject, key: string): { audio: number; image: number; all: number } {
  const list = optionalArray(usage, key, key);
  const sums = { audio: 0, image: 0, all: 0 };
  list?.forEach((entry, i) => {
    const field = `${key}[${i}]`;
    if (!isObject(entry)) throw new UsageError(field, "expected an object");
    const tokenCount = protoKey(entry, "tokenCount", `${field}.`);
    const tokens = checkCount(entry[tokenCount] ?? 0, `${field}.${tokenCount}`);
    sums.all += tokens;
    if (entry.modality === "AUDIO") sums.audio += tokens;
    else if (entry.modality === "IMAGE" || entry.modality === "DOCUMENT") sums.image += tokens;
  });
  return sums;
}
