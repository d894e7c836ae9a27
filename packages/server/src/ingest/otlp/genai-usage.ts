import { emptyUsage, type NormalizedUsage } from "@tollgate/core";
import type { AttrMap, AttrValue } from "./spans.js";

/**
 * OTel GenAI usage attributes → Tollgate's disjoint usage. OTel counts cache reads and cache writes (and
 * per-modality input) INSIDE gen_ai.usage.input_tokens, and reasoning (and audio output) INSIDE
 * gen_ai.usage.output_tokens; Tollgate stores disjoint input categories, so the parts are subtracted from
 * the total once. Legacy OpenLLMetry names are read where the current ones are absent; they count the
 * same way (OpenLLMetry's OpenAI instrumentation copies prompt_tokens, which includes cached tokens).
 *
 * Some emitters follow the provider's own convention instead (Anthropic: input excludes cache tokens).
 * When the parts exceed the total they cannot be inside it, so they are added to it rather than refused.
 */
const INPUT = ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"];
const OUTPUT = ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"];
// Last, Pydantic AI's (Logfire's GenAI spans): its details.*, counted inside the totals the same way.
const CACHE_READ = [
  "gen_ai.usage.cache_read.input_tokens",
  "gen_ai.usage.cache_read_input_tokens",
  "gen_ai.usage.details.cache_read_tokens",
];
const CACHE_WRITE = [
  "gen_ai.usage.cache_creation.input_tokens",
  "gen_ai.usage.cache_creation_input_tokens",
  "gen_ai.usage.details.cache_write_tokens",
];
const REASONING = [
  "gen_ai.usage.reasoning.output_tokens",
  "gen_ai.usage.reasoning_tokens",
  "gen_ai.usage.details.reasoning_tokens",
];
const AUDIO_IN = "gen_ai.usage.audio.input_tokens";
const AUDIO_CACHED = "gen_ai.usage.audio.cache_read.input_tokens";
const IMAGE_IN = "gen_ai.usage.image.input_tokens";
const IMAGE_CACHED = "gen_ai.usage.image.cache_read.input_tokens";
const AUDIO_OUT = "gen_ai.usage.audio.output_tokens";

const MAX_TOKENS = 1_000_000_000_000;

export class UsageAttributeError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

/** Whether the span reports token counts at all (what makes an ancestor a wrapper). */
export function reportsTokens(attrs: AttrMap): boolean {
  for (const k of INPUT) if (attrs[k] !== undefined) return true;
  for (const k of OUTPUT) if (attrs[k] !== undefined) return true;
  return false;
}

/** The gen_ai.usage.* (and legacy llm.usage.*) attributes verbatim, for usage_raw; null when none. */
export function usageAttributes(attrs: AttrMap): Record<string, unknown> | null {
  let raw: Record<string, unknown> | null = null;
  for (const k in attrs) {
    if (!k.startsWith("gen_ai.usage.") && !k.startsWith("llm.usage.")) continue;
    raw ??= {};
    raw[k] = jsonValue(attrs[k]!);
  }
  return raw;
}

/** An int64 past 2^53 as its digits, at any depth: JSON has no bigint (storing one threw, a 500 for the export). */
function jsonValue(v: AttrValue): unknown {
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v === null || typeof v !== "object" || v instanceof Uint8Array) return v;
  const out: Record<string, unknown> = {};
  for (const k in v) out[k] = jsonValue(v[k]!);
  return out;
}

/**
 * The span's usage, or null when it reports no input or output count (then its cost is unknown, not 0).
 * Throws UsageAttributeError naming the attribute when a count is not a count or the parts do not fit.
 */
export function readUsage(attrs: AttrMap): NormalizedUsage | null {
  const input = first(attrs, INPUT);
  const output = first(attrs, OUTPUT);
  if (input === undefined && output === undefined) return null;
  const cacheRead = first(attrs, CACHE_READ) ?? 0;
  const cacheWrite = first(attrs, CACHE_WRITE) ?? 0;
  const reasoning = first(attrs, REASONING) ?? 0;
  const audioIn = uncached(attrs, AUDIO_IN, AUDIO_CACHED);
  const imageIn = uncached(attrs, IMAGE_IN, IMAGE_CACHED);
  // Cached audio and image are in the cache reads, and priced apart from cached text where a model has
  // their rates (as the SDK and gateway record them): taken out of cache_read to their own counts.
  const audioCached = first(attrs, [AUDIO_CACHED]) ?? 0;
  const imageCached = first(attrs, [IMAGE_CACHED]) ?? 0;
  if (audioCached + imageCached > cacheRead)
    throw new UsageAttributeError(
      AUDIO_CACHED,
      `cached audio + image input tokens (${audioCached + imageCached}) exceed ` +
        `gen_ai.usage.cache_read.input_tokens (${cacheRead})`,
    );
  const audioOut = first(attrs, [AUDIO_OUT]) ?? 0;

  let inputTotal = input ?? 0;
  const modalities = audioIn + imageIn;
  if (modalities > inputTotal)
    throw new UsageAttributeError(
      AUDIO_IN,
      `audio + image input tokens (${modalities}) exceed gen_ai.usage.input_tokens (${inputTotal})`,
    );
  if (cacheRead + cacheWrite + modalities > inputTotal) inputTotal += cacheRead + cacheWrite;

  // Same reading for output: reasoning larger than the total was counted beside it (audio output is
  // checked against the total by the record's own rules).
  const outputTotal = reasoning > (output ?? 0) ? (output ?? 0) + reasoning : (output ?? 0);

  const usage = emptyUsage();
  usage.input_uncached_tokens = inputTotal - cacheRead - cacheWrite - modalities;
  usage.cache_read_tokens = cacheRead - audioCached - imageCached;
  usage.cache_audio_read_tokens = audioCached;
  usage.cache_image_read_tokens = imageCached;
  // OTel has one cache-write count and no TTL: filed as the 5-minute write (as OpenAI's is).
  usage.cache_write_5m_tokens = cacheWrite;
  usage.output_tokens = outputTotal;
  usage.reasoning_tokens = reasoning;
  usage.input_audio_tokens = audioIn;
  usage.output_audio_tokens = audioOut;
  usage.image_tokens = imageIn;
  return usage;
}

function first(attrs: AttrMap, keys: readonly string[]): number | undefined {
  for (const k of keys) {
    const v = attrs[k];
    if (v !== undefined && v !== null) return count(k, v);
  }
  return undefined;
}

/** A modality's input count less its cached part (counted with the cache reads). */
function uncached(attrs: AttrMap, totalKey: string, cachedKey: string): number {
  const total = first(attrs, [totalKey]) ?? 0;
  const cached = first(attrs, [cachedKey]) ?? 0;
  if (cached > total) throw new UsageAttributeError(cachedKey, `exceeds ${totalKey} (${total})`);
  return total - cached;
}

/** Token counts are billed: a non-negative integer (an int, an integral double, or digits), nothing else. */
function count(key: string, v: AttrValue): number {
  const n = typeof v === "string" && /^\d{1,13}$/.test(v) ? Number(v) : v;
  if (typeof n === "bigint") throw new UsageAttributeError(key, `token count is too large (${n})`);
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0)
    throw new UsageAttributeError(key, `must be a non-negative integer token count, got ${describe(v)}`);
  if (n > MAX_TOKENS) throw new UsageAttributeError(key, `token count is too large (${n})`);
  return n;
}

function describe(v: AttrValue): string {
  if (typeof v === "string") return JSON.stringify(v.slice(0, 40));
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return "an array";
  return v instanceof Uint8Array ? "bytes" : typeof v === "object" ? "a kvlist" : typeof v;
}
