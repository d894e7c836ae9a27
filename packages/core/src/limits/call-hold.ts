import type { PricingEngine } from "../pricing/engine.js";
import { servedAsOf } from "../pricing/served-as.js";
import type { Api } from "../usage/types.js";
import type { Ceilings, RunHold } from "./agent.js";
import { toolCallWorstCase, type WorstCase, worstCaseCost } from "./estimate.js";

/** A call about to be sent, as its worst case is priced: its API, provider, model and request body. */
export interface CallToHold {
  api: Api | null;
  provider: string;
  model: string;
  body: Record<string, unknown> | null;
}

/**
 * The most a call can cost before it is sent: its worst-case usage (`wc`) at its model's rates, for the
 * service tier and the way of serving its request asks for (OpenAI's service_tier; Anthropic's
 * inference_geo, speed: a price book may price them apart), plus what its hosted tool may make on a model of
 * its own (the image tool's image, an advisor's consultations) at that model's rates. `unpriced`: the first
 * of those models without a price (its part held at $0), for a budget's `unpriced: block` to refuse.
 */
export function callWorstCost(
  engine: PricingEngine,
  call: CallToHold,
  wc: WorstCase,
  at: number,
): { total_nanousd: bigint; unpriced: string | null } {
  const tier = typeof call.body?.service_tier === "string" ? call.body.service_tier : null;
  const price = worstCaseCost(engine, call.provider, call.model, wc.usage, at, tier, servedAsOf(call.body));
  const tool = toolCallWorstCase(call.api, call.body, wc);
  const toolPrice = tool ? worstCaseCost(engine, call.provider, tool.model, tool.usage, at) : null;
  const unpriced = !price.priced ? call.model : toolPrice && !toolPrice.priced ? tool!.model : null;
  return { total_nanousd: price.total_nanousd + (toolPrice?.total_nanousd ?? 0n), unpriced };
}

/** Holds only matter to a run with a cost or token ceiling. */
export const ceilingsHold = (c: Ceilings): boolean =>
  c.cost_nanousd !== undefined || c.total_tokens !== undefined;

/**
 * What a call holds on its run while in flight: its worst-case cost under a cost ceiling, its token
 * estimate (tokenHold) under a token ceiling.
 */
export const runHoldOf = (c: Ceilings, worstCost: bigint, tokens: number): RunHold => ({
  cost_nanousd: c.cost_nanousd !== undefined ? worstCost : 0n,
  total_tokens: c.total_tokens !== undefined ? tokens : 0,
});
