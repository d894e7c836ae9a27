// A cost broken down by category, and the two exact ways of summing priced lines into one.
import { apportion } from "../money/apportion.js";
import type { Decimal } from "../money/decimal.js";
import type { NanoUsd } from "../money/nanousd.js";

/** Cost categories; each maps to usage fields, so per-category cost explains the total. */
export const COST_CATEGORIES = [
  "input_uncached",
  "cache_read",
  "cache_write_5m",
  "cache_write_1h",
  "output",
  "input_audio",
  "output_audio",
  "image",
  "requests",
  "tool_calls",
] as const;
export type CostCategory = (typeof COST_CATEGORIES)[number];

export interface CostBreakdown {
  total_nanousd: NanoUsd;
  by_category: Record<CostCategory, NanoUsd>;
}

/** A literal, not a loop over COST_CATEGORIES: every call prices from one, and the type lists them all. */
export function zeroCost(): CostBreakdown {
  return {
    total_nanousd: 0n,
    by_category: {
      input_uncached: 0n,
      cache_read: 0n,
      cache_write_5m: 0n,
      cache_write_1h: 0n,
      output: 0n,
      input_audio: 0n,
      output_audio: 0n,
      image: 0n,
      requests: 0n,
      tool_calls: 0n,
    },
  };
}

/**
 * A line with its rate settled (tier, multiplier): `qty` × `price` × `nanoPerUnit` / `unitDen` nano-USD.
 * `unitDen` is 1 but for a rate whose unit is not a decimal multiple of what it counts (per hour of
 * audio counted in milliseconds: 1e9 / 3.6e6 = 2500 / 9 nano-USD per ms at $1 an hour).
 */
export interface PricedLine {
  category: CostCategory;
  qty: number;
  price: Decimal;
  nanoPerUnit: number;
  unitDen: number;
}

/** The least common multiple of the lines' unit denominators: the lines share one denominator. */
function commonUnitDen(lines: readonly PricedLine[]): number {
  let den = 1;
  for (const l of lines) {
    let a = den;
    let b = l.unitDen;
    while (b) [a, b] = [b, a % b];
    den = (den / a) * l.unitDen;
  }
  return den;
}

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The cost in plain numbers, without BigInt arithmetic: exact while every product and sum is a safe
 * integer (the factors are non-negative integers, so a safe result means every step was safe), which real
 * calls always are. Null when that does not hold: such lines go to costInBigInts. The apportioning repeats
 * apportion()'s rule in numbers; pricing.breakdown.test.ts checks the two paths agree.
 */
export function costInNumbers(lines: readonly PricedLine[]): CostBreakdown | null {
  let scale = 0;
  for (const l of lines) {
    if (l.price.units < 0n || l.price.units > MAX_EXACT || !Number.isSafeInteger(l.qty)) return null;
    if (l.price.scale > scale) scale = l.price.scale;
  }
  if (scale > 15) return null;
  const unitDen = commonUnitDen(lines);
  const den = 10 ** scale * unitDen;
  if (!Number.isSafeInteger(den)) return null;
  const nums = new Map<CostCategory, number>();
  let sum = 0;
  for (const l of lines) {
    const num =
      l.qty * Number(l.price.units) * l.nanoPerUnit * 10 ** (scale - l.price.scale) * (unitDen / l.unitDen);
    sum += num;
    if (!Number.isSafeInteger(num) || !Number.isSafeInteger(sum)) return null;
    nums.set(l.category, (nums.get(l.category) ?? 0) + num);
  }
  const rem = sum % den;
  const total = (sum - rem) / den + (2 * rem >= den ? 1 : 0);
  const result = zeroCost();
  result.total_nanousd = BigInt(total);
  let missing = total;
  for (const [c, n] of nums) {
    const part = (n - (n % den)) / den;
    missing -= part;
    result.by_category[c] = BigInt(part);
  }
  if (missing > 0) {
    // Largest remainders first, ties in line order, as apportion() does.
    const order = [...nums].filter(([, n]) => n % den > 0).sort((a, b) => (b[1] % den) - (a[1] % den));
    for (const [c] of order.slice(0, missing)) result.by_category[c] += 1n;
  }
  return result;
}

/** The cost of any lines, exactly, in BigInts. */
export function costInBigInts(lines: readonly PricedLine[]): CostBreakdown {
  // Bring every line to one denominator 10^scale × unitDen so the apportioning works on integers.
  const scale = Math.max(0, ...lines.map((l) => l.price.scale));
  const unitDen = commonUnitDen(lines);
  const den = 10n ** BigInt(scale) * BigInt(unitDen);
  const shares = new Map<CostCategory, bigint>();
  for (const l of lines) {
    const num =
      BigInt(l.qty) *
      l.price.units *
      BigInt(l.nanoPerUnit) *
      10n ** BigInt(scale - l.price.scale) *
      BigInt(unitDen / l.unitDen);
    shares.set(l.category, (shares.get(l.category) ?? 0n) + num);
  }
  const categories = [...shares.keys()];
  const { total, parts } = apportion(
    categories.map((c) => shares.get(c) ?? 0n),
    den,
  );
  const result = zeroCost();
  result.total_nanousd = total;
  categories.forEach((c, i) => {
    result.by_category[c] = parts[i] ?? 0n;
  });
  return result;
}
