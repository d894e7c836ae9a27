import { z } from "zod";
import { parseDecimal } from "../money/decimal.js";
import { type NanoUsd, usdToNano } from "../money/nanousd.js";
import { type CallFacts, EACH, SCOPE_FIELDS, type Scope, type ScopeField, scopeMatches } from "./scope.js";
import { isTimeZone, parseWindow, type WindowSpec } from "./window.js";

/** Largest budget amount: Redis Lua compares amounts as doubles, exact below 2^53 nano-USD (~$9.0M). */
export const MAX_LIMIT_USD = "9000000";
const MAX_LIMIT_NANO = usdToNano(MAX_LIMIT_USD);

export const LIMIT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
export const limitId = z
  .string()
  .regex(LIMIT_ID_RE, "must be 1-128 letters, digits, _ . : - (starting with a letter or digit)");

const scopeValue = z.string().min(1, "must not be empty").max(256, "must be at most 256 characters");
export const ScopeSchema = z
  .strictObject(
    Object.fromEntries(SCOPE_FIELDS.map((f) => [f, scopeValue.optional()])) as Record<
      ScopeField,
      z.ZodOptional<typeof scopeValue>
    >,
  )
  // A call has many tags: "one bucket per tag" would leave no single bucket to charge.
  .refine((s) => s.tag !== EACH, {
    message: 'a tag scope names one tag ("*" is not allowed)',
    path: ["tag"],
  });

const fixedScope = ScopeSchema.refine(
  (s) => Object.values(s).every((v) => v !== EACH),
  '"*" is not allowed in an override',
);

/** A positive USD amount as a decimal string, at most MAX_LIMIT_USD. */
const USD_RE = /^\d{1,7}(\.\d{1,9})?$/;
export const usdAmount = z
  .string({ error: 'must be a decimal string of USD, e.g. "1.00"' })
  .regex(USD_RE, 'must be a decimal string of USD, e.g. "1.00" (at most 9 decimals)')
  .refine((s) => {
    if (!USD_RE.test(s)) return true; // reported by the pattern above
    const n = usdToNano(parseDecimal(s));
    return n > 0n && n <= MAX_LIMIT_NANO;
  }, `must be more than 0 and at most ${MAX_LIMIT_USD}`);

const WARN_RULE = "thresholds are fractions from 0.0001 to 0.9999 (basis points of the limit)";

const windowText = z
  .string()
  .refine(
    (w) => parseWindow(w) !== null,
    'must be "day", "week", "month", "lifetime" or "<N>h" (rolling, N ≤ 168)',
  );

export const BudgetSchema = z
  .strictObject({
    id: limitId,
    description: z.string().max(500).optional(),
    scope: ScopeSchema.default({}),
    window: windowText,
    timezone: z
      .string()
      .refine(isTimeZone, "must be an IANA time zone such as UTC or Europe/Berlin")
      .default("UTC"),
    limit_usd: usdAmount,
    warn_at: z.array(z.number().gt(0, WARN_RULE).lt(1, WARN_RULE)).max(10).default([]),
    action: z.enum(["block", "throttle", "alert_only"]).default("block"),
    throttle_rpm: z.number().int().min(1).max(1_000_000).optional(),
    unpriced: z.enum(["block", "allow"]).default("allow"),
    fail_mode: z.enum(["fail_open", "fail_closed"]).default("fail_open"),
    overrides: z
      .array(z.strictObject({ when: fixedScope, limit_usd: usdAmount }))
      .max(1000)
      .default([]),
  })
  .superRefine((b, ctx) => {
    if (b.action === "throttle" && b.throttle_rpm === undefined)
      ctx.addIssue({ code: "custom", path: ["throttle_rpm"], message: 'required when action is "throttle"' });
    if (b.action !== "throttle" && b.throttle_rpm !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["throttle_rpm"],
        message: 'only allowed with action "throttle"',
      });
    b.overrides.forEach((o, i) => {
      for (const f of Object.keys(o.when))
        if (b.scope[f as ScopeField] !== EACH)
          ctx.addIssue({
            code: "custom",
            path: ["overrides", i, "when", f],
            message: `overrides pick values of the scope's "*" fields; scope.${f} is not "*"`,
          });
    });
  });

/**
 * A budget as it is set (API, CLI, limits file): BudgetSchema, plus rules added since budgets were first
 * stored. Stored budgets are read with BudgetSchema alone, so one saved before a rule still loads (a
 * stricter read would fail every call of its workspace).
 */
