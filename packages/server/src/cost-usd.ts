import { type CallRecord, formatUsd, isInferenceKind } from "@tollgate/core";

/**
 * The USD a call cost, as the gateway's x-tollgate-cost-usd and the API say it. A model call that was
 * answered but could not be priced (a model without a price, a reply without usage) is "unknown": its
 * record says priced=false, and this never passes that off as 0.00.
 */
export const COST_UNKNOWN = "unknown";

export function costUsd(answeredModelCall: boolean, priced: boolean, nanos: bigint): string {
  return answeredModelCall && !priced ? COST_UNKNOWN : formatUsd(nanos);
}

export function recordCostUsd(rec: CallRecord): string {
  return costUsd(rec.status === "ok" && isInferenceKind(rec.kind), rec.priced, rec.cost_nanousd);
}
