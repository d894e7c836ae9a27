/** How concentrated spend is across tenants: the share of the top N, and the Herfindahl–Hirschman index. */
export interface Concentration {
  total_nanousd: bigint;
  tenants: number;
  /** Share of spend of the N largest (0–1). */
  top_share: number;
  top_n: number;
  /** Σ shareᵢ² over all tenants, 0–1 (1 = one tenant pays everything; ×10,000 for the antitrust scale). */
  hhi: number;
}

/** Shares are ratios for reading, not money: computed exactly on integers, then converted once. */
export function concentration(spend: readonly bigint[], topN = 5): Concentration {
  const sorted = [...spend].filter((s) => s > 0n).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  const total = sorted.reduce((a, b) => a + b, 0n);
  if (total === 0n) return { total_nanousd: 0n, tenants: sorted.length, top_share: 0, top_n: topN, hhi: 0 };
  const top = sorted.slice(0, topN).reduce((a, b) => a + b, 0n);
  const squares = sorted.reduce((a, s) => a + s * s, 0n);
  return {
    total_nanousd: total,
    tenants: sorted.length,
    top_share: ratio(top, total),
    top_n: topN,
    hhi: ratio(squares, total * total),
  };
}

/**
 * num/den as a float, truncated to `digits` decimals, computed on the bigints (no precision lost on huge
 * amounts before the division); 0 when den is 0.
 */
export function ratio(num: bigint, den: bigint, digits = 12): number {
  if (den === 0n) return 0;
  return Number((num * 10n ** BigInt(digits)) / den) / 10 ** digits;
}
