import { totalInputTokens } from "../pricing/cost.js";
import type { WorstCase } from "./estimate.js";
import { minuteOf } from "./rate.js";

/** Request bytes taken as one input token by a hold (providers' own limiters assume ~4 characters a token). */
const HOLD_BYTES_PER_TOKEN = 4;

/**
 * Tokens a tokens-per-minute limit holds for a call while it is in flight, as OpenAI's and Anthropic's own
 * limiters count a request before it runs: its input estimated from its size (a quarter of the worst case's
 * byte bound) plus the output cap it sets. A request without a cap holds no output: the context window
 * would hold many times what calls use. Without a hold, concurrent calls all passed a limit that only
 * their settles counted.
 */
export function tokenHold(wc: WorstCase): number {
  return Math.ceil(totalInputTokens(wc.usage) / HOLD_BYTES_PER_TOKEN) + heldOutputTokens(wc);
}

/** The output tokens a token hold counts: those the request decides (its cap, its images, its text to speak). */
export function heldOutputTokens(wc: WorstCase): number {
  return wc.outputFrom === "request" ? wc.usage.output_tokens : 0;
}

/** The tokens a call held on a tokens-per-minute counter, and when (its admission). */
export interface HeldTokens {
  tokens: number;
  at: number;
}

/**
 * Where a call's tokens count at its settle: in place of its hold, in the minute it was admitted, while that
 * minute is still in the sliding window (the current or the previous one); a call settling later counts
 * only what it used beyond its hold, now. A call that held nothing (an ingested one) counts its tokens now.
 */
export function tokenCount(
  tokens: number,
  held: HeldTokens | undefined,
  now: number,
): { minute: number; add: number } {
  const minute = minuteOf(now);
  if (!held?.tokens) return { minute, add: tokens };
  const heldMinute = minuteOf(held.at);
  if (heldMinute >= minute - 1) return { minute: heldMinute, add: tokens - held.tokens };
  return { minute, add: Math.max(0, tokens - held.tokens) };
}
