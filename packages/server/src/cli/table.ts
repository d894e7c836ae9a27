import { formatUsd, roundHalfUp } from "@tollgate/core";
import { displayWidth, printable } from "./terminal-text.js";

/** A cell that stands for no figure (a blank TOTAL cell, a change from nothing): it does not make a column text. */
const NO_FIGURE = new Set(["", "-"]);
const FIGURE = /^[-+]?\$?[\d,.]+%?$/;

/**
 * Renders rows as an aligned text table; columns of figures (1,234, $5.00, -$1.55, +2.0%, with `-` or a blank
 * where there is none) are right-aligned. Widths are what a terminal shows (wide and combining characters),
 * and control characters in a cell are escaped (terminal-text.ts).
 */
export function renderTable(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => printable(String(c))));
  const widths = headers.map((h, i) =>
    Math.max(displayWidth(h), ...cells.map((r) => displayWidth(r[i] ?? ""))),
  );
  const numeric = headers.map((_, i) => {
    const column = cells.map((r) => r[i] ?? "");
    return column.some((c) => !NO_FIGURE.has(c)) && column.every((c) => NO_FIGURE.has(c) || FIGURE.test(c));
  });
  const line = (r: string[]) =>
    r
      .map((c, i) => {
        const pad = " ".repeat(widths[i]! - displayWidth(c));
        return numeric[i] ? pad + c : c + pad;
      })
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
 * Nano-USD as a table shows it: `digits` decimals rounded half-up from the integer (never through a float),
 * thousands grouped, a negative one as -$1.55 (not $-1.55), and one that rounds to nothing as $0.00, not -$0.00.
 */
export function usdCell(nano: bigint, digits: number): string {
  const text = groupThousands(formatUsd(nano, digits));
  return /^-[0.,]*[1-9]/.test(text) ? `-$${text.slice(1)}` : `$${text.replace(/^-/, "")}`;
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
