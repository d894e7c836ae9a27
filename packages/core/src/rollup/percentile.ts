/**
 * Percentiles by the nearest-rank definition: the p-th percentile of n sorted values is the value at
 * rank ⌈p/100 · n⌉ (1-based), so it is always one of the values (exact for nano-USD) and p100 is the max.
 */
export function nearestRank<T>(sorted: readonly T[], p: number): T | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function sortBigints(values: Iterable<bigint>): bigint[] {
  return [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
