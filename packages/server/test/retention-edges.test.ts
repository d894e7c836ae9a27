// Retention at its edges, on the embedded store and on modern ClickHouse (chdb): calls of a workspace no
// key was ever made for (a root import, `tollgate ingest -w acme`), and a ClickHouse purge cut short after
// some partitions were dropped. Long-range spend must stay exact, or say it is truncated.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CallRecord, roundHalfUp } from "@tollgate/core";
import { Session } from "chdb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { budgetBurnDown } from "../src/query/burn-down.js";
import { coverageOf } from "../src/query/coverage.js";
import { forecastFrom, forecastMonth } from "../src/query/forecast.js";
import type { ChExec } from "../src/store/clickhouse/exec.js";
import { openClickHouse } from "../src/store/clickhouse/open.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import type { Store } from "../src/store/types.js";
import { utcMidnight, utcMonthStart } from "../src/time.js";
import { ChdbExec } from "./chdb-exec.js";
import { buildRecord } from "./conformance-data.js";
import { openTestRuntime, postEvents, validRecord } from "./helpers.js";

const DAY = 86_400_000;
const now = Date.now();
let dir: string;
let chdb: Session;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tg-retention-edges-"));
  chdb = new Session(join(dir, "chdb"));
});
afterAll(() => {
  chdb?.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** A priced call of `workspace` at `ts`. */
function call(workspace: string, ts: number): CallRecord {
  n++;
  return buildRecord({
    workspace_id: workspace,
    event_id: `01900000-0000-7000-8000-${String(n).padStart(12, "0")}`,
    ts_start: ts,
    provider: "openai",
    model: "gpt-4o-mini",
    input_uncached_tokens: 1000 * n,
    output_tokens: 20,
  });
}

const total = async (s: Store, ws: string) =>
  (await s.spend({ workspaceId: ws }, "day")).reduce((a, r) => a + r.cost_nanousd, 0n);

/** Spend all time, and whether the answer says part of it is gone. */
async function answer(s: Store, ws: string) {
  return {
    cost: await total(s, ws),
    truncated: coverageOf(await s.retention(ws), undefined, true).truncated,
  };
}

const stores: [string, (name: string) => Promise<Store>][] = [
  ["duckdb", (name) => DuckDbStore.open(join(dir, name))],
  ["chdb", (name) => openClickHouse({ url: `http://chdb/${name}` }, () => new ChdbExec(chdb))],
];

describe.each(stores)("retention edges on %s", (_, open) => {
  it("a workspace no key was made for keeps its purged spend in long-range answers", async () => {
    const s = await open("unkeyed");
    try {
      const old = utcMonthStart(now, -3) + DAY;
      expect((await s.append([call("acme", old), call("acme", now - 3_600_000)])).inserted.size).toBe(2);
      const before = await answer(s, "acme");
      expect(before.cost).toBeGreaterThan(0n);
      const purged = await s.purge(utcMonthStart(now, -1), null);
      expect(purged.raw_deleted).toBe(1);
      expect(await answer(s, "acme")).toEqual(before);
    } finally {
      await s.close();
    }
  });
});

describe("a forecast past the raw horizon", () => {
  // DuckDB purges raw calls by the day (ClickHouse drops whole months).
  it("a forecast that reads purged days of the week before its 7 says it is truncated", async () => {
    // The 4th of a month: its month and 7 trailing days are kept by 7 days of raw calls, the week before
    // them is not. That week tells whether quiet days opening the 7 count: purged, the workspace reads as new.
    const at = Date.UTC(2026, 2, 4, 12);
    const today = utcMidnight(at);
    const s = await DuckDbStore.open(join(dir, "forecast-week-before"));
    try {
      await s.append([call("quiet", today - 10 * DAY), call("quiet", today - DAY + 3_600_000)]);
      const forecast = async () => ({
        window_days: (await forecastMonth(s, { workspaceId: "quiet" }, at)).workspace.window_days,
        truncated: coverageOf(await s.retention("quiet"), forecastFrom(at), false).truncated,
      });
      expect(await forecast()).toEqual({ window_days: 7, truncated: false });
      await s.purge(today - 7 * DAY, null);
      expect(await forecast()).toEqual({ window_days: 1, truncated: true });
    } finally {
      await s.close();
    }
  });
});

describe("a ClickHouse purge cut short", () => {
  it("a partition drop that fails after others were dropped loses no spend from long-range answers", async () => {
    let drops = 0;
    // The second DROP PARTITION fails (a partition over max_partition_size_to_drop, a lost connection).
    const failing = (e: ChExec): ChExec => ({
      command: (sql) =>
        /DROP PARTITION/.test(sql) && ++drops === 2
          ? Promise.reject(new Error("drop failed"))
          : e.command(sql),
      rows: <T>(sql: string) => e.rows<T>(sql),
      insert: (t, r) => e.insert(t, r),
      close: () => e.close(),
    });
    const s = await openClickHouse({ url: "http://chdb/cut_short" }, () => failing(new ChdbExec(chdb)));
    try {
      const calls = [3, 2].map((m) => call("default", utcMonthStart(now, -m) + DAY));
      calls.push(call("default", utcMidnight(now)));
      expect((await s.append(calls)).inserted.size).toBe(3);
      const before = await answer(s, "default");
      await expect(s.purge(utcMonthStart(now, -1), null)).rejects.toThrow(/drop failed/);
      expect(drops).toBe(2);
      expect(await answer(s, "default")).toEqual(before);
    } finally {
      await s.close();
    }
  });
});

describe("a ClickHouse purge seen from another replica", () => {
  it("a replica that read the horizons just before another one purged still answers long-range spend whole", async () => {
    const open = () => openClickHouse({ url: "http://chdb/replicas" }, () => new ChdbExec(chdb));
    const [api, worker] = [await open(), await open()];
    try {
      const calls = [call("default", utcMonthStart(now, -3) + DAY), call("default", utcMidnight(now))];
      expect((await api.append(calls)).inserted.size).toBe(2);
      const before = await answer(api, "default");
      await worker.purge(utcMonthStart(now, -1), null);
      expect(await answer(api, "default")).toEqual(before);
    } finally {
      await Promise.all([api.close(), worker.close()]);
    }
  });
});

describe("a budget burn-down past the raw horizon", () => {
  // The purge lets the raw horizon into the week before the 7 days (a day's or a month's budget keeps only
  // its own window raw; the lifetime one here keeps the buckets off the wall clock). Spend reads the purged
  // days from the daily summary, so whether a bucket was called before them must be read there too: from
  // raw calls alone, a customer called every day reads as new since the horizon, its 7 days' spend divided
  // by the 3 days left raw.
  it("a bucket called every day is burned over all 7 days, before and after the purge, on every path", async () => {
    const rt = await openTestRuntime();
    try {
      // Noon, a month back: far from any UTC midnight of the wall clock.
      const at = utcMidnight(now) - 30 * DAY + DAY / 2;
      const today = utcMidnight(at);
      const ws = "burn-purged";
      const costs = Array.from({ length: 14 }, (_, i) => BigInt(i + 1) * 1_000_000_007n);
      const records = costs.map((c, i) =>
        validRecord({
          ts_start: today - (14 - i) * DAY + 3_600_000,
          customer_id: "steady",
          feature: "f",
          cost_nanousd: String(c),
        }),
      );
      const posted = await postEvents(rt.app, rt.rootToken, records, `?workspace=${ws}`);
      expect(posted.json.rejected, JSON.stringify(posted.json)).toBe(0);
      // One "*" dimension (grouped queries) and two (bucket by bucket).
      for (const [id, scope] of [
        ["per-customer", { customer_id: "*" }],
        ["per-customer-feature", { customer_id: "*", feature: "*" }],
      ] as const) {
        const res = await rt.app.request(`/api/budgets?workspace=${ws}`, {
          method: "POST",
          headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
          body: JSON.stringify({ id, scope, window: "lifetime", limit_usd: "1000.00" }),
        });
        expect(res.status, await res.text()).toBe(201);
      }
      const rate = roundHalfUp(
        costs.slice(7).reduce((a, c) => a + c, 0n),
        7n,
      );
      const burnDown = async () =>
        (await budgetBurnDown(rt.guard, rt.store, ws, at)).map((b) => ({
          budget: b.budget_id,
          days: b.run_rate_days,
          rate: b.run_rate_per_day?.nanousd,
        }));
      const expected = ["per-customer", "per-customer-feature"].map((budget) => ({
        budget,
        days: 7,
        rate: String(rate),
      }));
      expect(await burnDown()).toEqual(expected);
      const purged = await rt.store.purge(today - 3 * DAY, null);
      expect(purged.raw_deleted).toBe(11);
      expect(await burnDown()).toEqual(expected);
    } finally {
      await rt.close();
    }
  });
});
