export const DAY_MS = 86_400_000;

const RELATIVE = /^(\d+)(m|h|d|w)$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS } as const;

/** "7d" / "24h" (that long before `now`), "now", an ISO date or date-time → epoch ms; null if unparseable. */
export function parseTime(text: string, now = Date.now()): number | null {
  const t = text.trim();
  if (t === "now") return now;
  const rel = RELATIVE.exec(t);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS];
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) return null;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

/** The UTC midnight at or before `ms`. */
export function utcMidnight(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** The start of the UTC month `offset` months from the one holding `ms` (0: its own, -1: the one before). */
export function utcMonthStart(ms: number, offset = 0): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1);
}
