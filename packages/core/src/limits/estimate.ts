import type { Decimal } from "../money/decimal.js";
import { compareDecimal } from "../money/decimal.js";
import { hasUnratedTokens, NANO_PER_MS_AT_USD_PER_HOUR, totalTokens } from "../pricing/cost.js";
import type { PriceResult, PricingEngine } from "../pricing/engine.js";
import { previewSearchRate, pricesAudio, pricesTokens, rateAt } from "../pricing/rates.js";
import type { ServedAs } from "../pricing/served-as.js";
import { Recent } from "../recent.js";
import { INPUT_LIMITS } from "../record/schema.js";
import { advisorToolModel, advisorToolOf } from "../usage/advisor.js";
import { DEFAULT_IMAGE_TOOL_MODEL, imageToolModel, imageToolOf } from "../usage/images.js";
import { type FieldFailure, protoKey } from "../usage/proto-json.js";
import { isObject } from "../usage/read.js";
import { skimmedLength } from "../usage/skim.js";
import { speechWorstCase } from "../usage/speech.js";
import { type Api, emptyUsage, type NormalizedUsage } from "../usage/types.js";
import { RequestFieldError } from "./request-field-error.js";

/** Output reserved when a request sets no output cap and the model's context window is unknown. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 32_768;
/** Input tokens reserved per image part (their bytes are not text). Covers OpenAI high detail and Anthropic's 1.15 MP. */
export const IMAGE_ALLOWANCE_TOKENS = 2_000;

/** The request body as sent (a Node Buffer fits): its size and, when available, a cheap substring test. */
export interface RawBody {
  byteLength: number;
  includes?(needle: string): boolean;
  /**
   * The body was parsed skimmed (its media left out): a string starting with this mark stands for media of
   * the length it names (skimmedLength), which an image part's size still counts.
   */
  skimMark?: string;
}

export interface WorstCase {
  usage: NormalizedUsage;
  /** The output cap the estimate used and where it came from. */
  maxOutput: number;
  outputFrom: "request" | "context_window" | "default";
}

const OUTPUT_FIELDS: Partial<Record<Api, string[]>> = {
  "openai.chat": ["max_completion_tokens", "max_tokens"],
  "openai.completions": ["max_tokens"],
  "openai.responses": ["max_output_tokens"],
  "anthropic.messages": ["max_tokens"],
  "google.generate_content": ["maxOutputTokens"],
  "bedrock.converse": ["maxTokens"],
};

/** Legacy completions default to 16 output tokens when max_tokens is not sent. */
const API_DEFAULT_OUTPUT: Partial<Record<Api, number>> = { "openai.completions": 16 };

/**
 * Worst-case usage of a request before it is sent, for reservations that must never be exceeded:
 * - input: the request's UTF-8 size in bytes, less its image parts, plus IMAGE_ALLOWANCE_TOKENS per
 *   image. A BPE token is at least one byte of text, and the JSON around the text outweighs the per-message
 *   framing tokens, so this bounds the real input count from above. `worstCaseCost` prices it at the
 *   dearest input rate (a provider may bill it as cache writes).
 * - output: the request's own cap × its number of choices (`n`, `best_of`, `candidateCount`: choicesOf),
 *   else the model's whole context window, else DEFAULT_MAX_OUTPUT_TOKENS.
 * Throws RequestFieldError for a Gemini setting it reads sent under both its names (which Google refuses).
 */
