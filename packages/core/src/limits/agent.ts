import { z } from "zod";
import { parseDecimal } from "../money/decimal.js";
import { formatUsd, type NanoUsd, usdToNano } from "../money/nanousd.js";
import type { Api } from "../usage/types.js";
import { usdAmount } from "./budget.js";
import type { WorstCase } from "./estimate.js";
import { reserveLessHint } from "./reserve-less.js";
import { heldOutputTokens } from "./token-hold.js";

/** What an agent run is counted by. */
export const RUN_COUNTERS = [
  "cost_nanousd",
  "total_tokens",
  "llm_calls",
  "tool_calls",
  "retries",
  "span_depth",
  "wall_time_ms",
] as const;
export type RunCounter = (typeof RUN_COUNTERS)[number];

/** Per agent_type ceilings, as configured (cost in USD as a decimal string, wall time in seconds). */
export const AgentCeilingsSchema = z
  .strictObject({
    max_cost_usd: usdAmount.optional(),
    max_total_tokens: z.number().int().min(1).max(1e12).optional(),
    max_llm_calls: z.number().int().min(1).max(1e9).optional(),
    max_tool_calls: z.number().int().min(1).max(1e9).optional(),
    max_retries: z.number().int().min(0).max(1e9).optional(),
    max_span_depth: z.number().int().min(1).max(10_000).optional(),
    max_wall_time_s: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400)
      .optional(),
  })
  .refine((c) => Object.keys(c).length > 0, "set at least one ceiling");
export type AgentCeilingsInput = z.input<typeof AgentCeilingsSchema>;

/** Ceilings in counter units (nano-USD, tokens, calls, ms). */
export type Ceilings = Partial<Record<RunCounter, number | NanoUsd>>;

export function compileCeilings(c: z.output<typeof AgentCeilingsSchema>): Ceilings {
  const out: Ceilings = {};
  if (c.max_cost_usd !== undefined) out.cost_nanousd = usdToNano(parseDecimal(c.max_cost_usd));
  if (c.max_total_tokens !== undefined) out.total_tokens = c.max_total_tokens;
  if (c.max_llm_calls !== undefined) out.llm_calls = c.max_llm_calls;
  if (c.max_tool_calls !== undefined) out.tool_calls = c.max_tool_calls;
  if (c.max_retries !== undefined) out.retries = c.max_retries;
  if (c.max_span_depth !== undefined) out.span_depth = c.max_span_depth;
  if (c.max_wall_time_s !== undefined) out.wall_time_ms = c.max_wall_time_s * 1000;
  return out;
}

/** What a run has used so far. cost is exact nano-USD; span_depth is the deepest seen. */
export interface RunUsage {
  cost_nanousd: NanoUsd;
  total_tokens: number;
  llm_calls: number;
  tool_calls: number;
  retries: number;
  span_depth: number;
  started_at: number;
}

export function emptyRunUsage(startedAt: number): RunUsage {
  return {
    cost_nanousd: 0n,
    total_tokens: 0,
    llm_calls: 0,
    tool_calls: 0,
    retries: 0,
    span_depth: 0,
    started_at: startedAt,
  };
}

/** Why a run was killed: the ceiling it crossed, its count and the limit (or a manual kill). */
export interface KillReason {
  ceiling: RunCounter | "manual";
  value: string;
  limit: string;
  at: number;
  by?: string;
}

/** Spent amounts are used up at the ceiling; counts may reach it (the ceiling-th call is allowed). */
const AMOUNTS: ReadonlySet<RunCounter> = new Set(["total_tokens", "wall_time_ms"]);

function counterValue(u: RunUsage, c: RunCounter, now: number): number | NanoUsd {
  return c === "wall_time_ms" ? now - u.started_at : u[c];
}

/**
 * The first ceiling a run has crossed: spent amounts (cost, tokens, wall time) once they reach it, counts
 * (calls, retries, depth) once they go past it. The call that crosses a ceiling is the run's last.
 */
export function crossedCeiling(u: RunUsage, ceilings: Ceilings, now: number): KillReason | null {
  for (const c of RUN_COUNTERS) {
    const limit = ceilings[c];
    if (limit === undefined) continue;
    const v = counterValue(u, c, now);
    const over =
      c === "cost_nanousd"
        ? (v as bigint) >= BigInt(limit)
        : AMOUNTS.has(c)
          ? Number(v) >= Number(limit)
          : Number(v) > Number(limit);
    if (over) return { ceiling: c, value: String(v), limit: String(limit), at: now };
  }
  return null;
}

/** What a run's calls in flight hold of its spent amounts: their worst-case cost and estimated tokens. */
export interface RunHold {
  cost_nanousd: NanoUsd;
  total_tokens: number;
}

/** A call that holds nothing. */
export const NO_HOLD: RunHold = Object.freeze({ cost_nanousd: 0n, total_tokens: 0 });

/** A spent-amount ceiling that the run's calls in flight may reach: the run's used amount, its holds, the limit. */
export interface HeldCeiling {
  ceiling: "cost_nanousd" | "total_tokens";
  used: string;
  held: string;
  limit: string;
  /**
   * What an earlier call of the run waiting to go will hold (its room to leave, noRoomToLeave), when that
   * is what the call was refused for; absent otherwise.
   */
  kept?: string;
}

/**
 * Whether a new call must wait for the run's calls in flight: the call that crosses a cost or token
 * ceiling is the run's last, so one starts only while what is spent plus what calls in flight may still
 * spend stays under the ceiling. Concurrent calls then overshoot by one call's worst case at most, as
 * sequential ones do; without holds, every call started before the first settle passed.
 */
