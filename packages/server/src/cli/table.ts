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