export function worstCaseUsage(
  api: Api | null,
  body: Record<string, unknown> | null,
  raw: RawBody,
  contextWindow: number | null,
): WorstCase {
  const bodyBytes = raw.byteLength;
  const usage = emptyUsage();
  if (api === "openai.embeddings") {
    usage.input_uncached_tokens = bodyBytes;
    return { usage, maxOutput: 0, outputFrom: "request" };
  }
  if (api === "openai.images") return imagesWorstCase(body);
  if (api === "openai.transcriptions") return transcriptionWorstCase(body, raw, contextWindow);
  if (api === "openai.speech") {
    const speech = speechWorstCase(body);
    return { usage: speech, maxOutput: speech.output_tokens, outputFrom: "request" };
  }
  const media = { bytes: 0, images: 0 };
  // Walking the body costs; a body whose text never says "image" has no image part to find (every kind of
  // image part says it: image_url, input_image, type "image", an inline part's "image/…" MIME type).
  const mayHaveImages = !raw.includes || raw.includes("image");
  if (body && mayHaveImages) scanMedia(body, media, 0, raw.skimMark);
  usage.input_uncached_tokens = Math.max(0, bodyBytes - media.bytes) + media.images * IMAGE_ALLOWANCE_TOKENS;

  const choices = choicesOf(api, body).count;
  const requested = api ? outputCapOf(api, body) : null;
  let maxOutput: number;
  let outputFrom: WorstCase["outputFrom"];
  if (requested !== null) {
    maxOutput = requested.tokens;
    outputFrom = "request";
  } else if (api && API_DEFAULT_OUTPUT[api] !== undefined) {
    maxOutput = API_DEFAULT_OUTPUT[api]!;
    outputFrom = "request";
  } else if (contextWindow) {
    // The byte bound over-counts the real input, so the window less it could under-reserve the output.
    maxOutput = contextWindow;
    outputFrom = "context_window";
  } else {
    maxOutput = DEFAULT_MAX_OUTPUT_TOKENS;
    outputFrom = "default";
  }
  usage.output_tokens = heldTokens(maxOutput * choices);
  if (body && api) holdToolCalls(api, body, usage);
  return { usage, maxOutput, outputFrom };
}

/**
 * Output tokens held, of a request's own numbers: `max_tokens: 1e308` with `n: 2` make Infinity, which no
 * cost can be worked out of (BigInt throws). Held at the most a record takes (10^12) instead.
 */
function heldTokens(n: number): number {
  return Math.min(n, INPUT_LIMITS.maxTokens);
}

/** Image tokens per megapixel (1024²) of an image made at high quality: GPT Image's 4,160 for 1024×1024. */
const IMAGE_TOKENS_PER_MEGAPIXEL = 4_160;
/** The pixels held for an image of no stated size (`auto`): GPT Image's largest, 1536×1024. */
const DEFAULT_IMAGE_PIXELS = 1536 * 1024;
/** Image tokens a partial image adds to a streamed one (OpenAI: 100 each). */
const PARTIAL_IMAGE_TOKENS = 100;
/** Text output held per image beside its image tokens (gpt-image-1.5 reports ~200). */
const IMAGE_TEXT_OUTPUT_TOKENS = 1_024;
/** Input held per input image or mask: a GPT Image model's high input fidelity runs to ~6,000. */
const INPUT_IMAGE_TOKENS = 8_000;
/** The most images one request may ask for (`n`, OpenAI's limit). */
const MAX_IMAGES = 10;

/** Text held for the prompt a Responses model writes for its image generation tool (its revised prompt). */
const IMAGE_TOOL_PROMPT_TOKENS = 4_096;

/**
 * The image generation tool a Responses request offers, held as a call of the tool's image model: as many
 * images as the request lets tools be called (`max_tool_calls`, at most MAX_IMAGES), else one, each of the
 * tool's size and partial images; its prompt at IMAGE_TOOL_PROMPT_TOKENS, and each image the request sends
 * (and the tool's mask) as an input image. Null when the request offers no such tool.
 */
export function imageToolWorstCase(body: Record<string, unknown> | null): WorstCase | null {
  const tool = imageToolOf(body);
  if (!tool || !body) return null;
  const calls = body.max_tool_calls;
  const n =
    typeof calls === "number" && Number.isInteger(calls) && calls > 0 ? Math.min(calls, MAX_IMAGES) : 1;
  const media = { bytes: 0, images: 0 };
  scanMedia(body.input, media, 0);
  const mask = tool.input_image_mask !== undefined && tool.input_image_mask !== null ? 1 : 0;
  const wc = imagesWorstCase({ n, size: tool.size, partial_images: tool.partial_images });
  wc.usage.input_uncached_tokens = IMAGE_TOOL_PROMPT_TOKENS;
  wc.usage.image_tokens = (media.images + mask) * INPUT_IMAGE_TOKENS;
  return wc;
}

/** Output held for one advisor consultation whose tool sets no `max_tokens` (Anthropic: typically 1,400–1,800 tokens with its thinking). */
const ADVISOR_OUTPUT_TOKENS = 2_048;
/** The most advisor consultations held for one request (its tool's `max_uses`). */
const MAX_ADVISOR_USES = 10;

/**
 * Anthropic's advisor tool a Messages request offers, held as calls of its advisor model: as many
 * consultations as its `max_uses` allows (at most MAX_ADVISOR_USES), else one; each reads the transcript so
 * far (at most the executor's worst-case input and output) and writes the tool's `max_tokens`, else
 * ADVISOR_OUTPUT_TOKENS. Null when the request offers no such tool.
 */
