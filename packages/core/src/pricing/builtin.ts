import { calcPrice, type ModelInfo, type ModelPrice } from "@pydantic/genai-prices";
import { characterPricedModel, speechSnapshotBase } from "./openai-speech.js";
import { addedRates } from "./openai-web-search.js";
import type { PriceRates } from "./rates.js";

/** Pinned: the bundled data is used offline, its updater is never called. Checked by a test. */
export const GENAI_PRICES_VERSION = "0.1.8";

/** Our provider names (and common spellings) → genai-prices provider ids. */
const PROVIDER_IDS: Record<string, string> = {
  bedrock: "aws",
  "aws-bedrock": "aws",
  amazon: "aws",
  vertex: "google",
  vertex_ai: "google",
  gemini: "google",
  "google-vertex": "google",
  "azure-openai": "azure",
  azure_openai: "azure",
  xai: "x-ai",
  grok: "x-ai",
};

export function genaiProviderId(provider: string): string {
  const p = provider.toLowerCase().trim();
  return PROVIDER_IDS[p] ?? p;
}

export interface BuiltinModel {
  model: ModelInfo;
  /** price_ref of its prices, built once (it goes on every priced record). */
  ref: string;
  /** Rates genai-prices lacks for it, added to its prices in force. */
  added: PriceRates | null;
}

/**
 * Finds the genai-prices model for (provider, model). Matching is time-independent, so results
 * (misses included) are cached; prices are then chosen per call by `pricesAt`.
 */
export class BuiltinPrices {
  /** By provider, then model: no key string is built per call (this runs several times per request). */
  readonly #cache = new Map<string, Map<string, BuiltinModel | null>>();
  #size = 0;

  find(provider: string, model: string): BuiltinModel | null {
    let byModel = this.#cache.get(provider);
    const hit = byModel?.get(model);
    if (hit !== undefined) return hit;
    const found = lookup(genaiProviderId(provider), model);
    if (this.#size > 50_000) {
      this.#cache.clear();
      this.#size = 0;
      byModel = undefined;
    }
    if (!byModel) {
      byModel = new Map();
      this.#cache.set(provider, byModel);
    }
    byModel.set(model, found);
    this.#size++;
    return found;
  }
}

function lookup(providerId: string, model: string): BuiltinModel | null {
  // Empty usage: we only want the match; the cost is computed exactly by our engine.
  const res = calcPrice({}, model, { providerId, timestamp: new Date(0) });
  if (res)
    return {
      model: res.model,
      ref: `genai-prices@${GENAI_PRICES_VERSION}:${res.provider.id}:${res.model.id}`,
      added: addedRates(res.provider.id, res.model.id),
    };
  const base = speechSnapshotBase(providerId, model);
  if (base) return lookup(providerId, base);
  const bare = withoutOwnPrefix(providerId, model);
  if (bare) return lookup(providerId, bare);
  // A model genai-prices does not list, whose rates Tollgate keeps itself (no token rates of its own).
  const own = characterPricedModel(providerId, model);
  return own
    ? {
        model: { id: own.id, match: { equals: own.id }, prices: {} },
        ref: `tollgate:${providerId}:${own.id}`,
        added: own.rates,
      }
    : null;
}

/**
 * The model id without a prefix that only restates where it runs: Google's resource name (`models/…`) or
 * the provider's own name (`openai/gpt-4o`, as LiteLLM and some OpenTelemetry instrumentations write it).
 * Null when there is none.
 */
function withoutOwnPrefix(providerId: string, model: string): string | null {
  const slash = model.indexOf("/");
  if (slash <= 0 || slash === model.length - 1) return null;
  const prefix = model.slice(0, slash);
  return prefix === "models" || genaiProviderId(prefix) === providerId ? model.slice(slash + 1) : null;
}

/** The model id without every prefix restating its provider (withoutOwnPrefix): the model it names. */
export function ownModelId(provider: string, model: string): string {
  const bare = withoutOwnPrefix(genaiProviderId(provider), model);
  return bare ? ownModelId(provider, bare) : model;
}

const HMS = /^(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|([+-])(\d{2}):(\d{2}))$/;

function secondsOfDayUtc(time: string): number {
  const m = HMS.exec(time);
  if (!m) throw new Error(`invalid time-of-day constraint ${time}`);
  const offset = m[4] === "Z" ? 0 : (Number(m[6]) * 60 + Number(m[7])) * 60 * (m[5] === "+" ? 1 : -1);
  return (((Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) - offset) % 86400) + 86400) % 86400;
}

/** The model's prices in force at `at`: the last matching start-date / time-of-day variant, as genai-prices. */
export function pricesAt(model: ModelInfo, at: Date): ModelPrice {
  if (!Array.isArray(model.prices)) return model.prices;
  const sod =
    at.getUTCHours() * 3600 + at.getUTCMinutes() * 60 + at.getUTCSeconds() + at.getUTCMilliseconds() / 1000;
  for (let i = model.prices.length - 1; i >= 0; i--) {
    const variant = model.prices[i]!;
    const c = variant.constraint;
    if (!c) return variant.prices;
    if (c.type === "start_date") {
      if (at >= new Date(c.start_date)) return variant.prices;
    } else {
      const start = secondsOfDayUtc(c.start_time);
      const end = secondsOfDayUtc(c.end_time);
      const inside = end < start ? sod >= start || sod < end : sod >= start && sod < end;
      if (inside) return variant.prices;
    }
  }
  return model.prices[0]!.prices;
}
