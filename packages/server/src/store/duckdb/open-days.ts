import type { DuckDBConnection } from "@duckdb/node-api";
import { type CallRecord, isInferenceKind } from "@tollgate/core";
import { utcMidnight } from "../../time.js";
import { byCostThenKey } from "../rows.js";
import type { EventFilter, SpendDimension, SpendRow } from "../types.js";
import { COST_UNKNOWN, INPUT_TOKENS } from "./sql.js";

/** The attribution open-day sums are kept by (after workspace and day): what "spend today" asks about. */
const KEYS = ["deployment", "data_mode", "customer_id", "user_id"] as const;
type Key = (typeof KEYS)[number];
const KEYED: ReadonlySet<string> = new Set(KEYS);
const DIMENSIONS: ReadonlySet<SpendDimension> = new Set(["deployment", "customer_id", "user_id", "day"]);

/**
 * Past this many sums the open days are not summed in memory (the raw calls answer instead) until the
 * next day closes: it bounds memory when a day has millions of distinct users.
 */
export const MAX_OPEN_DAY_SUMS = 100_000;

interface Sum {
  day: string;
  keys: Record<Key, string | null>;
  calls: number;
  cost_nanousd: bigint;
  input_tokens: number;
  output_tokens: number;
  unpriced_calls: number;
}

interface DaySums {
  /** The latest ts_start among the day's calls. */
  maxTs: number;
  sums: Map<string, Sum>;
}

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const inputTokens = (r: CallRecord) =>
  r.input_uncached_tokens +
  r.cache_read_tokens +
  r.cache_write_5m_tokens +
  r.cache_write_1h_tokens +
  r.input_audio_tokens +
  r.image_tokens;

/**
 * Every stored call of the open UTC days (from `from` on: the days not yet in segment_days) summed in memory
 * per workspace, day, deployment, data mode, customer and user, so "one user's (or customer's) spend today"
 * is answered without scanning the day's raw calls. Exact: built from the events table while no append runs,
 * then fed each batch's newly stored calls after it commits (DuckDB's file lock makes this process the only
 * writer). Spend questions it cannot answer exactly (other filters, a window starting mid-day or before
 * `from`, a call at or after the window's end) get null and go to the raw calls.
 */
export class OpenDaySums {
  /** workspace → day start (epoch ms) → sums. */
  readonly #days = new Map<string, Map<number, DaySums>>();
  #size = 0;
  #overflow = false;

  private constructor(readonly from: number) {}

  /** Sums the calls with ts_start ≥ `from` (a UTC midnight); run while no append can commit. */
  static async load(conn: DuckDBConnection, from: number): Promise<OpenDaySums> {
    const sums = new OpenDaySums(from);
    const res = await conn.runAndReadAll(
      `SELECT workspace_id, epoch_ms(date_trunc('day', ts_start)) AS day, ${KEYS.join(", ")},
              count(*), sum(cost_nanousd)::HUGEINT, sum(${INPUT_TOKENS})::HUGEINT, sum(output_tokens)::HUGEINT,
              count(*) FILTER (WHERE ${COST_UNKNOWN}), epoch_ms(max(ts_start))
       FROM events WHERE ts_start >= make_timestamp($1::BIGINT * 1000)
       GROUP BY ALL`,
      [from],
    );
    for (const r of res.getRowsJS()) {
      const [ws, day, deployment, dataMode, customer, user, calls, cost, input, output, unpriced, maxTs] = r;
      const keys = { deployment, data_mode: dataMode, customer_id: customer, user_id: user } as Record<
        Key,
        string | null
      >;
      const s = sums.#sum(ws as string, Number(day), Number(maxTs), keys);
      if (!s) break;
      s.calls += Number(calls);
      s.cost_nanousd += BigInt(cost as bigint);
      s.input_tokens += Number(input);
      s.output_tokens += Number(output);
      s.unpriced_calls += Number(unpriced);
    }
    return sums;
  }

  /** Whether the sums were dropped for holding more than MAX_OPEN_DAY_SUMS entries. */
  get overflowed(): boolean {
    return this.#overflow;
  }