export function heldCeiling(u: RunUsage, held: RunHold, ceilings: Ceilings): HeldCeiling | null {
  const cost = ceilings.cost_nanousd;
  if (cost !== undefined && held.cost_nanousd > 0n && u.cost_nanousd + held.cost_nanousd >= BigInt(cost))
    return {
      ceiling: "cost_nanousd",
      used: String(u.cost_nanousd),
      held: String(held.cost_nanousd),
      limit: String(cost),
    };
  const tokens = ceilings.total_tokens;
  if (tokens !== undefined && held.total_tokens > 0 && u.total_tokens + held.total_tokens >= Number(tokens))
    return {
      ceiling: "total_tokens",
      used: String(u.total_tokens),
      held: String(held.total_tokens),
      limit: String(tokens),
    };
  return null;
}

/**
 * Whether a call must let an earlier call of its run that waits to go (a gateway's retry backing off, the
 * first in its line) go first: it goes ahead of it only while that call would still find room after it, by
 * the rule it will be admitted by (heldCeiling, with this call's hold added to what is held). On every
 * ceiling, whatever the earlier call holds of it (`leave`, its worst case, named in the refusal): that rule
 * turns a call away by what is held, so one holding $0 (its model unpriced or free) needs the room too.
 * Only checked, never held.
 */
export function noRoomToLeave(
  u: RunUsage,
  held: RunHold,
  hold: RunHold,
  leave: RunHold,
  ceilings: Ceilings,
): HeldCeiling | null {
  const after: RunHold = {
    cost_nanousd: held.cost_nanousd + hold.cost_nanousd,
    total_tokens: held.total_tokens + hold.total_tokens,
  };
  const full = heldCeiling(u, after, ceilings);
  if (!full) return null;
  const cost = full.ceiling === "cost_nanousd";
  return Object.assign(full, {
    held: String(cost ? held.cost_nanousd : held.total_tokens),
    kept: String(cost ? leave.cost_nanousd : leave.total_tokens),
  });
}

/** What a call would hold of the ceiling its run's calls in flight reach: nano-USD or tokens, as a digit string. */
export function heldRequest(held: HeldCeiling, hold: RunHold): string {
  return String(held.ceiling === "cost_nanousd" ? hold.cost_nanousd : hold.total_tokens);
}

/** A call of a run as its hold was worked out: its API, its request and its worst case. */
export interface HeldCall {
  api: Api;
  body: Record<string, unknown> | null;
  worstCase: WorstCase;
}

/**
 * How a call could hold less of `ceiling` (reserveLessHint, as budgets tell it); null when that would not be
 * true: a token hold counts output only where the request decides it (tokenHold), so a call holding none
 * would hold more, not less, with the output cap a hint names.
 */
function holdLessHint(ceiling: HeldCeiling["ceiling"], call: HeldCall): string | null {
  if (ceiling === "total_tokens" && heldOutputTokens(call.worstCase) === 0) return null;
  return reserveLessHint(call.api, call.body, call.worstCase);
}

/**
 * Why a call of a run was turned away by its calls in flight (not a kill: room again, or the kill, once
 * they settle), as the gateway and the SDK's in-process guard both say it. `call`: null where the call is
 * not known (the SDK's guard of a call it does not see), which then says nothing of how it could hold less.
 */
export function runHeldMessage(
  runId: string,
  agentType: string | null,
  held: HeldCeiling,
  hold: RunHold,
  call: HeldCall | null,
): string {
  const cost = held.ceiling === "cost_nanousd";
  const amount = (v: string) => (cost ? `$${formatUsd(BigInt(v))}` : `${v} tokens`);
  const run = `agent run ${runId}${agentType ? ` (${agentType})` : ""}`;
  const holdLess = call && holdLessHint(held.ceiling, call);
  const less = holdLess ? `. ${holdLess}` : "";
  const inFlight = `${amount(held.used)} used + ${amount(held.held)} held by its calls in flight`;
  if (held.kept !== undefined)
    return (
      `${run}: ${inFlight} + this call's ${amount(heldRequest(held, hold))} would leave no room under its ` +
      `${held.ceiling} ceiling ${amount(held.limit)} for an earlier call of the run waiting to go ` +
      `(${amount(held.kept)}); retry once that call has gone${less}`
    );
  return (
    `${run}: ${inFlight} reach its ${held.ceiling} ceiling ${amount(held.limit)}; retry once they end ` +
    `(this call would hold ${amount(heldRequest(held, hold))})${less}`
  );
}

/** Would one more call (of `kind`) at `depth` go past a count ceiling? Checked before the call runs. */
export function admitsNext(
  u: RunUsage,
  ceilings: Ceilings,
  kind: "llm" | "tool",
  depth: number,
  now: number,
): KillReason | null {
  const crossed = crossedCeiling(u, ceilings, now);
  if (crossed) return crossed;
  const counter = kind === "llm" ? "llm_calls" : "tool_calls";
  const limit = ceilings[counter];
  if (limit !== undefined && u[counter] + 1 > Number(limit))
    return { ceiling: counter, value: String(u[counter] + 1), limit: String(limit), at: now };
  const maxDepth = ceilings.span_depth;
  if (maxDepth !== undefined && depth > Number(maxDepth))
    return { ceiling: "span_depth", value: String(depth), limit: String(maxDepth), at: now };
  return null;
}
