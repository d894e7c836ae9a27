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
  /** to_date + run_rate × days left (today included). */
  projected_nanousd: bigint;
  /** A 90% interval: ± 1.645 · σ_daily · √(days left), the days taken as independent; never below to_date. */
  low_nanousd: bigint;
  high_nanousd: bigint;
  window_days: number;
  days_left: number;
}

export const FORECAST_METHOD =
  "trailing mean of the last 7 complete days (fewer when there is less history); 90% interval ±1.645·σ·√days_left";

/**
 * Projects a period's end total from its recent daily run rate. `trailing` are the last complete days
 * (oldest first; up to 7 are used), `toDate` what the period has spent so far, `daysLeft` the days of the
 * period not yet complete (including today).
 * `toDate` is the spend of the complete days: today's partial spend would otherwise count twice.
 */
export function project(trailing: readonly DaySpend[], toDate: bigint, daysLeft: number): Projection {
  const window = trailing.slice(-7);
  const n = BigInt(window.length);
  const left = Math.max(0, daysLeft);
  if (n === 0n)
    return {
      to_date_nanousd: toDate,
      run_rate_nanousd: 0n,
      projected_nanousd: toDate,
      low_nanousd: toDate,
      high_nanousd: toDate,
      window_days: 0,
      days_left: left,
    };
  const total = window.reduce((a, d) => a + d.cost_nanousd, 0n);
  const rate = roundHalfUp(total, n);
  const projected = toDate + rate * BigInt(left);
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
    low_nanousd: low < toDate ? toDate : low,
    high_nanousd: projected + spread,
    window_days: window.length,
    days_left: left,
  };
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
