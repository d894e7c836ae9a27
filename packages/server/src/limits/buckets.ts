import { type Budget, type CallFacts, type CallRecord, EACH } from "@tollgate/core";
import { bucketPlan, chargeOf } from "./admission-plan.js";

/** The bucket of budget `b` that a call with these "*" values (and facts, for overrides) falls in, now. */
export function budgetBucket(b: Budget, values: string[], facts: CallFacts, now: number, reserved: bigint) {
  return chargeOf(bucketPlan(b, values, facts), now, reserved);
}

/** Facts made of a bucket's "*" values (to pick its override limit). */
export const factsOfValues = (by: readonly string[], values: readonly string[]): CallFacts =>
  Object.fromEntries(by.map((f, i) => [f, values[i]]));

/** A budget's fixed scope values as store filters: exact fields, and a tag. */
export function fixedScope(b: Budget): { where: Record<string, string>; tag?: string } {
  const where: Record<string, string> = {};
  for (const [f, v] of Object.entries(b.scope)) if (v !== EACH && f !== "tag") where[f] = v;
  return b.scope.tag !== undefined && b.scope.tag !== EACH ? { where, tag: b.scope.tag } : { where };
}

/** A stored record's facts for scope matching. */
export function factsOfRecord(rec: CallRecord): CallFacts {
  return {
    user_id: rec.user_id,
    customer_id: rec.customer_id,
    feature: rec.feature,
    deployment: rec.deployment,
    prompt_version: rec.prompt_version,
    agent_run_id: rec.agent_run_id,
    agent_type: rec.agent_type,
    session_id: rec.session_id,
    route: rec.route,
    variant: rec.variant,
    // Budgets scope the model a call asked for (what the gateway sees before sending it).
    model: rec.model_requested ?? rec.model,
    provider: rec.provider,
    key_id: rec.key_id,
    tags: rec.tags,
  };
}
