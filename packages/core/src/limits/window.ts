/**
 * Budget windows: calendar day / week (ISO, Monday) / month in a time zone, rolling N hours, or lifetime.
 * A window is made of slots: one per calendar window, one per hour for rolling windows (spend older than
 * N whole hours drops out an hour at a time), one forever for lifetime.
 */
export type WindowSpec =
  | { kind: "day" | "week" | "month"; tz: string }
  | { kind: "rolling"; hours: number }
  | { kind: "lifetime" };

export interface WindowSlots {
  /** Slot ids whose spend counts now, the current one last. */
  slots: string[];
  /** Epoch ms the counted spend starts from (inclusive); 0 for lifetime. */
  start: number;
  /** When the current slot ends (the budget resets, or its oldest hour drops out); null: never. */
  resetAt: number | null;
  /** When the current slot began (for rolling windows: the current hour). */
  slotStart: number;
}

const HOUR = 3_600_000;
const WINDOW_RE = /^(day|week|month|lifetime|([1-9]\d{0,2})h)$/;
/** Rolling windows are counted in hour slots; a week of them at most (longer spans: week or month). */
export const MAX_ROLLING_HOURS = 168;

/** Parses "day" | "week" | "month" | "lifetime" | "<N>h" (1..168). */
export function parseWindow(text: string, tz = "UTC"): WindowSpec | null {
  const m = WINDOW_RE.exec(text);
  if (!m) return null;
  if (m[2]) {
    const hours = Number(m[2]);
    return hours <= MAX_ROLLING_HOURS ? { kind: "rolling", hours } : null;
  }
  if (m[1] === "lifetime") return { kind: "lifetime" };
  return { kind: m[1] as "day" | "week" | "month", tz };
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(tz, f);
  }
  return f;
}

/** Wall-clock fields of `ms` in `tz`. */
function wallClock(
  ms: number,
  tz: string,
): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(ms)) if (p.type !== "literal") parts[p.type] = Number(p.value);
  return {
    y: parts.year!,
    mo: parts.month!,
    d: parts.day!,
    h: parts.hour!,
    mi: parts.minute!,
    s: parts.second!,
  };
}

/** Offset of `tz` from UTC at instant `ms`, in ms (positive east of Greenwich). */
function offsetAt(ms: number, tz: string): number {
  const w = wallClock(ms, tz);
  const asUtc = Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/**
 * The first instant of day (y, mo, d) in `tz`: its local midnight (DST-safe: the offset is re-read at the
 * guess). Where a DST gap skips midnight (Havana, Santiago, the Azores spring forward at 00:00), the
 * midnight at the new offset falls in the day before: the day starts where the gap ends, its midnight at
 * the old offset.
 */
function localMidnight(y: number, mo: number, d: number, tz: string): number {
  const guess = Date.UTC(y, mo - 1, d);
  const first = guess - offsetAt(guess, tz);
  const t = guess - offsetAt(first, tz);
  if (t === first) return t;
  const w = wallClock(t, tz);
  return w.y === y && w.mo === mo && w.d === d ? t : first;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

const cache = new WeakMap<WindowSpec, WindowSlots>();

/**
 * The slots of `spec` that count at instant `at`. Cached per spec until the current slot ends: time-zone
 * arithmetic (Intl) costs tens of µs, and this runs for every budget of every call.
 */
export function windowSlots(spec: WindowSpec, at: number): WindowSlots {
  const hit = cache.get(spec);
  if (hit && at >= hit.slotStart && (hit.resetAt === null || at < hit.resetAt)) return hit;
  const fresh = computeSlots(spec, at);
  cache.set(spec, fresh);
  return fresh;
}

function computeSlots(spec: WindowSpec, at: number): WindowSlots {
  if (spec.kind === "lifetime") return { slots: ["all"], start: 0, resetAt: null, slotStart: 0 };
  if (spec.kind === "rolling") {
    const current = Math.floor(at / HOUR);
    const slots: string[] = [];
    for (let h = current - spec.hours + 1; h <= current; h++) slots.push(`h${h}`);
    return {
      slots,
      start: (current - spec.hours + 1) * HOUR,
      resetAt: (current + 1) * HOUR,
      slotStart: current * HOUR,
    };
  }
  const w = wallClock(at, spec.tz);
  if (spec.kind === "day") {
    const start = localMidnight(w.y, w.mo, w.d, spec.tz);
    const next = new Date(Date.UTC(w.y, w.mo - 1, w.d + 1));
    return {
      slots: [`d${w.y}-${pad(w.mo)}-${pad(w.d)}`],
      start,
      resetAt: localMidnight(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), spec.tz),
      slotStart: start,
    };
  }
  if (spec.kind === "week") {
    const dow = (new Date(Date.UTC(w.y, w.mo - 1, w.d)).getUTCDay() + 6) % 7; // Monday = 0
    const monday = new Date(Date.UTC(w.y, w.mo - 1, w.d - dow));
    const nextMonday = new Date(Date.UTC(w.y, w.mo - 1, w.d - dow + 7));
    const ymd = (x: Date) => [x.getUTCFullYear(), x.getUTCMonth() + 1, x.getUTCDate()] as const;
    const start = localMidnight(...ymd(monday), spec.tz);
    return {
      slots: [`w${monday.toISOString().slice(0, 10)}`],
      start,
      resetAt: localMidnight(...ymd(nextMonday), spec.tz),
      slotStart: start,
    };
  }
  const nextMonth = new Date(Date.UTC(w.y, w.mo, 1));
  const start = localMidnight(w.y, w.mo, 1, spec.tz);
  return {
    slots: [`m${w.y}-${pad(w.mo)}`],
    start,
    resetAt: localMidnight(nextMonth.getUTCFullYear(), nextMonth.getUTCMonth() + 1, 1, spec.tz),
    slotStart: start,
  };
}

/** The slot a call at `at` is charged to (the last of its window's slots). */
export function currentSlot(spec: WindowSpec, at: number): string {
  const { slots } = windowSlots(spec, at);
  return slots[slots.length - 1]!;
}

/** Slot of an hourly-bucketed past instant (for rebuilding rolling windows from stored events). */
export function hourSlot(at: number): string {
  return `h${Math.floor(at / HOUR)}`;
}

/** How long a slot's counters must be kept (they expire after that in backends with TTLs). */
export function slotTtlMs(spec: WindowSpec): number | null {
  if (spec.kind === "lifetime") return null;
  if (spec.kind === "rolling") return (spec.hours + 1) * HOUR;
  return (spec.kind === "month" ? 32 : spec.kind === "week" ? 8 : 2) * 24 * HOUR;
}
