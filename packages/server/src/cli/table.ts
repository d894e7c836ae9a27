import { roundHalfUp } from "@tollgate/core";

const FIGURE = /^[-+]?\$?[\d,.]+%?$/;
/** A cell that says there is no figure (a cost per request without requests): it does not make a column text. */
const NO_FIGURE = "-";

/**
 * Renders rows as an aligned text table; columns of figures (1,234, $5.00, -$1.55, +2.0%, and "-" for none)
 * are right-aligned.
 */
export function renderTable(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const numeric = headers.map((_, i) => {
    const figures = cells.map((r) => r[i] ?? "").filter((c) => c !== NO_FIGURE);
    return figures.length > 0 && figures.every((c) => FIGURE.test(c));
  });
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