export const NewBudgetSchema = BudgetSchema.superRefine((b, ctx) => {
  // Applied in basis points of the limit (thresholds()): a finer fraction would round to $0 or the limit.
  // Values outside (0, 1) BudgetSchema has refused already, with the same rule: said once.
  b.warn_at.forEach((w, i) => {
    if (w > 0 && w < 1 && (w < 0.0001 || w > 0.9999))
      ctx.addIssue({ code: "custom", path: ["warn_at", i], message: WARN_RULE });
  });
  // An empty `when` matches every call: the override would silently replace the budget's own limit. The
  // first override a call matches applies: a later one whose values include all of an earlier one's (the
  // same values, or those and more) matches no call the earlier one does not take first, so never applies.
  b.overrides.forEach((o, i) => {
    if (!Object.keys(o.when).length) {
      ctx.addIssue({
        code: "custom",
        path: ["overrides", i, "when"],
        message: "name the value(s) the override is for, e.g. {customer_id: acme}",
      });
      return;
    }
    const first = b.overrides
      .slice(0, i)
      .findIndex((earlier) => Object.keys(earlier.when).length > 0 && coversEvery(earlier.when, o.when));
    if (first === -1) return;
    const same = Object.keys(b.overrides[first]!.when).length === Object.keys(o.when).length;
    ctx.addIssue({
      code: "custom",
      path: ["overrides", i, "when"],
      message: same
        ? `the same values as overrides.${first}.when, which applies first: this one never would`
        : `overrides.${first}.when (some of these values) applies first to every call this one matches: this one never would; to apply, it goes before overrides.${first}`,
    });
  });
});

/** Whether every call `narrower` matches, `broader` matches too: each of its values is one of narrower's. */
function coversEvery(broader: Scope, narrower: Scope): boolean {
  return Object.entries(broader).every(([f, v]) => narrower[f as ScopeField] === v);
}

export type BudgetInput = z.input<typeof BudgetSchema>;
export type BudgetSpec = z.output<typeof BudgetSchema>;

/** A validated budget, ready for the hot path: window parsed, amounts in nano-USD, thresholds sorted. */
export interface Budget {
  spec: BudgetSpec;
  id: string;
  scope: Scope;
  window: WindowSpec;
  limit: NanoUsd;
  /** Fractions in ascending order (warn_at, deduplicated). */
  warnAt: number[];
  overrides: { when: Scope; limit: NanoUsd }[];
  /** Thresholds at the budget's own limit, once computed (see stepsFor). */
  steps?: NanoUsd[];
}

export function compileBudget(spec: BudgetSpec): Budget {
  return {
    spec,
    id: spec.id,
    scope: spec.scope,
    window: parseWindow(spec.window, spec.timezone)!,
    limit: usdToNano(spec.limit_usd),
    warnAt: [...new Set(spec.warn_at)].sort((a, b) => a - b),
    overrides: spec.overrides.map((o) => ({ when: o.when, limit: usdToNano(o.limit_usd) })),
  };
}

/** The limit of the bucket a call falls in: the first override matching its values, else the budget's. */
export function limitFor(budget: Budget, call: CallFacts): NanoUsd {
  if (budget.overrides.length === 0) return budget.limit;
  for (const o of budget.overrides) if (scopeMatches(o.when, call)) return o.limit;
  return budget.limit;
}

/**
 * Amounts at which the state steps up, ascending: each warn fraction of the limit, then the limit itself.
 * The fraction is applied in basis points on the integer limit: no float ever touches the amount.
 */
export function thresholds(limit: NanoUsd, warnAt: readonly number[]): NanoUsd[] {
  return [...warnAt.map((w) => (limit * BigInt(Math.round(w * 10_000))) / 10_000n), limit];
}

/** The thresholds of the bucket a call falls in (the budget's own are worked out once). */
export function stepsFor(budget: Budget, limit: NanoUsd): NanoUsd[] {
  if (limit !== budget.limit) return thresholds(limit, budget.warnAt);
  budget.steps ??= thresholds(budget.limit, budget.warnAt);
  return budget.steps;
}

export type BudgetState = "ok" | "warning" | "exceeded";

/** State from how many thresholds a spend has reached (the last threshold is the limit). */
export function stateOfLevel(level: number, thresholdCount: number): BudgetState {
  return level >= thresholdCount ? "exceeded" : level > 0 ? "warning" : "ok";
}

/** How many of the ascending thresholds `spend` has reached. */
export function levelOf(spend: NanoUsd, steps: readonly NanoUsd[]): number {
  let n = 0;
  while (n < steps.length && spend >= steps[n]!) n++;
  return n;
}
