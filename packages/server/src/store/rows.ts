import { keyOrder } from "@tollgate/core";
import type { SpendDimension, SpendRow, WorkspaceRow } from "./types.js";

// Row orders and merges both stores share, so their answers agree row for row.

/** Most spend first, ties by key: one order on every run, for rows merged or regrouped in JS. */
export function byCostThenKey(
  a: { cost_nanousd: bigint; key: string | null },
  b: { cost_nanousd: bigint; key: string | null },
): number {
  if (a.cost_nanousd === b.cost_nanousd) return keyOrder(a.key, b.key);
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

/**
 * Spend rows in the raw query's order (SQL's `ORDER BY cost DESC, key`, as both stores' raw queries answer):
 * by day, or most spend first, ties by key in code point order (SQL compares UTF-8 bytes, not the
 * locale's collation) and the key none (NULL) last. Sorts in place.
 */
export function orderSpend(rows: SpendRow[], by: SpendDimension): SpendRow[] {
  return by === "day"
    ? rows.sort((x, y) => byCodePoint(x.key ?? "", y.key ?? ""))
    : rows.sort((x, y) => byCostNullsLast(x.cost_nanousd, x.key, y.cost_nanousd, y.key));
}

/** SQL's `ORDER BY cost DESC, key` (NULLs last, keys by their UTF-8 bytes), as the raw queries answer. */
export function byCostNullsLast(ac: bigint, ak: string | null, bc: bigint, bk: string | null): number {
  if (ac !== bc) return ac > bc ? -1 : 1;
  if (ak === bk) return 0;
  if (ak === null) return 1;
  if (bk === null) return -1;
  return byCodePoint(ak, bk);
}

/**
 * Strings in code point order, which is their UTF-8 bytes' order (SQL's binary collation). JS's `<` compares
 * UTF-16 units, which puts a character past U+FFFF (a surrogate pair, D800–DFFF) before U+E000–U+FFFF.
 */
export function byCodePoint(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate (of a code point past U+FFFF) is after any other unit, whatever its value.
    if (isSurrogate(x) !== isSurrogate(y)) return isSurrogate(x) ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

const isSurrogate = (c: number) => c >= 0xd800 && c <= 0xdfff;

/** The workspaces made and those holding calls, as one list by id (EventStore.workspaces). */
export function workspaceRows(made: readonly string[], withCalls: readonly string[]): WorkspaceRow[] {
  const calls = new Set(withCalls);
  return [...new Set([...made, ...withCalls])].sort(byCodePoint).map((id) => ({ id, calls: calls.has(id) }));
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
