import { type Decimal, mulDecimal, parseDecimal } from "../money/decimal.js";
import type { NormalizedUsage } from "../usage/types.js";
import { type BuiltinModel, BuiltinPrices, genaiProviderId, ownModelId, pricesAt } from "./builtin.js";
import { type CostBreakdown, computeCost, hasUnratedTokens, totalTokens, zeroCost } from "./cost.js";
import type { PriceBook } from "./pricebook.js";
import { type PriceRates, pricesAudio, pricesTokens, ratesFrom } from "./rates.js";
import { type ServedAs, servedMultipliers } from "./served-as.js";

export interface PriceRequest {
  provider: string;
  model: string;
  usage: NormalizedUsage;
  /** When the call happened: prices are effective-dated. */
  at: Date | number;
  batch?: boolean;
  /** The service tier the provider says it served the call on (OpenAI's `flex` is billed at batch rates). */
  serviceTier?: string | null;
  /** How the provider says it served the call, where it prices that apart (servedAsOf the reply's usage). */
  servedAs?: ServedAs | null;
}

export interface PriceResult {
  priced: boolean;
  /** Where the price came from, e.g. `genai-prices@0.1.8:openai:gpt-5` or `pricebook:acme@3`, plus `;discount=…;batch=…`. */
  price_ref: string;
  cost: CostBreakdown;
  rates?: PriceRates;
  /** Discount × batch multiplier applied to the rates, when any. */
  multiplier?: Decimal;
}

/**
 * Published batch-API discount of providers that have one (by genai-prices provider id, so every spelling
 * the built-in prices resolve gets it); a price book `batch` entry overrides it.
 */
const DEFAULT_BATCH: Record<string, string> = {
  openai: "0.5",
  azure: "0.5",
  anthropic: "0.5",
  google: "0.5",
  aws: "0.5",
  mistral: "0.5",
  groq: "0.5",
};

/** Providers (genai-prices ids) whose `flex` service tier is billed at their batch rates. */
const FLEX_PROVIDERS = new Set(["openai", "azure"]);

/**
 * Prices calls: price book first (custom models, aliases, discounts, batch), built-in genai-prices data
 * otherwise. Unknown models come back `priced: false` with a zero cost, never a silent zero.
 */
export class PricingEngine {
  readonly #builtin = new BuiltinPrices();
  /**
   * Rates by built-in model, then by price variant: one variant is shared by the providers genai-prices
   * resolves to the same model data (Azure's gpt-4o is OpenAI's), whose added rates differ.
   */
  readonly #rateCache = new WeakMap<BuiltinModel, WeakMap<object, PriceRates>>();
  #book: PriceBook | null;

  constructor(book: PriceBook | null = null) {
    this.#book = book;
  }

  /** Swaps the price book (e.g. after the file was edited); in-flight calls keep the old one. */
  setPriceBook(book: PriceBook | null): void {
    this.#book = book;
  }

  get priceBookRef(): string | null {
    return this.#book?.ref ?? null;
  }

