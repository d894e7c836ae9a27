import {
  type Api,
  type CallToHold,
  type Ceilings,
  callWorstCost,
  type HeldCall,
  type PricingEngine,
  type RawBody,
  type RunHold,
  runHoldOf,
  tokenHold,
  worstCaseUsage,
} from "@tollgate/core";

/** A wrapped call about to be sent; `upload`: its params go out as a multipart upload, not as JSON. */
export interface SdkCall extends CallToHold {
  api: Api;
  upload?: boolean;
}

/** What a wrapped call holds on its agent run, and the call it is: held back, it is told how to hold less. */
export interface CallHold extends RunHold {
  call: HeldCall;
}

/**
 * What a wrapped call holds on its agent run while in flight, by core's estimate as the gateway holds it:
 * its worst-case cost at the run's prices, and its token estimate, under the ceilings it holds against.
 */
export function callHold(engine: PricingEngine, ceilings: Ceilings, call: SdkCall, at: number): CallHold {
  const window = engine.contextWindow(call.provider, call.model);
  const wc = worstCaseUsage(call.api, call.body, requestSize(call), window);
  const hold = runHoldOf(ceilings, callWorstCost(engine, call, wc, at).total_nanousd, tokenHold(wc));
  return { ...hold, call: { api: call.api, body: call.body, worstCase: wc } };
}

/**
 * The request's size, which the estimate bounds its input by: the UTF-8 bytes of its params as JSON (what
 * is sent). An upload is no JSON: its files bound it by their own sizes (0 here says so), else at the most
 * the provider takes.
 */
function requestSize(call: SdkCall): RawBody {
  if (call.upload || call.body === null) return { byteLength: 0 };
  let json: string;
  try {
    json = JSON.stringify(call.body);
  } catch {
    return { byteLength: 0 }; // not JSON: the SDK will refuse to send it itself
  }
  return { byteLength: Buffer.byteLength(json), includes: (s) => json.includes(s) };
}
