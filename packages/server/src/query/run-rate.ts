import { DAY_MS, utcMidnight } from "../time.js";

/** A run rate is the mean daily spend of at most this many complete days before today. */
export const TRAILING_DAYS = 7;

/**
 * The trailing days of a run rate at `today` (a UTC midnight), and the week before them: whether anything
 * was called then tells whether quiet days opening the trailing days count (a bounded look-back: all
 * history would be a full scan).
 */
export function rateWindows(today: number) {
  const from = today - TRAILING_DAYS * DAY_MS;
  return {
    trailing: { from, to: today },
    before: { from: from - TRAILING_DAYS * DAY_MS, to: from },
  };
}

/**
 * How many of the trailing days (the last of them ending at `today`) a run rate is the mean of. Days
 * without spend count as zero; with calls in the week before, quiet days opening the trailing days (a
 * weekday-only workspace's weekend) are days of the rate too, so all of them count. Without, the rate
 * starts at the day of the first call in them (`firstCall`, epoch ms): something new, or back from a
 * pause, is not 7 days into its spending. No call in either: 0 days, no rate.
 */
export function rateDays(today: number, firstCall: number | null, calledBefore: boolean): number {
  if (calledBefore) return TRAILING_DAYS;
  const { trailing } = rateWindows(today);
  if (firstCall === null || firstCall >= today) return 0;
  return Math.round((today - utcMidnight(Math.max(firstCall, trailing.from))) / DAY_MS);
}
