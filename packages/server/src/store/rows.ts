import type { SpendDimension, SpendRow } from "./types.js";

// Row orders and merges both stores share, so their answers agree row for row.

/** Most spend first, ties by key: one order on every run, for rows merged or regrouped in JS. */
export function byCostThenKey(
  a: { cost_nanousd: bigint; key: string | null },
  b: { cost_nanousd: bigint; key: string | null },
): number {
  if (a.cost_nanousd === b.cost_nanousd) return (a.key ?? "").localeCompare(b.key ?? "");
  return a.cost_nanousd > b.cost_nanousd ? -1 : 1;
}

/** The amounts a spend row sums. */
export type SpendAmounts = Omit<SpendRow, "key">;

/** Adds `b`'s amounts to `a`. */
export function addSpend(a: SpendAmounts, b: SpendAmounts): void {
  a.calls += b.calls;
  a.cost_nanousd += b.cost_nanousd;
  a.input_tokens += b.input_tokens;
  a.output_tokens += b.output_tokens;
  a.unpriced_calls += b.unpriced_calls;
}

/** Spend rows in the raw query's order: by day, or most spend first. Sorts in place. */
export function orderSpend(rows: SpendRow[], by: SpendDimension): SpendRow[] {
  return by === "day"
    ? rows.sort((x, y) => (x.key ?? "").localeCompare(y.key ?? ""))
    : rows.sort(byCostThenKey);
}

/** Rows of the same key summed (the summary part and the raw part of one answer), in the raw query's order. */
export function mergeSpend(a: SpendRow[], b: SpendRow[], by: SpendDimension): SpendRow[] {
  const m = new Map<string | null, SpendRow>();
  for (const r of [...a, ...b]) {
    const x = m.get(r.key);
    if (!x) m.set(r.key, { ...r });
    else addSpend(x, r);
  }
  return orderSpend([...m.values()], by);
}
