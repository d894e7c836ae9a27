import { type Decimal, DecimalError, parseDecimal } from "./decimal.js";

/** Integer nano-USD (1e-9 USD): the only unit money is stored and summed in. */
export type NanoUsd = bigint;

export const NANOS_PER_USD = 1_000_000_000n;

/** Round a non-negative-or-negative rational num/den to the nearest integer, halves away from zero. */
export function roundHalfUp(num: bigint, den: bigint): bigint {
  if (den <= 0n) throw new RangeError("denominator must be positive");
  const negative = num < 0n;
  const abs = negative ? -num : num;
  const q = (abs * 2n + den) / (den * 2n);
  return negative ? -q : q;
}

/** "1.23" USD → 1_230_000_000n nano-USD; more than 9 decimals are rounded half-up. */
export function usdToNano(usd: string | Decimal): NanoUsd {
  const d = typeof usd === "string" ? parseDecimal(usd) : usd;
  return roundHalfUp(d.units * NANOS_PER_USD, 10n ** BigInt(d.scale));
}

/**
 * Renders nano-USD as a decimal USD string with `digits` fraction digits (default: all 9, trailing
 * zeros trimmed to at least 2). Rounds half-up when fewer digits are asked for.
 */
export function formatUsd(nano: NanoUsd, digits?: number): string {
  const negative = nano < 0n;
  let abs = negative ? -nano : nano;
  let scale = 9;
  if (digits !== undefined) {
    if (!Number.isInteger(digits) || digits < 0 || digits > 9) throw new RangeError("digits must be 0..9");
    abs = roundHalfUp(abs, 10n ** BigInt(9 - digits));
    scale = digits;
  }
  const text = abs.toString().padStart(scale + 1, "0");
  let int = text.slice(0, text.length - scale);
  let frac = text.slice(text.length - scale);
  if (digits === undefined) frac = frac.replace(/0+$/, "").padEnd(2, "0");
  if (int === "") int = "0";
  return `${negative ? "-" : ""}${int}${frac ? `.${frac}` : ""}`;
}

/** Parses an integer nano-USD given as a JSON number (safe integer) or a digit string. */
export function parseNano(value: unknown): NanoUsd {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value))
      throw new DecimalError("must be an integer within ±2^53 (send larger values as a string)");
    return BigInt(value);
  }
  if (typeof value === "string" && /^-?\d{1,19}$/.test(value)) {
    const n = BigInt(value);
    if (n > 9223372036854775807n || n < -9223372036854775808n) throw new DecimalError("out of int64 range");
    return n;
  }
  throw new DecimalError("must be an integer number of nano-USD");
}
