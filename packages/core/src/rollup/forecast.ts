import { roundHalfUp } from "../money/nanousd.js";

/** Spend of one complete day (UTC or the report's time zone: the caller buckets). */
export interface DaySpend {
  /** YYYY-MM-DD */
  day: string;
  cost_nanousd: bigint;
}

export interface Projection {
  /** Spend of the period's complete days so far (the days still to come, today included, are projected). */
  to_date_nanousd: bigint;
  /** Mean daily spend over the trailing window. */
  run_rate_nanousd: bigint;
  /** to_date + run_rate × days left (today included, at no less than it has spent so far). */
  projected_nanousd: bigint;
  /** A 90% interval: ± 1.645 · σ_daily · √(days left), the days taken as independent; never below what is spent. */
  low_nanousd: bigint;
  high_nanousd: bigint;
  window_days: number;
  days_left: number;
}

export const FORECAST_METHOD =
  "trailing mean of the last 7 complete days (fewer when there is less history); 90% interval ±1.645·σ·√days_left";

/**
 * Projects a period's end total from its recent daily run rate. `trailing` are the last complete days
 * (oldest first; up to 7 are used), `toDate` what the period's complete days spent, `daysLeft` the days of
 * the period not yet complete (including today), `today` what today has spent so far.
 * Today is projected at the run rate like the days after it (its partial spend would otherwise count
 * twice), but at no less than it has spent already: a spike today, or a first day without history, would
 * otherwise project the period below what it has spent.
 */
export function project(
  trailing: readonly DaySpend[],
  toDate: bigint,
  daysLeft: number,
  today = 0n,
): Projection {
  const window = trailing.slice(-7);
  const n = BigInt(window.length);
  const left = Math.max(0, daysLeft);
  const spent = toDate + (left > 0 ? today : 0n);
  if (n === 0n)
    return {
      to_date_nanousd: toDate,
      run_rate_nanousd: 0n,
      projected_nanousd: spent,
      low_nanousd: spent,
      high_nanousd: spent,
      window_days: 0,
      days_left: left,
    };
  const total = window.reduce((a, d) => a + d.cost_nanousd, 0n);
  const rate = roundHalfUp(total, n);
  const projected = left > 0 ? toDate + projectedDays(rate, left, today) : toDate;
  // σ² = Σ(xᵢ − x̄)² / (n − 1): exact in integers (scaled by n²), one square root at the end.
  let spread = 0n;
  if (n > 1n) {
    let sq = 0n;
    for (const d of window) {
      const dev = d.cost_nanousd * n - total;
      sq += dev * dev;
    }
    const varianceTimesN2 = sq / (n - 1n);
    const sigma = sqrt(varianceTimesN2) / n;
    spread = (sigma * 1645n * sqrt(BigInt(left) * 1_000_000n)) / 1_000_000n; // 1.645 · σ · √left
  }
  const low = projected - spread;
  return {
    to_date_nanousd: toDate,
    run_rate_nanousd: rate,
    projected_nanousd: projected,
    low_nanousd: low < spent ? spent : low,
    high_nanousd: projected + spread,
    window_days: window.length,
    days_left: left,
  };
}

/** The spend of `daysLeft` (≥ 1) days at `rate`, the first of them (today) at no less than `today` spent so far. */
export function projectedDays(rate: bigint, daysLeft: number, today: bigint): bigint {
  return (today > rate ? today : rate) + rate * BigInt(daysLeft - 1);
}

/** Days until `remaining` is spent at `rate` per day (fractional, one decimal); null when nothing is being spent. */
export function daysUntilExhausted(remaining: bigint, rate: bigint): number | null {
  if (remaining <= 0n) return 0;
  if (rate <= 0n) return null;
  return Number((remaining * 10n) / rate) / 10;
}

/** Integer square root (floor) of a non-negative bigint. */
function sqrt(v: bigint): bigint {
  if (v < 2n) return v;
  let x = BigInt(Math.floor(Math.sqrt(Number(v))));
  // Newton steps fix the float estimate for values past 2^53.
  for (;;) {
    const y = (x + v / x) >> 1n;
    if (y >= x) break;
    x = y;
  }
  while (x * x > v) x--;
  while ((x + 1n) * (x + 1n) <= v) x++;
  return x;
}