export function advisorWorstCase(
  body: Record<string, unknown> | null,
  executor: WorstCase,
): WorstCase | null {
  const tool = advisorToolOf(body);
  if (!tool) return null;
  const positive = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : null);
  const uses = Math.min(positive(tool.max_uses) ?? 1, MAX_ADVISOR_USES);
  const output = positive(tool.max_tokens) ?? ADVISOR_OUTPUT_TOKENS;
  const usage = emptyUsage();
  // Its input and its worst-case output: the transcript as it stands when the advisor is asked, at most.
  usage.input_uncached_tokens = uses * totalTokens(executor.usage);
  usage.output_tokens = heldTokens(uses * output);
  return { usage, maxOutput: output, outputFrom: positive(tool.max_tokens) ? "request" : "default" };
}

/**
 * The call a request's hosted tool may make on a model of its own, held beside the request's own: the
 * Responses image tool's image, an advisor's consultations. Null when it offers neither.
 */
export function toolCallWorstCase(
  api: Api | null,
  body: Record<string, unknown> | null,
  executor: WorstCase,
): { usage: NormalizedUsage; model: string } | null {
  if (api === "openai.responses") {
    const wc = imageToolWorstCase(body);
    return wc && { usage: wc.usage, model: imageToolModel(body) ?? DEFAULT_IMAGE_TOOL_MODEL };
  }
  const model = api === "anthropic.messages" ? advisorToolModel(body) : null;
  const wc = model ? advisorWorstCase(body, executor) : null;
  return wc && model ? { usage: wc.usage, model } : null;
}

/**
 * The Images API (generations and edits; a multipart body arrives parsed into its fields, each file part
 * as an object): the prompt's most UTF-8 bytes plus INPUT_IMAGE_TOKENS per input image or mask; `n` images out,
 * each at the high-quality token count of its size (by area), its partial images and some text.
 */
function imagesWorstCase(body: Record<string, unknown> | null): WorstCase {
  const usage = emptyUsage();
  const inputImages = ["image", "image[]", "images", "mask"]
    .map((k) => body?.[k])
    .reduce<number>(
      (sum, v) => sum + (Array.isArray(v) ? v.length : v === undefined || v === null ? 0 : 1),
      0,
    );
  usage.input_uncached_tokens = promptTokensAtMost(body);
  usage.image_tokens = inputImages * INPUT_IMAGE_TOKENS;
  const n = Math.min(choicesOf("openai.images", body).count, MAX_IMAGES);
  const partials =
    typeof body?.partial_images === "number" && body.partial_images > 0 ? body.partial_images : 0;
  const size = typeof body?.size === "string" ? /^(\d{1,5})x(\d{1,5})$/.exec(body.size) : null;
  const pixels = size ? Math.max(Number(size[1]) * Number(size[2]), 1) : DEFAULT_IMAGE_PIXELS;
  const perImage =
    Math.ceil((pixels * IMAGE_TOKENS_PER_MEGAPIXEL) / (1024 * 1024)) +
    Math.min(partials, 3) * PARTIAL_IMAGE_TOKENS +
    IMAGE_TEXT_OUTPUT_TOKENS;
  usage.output_tokens = n * perImage;
  // All of it may be image tokens (gpt-image-1 makes no text), as an estimated image tool call counts it.
  usage.output_image_tokens = usage.output_tokens;
  return { usage, maxOutput: perImage, outputFrom: "request" };
}

/** The lowest bitrate audio is sent at in practice (Opus's least, 6 kbit/s): a file's most seconds of audio. */
const MIN_AUDIO_BITS_PER_SECOND = 6_000;
/** The largest audio file OpenAI's transcription endpoint takes (25 MB), held when the upload's size is unknown. */
const MAX_AUDIO_UPLOAD_BYTES = 25 * 1024 * 1024;

/**
 * An audio transcription (its multipart body parsed into its fields): its audio's length is not known
 * before it is heard, but input and output together fit the model's context window, so each is held at
 * the whole window (else DEFAULT_MAX_OUTPUT_TOKENS): the audio at its input rate, the text out at the
 * output rate; plus the prompt's most UTF-8 bytes. A model billed by the hour of audio (whisper-1) is
 * held at the longest the upload can play: its bytes at MIN_AUDIO_BITS_PER_SECOND.
 */
