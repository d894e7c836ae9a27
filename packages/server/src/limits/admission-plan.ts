import {
  type Budget,
  bucketId,
  bucketValues,
  type CallFacts,
  limitFor,
  type RateLimitSpec,
  Recent,
  scopeMatches,
  slotTtlMs,
  stepsFor,
  windowSlots,
} from "@tollgate/core";
import type { WorkspacePolicies } from "./policies.js";
import type { BucketCharge, BucketRef, RateCharge } from "./types.js";

/** A budget bucket charged for one call: what the store needs, plus what errors and events report. */
export interface ChargedBucket extends BucketRef {
  budget: Budget;
  values: string[];
  limit: bigint;
  reserved: bigint;
}

/** A budget bucket as a call's facts decide it: everything but the window's slots and the amounts. */
export interface BucketPlan {
  budget: Budget;
  values: string[];
  key: string;
  limit: bigint;
  steps: bigint[];
  ttlMs: number | null;
}

export type PlannedRate = RateCharge & { spec: RateLimitSpec; metric: "requests" | "tokens" };

/** What a call's facts decide before it is admitted: the budgets and rate counters that apply to it. */
export interface AdmissionPlan {
  budgets: Budget[];
  buckets: BucketPlan[];
  rates: PlannedRate[];
  tokenRates: { key: string }[];
}

const budgetKeyPrefix = (id: string) => `b:${id}:`;

/**
 * Whether `key` is one of budget `id`'s bucket keys. A budget id may hold ":" (`org:acme`, `org:acme:eng`)
 * but a bucket id never does (its values are URI-encoded): what follows the prefix has none.
 */
export function isBucketOf(id: string, key: string): boolean {
  const prefix = budgetKeyPrefix(id);
  return key.startsWith(prefix) && !key.includes(":", prefix.length);
}

/** The bucket of budget `b` for a call with these "*" values (and facts, for overrides). */
export function bucketPlan(b: Budget, values: string[], facts: CallFacts): BucketPlan {
  const limit = limitFor(b, facts);
  return {
    budget: b,
    values,
    key: `${budgetKeyPrefix(b.id)}${bucketId(values)}`,
    limit,
    steps: stepsFor(b, limit),
    ttlMs: slotTtlMs(b.window),
  };
}

/** The bucket charged `reserved` now. One literal of every field: spreading into a second object is slow. */
export function chargeOf(p: BucketPlan, now: number, reserved: bigint): BucketCharge & ChargedBucket {
  return {
    key: p.key,
    slots: windowSlots(p.budget.window, now).slots,
    steps: p.steps,
    ttlMs: p.ttlMs,
    budget: p.budget,
    values: p.values,
    limit: p.limit,
    reserved,
    enforce: p.budget.spec.action === "block",
    amount: reserved,
    throttleRpm: p.budget.spec.throttle_rpm ?? null,
  };
}

const NO_TOKEN_RATES: { key: string; held: number }[] = [];

/**
 * The plan's rate counters for a call holding `hold` tokens (core's tokenHold): each token counter holds it,
 * up to its whole limit (a call larger than a limit passes alone in its minute, instead of never).
 */
export function heldRates(plan: AdmissionPlan, hold: number) {
  if (!plan.tokenRates.length) return { rates: plan.rates, tokenRates: NO_TOKEN_RATES };
  const rates = plan.rates.map((rc) =>
    rc.metric === "tokens" ? { ...rc, cost: Math.min(hold, rc.limit) } : rc,
  );
  const tokenRates = rates
    .filter((rc) => rc.metric === "tokens")
    .map((rc) => ({ key: rc.key, held: rc.cost }));
  return { rates, tokenRates };
}

/**
 * A budget bucket's throttle counter (action "throttle", past its limit): the calls admitted a minute, kept
 * as a rate limit's counter is, so a call never sent gives its count back as it gives back its requests.
 */
export const throttleKey = (bucketKey: string) => `${bucketKey}:throttle`;

/** A rate limit's counter for a call: `q` counts requests, `t` tokens. */
export const rateKey = (metric: "q" | "t", r: RateLimitSpec, facts: CallFacts) =>
  `${metric}:${r.id}:${bucketId(bucketValues(r.scope, facts))}`;

/**
 * Plans kept per policy set (a changed set is a new object); past this many, the least recently used goes,
 * one at a time: emptied whole, a set with more users than this under a per-user budget rebuilt every
 * plan at once, its busiest callers' too.
 */
export const MAX_PLANS = 10_000;
const plans = new WeakMap<WorkspacePolicies, { fields: string[]; byFacts: Recent<AdmissionPlan> }>();

/**
 * The plan for a call with these facts, worked out once per distinct set of the facts the policies read:
 * matching scopes and building bucket keys on every call was most of an admission's cost.
 */
export function admissionPlan(policies: WorkspacePolicies, facts: CallFacts): AdmissionPlan {
  let cache = plans.get(policies);
  if (!cache) {
    cache = { fields: factsRead(policies), byFacts: new Recent({ max: MAX_PLANS }) };
    plans.set(policies, cache);
  }
  const key = factsKey(cache.fields, facts);
  let plan = cache.byFacts.touch(key);
  if (!plan) {
    plan = buildPlan(policies, facts);
    cache.byFacts.set(key, plan);
  }
  return plan;
}

/** Every fact a scope or an override of these policies reads. */
function factsRead(policies: WorkspacePolicies): string[] {
  const fields = new Set<string>();
  for (const b of policies.budgets) {
    for (const f of Object.keys(b.scope)) fields.add(f);
    for (const o of b.overrides) for (const f of Object.keys(o.when)) fields.add(f);
  }
  for (const r of policies.rates) for (const f of Object.keys(r.scope)) fields.add(f);
  return [...fields].sort();
}

/** The read facts' values, joined: scopes treat a missing fact as "", and so does this key. */
function factsKey(fields: readonly string[], facts: CallFacts): string {
  let key = "";
  for (const f of fields) {
    const v = f === "tag" ? (facts.tags ?? []).join("\u0001") : (facts[f as keyof CallFacts] ?? "");
    key += `${v}\u0000`;
  }
  return key;
}

function buildPlan(policies: WorkspacePolicies, facts: CallFacts): AdmissionPlan {
  const budgets = policies.budgets.filter((b) => scopeMatches(b.scope, facts));
  const rates: PlannedRate[] = [];
  const tokenRates: { key: string }[] = [];
  for (const r of policies.rates) {
    if (!scopeMatches(r.scope, facts)) continue;
    if (r.requests_per_min !== undefined)
      rates.push({
        key: rateKey("q", r, facts),
        limit: r.requests_per_min,
        cost: 1,
        spec: r,
        metric: "requests",
      });
    if (r.tokens_per_min !== undefined) {
      const key = rateKey("t", r, facts);
      rates.push({ key, limit: r.tokens_per_min, cost: 0, spec: r, metric: "tokens" });
      tokenRates.push({ key });
    }
  }
  return {
    budgets,
    buckets: budgets.map((b) => bucketPlan(b, bucketValues(b.scope, facts), facts)),
    rates,
    tokenRates,
  };
}
