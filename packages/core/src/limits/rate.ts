import { z } from "zod";
import { limitId, ScopeSchema } from "./budget.js";

/** Requests per minute and/or tokens per minute for a scope (same scope rules as budgets). */
export const RateLimitSchema = z
  .strictObject({
    id: limitId,
    description: z.string().max(500).optional(),
    scope: ScopeSchema.default({}),
    requests_per_min: z.number().int().min(1).max(100_000_000).optional(),
    tokens_per_min: z.number().int().min(1).max(1_000_000_000_000).optional(),
    fail_mode: z.enum(["fail_open", "fail_closed"]).default("fail_open"),
  })
  .refine((r) => r.requests_per_min !== undefined || r.tokens_per_min !== undefined, {
    message: "set requests_per_min, tokens_per_min or both",
    path: ["requests_per_min"],
  });
export type RateLimitInput = z.input<typeof RateLimitSchema>;
export type RateLimitSpec = z.output<typeof RateLimitSchema>;

export const RATE_WINDOW_MS = 60_000;

/** Minute slot of an instant (rate counters are kept per minute). */
export function minuteOf(at: number): number {
  return Math.floor(at / RATE_WINDOW_MS);
}

/**
 * Sliding-window estimate of the last minute from two fixed minutes: all of the current one plus the
 * share of the previous one still inside the window. Integer arithmetic (per-mille of the minute).
 */
export function slidingCount(previous: number, current: number, at: number): number {
  const elapsedPermille = Math.floor(((at % RATE_WINDOW_MS) * 1000) / RATE_WINDOW_MS);
  return current + Math.floor((previous * (1000 - elapsedPermille)) / 1000);
}

/** Ms until the estimate drops below `limit` again, at worst: the rest of the current minute. */
export function rateRetryAfterMs(at: number): number {
  return RATE_WINDOW_MS - (at % RATE_WINDOW_MS);
}
