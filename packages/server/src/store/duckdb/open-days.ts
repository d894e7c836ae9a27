import type { DuckDBConnection } from "@duckdb/node-api";
import { type CallRecord, isInferenceKind, totalInputTokens } from "@tollgate/core/fields";
import { utcMidnight } from "../../time.js";
import { addSpend, orderSpend, type SpendAmounts } from "../rows.js";
import type { EventFilter, SpendDimension, SpendRow } from "../types.js";
import { COST_UNKNOWN, INPUT_TOKENS } from "./sql.js";

/**
 * Each call is summed twice: per user and per customer (each with deployment and data mode). Keyed by both
 * at once, the sums would multiply users by the customers they act for.
 */
const FACETS = ["user_id", "customer_id"] as const;
type Facet = (typeof FACETS)[number];

/**
 * The default bound: past this many sums the open days are not summed in memory (the raw calls answer
 * instead) until the next day closes. It bounds memory (~30 MB) when a day has hundreds of thousands of users.
 */
export const MAX_OPEN_DAY_SUMS = 100_000;

interface Sum extends SpendAmounts {
  day: string;
  deployment: string | null;
  data_mode: string;
  /** The user (or customer) of the facet it is kept in. */
  who: string | null;
}

interface DaySums {
  /** The latest ts_start among the day's calls. */
  maxTs: number;
  facets: Record<Facet, Map<string, Sum>>;
}

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function amountsOf(r: CallRecord): SpendAmounts {
  return {
    calls: 1,
    cost_nanousd: r.cost_nanousd,
    input_tokens: totalInputTokens(r),
    output_tokens: r.output_tokens,
    unpriced_calls: !r.priced && isInferenceKind(r.kind) ? 1 : 0,
  };
}

/**
 * The facet that can answer a spend question, or null: the only attribution it may filter or group by is
 * deployment, data mode, day and at most one of user and customer.
 */
function facetFor(filter: EventFilter, by: SpendDimension): Facet | null {
  let facet: Facet | null = null;
  const use = (field: string): boolean => {
    if (field === "deployment" || field === "data_mode" || field === "day") return true;
    if (field !== "user_id" && field !== "customer_id") return false;
    if (facet && facet !== field) return false;
    facet = field;
    return true;
  };
  if (!use(by)) return null;
  for (const [k, v] of Object.entries(filter.where ?? {})) if (v !== undefined && !use(k)) return null;
  return facet ?? "user_id";
}

/**
 * Every stored call of the open UTC days (from `from` on: the days not yet in segment_days) summed in memory
 * per workspace and day, by deployment, data mode and user, and again by customer, so "one user's (or
 * customer's) spend today" is answered without scanning the day's raw calls. Exact: built from the events
 * table while no append runs, then fed each batch's newly stored calls after it commits (DuckDB's file lock
 * makes this process the only writer). Questions it cannot answer exactly (other filters, a window starting
 * mid-day or before `from`, a call at or after the window's end) get null and go to the raw calls.
 */
export class OpenDaySums {
  /** workspace → day start (epoch ms) → sums. */
  readonly #days = new Map<string, Map<number, DaySums>>();
  #size = 0;
  #overflow = false;

  private constructor(
    readonly from: number,
    readonly max: number,
  ) {}