  price(req: PriceRequest): PriceResult {
    const at = typeof req.at === "number" ? req.at : req.at.getTime();
    const book = this.#book;
    const { provider, model: asked } = book ? aliased(book, req.provider, req.model) : req;
    // The book's entries for a model apply to its id restating the provider (openai/gpt-4o), as the
    // built-in prices do; an entry for the id as written wins.
    const bare = book ? ownModelId(provider, asked) : asked;
    const model = bare !== asked && !book!.model(provider, asked, at) ? bare : asked;
    const found = this.#findRates(provider, model, at);
    if (!found) return { priced: false, price_ref: `unpriced:${provider}:${asked}`, cost: zeroCost() };

    let ref = found.ref;
    let rates = found.rates;
    let multiplier: Decimal | undefined;
    const discount = book?.discount(provider, model, at);
    if (discount) {
      multiplier = discount.multiplier;
      ref += `;discount=${discount.text}`;
    }
    const tier = req.serviceTier ? book?.tier(provider, model, req.serviceTier, at) : null;
    if (tier && "rates" in tier) {
      rates = { ...rates, ...tier.rates };
      ref += `;${req.serviceTier}=${book!.ref}`;
    } else if (tier) {
      multiplier = multiplier ? mulDecimal(multiplier, tier.multiplier) : tier.multiplier;
      ref += `;${req.serviceTier}=${tier.text}`;
    }
    // Audio by its length on a model that prices audio neither by the hour nor at any input token rate: its
    // cost is not known (worstCaseCost holds it as unpriced), never a silent $0.
    // Characters on a model that does not price them, likewise; and tokens on a model billed by the
    // character with no token rate (an estimate made as if it billed tokens). Tokens a price-book entry
    // has no rate for, likewise (genai-prices' data bills a key it lacks at 0, as calcPrice does).
    const characters = req.usage.input_characters > 0;
    if (
      (req.usage.input_audio_ms > 0 && !pricesAudio(rates)) ||
      (characters && !rates.input_mchars) ||
      (!characters && rates.input_mchars && !pricesTokens(rates) && totalTokens(req.usage) > 0) ||
      (found.book && hasUnratedTokens(req.usage, rates))
    )
      return { priced: false, price_ref: `unpriced:${provider}:${asked}`, cost: zeroCost() };
    for (const served of servedMultipliers(provider, model, req.servedAs)) {
      multiplier = multiplier ? mulDecimal(multiplier, served.multiplier) : served.multiplier;
      ref += served.ref;
    }
    // OpenAI's flex processing is billed at its Batch API rates (its pricing page lists them as one).
    const flex = !tier && req.serviceTier === "flex" && FLEX_PROVIDERS.has(genaiProviderId(provider));
    if (req.batch || flex) {
      const batch = book?.batch(provider) ?? defaultBatch(provider);
      if (batch) {
        multiplier = multiplier ? mulDecimal(multiplier, batch.multiplier) : batch.multiplier;
        ref += `;${req.batch ? "batch" : "flex"}=${batch.text}`;
      }
    }
    const result: PriceResult = {
      priced: true,
      price_ref: ref,
      cost: computeCost(req.usage, rates, { tokens: multiplier, toolCalls: discount?.multiplier }),
      rates,
    };
    if (multiplier) result.multiplier = multiplier;
    return result;
  }

  /** The model's context window in tokens, where the built-in data knows it (after price-book aliasing). */
  contextWindow(provider: string, model: string): number | null {
    const target = this.#book ? aliased(this.#book, provider, model) : { provider, model };
    return this.#builtin.find(target.provider, target.model)?.model.context_window ?? null;
  }

  #findRates(
    provider: string,
    model: string,
    at: number,
  ): { rates: PriceRates; ref: string; book: boolean } | null {
    const custom = this.#book?.model(provider, model, at);
    if (custom) return { ...custom, book: true };
    const builtin = this.#builtin.find(provider, model);
    if (!builtin) return null;
    const raw = pricesAt(builtin.model, new Date(at));
    let byVariant = this.#rateCache.get(builtin);
    if (!byVariant) {
      byVariant = new WeakMap();
      this.#rateCache.set(builtin, byVariant);
    }
    let rates = byVariant.get(raw);
    if (!rates) {
      rates = { ...ratesFrom(raw), ...builtin.added };
      byVariant.set(raw, rates);
    }
    return { rates, ref: builtin.ref, book: false };
  }
}

function defaultBatch(provider: string): { multiplier: Decimal; text: string } | null {
  const text = DEFAULT_BATCH[genaiProviderId(provider)];
  return text ? { multiplier: parseDecimal(text), text } : null;
}

/** The book's alias of a model id as written, else of the id without a prefix restating its provider. */
function aliased(book: PriceBook, provider: string, model: string): { provider: string; model: string } {
  const hit = book.alias(provider, model);
  if (hit.provider !== provider || hit.model !== model) return hit;
  const bare = ownModelId(provider, model);
  if (bare === model) return hit;
  const bareHit = book.alias(provider, bare);
  return bareHit.provider !== provider || bareHit.model !== bare ? bareHit : hit;
}