function transcriptionWorstCase(
  body: Record<string, unknown> | null,
  raw: RawBody,
  contextWindow: number | null,
): WorstCase {
  const usage = emptyUsage();
  const window = contextWindow ?? DEFAULT_MAX_OUTPUT_TOKENS;
  usage.input_uncached_tokens = promptTokensAtMost(body);
  usage.input_audio_tokens = window;
  usage.output_tokens = window;
  const bytes = raw.byteLength || fileBytes(body) || MAX_AUDIO_UPLOAD_BYTES;
  usage.input_audio_ms = Math.ceil((bytes * 8 * 1000) / MIN_AUDIO_BITS_PER_SECOND);
  return { usage, maxOutput: window, outputFrom: contextWindow ? "context_window" : "default" };
}

/** What a transcription model bills, by its rates: the audio's length (by the hour), tokens, or both. */
export interface TranscriptionBilling {
  length: boolean;
  tokens: boolean;
}

/** What the model bills by its rates in force at `at`; null when it has no price or no model (nothing to tell). */
export function transcriptionBilling(
  engine: PricingEngine,
  provider: string,
  model: string | null,
  at: number,
): TranscriptionBilling | null {
  if (model === null) return null;
  const p = ratesInForce(engine, provider, model, at, null, null);
  if (!p.priced || !p.rates) return null;
  const r = p.rates;
  const tokens = !!(r.input_mtok || r.input_audio_mtok || r.output_mtok || r.cache_write_mtok);
  return { length: !!r.input_audio_hours, tokens };
}

/** Whether a speech model bills the characters of its text (tts-1), by its rates in force at `at`; no model: no. */
export function billsCharacters(
  engine: PricingEngine,
  provider: string,
  model: string | null,
  at: number,
): boolean {
  return model !== null && !!ratesInForce(engine, provider, model, at, null, null).rates?.input_mchars;
}

/** The bytes of the files a request's parameters hold where they say (a File or Blob's `size`), else 0. */
function fileBytes(body: Record<string, unknown> | null): number {
  let bytes = 0;
  for (const v of Object.values(body ?? {})) {
    const size = typeof v === "object" && v !== null ? (v as { size?: unknown }).size : undefined;
    if (typeof size === "number" && Number.isSafeInteger(size) && size > 0) bytes += size;
  }
  return bytes;
}

/**
 * The fields that ask an API for more answers than one, each up to the output cap and each billed: `n`
 * where an API has no others; legacy completions' `best_of`, the answers made server-side to return the
 * best `n` of; Gemini's `candidateCount` (its candidatesTokenCount counts every candidate).
 */
const CHOICE_FIELDS: Partial<Record<Api, string[]>> = {
  "openai.completions": ["best_of", "n"],
  "google.generate_content": ["candidateCount"],
};

/** How many answers (images) a request asks for, and the field it asks in (the larger where two do); else one. */
export function choicesOf(
  api: Api | null,
  body: Record<string, unknown> | null,
): { count: number; field: string | null } {
  const settings = settingsOf(api, body);
  let most: { count: number; field: string | null } = { count: 1, field: null };
  for (const field of (api && CHOICE_FIELDS[api]) || ["n"]) {
    const { key, value: v } = setting(settings, field);
    if (typeof v === "number" && Number.isInteger(v) && v > most.count) most = { count: v, field: key };
  }
  return most;
}

/** Where a request's output cap and choices are read: the object, its path in errors, and how its keys are spelt. */
interface Settings {
  values: Record<string, unknown>;
  /** The object's path with its dot (`generationConfig.`), or "" for the body itself. */
  at: string;
  /** Its fields may be sent by either proto3 JSON name (Gemini's): read by protoKey. */
  proto: boolean;
}

/**
 * Where `api` reads a request's output cap and its choices: Gemini's generationConfig (or
 * generation_config: Google reads either proto3 JSON name), Bedrock Converse's inferenceConfig, else the
 * body. Only there: an upstream that ignores fields it does not know (vLLM's) is not bound by a cap written
 * in another API's object.
 */
function settingsOf(api: Api | null, body: Record<string, unknown> | null): Settings | null {
  if (!body) return null;
  const proto = api === "google.generate_content";
  const key = proto
    ? protoKey(body, "generationConfig", "", refuse)
    : api === "bedrock.converse"
      ? "inferenceConfig"
      : null;
  const values = key === null ? body : body[key];
  return isObject(values) ? { values, at: key === null ? "" : `${key}.`, proto } : null;
}

