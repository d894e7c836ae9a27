import type { Decimal } from "../money/decimal.js";
import type { NormalizedUsage } from "../usage/types.js";
import {
  type CostBreakdown,
  type CostCategory,
  costInBigInts,
  costInNumbers,
  type PricedLine,
} from "./breakdown.js";
import { type PriceRates, previewSearchRate, type Rate, rateAt } from "./rates.js";

export { COST_CATEGORIES, type CostBreakdown, type CostCategory, zeroCost } from "./breakdown.js";

export function totalInputTokens(u: NormalizedUsage): number {
  return (
    u.input_uncached_tokens +
    u.cache_read_tokens +
    u.cache_write_5m_tokens +
    u.cache_write_1h_tokens +
    u.input_audio_tokens +
    u.image_tokens +
    u.cache_audio_read_tokens +
    u.cache_image_read_tokens
  );
}

/** Every token of a call, input and output (what agent-run and tokens-per-minute limits count). */
export function totalTokens(u: NormalizedUsage): number {
  return totalInputTokens(u) + u.output_tokens;
}

/**
 * Exact cost of one call. A category without its own rate is billed at its parent's rate
 * (cache read → input, 1h write → write → input, audio/image → input or output, cached audio/image →
 * cache read, else audio/image input), as genai-prices does;
 * web_search_preview searches without their own rate are billed as other web searches.
 * The exact rational total is rounded half-up once; categories are apportioned so they sum to it.
 */
export function computeCost(
  usage: NormalizedUsage,
  rates: PriceRates,
  multipliers: Multipliers = {},
): CostBreakdown {
  const { lines } = pricedLines(usage, rates, multipliers);
  return costInNumbers(lines) ?? costInBigInts(lines);
}

/**
 * Whether some of the call's tokens have no rate, not even one they fall back to (a price-book entry that
 * prices only some categories): their cost is unknown, never $0.
 */
export function hasUnratedTokens(usage: NormalizedUsage, rates: PriceRates): boolean {
  return pricedLines(usage, rates, {}).unrated;
}

/** nano-USD per unit for a price of 1 USD per price unit (1e9 / units per price unit). */
const NANO_PER_TOKEN_AT_USD_PER_MTOK = 1000;
const NANO_PER_REQUEST_AT_USD_PER_KREQ = 1_000_000;
/** nano-USD per millisecond at 1 USD per hour: 1e9 / 3.6e6 = 2500 / 9. */
export const NANO_PER_MS_AT_USD_PER_HOUR = { num: 2500, den: 9 } as const;

/**
 * What scales the rates: `tokens` (discount × batch) every token and request rate; server-side tool calls
 * cost the same on every tier, so they take `toolCalls` (the discount alone).
 */
export interface Multipliers {
  tokens?: Decimal;
  toolCalls?: Decimal;
}

function pricedLines(
  usage: NormalizedUsage,
  rates: PriceRates,
  multipliers: Multipliers,
): { lines: PricedLine[]; unrated: boolean } {
  const input = rates.input_mtok;
  const write = rates.cache_write_mtok ?? input;
  const cacheRead = rates.cache_read_mtok ?? input;
  const output = rates.output_mtok;
  const reasoningPriced = rates.output_reasoning_mtok !== undefined;
  const audioOutPriced = rates.output_audio_mtok !== undefined;
  const imageOutPriced = rates.output_image_mtok !== undefined;
  const plainOutput =
    usage.output_tokens -
    (reasoningPriced ? usage.reasoning_tokens : 0) -
    (audioOutPriced ? usage.output_audio_tokens : 0) -
    (imageOutPriced ? usage.output_image_tokens : 0);
  if (plainOutput < 0) throw new RangeError("reasoning/audio/image output tokens exceed output_tokens");
  const otherSearches = usage.web_search_requests - usage.web_search_preview_requests;
  if (otherSearches < 0) throw new RangeError("web_search_preview_requests exceed web_search_requests");
  const inputTokens = totalInputTokens(usage);
  const priced: PricedLine[] = [];
  let unrated = false;
  const line = (
    category: CostCategory,
    qty: number,
    rate: Rate | undefined,
    nanoPerUnit = NANO_PER_TOKEN_AT_USD_PER_MTOK,
    toolCall = false,
    unitDen = 1,
  ) => {
    const m = toolCall ? multipliers.toolCalls : multipliers.tokens;
    if (qty <= 0) return;
    if (!rate) {
      unrated ||= nanoPerUnit === NANO_PER_TOKEN_AT_USD_PER_MTOK;
      return;
    }
    const d = rateAt(rate, inputTokens);
    const price = m ? { units: d.units * m.units, scale: d.scale + m.scale } : d;
    priced.push({ category, qty, price, nanoPerUnit, unitDen });
  };
  // Line order is the apportioning's tie order: keep it.
  line("input_uncached", usage.input_uncached_tokens, input);
  line("cache_read", usage.cache_read_tokens, cacheRead);
  line("cache_write_5m", usage.cache_write_5m_tokens, write);
  line("cache_write_1h", usage.cache_write_1h_tokens, rates.cache_write_1h_mtok ?? write);
  line("input_audio", usage.input_audio_tokens, rates.input_audio_mtok ?? input);
  line("image", usage.image_tokens, rates.input_image_mtok ?? input);
  // Cached audio/image on a model with no cache rate is not discounted: it is still audio/image input.
  const cachedAs = (own: Rate | undefined, media: Rate | undefined) =>
    own ?? rates.cache_read_mtok ?? media ?? input;
  line(
    "cache_read",
    usage.cache_audio_read_tokens,
    cachedAs(rates.cache_audio_read_mtok, rates.input_audio_mtok),
  );
  line(
    "cache_read",
    usage.cache_image_read_tokens,
    cachedAs(rates.cache_image_read_mtok, rates.input_image_mtok),
  );
  line("output", plainOutput, output);
  line("output", reasoningPriced ? usage.reasoning_tokens : 0, rates.output_reasoning_mtok);
  line("output_audio", audioOutPriced ? usage.output_audio_tokens : 0, rates.output_audio_mtok);
  line("output", imageOutPriced ? usage.output_image_tokens : 0, rates.output_image_mtok);
  const perMs = NANO_PER_MS_AT_USD_PER_HOUR;
  line("input_audio", usage.input_audio_ms, rates.input_audio_hours, perMs.num, false, perMs.den);
  line("input_uncached", usage.input_characters, rates.input_mchars);
  line("requests", rates.requests_kcount ? 1 : 0, rates.requests_kcount, NANO_PER_REQUEST_AT_USD_PER_KREQ);
  const perCall = NANO_PER_REQUEST_AT_USD_PER_KREQ;
  line("tool_calls", otherSearches, rates.web_searches_kcount, perCall, true);
  line("tool_calls", usage.web_search_preview_requests, previewSearchRate(rates), perCall, true);
  line("tool_calls", usage.file_search_requests, rates.storage_searches_kcount, perCall, true);
  return { lines: priced, unrated };
}
