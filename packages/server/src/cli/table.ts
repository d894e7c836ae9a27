import { roundHalfUp } from "@tollgate/core";

/** Renders rows as an aligned text table; numeric-looking columns (1,234, $5.00, -$1.55, +2.0%) are right-aligned. */
export function renderTable(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const numeric = headers.map(
    (_, i) => cells.length > 0 && cells.every((r) => /^[-+]?\$?[\d,.]+%?$/.test(r[i] ?? "")),
  );
  const line = (r: string[]) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n");
}

export function formatInt(n: number): string {
  return n.toLocaleString("en-US");
}

/** "1910.94" → "1,910.94": USD for humans (the value itself is formatted exactly by core's formatUsd). */
export function groupThousands(decimal: string): string {
  const [int = "", frac] = decimal.split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

/**
 * `part` of `whole` as a percentage to a tenth, rounded half-up on the integers (a share of money never
 * goes through a float: 3 of 2,000 nano-USD is 0.2%, where 0.0015 * 100 in floating point is 0.1…%).
 * Nothing of nothing is 0.0%.
 */
export function percent(part: bigint, whole: bigint): string {
  if (whole === 0n) return "0.0%";
  const tenths = roundHalfUp(part * 1000n, whole);
  const abs = tenths < 0n ? -tenths : tenths;
  return `${tenths < 0n ? "-" : ""}${abs / 10n}.${abs % 10n}%`;
}

/** The change from `before` to `now` as a signed percentage (percent's rounding); "-" from nothing. */
export function percentChange(now: bigint, before: bigint): string {
  if (before === 0n) return "-";
  const p = percent(now - before, before);
  return p.startsWith("-") ? p : `+${p}`;
}
