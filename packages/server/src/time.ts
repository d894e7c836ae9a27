export const DAY_MS = 86_400_000;

/** The UTC midnight at or before `ms`. */
export function utcMidnight(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** The start of the UTC month `offset` months from the one holding `ms` (0: its own, -1: the one before). */
export function utcMonthStart(ms: number, offset = 0): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1);
}
