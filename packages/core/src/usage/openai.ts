import { UsageError } from "./errors.js";
import { checkSubset, count, optionalObject, requiredCount, requireObject } from "./read.js";
import { emptyUsage, type NormalizedUsage } from "./types.js";

/**
 * OpenAI reports totals with subsets inside them: the input total includes cache reads, cache
 * writes, audio and image tokens; the output total includes reasoning and audio. We subtract the
 * input subsets to get disjoint categories and keep the output subsets as informational splits.
 */
interface OpenAIShape {
  input: string; // total input key
  inputDetails: string;
  output: string; // total output key
  outputDetails: string;
}

const CHAT: OpenAIShape = {
  input: "prompt_tokens",
  inputDetails: "prompt_tokens_details",
  output: "completion_tokens",
  outputDetails: "completion_tokens_details",
};

const RESPONSES: OpenAIShape = {
  input: "input_tokens",
  inputDetails: "input_tokens_details",
  output: "output_tokens",
  outputDetails: "output_tokens_details",
};

/**
 * Chat Completions and legacy Completions, and the OpenAI-compatible APIs that reuse the shape
 * (Mistral, Groq, DeepSeek), each of which spells the cache-hit count its own way.
 */
export function normalizeOpenAIChat(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  const details = optionalObject(usage, CHAT.inputDetails, CHAT.inputDetails);
  // Alternative spellings of the same "cached prompt tokens" count, all included in prompt_tokens.
  // Some providers fill one and leave another at 0, so the largest reported value wins.
  const detailsField = `${CHAT.inputDetails}.cached_tokens`;
  const spellings: [number, string][] = [
    [count(details, "cached_tokens", detailsField), detailsField],
    [count(usage, "num_cached_tokens", "num_cached_tokens"), "num_cached_tokens"], // Mistral (older shape)
    [count(usage, "prompt_cache_hit_tokens", "prompt_cache_hit_tokens"), "prompt_cache_hit_tokens"], // DeepSeek
  ];
  let cached = spellings[0]!;
  for (const spelling of spellings) if (spelling[0] > cached[0]) cached = spelling;
  const normalized = fromShape(usage, CHAT, cached[0], cached[1]);
  // Perplexity's online models report the web searches they ran (billed per thousand where priced).
  normalized.web_search_requests = count(usage, "num_search_queries", "num_search_queries");
  return normalized;
}

/** The Responses API: same semantics as chat under different key names. */
export function normalizeOpenAIResponses(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  const details = optionalObject(usage, RESPONSES.inputDetails, RESPONSES.inputDetails);
  const field = `${RESPONSES.inputDetails}.cached_tokens`;
  return fromShape(usage, RESPONSES, count(details, "cached_tokens", field), field);
}

/**
 * The Realtime API's `response.usage` (in `response.done`): `input_token_details` splits the input by
 * modality (text, audio, image) and `cached_tokens` is a part of them, split again by modality in
 * `cached_tokens_details`; cached audio and images are priced apart from cached text. The output splits
 * into text and audio.
 */
