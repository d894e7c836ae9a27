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

/** Rows of the same key summed (the summary part and the raw part of one answer), in the raw query's order. */
export function mergeSpend(a: SpendRow[], b: SpendRow[], by: SpendDimension): SpendRow[] {
  const m = new Map<string | null, SpendRow>();
  for (const r of [...a, ...b]) {
    const x = m.get(r.key);
    if (!x) m.set(r.key, { ...r });
    else {
      x.calls += r.calls;
      x.cost_nanousd += r.cost_nanousd;
      x.input_tokens += r.input_tokens;
      x.output_tokens += r.output_tokens;
      x.unpriced_calls += r.unpriced_calls;
    }
  }
  const rows = [...m.values()];
  return by === "day"
    ? rows.sort((x, y) => (x.key ?? "").localeCompare(y.key ?? ""))
    : rows.sort(byCostThenKey);
}