/** A setting's value, under the key the request sends it by (a Gemini one by either of its names). */
function setting(settings: Settings | null, field: string): { key: string; value: unknown } {
  if (!settings) return { key: field, value: undefined };
  const key = settings.proto ? protoKey(settings.values, field, settings.at, refuse) : field;
  return { key, value: settings.values[key] };
}

/** A Gemini setting sent under both its names: Google refuses the request, so its worst case is not told. */
const refuse: FieldFailure = (field, message) => new RequestFieldError(field, message);

/** The most tokens a request's `prompt` field can be: a UTF-16 unit is at most 3 UTF-8 bytes, a token at least one. */
function promptTokensAtMost(body: Record<string, unknown> | null): number {
  return typeof body?.prompt === "string" ? body.prompt.length * 3 : 0;
}

/** The most searches held for one request: a larger cap (max_uses: 1e9) is held at this many. */
const MAX_HELD_SEARCHES = 1_000;

/**
 * Server-side searches a request lets the model run, where it caps them: Anthropic's web search tool
 * `max_uses`; the Responses API's `max_tool_calls` for its web and file search tools (held as web
 * searches, the dearer). Without a cap nothing is held for them: they are charged when the call settles.
 */
function holdToolCalls(api: Api, body: Record<string, unknown>, usage: NormalizedUsage): void {
  const tools = Array.isArray(body.tools) ? body.tools : [];
  const cap = (v: unknown) =>
    typeof v === "number" && Number.isInteger(v) && v > 0 ? Math.min(v, MAX_HELD_SEARCHES) : 0;
  const typeOf = (t: unknown) =>
    typeof t === "object" && t !== null && typeof (t as { type?: unknown }).type === "string"
      ? (t as { type: string }).type
      : "";
  if (api === "anthropic.messages") {
    for (const t of tools)
      if (typeOf(t).startsWith("web_search"))
        usage.web_search_requests += cap((t as { max_uses?: unknown }).max_uses);
    usage.web_search_requests = Math.min(usage.web_search_requests, MAX_HELD_SEARCHES);
  } else if (api === "openai.responses") {
    const searches = tools.some((t) => /^(web_search|file_search)/.test(typeOf(t)));
    if (searches) usage.web_search_requests = cap(body.max_tool_calls);
    // With a web_search_preview tool they are held as its searches, the dearest on some models.
    if (tools.some((t) => typeOf(t).startsWith("web_search_preview")))
      usage.web_search_preview_requests = usage.web_search_requests;
  }
}

/**
 * The request fields that cap a call's output on `api`, in the order they are read. None for a call whose
 * worst case no output cap decides (embeddings, images, speech, transcriptions, realtime).
 */
export function outputCapFields(api: Api): readonly string[] {
  return OUTPUT_FIELDS[api] ?? [];
}

/** The output cap a request sets: the field it is set in and its tokens; null when it sets none. */
export function outputCapOf(
  api: Api,
  body: Record<string, unknown> | null,
): { field: string; tokens: number } | null {
  const settings = settingsOf(api, body);
  for (const field of outputCapFields(api)) {
    const { key, value: v } = setting(settings, field);
    if (typeof v === "number" && Number.isInteger(v) && v >= 0) return { field: key, tokens: v };
  }
  return null;
}

const IMAGE_TYPES: ReadonlySet<unknown> = new Set(["image_url", "input_image", "image"]);

/**
 * Inline image parts: their JSON size (base64 is not text, so it is taken out of the byte bound) and
 * their count (each gets IMAGE_ALLOWANCE_TOKENS). Other media (audio, PDFs) keep their bytes: more
 * bytes than tokens.
 */
function scanMedia(
  v: unknown,
  acc: { bytes: number; images: number },
  depth: number,
  skimMark?: string,
): void {
  if (depth > 64 || typeof v !== "object" || v === null) return;
  if (Array.isArray(v)) {
    for (const x of v) scanMedia(x, acc, depth + 1, skimMark);
    return;
  }
  const o = v as Record<string, unknown>;
  if (IMAGE_TYPES.has(o.type) || [o.inlineData, o.inline_data].some(isInlineImage)) {
    acc.images++;
    acc.bytes += JSON.stringify(o).length + (skimMark ? skimmedLength(o, skimMark) : 0);
    return;
  }
  for (const x of Object.values(o)) scanMedia(x, acc, depth + 1, skimMark);
}

