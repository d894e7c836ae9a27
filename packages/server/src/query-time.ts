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
  return parseIso(t);
}

/** YYYY-MM-DD, optionally a time (T or a space, minutes, seconds, a fraction) and a zone (Z, ±HH[:MM]). */
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/**
 * An ISO date or date-time as epoch ms, or null. Not Date.parse: it reads a date-time without a zone in
 * the server's time zone (a date alone in UTC), and rolls a day that does not exist into the next month
 * (2026-02-30 is March 2nd). Here a time without a zone is UTC, as days are everywhere in Tollgate, and a
 * day, hour or minute out of its range is no time at all.
 */
function parseIso(t: string): number | null {
  const m = ISO.exec(t);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((v) => Number(v ?? 0)) as number[];
  const ms = Number((m[7] ?? "").padEnd(3, "0").slice(0, 3));
  if (hour! > 23 || minute! > 59 || second! > 59) return null;
  const d = new Date(0);
  d.setUTCFullYear(year!, month! - 1, day!); // not Date.UTC: it reads years 0–99 as 1900–1999
  if (d.getUTCMonth() !== month! - 1 || d.getUTCDate() !== day) return null;
  d.setUTCHours(hour!, minute!, second!, ms);
  const zone = /^([+-])(\d{2}):?(\d{2})?$/.exec(m[8] ?? "");
  if (!zone) return d.getTime(); // Z, or no zone: UTC
  const [zh, zm] = [Number(zone[2]), Number(zone[3] ?? 0)];
  if (zh > 23 || zm > 59) return null;
  return d.getTime() - (zone[1] === "-" ? -1 : 1) * (zh * 60 + zm) * 60_000;
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