export function normalizeOpenAIRealtime(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  const input = requiredCount(usage, "input_tokens", "input_tokens");
  const output = requiredCount(usage, "output_tokens", "output_tokens");
  const inDetails = optionalObject(usage, "input_token_details", "input_token_details");
  const inField = (key: string) => `input_token_details.${key}`;
  const cached = count(inDetails, "cached_tokens", inField("cached_tokens"));
  const audio = count(inDetails, "audio_tokens", inField("audio_tokens"));
  const image = count(inDetails, "image_tokens", inField("image_tokens"));
  const cachedDetails = optionalObject(
    inDetails ?? {},
    "cached_tokens_details",
    inField("cached_tokens_details"),
  );
  const cachedField = (key: string) => inField(`cached_tokens_details.${key}`);
  const cachedAudio = count(cachedDetails, "audio_tokens", cachedField("audio_tokens"));
  const cachedImage = count(cachedDetails, "image_tokens", cachedField("image_tokens"));
  checkSubset(cachedAudio, cachedField("audio_tokens"), audio, inField("audio_tokens"));
  checkSubset(cachedImage, cachedField("image_tokens"), image, inField("image_tokens"));
  const cachedMedia = "cached audio + image tokens";
  checkSubset(
    cachedAudio + cachedImage,
    inField("cached_tokens_details"),
    cached,
    inField("cached_tokens"),
    cachedMedia,
  );
  const uncachedMedia = audio - cachedAudio + image - cachedImage;
  const label = "cached + uncached audio + image tokens";
  checkSubset(cached + uncachedMedia, "input_token_details", input, "input_tokens", label);

  const outDetails = optionalObject(usage, "output_token_details", "output_token_details");
  const audioOut = count(outDetails, "audio_tokens", "output_token_details.audio_tokens");
  checkSubset(audioOut, "output_token_details.audio_tokens", output, "output_tokens");

  const out = emptyUsage();
  out.input_uncached_tokens = input - cached - uncachedMedia;
  out.cache_read_tokens = cached - cachedAudio - cachedImage;
  out.input_audio_tokens = audio - cachedAudio;
  out.image_tokens = image - cachedImage;
  out.cache_audio_read_tokens = cachedAudio;
  out.cache_image_read_tokens = cachedImage;
  out.output_tokens = output;
  out.output_audio_tokens = audioOut;
  return out;
}

/**
 * The Images API (`/v1/images/generations`, `/v1/images/edits`, and their streams' completed events):
 * input text and images (`input_tokens_details`), output that is image tokens, and since gpt-image-1.5
 * text tokens too (`output_tokens_details`). Without that split (gpt-image-1), every output token is an
 * image token, as OpenAI documents `output_tokens` there.
 */
export function normalizeOpenAIImages(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  const input = requiredCount(usage, "input_tokens", "input_tokens");
  const output = requiredCount(usage, "output_tokens", "output_tokens");
  const inDetails = optionalObject(usage, "input_tokens_details", "input_tokens_details");
  const image = count(inDetails, "image_tokens", "input_tokens_details.image_tokens");
  checkSubset(image, "input_tokens_details.image_tokens", input, "input_tokens");
  const outDetails = optionalObject(usage, "output_tokens_details", "output_tokens_details");
  const imageOut =
    outDetails === undefined
      ? output
      : count(outDetails, "image_tokens", "output_tokens_details.image_tokens");
  checkSubset(imageOut, "output_tokens_details.image_tokens", output, "output_tokens");

  const out = emptyUsage();
  out.input_uncached_tokens = input - image;
  out.image_tokens = image;
  out.output_tokens = output;
  out.output_image_tokens = imageOut;
  return out;
}

/**
 * An audio transcription's usage (`/v1/audio/transcriptions`, its stream's `transcript.text.done`, a
 * Realtime session's input transcription): `type: "tokens"` in the Realtime shape (input split into text
 * and audio), or `type: "duration"` (whisper-1: the audio's length in seconds, billed by the hour), kept
 * to the millisecond.
 */
export function normalizeOpenAITranscription(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  if (usage.type === "duration") {
    const out = emptyUsage();
    out.input_audio_ms = audioMs(usage.seconds, "seconds");
    return out;
  }
  if (usage.type !== undefined && usage.type !== "tokens")
    throw new UsageError("type", `expected "tokens" or "duration", got ${JSON.stringify(usage.type)}`);
  return normalizeOpenAIRealtime(usage);
}

/**
 * A speech call's usage (`/v1/audio/speech`). gpt-4o-mini-tts streamed as events reports
 * `{input_tokens, output_tokens}` in `speech.audio.done`: text in, audio out (all of its output). tts-1 and
 * tts-1-hd report none: their usage is the request's characters, `{input_characters}`.
 */