/**
 * A Gemini inline part of an image: its MIME type, by either proto3 JSON name, an image's. This walk reads
 * every API's body alike, so a part sent under both names is not refused here: it is an image if either says.
 */
function isInlineImage(part: unknown): boolean {
  return (
    isObject(part) &&
    [part.mimeType, part.mime_type].some((m) => typeof m === "string" && m.startsWith("image/"))
  );
}

/**
 * Rates in force per (provider, model, service tier asked for), re-read each minute (time-of-day prices)
 * or when the book changes.
 */
interface RatesInForce {
  minute: number;
  book: string | null;
  price: PriceResult;
}
const inForce = new WeakMap<PricingEngine, Map<string, Recent<RatesInForce>>>();
/**
 * Models (with their tiers) kept per provider; past this many the least recently used goes, one at a time:
 * emptied whole, a stream of made-up model names had every model's rates worked out again at once.
 */
const MAX_MODELS_IN_FORCE = 10_000;
const NO_USAGE = emptyUsage();

/**
 * A hold's text tokens alone: the input and output every model call bills, with the part of its output
 * it holds as audio or images (a speech or image request's): an entry that rates those rates that part.
 */
function textTokens(usage: NormalizedUsage): NormalizedUsage {
  const text = emptyUsage();
  text.input_uncached_tokens = usage.input_uncached_tokens;
  text.output_tokens = usage.output_tokens;
  text.output_audio_tokens = usage.output_audio_tokens;
  text.output_image_tokens = usage.output_image_tokens;
  return text;
}

function ratesInForce(
  engine: PricingEngine,
  provider: string,
  model: string,
  at: number,
  serviceTier: string | null,
  servedAs: ServedAs | null,
): PriceResult {
  let byProvider = inForce.get(engine);
  if (!byProvider) {
    byProvider = new Map();
    inForce.set(engine, byProvider);
  }
  let byModel = byProvider.get(provider);
  if (!byModel) {
    byModel = new Recent({ max: MAX_MODELS_IN_FORCE });
    byProvider.set(provider, byModel);
  }
  const minute = Math.floor(at / 60_000);
  const key =
    serviceTier === null && servedAs === null
      ? model
      : `${model}\u0000${serviceTier}\u0000${servedAs?.inferenceGeo}\u0000${servedAs?.speed}`;
  const hit = byModel.touch(key);
  if (hit && hit.minute === minute && hit.book === engine.priceBookRef) return hit.price;
  const price = engine.price({ provider, model, usage: NO_USAGE, at, serviceTier, servedAs });
  byModel.set(key, { minute, book: engine.priceBookRef, price });
  return price;
}

/**
 * qty × rate, as nano-USD over a denominator: [numerator, scale, unitDen] for numerator / (10^scale × unitDen).
 * `nanoPerUnit` / `unitDen` is the nano-USD per unit counted at a rate of 1 (1000 a token at $1 per million).
 */
type Line = [bigint, number, bigint];
function line(qty: number, rate: Decimal | null | undefined, nanoPerUnit: bigint, unitDen = 1n): Line {
  return rate && qty > 0 ? [BigInt(qty) * rate.units * nanoPerUnit, rate.scale, unitDen] : [0n, 0, 1n];
}

/**
 * The most a worst-case usage can cost: its input priced at the dearest of the model's input rates
 * (uncached, 5-minute and 1-hour cache writes: a provider may bill fresh input as cache writes), output at
 * the dearest of the text, audio and image output rates, plus any per-request fee, discounts, batch rates and the rates of the service tier the
 * request asks for applied, rounded up. Worked out from the rates in force (cached per minute): this runs
 * before every call a budget applies to.
 */
