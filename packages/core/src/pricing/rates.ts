import { type Decimal, decimalFromNumber, parseDecimal } from "../money/decimal.js";

/** A price per unit: flat, or tiered by the call's total input tokens (genai-prices semantics). */
export type Rate = Decimal | TieredRate;
export interface TieredRate {
  base: Decimal;
  /** Applies when total input tokens > start; the highest matching tier wins. */
  tiers: { start: number; price: Decimal }[];
}

/**
 * The price keys Tollgate bills, per million tokens (`_mtok`), per thousand requests or server-side
 * tool calls (`_kcount`; genai-prices' names: a "storage search" is a file search), per hour of input
 * audio (`input_audio_hours`) or per million characters of input text (`input_mchars`, Tollgate's own, for
 * speech models billed by the character). `web_search_previews_kcount`
 * is Tollgate's own: OpenAI prices its `web_search_preview` tool's searches apart.
 */
export const RATE_KEYS = [
  "input_mtok",
  "cache_read_mtok",
  "cache_write_mtok",
  "cache_write_1h_mtok",
  "output_mtok",
  "output_reasoning_mtok",
  "input_audio_mtok",
  "output_audio_mtok",
  "output_image_mtok",
  "input_image_mtok",
  "cache_audio_read_mtok",
  "cache_image_read_mtok",
  "requests_kcount",
  "web_searches_kcount",
  "storage_searches_kcount",
  "web_search_previews_kcount",
  "input_audio_hours",
  "input_mchars",
] as const;
export type RateKey = (typeof RATE_KEYS)[number];
export type PriceRates = Partial<Record<RateKey, Rate>>;

/** The rate of a `web_search_preview` search: its own where the model has one, else a web search's. */
export function previewSearchRate(rates: PriceRates): Rate | undefined {
  return rates.web_search_previews_kcount ?? rates.web_searches_kcount;
}

/**
 * Whether the rates price input audio at all: by the hour, or at the audio input rate or the rates it falls
 * back to (input, cache writes). Audio none of them prices has no known cost, never a $0 one.
 */
export function pricesAudio(r: PriceRates): boolean {
  return !!(
    r.input_audio_hours ||
    r.input_audio_mtok ||
    r.input_mtok ||
    r.cache_write_mtok ||
    r.cache_write_1h_mtok
  );
}

/** Whether the rates price tokens at all (any per-million-token rate). */
export function pricesTokens(r: PriceRates): boolean {
  return RATE_KEYS.some((k) => k.endsWith("_mtok") && r[k] !== undefined);
}

export function isTiered(rate: Rate): rate is TieredRate {
  return "tiers" in rate;
}

/** The rate that applies to a call with `inputTokens` total input tokens. */
export function rateAt(rate: Rate, inputTokens: number): Decimal {
  if (!isTiered(rate)) return rate;
  let price = rate.base;
  for (const tier of rate.tiers) if (inputTokens > tier.start) price = tier.price;
  return price;
}

type RawRate =
  | number
  | string
  | { base: number | string; tiers: { start: number; price: number | string }[] };

function toDecimal(v: number | string): Decimal {
  return typeof v === "number" ? decimalFromNumber(v) : parseDecimal(v);
}

/** Converts a price map (genai-prices numbers or price-book decimal strings) to exact rates. */
export function ratesFrom(raw: Record<string, unknown>): PriceRates {
  const rates: PriceRates = {};
  for (const key of RATE_KEYS) {
    const v = raw[key] as RawRate | undefined;
    if (v === undefined || v === null) continue;
    rates[key] =
      typeof v === "object"
        ? {
            base: toDecimal(v.base),
            tiers: [...v.tiers]
              .sort((a, b) => a.start - b.start)
              .map((t) => ({ start: t.start, price: toDecimal(t.price) })),
          }
        : toDecimal(v);
  }
  return rates;
}
