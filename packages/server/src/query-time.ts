import { INPUT_LIMITS } from "@tollgate/core";
import { DAY_MS } from "./time.js";

/**
 * The times a query may name: from the epoch to 2100-01-01, past which no call is recorded (a record's
 * `ts_start` is before INPUT_LIMITS.maxTs). Both stores take every time in it — DuckDB as microseconds,
 * ClickHouse 18.16 as Date and DateTime (1970 to 2105) — so no query built from one overflows.
 */
export const QUERY_TIMES = { min: 0, max: INPUT_LIMITS.maxTs } as const;

const RANGE_TEXT = `between ${isoDay(QUERY_TIMES.min)} and ${isoDay(QUERY_TIMES.max)} (UTC)`;
const RELATIVE = /^(\d+)(m|h|d|w)$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS } as const;

/** A time a query cannot use; the message completes "<parameter> …", for the caller to name it. */
export class QueryTimeError extends Error {}

/**
 * "7d" / "24h" (that long before `now`), "now", an ISO date or date-time → epoch ms within QUERY_TIMES.
 * Throws QueryTimeError saying why not.
 */
export function parseTime(text: string, now = Date.now()): number {
  const t = text.trim();
  const ms = parseAnyTime(t, now);
  if (ms === null)
    throw new QueryTimeError(
      `must be an ISO date/time, now, or a span back from now like 7d, 24h; got ${JSON.stringify(text)}`,
    );
  if (!inQueryTimes(ms))
    throw new QueryTimeError(`must be ${RANGE_TEXT}; ${JSON.stringify(t)} is ${timeText(ms)}`);
  return ms;
}

export function inQueryTimes(ms: number): boolean {
  return ms >= QUERY_TIMES.min && ms <= QUERY_TIMES.max;
}

function parseAnyTime(t: string, now: number): number | null {
  if (t === "now") return now;
  const rel = RELATIVE.exec(t);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS];
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) return null;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

/** An out-of-range time as a date where JavaScript can show one (±275,000 years), else which side it is on. */
function timeText(ms: number): string {
  const d = new Date(ms);
  if (!Number.isNaN(d.getTime())) return d.toISOString();
  return ms < QUERY_TIMES.min ? `before ${isoDay(QUERY_TIMES.min)}` : `after ${isoDay(QUERY_TIMES.max)}`;
}

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