export function worstCaseCost(
  engine: PricingEngine,
  provider: string,
  model: string,
  usage: NormalizedUsage,
  at: number,
  serviceTier: string | null = null,
  servedAs: ServedAs | null = null,
): { priced: boolean; total_nanousd: bigint } {
  const inForcePrice = ratesInForce(engine, provider, model, at, serviceTier, servedAs);
  if (!inForcePrice.priced || !inForcePrice.rates) return { priced: false, total_nanousd: 0n };
  const r = inForcePrice.rates;
  // Text tokens a price-book entry has no rate for make the call unpriced (the engine's rule), so its hold
  // is too, which `unpriced: block` refuses: not a $0 line. A hold counts every way its call may bill (a
  // speech hold both characters and tokens, a transcription's audio both by length and as tokens): a model
  // the book bills by the character or the hour alone is held by those, and media tokens by their rules below.
  const byUnits = (r.input_mchars || r.input_audio_hours) && !pricesTokens(r);
  if (inForcePrice.price_ref.startsWith("pricebook:") && !byUnits && hasUnratedTokens(textTokens(usage), r))
    return { priced: false, total_nanousd: 0n };
  const tokens = usage.input_uncached_tokens;
  const input = r.input_mtok ? rateAt(r.input_mtok, tokens) : null;
  const write5m = r.cache_write_mtok ? rateAt(r.cache_write_mtok, tokens) : input;
  const write1h = r.cache_write_1h_mtok ? rateAt(r.cache_write_1h_mtok, tokens) : write5m;
  let dearest = input;
  for (const rate of [write5m, write1h])
    if (rate && (!dearest || compareDecimal(rate, dearest) > 0)) dearest = rate;
  // A model that can answer in audio (or images) may bill all of its output at that rate.
  let output = r.output_mtok ? rateAt(r.output_mtok, tokens) : null;
  for (const media of [r.output_audio_mtok, r.output_image_mtok]) {
    const rate = media ? rateAt(media, tokens) : null;
    if (rate && (!output || compareDecimal(rate, output) > 0)) output = rate;
  }
  const imageIn = r.input_image_mtok ? rateAt(r.input_image_mtok, tokens) : dearest;
  const audioIn = r.input_audio_mtok ? rateAt(r.input_audio_mtok, tokens) : dearest;
  // Audio a model bills by the hour (whisper-1) is held by its length, and by its tokens where it has a
  // token rate. Audio neither prices: not a $0 worst case, an unpriced one, which `unpriced: block` refuses.
  const audioHours = r.input_audio_hours ? rateAt(r.input_audio_hours, tokens) : null;
  const audioHeld = usage.input_audio_tokens > 0 || usage.input_audio_ms > 0;
  if (audioHeld && !pricesAudio(r)) return { priced: false, total_nanousd: 0n };
  // A speech request is held by its characters where its model bills them, else by its tokens alone.
  const characters = r.input_mchars ? rateAt(r.input_mchars, tokens) : null;
  const perMs = NANO_PER_MS_AT_USD_PER_HOUR;
  const lines = [
    line(tokens, dearest, 1000n),
    line(usage.image_tokens, imageIn, 1000n),
    line(usage.input_audio_tokens, audioIn, 1000n),
    line(usage.input_audio_ms, audioHours, BigInt(perMs.num), BigInt(perMs.den)),
    line(usage.input_characters, characters, 1000n),
    line(usage.output_tokens, output, 1000n),
    line(1, r.requests_kcount ? rateAt(r.requests_kcount, tokens) : null, 1_000_000n),
  ];
  // Server-side tool calls at their list price: a discount only lowers it, and batch rates do not apply.
  const previewRate = previewSearchRate(r);
  const toolCalls = [
    line(
      usage.web_search_requests - usage.web_search_preview_requests,
      r.web_searches_kcount ? rateAt(r.web_searches_kcount, tokens) : null,
      1_000_000n,
    ),
    line(usage.web_search_preview_requests, previewRate ? rateAt(previewRate, tokens) : null, 1_000_000n),
    line(
      usage.file_search_requests,
      r.storage_searches_kcount ? rateAt(r.storage_searches_kcount, tokens) : null,
      1_000_000n,
    ),
  ];
  const total = roundedUp(lines, inForcePrice.multiplier) + roundedUp(toolCalls);
  return { priced: true, total_nanousd: total };
}

/** The sum of lines times `m`, rounded up to whole nano-USD. */
function roundedUp(lines: Line[], m: Decimal = { units: 1n, scale: 0 }): bigint {
  const scale = Math.max(...lines.map(([, s]) => s));
  // The unit denominators are 1 or 9 (per hour, counted in ms): their product is a common one.
  const unitDen = lines.reduce((d, [, , u]) => (d % u === 0n ? d : d * u), 1n);
  let num = 0n;
  for (const [n, s, u] of lines) num += n * 10n ** BigInt(scale - s) * (unitDen / u);
  num *= m.units;
  const den = 10n ** BigInt(scale + m.scale) * unitDen;
  return (num + den - 1n) / den;
}
