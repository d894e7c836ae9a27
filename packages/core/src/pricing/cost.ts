import type { Decimal } from "../money/decimal.js";
import type { NormalizedUsage } from "../usage/types.js";
import {
  type CostBreakdown,
  type CostCategory,
  costInBigInts,
  costInNumbers,
  type PricedLine,
} from "./breakdown.js";
import { type PriceRates, type Rate, rateAt } from "./rates.js";

export { COST_CATEGORIES, type CostBreakdown, type CostCategory, zeroCost } from "./breakdown.js";

export function totalInputTokens(u: NormalizedUsage): number {
  return (
    u.input_uncached_tokens +
    u.cache_read_tokens +
    u.cache_write_5m_tokens +
    u.cache_write_1h_tokens +
    u.input_audio_tokens +
    u.image_tokens
  );
}

/** Every token of a call, input and output (what agent-run and tokens-per-minute limits count). */
export function totalTokens(u: NormalizedUsage): number {
  return totalInputTokens(u) + u.output_tokens;
}

/** One priced quantity: `qty` units at `rate` per `per` units. */
interface Line {
  category: CostCategory;
  qty: number;
  rate: Rate | undefined;
  /** nano-USD per price unit = 1e9 / units-per-price (1e3 for per-million tokens, 1e6 for per-thousand). */
  nanoPerUnit: number;
}

/**
 * Exact cost of one call. A category without its own rate is billed at its parent's rate
 * (cache read → input, 1h write → write → input, audio/image → input or output), as genai-prices does.
 * The exact rational total is rounded half-up once; categories are apportioned so they sum to it.
 */
export function computeCost(usage: NormalizedUsage, rates: PriceRates, multiplier?: Decimal): CostBreakdown {
  const lines = pricedLines(usage, rates, multiplier);
  return costInNumbers(lines) ?? costInBigInts(lines);
}

function pricedLines(usage: NormalizedUsage, rates: PriceRates, multiplier?: Decimal): PricedLine[] {
  const input = rates.input_mtok;
  const write = rates.cache_write_mtok ?? input;
  const output = rates.output_mtok;
  const reasoningPriced = rates.output_reasoning_mtok !== undefined;
  const audioOutPriced = rates.output_audio_mtok !== undefined;
  const plainOutput =
    usage.output_tokens -
    (reasoningPriced ? usage.reasoning_tokens : 0) -
    (audioOutPriced ? usage.output_audio_tokens : 0);
  if (plainOutput < 0) throw new RangeError("reasoning/audio output tokens exceed output_tokens");
  const M = 1000;
  // Line order is the apportioning's tie order: keep it.
  const lines: Line[] = [
    { category: "input_uncached", qty: usage.input_uncached_tokens, rate: input, nanoPerUnit: M },
    {
      category: "cache_read",
      qty: usage.cache_read_tokens,
      rate: rates.cache_read_mtok ?? input,
      nanoPerUnit: M,
    },
    { category: "cache_write_5m", qty: usage.cache_write_5m_tokens, rate: write, nanoPerUnit: M },
    {
      category: "cache_write_1h",
      qty: usage.cache_write_1h_tokens,
      rate: rates.cache_write_1h_mtok ?? write,
      nanoPerUnit: M,
    },
    {
      category: "input_audio",
      qty: usage.input_audio_tokens,
      rate: rates.input_audio_mtok ?? input,
      nanoPerUnit: M,
    },
    { category: "image", qty: usage.image_tokens, rate: rates.input_image_mtok ?? input, nanoPerUnit: M },
    { category: "output", qty: plainOutput, rate: output, nanoPerUnit: M },
    {
      category: "output",
      qty: reasoningPriced ? usage.reasoning_tokens : 0,
      rate: rates.output_reasoning_mtok,
      nanoPerUnit: M,
    },
    {
      category: "output_audio",
      qty: audioOutPriced ? usage.output_audio_tokens : 0,
      rate: rates.output_audio_mtok,
      nanoPerUnit: M,
    },
    {
      category: "requests",
      qty: rates.requests_kcount ? 1 : 0,
      rate: rates.requests_kcount,
      nanoPerUnit: 1_000_000,
    },
  ];
  const inputTokens = totalInputTokens(usage);
  const priced: PricedLine[] = [];
  for (const l of lines) {
    if (!l.rate || l.qty <= 0) continue;
    const d = rateAt(l.rate, inputTokens);
    const price = multiplier ? { units: d.units * multiplier.units, scale: d.scale + multiplier.scale } : d;
    priced.push({ category: l.category, qty: l.qty, price, nanoPerUnit: l.nanoPerUnit });
  }
  return priced;
}
