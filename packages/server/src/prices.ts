import {
  type Api,
  COST_CATEGORIES,
  type CostCategory,
  decimalToString,
  emptyUsage,
  formatUsd,
  isTiered,
  type NormalizedUsage,
  normalizeUsage,
  type PricingEngine,
  type Rate,
  servedAsOf,
} from "@tollgate/core";

function rateText(r: Rate): unknown {
  return isTiered(r)
    ? {
        base: decimalToString(r.base),
        tiers: r.tiers.map((t) => ({ start: t.start, price: decimalToString(t.price) })),
      }
    : decimalToString(r);
}

/** What `tollgate prices lookup` and GET /api/prices/lookup show: the rates in force and where they come from. */
export function lookupPrice(engine: PricingEngine, provider: string | null, model: string, at: number) {
  const res = engine.price({ provider: provider ?? guessProvider(model), model, usage: emptyUsage(), at });
  return {
    provider: provider ?? guessProvider(model),
    model,
    priced: res.priced,
    price_ref: res.price_ref,
    rates_per_unit: res.rates
      ? Object.fromEntries(Object.entries(res.rates).map(([k, r]) => [k, rateText(r)]))
      : null,
  };
}

/** Best-effort provider from a model name, for lookups that do not say. */
export function guessProvider(model: string): string {
  const m = model.toLowerCase();
  if (m.startsWith("claude")) return "anthropic";
  if (m.startsWith("gemini")) return "google";
  if (m.startsWith("mistral") || m.startsWith("codestral") || m.startsWith("ministral")) return "mistral";
  if (m.startsWith("deepseek")) return "deepseek";
  if (m.startsWith("grok")) return "x-ai";
  if (/^(us|eu|apac|global)\.|^anthropic\.|^amazon\./.test(m)) return "aws";
  return "openai";
}

export interface CalcOutput {
  usage: NormalizedUsage;
  /** nano-USD as decimal strings, as every JSON answer writes money: exact past 2^53 (usage given by hand). */
  cost: { total_nanousd: string; total_usd: string; by_category: Record<CostCategory, string> };
  price_ref: string;
  priced: boolean;
}

/** `tollgate prices calc`: raw provider usage → normalized usage → exact cost (as the usage says it was served). */
export function calcPrice(
  engine: PricingEngine,
  opts: {
    provider: string;
    api: Api;
    model: string;
    usageRaw: unknown;
    at: number;
    batch?: boolean;
    /** The tier the provider served the call on; absent: the one the usage object names (Anthropic's). */
    serviceTier?: string | null;
    /** Counts that override the usage object's (a Responses usage object has none). */
    toolCalls?: Partial<Record<"web_search_requests" | "file_search_requests", number>>;
  },
): CalcOutput {
  const usage = normalizeUsage(opts.api, opts.usageRaw);
  const { web_search_requests, file_search_requests } = opts.toolCalls ?? {};
  if (web_search_requests !== undefined) usage.web_search_requests = web_search_requests;
  if (file_search_requests !== undefined) usage.file_search_requests = file_search_requests;
  const res = engine.price({
    provider: opts.provider,
    model: opts.model,
    usage,
    at: opts.at,
    batch: opts.batch ?? false,
    serviceTier: opts.serviceTier ?? usageTier(opts.usageRaw),
    // How the usage says the call was served (Anthropic's inference_geo, speed), as a record of it is priced.
    servedAs: servedAsOf(opts.usageRaw),
  });
  const by_category = {} as Record<CostCategory, string>;
  for (const c of COST_CATEGORIES) by_category[c] = res.cost.by_category[c].toString();
  return {
    usage,
    cost: {
      total_nanousd: res.cost.total_nanousd.toString(),
      total_usd: formatUsd(res.cost.total_nanousd),
      by_category,
    },
    price_ref: res.price_ref,
    priced: res.priced,
  };
}

/** The tier a usage object says its call was served on (Anthropic's usage.service_tier), as a record reads it. */
function usageTier(usageRaw: unknown): string | null {
  const tier = (usageRaw as { service_tier?: unknown } | null)?.service_tier;
  return typeof tier === "string" ? tier : null;
}
