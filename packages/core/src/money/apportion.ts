import { roundHalfUp } from "./nanousd.js";

/**
 * Rounds exact shares (each `numerators[k] / den`) to integers so that they sum to the rounded total
 * (largest-remainder method). Every share lands within 1 of its exact value and the parts always add
 * up to the whole, which is what lets per-category costs reconcile with the stored total.
 */
export function apportion(numerators: readonly bigint[], den: bigint): { total: bigint; parts: bigint[] } {
  let sum = 0n;
  for (const n of numerators) {
    if (n < 0n) throw new RangeError("apportion expects non-negative shares");
    sum += n;
  }
  const total = roundHalfUp(sum, den);
  const parts = numerators.map((n) => n / den);
  let missing = total - parts.reduce((a, b) => a + b, 0n);
  if (missing > 0n) {
    const order = numerators
      .map((n, i) => ({ i, rem: n % den }))
      .filter((x) => x.rem > 0n)
      .sort((a, b) => (b.rem > a.rem ? 1 : b.rem < a.rem ? -1 : a.i - b.i));
    for (const { i } of order) {
      if (missing === 0n) break;
      parts[i] = (parts[i] ?? 0n) + 1n;
      missing--;
    }
  }
  return { total, parts };
}