  /** Sums the calls with ts_start ≥ `from` (a UTC midnight); run while no append can commit. */
  static async load(conn: DuckDBConnection, from: number, max = MAX_OPEN_DAY_SUMS): Promise<OpenDaySums> {
    const sums = new OpenDaySums(from, max);
    for (const facet of FACETS) {
      const res = await conn.runAndReadAll(
        `SELECT workspace_id, epoch_ms(date_trunc('day', ts_start)) AS day, deployment, data_mode, ${facet},
                count(*), sum(cost_nanousd)::HUGEINT, sum(${INPUT_TOKENS})::HUGEINT, sum(output_tokens)::HUGEINT,
                count(*) FILTER (WHERE ${COST_UNKNOWN}), epoch_ms(max(ts_start))
         FROM events WHERE ts_start >= make_timestamp($1::BIGINT * 1000)
         GROUP BY ALL`,
        [from],
      );
      for (const r of res.getRowsJS()) {
        const [ws, day, deployment, dataMode, who, calls, cost, input, output, unpriced, maxTs] = r;
        const d = sums.#day(ws as string, Number(day), Number(maxTs));
        const s = sums.#sum(
          d,
          facet,
          Number(day),
          deployment as string | null,
          dataMode as string,
          who as string,
        );
        if (!s) return sums;
        addSpend(s, {
          calls: Number(calls),
          cost_nanousd: BigInt(cost as bigint),
          input_tokens: Number(input),
          output_tokens: Number(output),
          unpriced_calls: Number(unpriced),
        });
      }
    }
    return sums;
  }

  /** Whether the sums were dropped for holding more than `max` entries. */
  get overflowed(): boolean {
    return this.#overflow;
  }

  /** Adds calls that were just stored (committed, not duplicates); calls of closed days are not kept. */
  add(records: readonly CallRecord[]): void {
    for (const r of records) {
      if (this.#overflow) return;
      if (r.ts_start < this.from) continue;
      const day = utcMidnight(r.ts_start);
      const d = this.#day(r.workspace_id, day, r.ts_start);
      const a = amountsOf(r);
      for (const facet of FACETS) {
        const s = this.#sum(d, facet, day, r.deployment, r.data_mode, r[facet]);
        if (!s) return;
        addSpend(s, a);
      }
    }
  }

  /** Keeps only the days from `from` on (a later UTC midnight: the days before it were closed). */
  closeBefore(from: number): OpenDaySums {
    const next = new OpenDaySums(from, this.max);
    next.#overflow = this.#overflow;
    for (const [ws, days] of this.#days)
      for (const [day, d] of days) {
        if (day < from) continue;
        next.#daysOf(ws).set(day, d);
        for (const f of FACETS) next.#size += d.facets[f].size;
      }
    return next;
  }

  /** The answer of `EventStore.spend(filter, by)` over the raw calls, or null where these sums cannot give it. */
  spend(filter: EventFilter, by: SpendDimension): SpendRow[] | null {
    const { from, to } = filter;
    if (this.#overflow || from === undefined || from < this.from || from !== utcMidnight(from)) return null;
    const facet = facetFor(filter, by);
    if (!facet) return null;
    const where = filter.where ?? {};
    const dep = filter.deploymentOrUnset;
    const rows = new Map<string | null, SpendRow>();
    for (const [day, d] of this.#days.get(filter.workspaceId) ?? []) {
      if (day < from) continue;
      if (to !== undefined && d.maxTs >= to) {
        // Part of this day's calls may be past the window's end: only the raw calls can say which.
        if (day < to) return null;
        continue;
      }
      for (const s of d.facets[facet].values()) {
        if (dep !== undefined && s.deployment !== null && s.deployment !== dep) continue;
        if (where.deployment !== undefined && s.deployment !== where.deployment) continue;
        if (where.data_mode !== undefined && s.data_mode !== where.data_mode) continue;
        if (where[facet] !== undefined && s.who !== where[facet]) continue;
        const key = by === "day" ? s.day : by === "deployment" ? s.deployment : by === facet ? s.who : null;
        let row = rows.get(key);
        if (!row) {
          row = { key, calls: 0, cost_nanousd: 0n, input_tokens: 0, output_tokens: 0, unpriced_calls: 0 };
          rows.set(key, row);
        }
        addSpend(row, s);
      }
    }
    return orderSpend([...rows.values()], by);
  }

  #daysOf(ws: string): Map<number, DaySums> {
    let days = this.#days.get(ws);
    if (!days) {
      days = new Map();
      this.#days.set(ws, days);
    }
    return days;
  }

  #day(ws: string, day: number, ts: number): DaySums {
    const days = this.#daysOf(ws);
    let d = days.get(day);
    if (!d) {
      d = { maxTs: ts, facets: { user_id: new Map(), customer_id: new Map() } };
      days.set(day, d);
    } else if (ts > d.maxTs) d.maxTs = ts;
    return d;
  }

  /** The sum a call adds to in one facet, created when new; null once over the size bound. */
  #sum(
    d: DaySums,
    facet: Facet,
    day: number,
    deployment: string | null,
    dataMode: string,
    who: string | null,
  ): Sum | null {
    // One string per (deployment, data mode, who), unambiguous: "n" is none, "s" prefixes a value, the
    // deployment carries its length, data modes are plain words and who is last. (Cheaper than JSON per call.)
    const id = `${deployment === null ? "n" : `s${deployment.length}:${deployment}`}|${dataMode}|${who === null ? "n" : `s${who}`}`;
    const sums = d.facets[facet];
    let s = sums.get(id);
    if (!s) {
      if (this.#size >= this.max) {
        this.#overflow = true;
        this.#days.clear();
        this.#size = 0;
        return null;
      }
      s = {
        day: isoDay(day),
        deployment,
        data_mode: dataMode,
        who,
        calls: 0,
        cost_nanousd: 0n,
        input_tokens: 0,
        output_tokens: 0,
        unpriced_calls: 0,
      };
      sums.set(id, s);
      this.#size++;
    }
    return s;
  }
}