  /** Adds calls that were just stored (committed, not duplicates); calls of closed days are not kept. */
  add(records: readonly CallRecord[]): void {
    for (const r of records) {
      if (r.ts_start < this.from || this.#overflow) continue;
      const s = this.#sum(r.workspace_id, utcMidnight(r.ts_start), r.ts_start, r);
      if (!s) return;
      s.calls += 1;
      s.cost_nanousd += r.cost_nanousd;
      s.input_tokens += inputTokens(r);
      s.output_tokens += r.output_tokens;
      if (!r.priced && isInferenceKind(r.kind)) s.unpriced_calls += 1;
    }
  }

  /** Keeps only the days from `from` on (a later UTC midnight: the days before it were closed). */
  closeBefore(from: number): OpenDaySums {
    const next = new OpenDaySums(from);
    next.#overflow = this.#overflow;
    for (const [ws, days] of this.#days)
      for (const [day, d] of days) {
        if (day < from) continue;
        next.#daysOf(ws).set(day, d);
        next.#size += d.sums.size;
      }
    return next;
  }

  /** The answer of `EventStore.spend(filter, by)` over the raw calls, or null where these sums cannot give it. */
  spend(filter: EventFilter, by: SpendDimension): SpendRow[] | null {
    const { from, to } = filter;
    if (this.#overflow || !DIMENSIONS.has(by) || from === undefined) return null;
    if (from < this.from || from !== utcMidnight(from)) return null;
    const where: [Key, string][] = [];
    for (const [k, v] of Object.entries(filter.where ?? {})) {
      if (v === undefined) continue;
      if (!KEYED.has(k)) return null;
      where.push([k as Key, v]);
    }
    const rows = new Map<string | null, SpendRow>();
    for (const [day, d] of this.#days.get(filter.workspaceId) ?? []) {
      if (day < from) continue;
      if (to !== undefined && d.maxTs >= to) {
        // Part of this day's calls may be past the window's end: only the raw calls can say which.
        if (day < to) return null;
        continue;
      }
      for (const s of d.sums.values()) {
        if (filter.deploymentOrUnset !== undefined && s.keys.deployment !== null) {
          if (s.keys.deployment !== filter.deploymentOrUnset) continue;
        }
        if (!where.every(([k, v]) => s.keys[k] === v)) continue;
        const key = by === "day" ? s.day : s.keys[by as Key];
        const row = rows.get(key);
        if (!row)
          rows.set(key, {
            key,
            calls: s.calls,
            cost_nanousd: s.cost_nanousd,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            unpriced_calls: s.unpriced_calls,
          });
        else {
          row.calls += s.calls;
          row.cost_nanousd += s.cost_nanousd;
          row.input_tokens += s.input_tokens;
          row.output_tokens += s.output_tokens;
          row.unpriced_calls += s.unpriced_calls;
        }
      }
    }
    const out = [...rows.values()];
    return by === "day"
      ? out.sort((a, b) => (a.key ?? "").localeCompare(b.key ?? ""))
      : out.sort(byCostThenKey);
  }

  #daysOf(ws: string): Map<number, DaySums> {
    let days = this.#days.get(ws);
    if (!days) {
      days = new Map();
      this.#days.set(ws, days);
    }
    return days;
  }

  /** The sum a call of (workspace, day, keys) adds to, created when new; null once over the size bound. */
  #sum(ws: string, day: number, ts: number, keys: Record<Key, string | null>): Sum | null {
    const days = this.#daysOf(ws);
    let d = days.get(day);
    if (!d) {
      d = { maxTs: ts, sums: new Map() };
      days.set(day, d);
    } else if (ts > d.maxTs) d.maxTs = ts;
    const id = JSON.stringify([keys.deployment, keys.data_mode, keys.customer_id, keys.user_id]);
    let s = d.sums.get(id);
    if (!s) {
      if (this.#size >= MAX_OPEN_DAY_SUMS) {
        this.#overflow = true;
        this.#days.clear();
        this.#size = 0;
        return null;
      }
      s = {
        day: isoDay(day),
        keys: {
          deployment: keys.deployment,
          data_mode: keys.data_mode,
          customer_id: keys.customer_id,
          user_id: keys.user_id,
        },
        calls: 0,
        cost_nanousd: 0n,
        input_tokens: 0,
        output_tokens: 0,
        unpriced_calls: 0,
      };
      d.sums.set(id, s);
      this.#size++;
    }
    return s;
  }
}
