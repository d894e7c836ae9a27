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

/**
 * Ms until the estimate falls to `allowed` or below with nothing more counted: the previous minute's share
 * shrinks through the current one, then the current minute's (counted in full as the next one starts)
 * through the next. A limit hit by the current minute alone does not clear as it ends.
 */
export function rateRetryAfterMs(at: number, previous: number, current: number, allowed: number): number {
  const into = at % RATE_WINDOW_MS;
  // The first per-mille of a minute at which floor(n * (1000 - p) / 1000) <= room.
  const clearsAt = (n: number, room: number) =>
    n <= room ? 0 : Math.max(0, Math.floor(1000 - ((room + 1) * 1000) / n) + 1);
  const msOf = (permille: number) => Math.ceil((permille * RATE_WINDOW_MS) / 1000);
  if (allowed < 0) return 2 * RATE_WINDOW_MS - into; // nothing fits until both minutes are gone
  if (current <= allowed) return Math.max(0, msOf(clearsAt(previous, allowed - current)) - into);
  return RATE_WINDOW_MS - into + msOf(clearsAt(current, allowed));
}
