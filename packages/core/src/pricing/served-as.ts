import { type Decimal, parseDecimal } from "../money/decimal.js";

/**
 * How a call was served, where its provider prices that apart: Anthropic's `inference_geo` (`us`: US-only
 * inference) and `speed` (`fast`: fast mode). A reply's usage object says both (`usage.inference_geo`,
 * `usage.speed`), and a request asks for them under the same names.
 */
export interface ServedAs {
  inferenceGeo: string | null;
  speed: string | null;
}

/** The ServedAs fields of a reply's usage object as the provider sent it (or of a request body); null where it says none. */
export function servedAsOf(fields: unknown): ServedAs | null {
  if (typeof fields !== "object" || fields === null) return null;
  const { inference_geo: geo, speed } = fields as Record<string, unknown>;
  if (typeof geo !== "string" && typeof speed !== "string") return null;
  return {
    inferenceGeo: typeof geo === "string" ? geo : null,
    speed: typeof speed === "string" ? speed : null,
  };
}

/** A multiplier on a model's token rates, and how the price ref names it (`;us-only=1.1`). */
export interface ServedMultiplier {
  multiplier: Decimal;
  ref: string;
}

/**
 * Anthropic bills US-only inference at 1.1× its rates on Claude Opus 4.6, Sonnet 4.6 and later models; the
 * models before refuse the parameter (their replies never say `us`, but a workspace default might).
 */
const US_ONLY = parseDecimal("1.1");
const BEFORE_US_ONLY_PREMIUM = /^claude-(?:(?:opus|sonnet|haiku)-4(?:-[015])?(?:-\d{8})?$|[0-3]|instant)/;

/**
 * Fast mode's per-model multiplier on the standard rates, across the whole context window (Anthropic's
 * fast mode page: Opus 4.6 and 4.7 at $30 / $150 per million, Opus 4.8 at $10 / $50). Another model asked
 * for it runs at standard speed and price, and its reply says so.
 */
const FAST_MODE: readonly [RegExp, string][] = [
  [/^claude-opus-4-[67](?:-\d{8})?$/, "6"],
  [/^claude-opus-4-8(?:-\d{8})?$/, "2"],
];

/** The multipliers a call served as `served` takes on `provider`'s `model`, in the order they apply. */
export function servedMultipliers(
  provider: string,
  model: string,
  served: ServedAs | null | undefined,
): ServedMultiplier[] {
  if (!served || provider !== "anthropic") return [];
  const out: ServedMultiplier[] = [];
  if (served.inferenceGeo === "us" && !BEFORE_US_ONLY_PREMIUM.test(model))
    out.push({ multiplier: US_ONLY, ref: ";us-only=1.1" });
  if (served.speed === "fast") {
    const fast = FAST_MODE.find(([pattern]) => pattern.test(model))?.[1];
    if (fast) out.push({ multiplier: parseDecimal(fast), ref: `;fast=${fast}` });
  }
  return out;
}