export function normalizeOpenAISpeech(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  if (usage.input_characters !== undefined) {
    const out = emptyUsage();
    out.input_characters = requiredCount(usage, "input_characters", "input_characters");
    return out;
  }
  const out = normalizeOpenAIResponses(usage);
  out.output_audio_tokens = out.output_tokens;
  out.reasoning_tokens = 0;
  return out;
}

/** The most audio one usage may report: a year, in milliseconds (beyond it the value is not a real one). */
const MAX_AUDIO_MS = 366 * 86_400_000;

/** Seconds of audio (a provider may send a fraction) as whole milliseconds. */
function audioMs(seconds: unknown, field: string): number {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0)
    throw new UsageError(
      field,
      `expected a length in seconds (a non-negative number), got ${JSON.stringify(seconds)}`,
    );
  const ms = Math.round(seconds * 1000);
  if (ms > MAX_AUDIO_MS) throw new UsageError(field, `${seconds} seconds is over a year of audio`);
  return ms;
}

/** Embeddings bill input only; `total_tokens` equals `prompt_tokens`. */
export function normalizeOpenAIEmbeddings(raw: unknown): NormalizedUsage {
  const usage = requireObject(raw, "");
  const out = emptyUsage();
  out.input_uncached_tokens = requiredCount(usage, "prompt_tokens", "prompt_tokens");
  return out;
}

function fromShape(
  usage: Record<string, unknown>,
  shape: OpenAIShape,
  cacheRead: number,
  cacheReadField: string,
): NormalizedUsage {
  const inputTotal = requiredCount(usage, shape.input, shape.input);
  const outputTotal = requiredCount(usage, shape.output, shape.output);
  const inDetails = optionalObject(usage, shape.inputDetails, shape.inputDetails);
  const outDetails = optionalObject(usage, shape.outputDetails, shape.outputDetails);
  const inField = (key: string) => `${shape.inputDetails}.${key}`;
  const outField = (key: string) => `${shape.outputDetails}.${key}`;

  // OpenAI has one cache-write price (no TTL choice), which we file as the 5-minute write.
  const cacheWrite = count(inDetails, "cache_write_tokens", inField("cache_write_tokens"));
  const audioIn = count(inDetails, "audio_tokens", inField("audio_tokens"));
  const imageIn = count(inDetails, "image_tokens", inField("image_tokens"));

  const inputSubsets = cacheRead + cacheWrite + audioIn + imageIn;
  checkSubset(cacheRead, cacheReadField, inputTotal, shape.input);
  checkSubset(cacheWrite, inField("cache_write_tokens"), inputTotal, shape.input);
  const label = "cached + cache-write + audio + image tokens";
  checkSubset(inputSubsets, shape.inputDetails, inputTotal, shape.input, label);

  const reasoning = count(outDetails, "reasoning_tokens", outField("reasoning_tokens"));
  const audioOut = count(outDetails, "audio_tokens", outField("audio_tokens"));
  checkSubset(reasoning, outField("reasoning_tokens"), outputTotal, shape.output);
  checkSubset(audioOut, outField("audio_tokens"), outputTotal, shape.output);

  return {
    input_uncached_tokens: inputTotal - inputSubsets,
    cache_read_tokens: cacheRead,
    cache_write_5m_tokens: cacheWrite,
    cache_write_1h_tokens: 0,
    output_tokens: outputTotal,
    reasoning_tokens: reasoning,
    input_audio_tokens: audioIn,
    output_audio_tokens: audioOut,
    image_tokens: imageIn,
    cache_audio_read_tokens: 0,
    cache_image_read_tokens: 0,
    output_image_tokens: 0,
    input_audio_ms: 0,
    input_characters: 0,
    // Responses report their searches as output items, not in usage: the extractors count them.
    web_search_requests: 0,
    file_search_requests: 0,
    web_search_preview_requests: 0,
  };
}
