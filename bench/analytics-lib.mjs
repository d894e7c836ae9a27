// What bench/analytics.mjs (DuckDB) and bench/scale.mjs (ClickHouse beside DuckDB) share: the generated
// traffic (the demo generator over DAYS days, calibrated to a call count), the analytics query list, and
// the timing helpers (warm median, cold with the OS page cache dropped when this process may).
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { buildCallRecord, PricingEngine } from "@tollgate/core";
import { generateDemo } from "../packages/server/dist/demo/generate.js";
import { explainChange } from "../packages/server/dist/query/explain.js";
import { forecastMonth } from "../packages/server/dist/query/forecast.js";
import {
  agentRunRollup,
  customerRollup,
  featureRollup,
  outcomeRollup,
  userDayRollup,
} from "../packages/server/dist/query/rollups.js";

export const DAY = 86_400_000;
export const DAYS = 90;
export const BATCH = 20_000;
const SEED = 11;

/** The sizes of a `--calls 1000000,10000000` option. */
export function parseSizes(s) {
  const sizes = s.split(",").map(Number);
  for (const n of sizes) if (!Number.isInteger(n) || n <= 0) throw new Error(`--calls: bad size in ${s}`);
  return sizes;
}

/**
 * The generator's callsPerDay that yields about `n` calls over DAYS: its growth, weekends and agent runs
 * (many steps each) multiply the nominal rate, so it is measured on a small sample first. Every day of
 * the range gets traffic, up to today.
 */
export function callsPerDayFor(n) {
  let sample = 0;
  for (const _ of generateDemo({ days: DAYS, callsPerDay: 200, seed: SEED })) sample++;
  return Math.max(1, Math.round((200 * n) / sample));
}

/**
 * About `n` priced CallRecords over DAYS days ending at `now`, in generation order (day by day). Seeded:
 * the same `n` and `now` give the same records.
 */
export function* demoCalls(n, now = Date.now()) {
  const engine = new PricingEngine();
  const perDay = callsPerDayFor(n);
  for (const rec of generateDemo({ days: DAYS, callsPerDay: perDay, seed: SEED, now })) {
    const built = buildCallRecord({ ...rec, data_mode: "real" }, { workspaceId: "default", engine });
    if (!built.ok) throw new Error(JSON.stringify(built.errors));
    yield built.record;
  }
}

/** The items of `iter` in arrays of `size` (the last one may be shorter). */
export function* inBatches(iter, size) {
  let batch = [];
  for (const x of iter) {
    batch.push(x);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/** Drops the OS page cache; false when this process may not. */
export function dropPageCache() {
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

/** Wall time of `fn` in ms. */
export async function time(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Median wall time in ms of `runs` calls of `fn`, one after another. */
export async function warmMedian(fn, runs = 5) {
  const warm = [];
  for (let i = 0; i < runs; i++) warm.push(await time(fn));
  warm.sort((a, b) => a - b);
  return warm[Math.floor(runs / 2)];
}

/**
 * The analytics queries, as [name, (store) => Promise<answer>]: every rollup, the variance query, the
 * forecast and a point query, over windows ending at `now`.
 */
export function analyticsQueries(now) {
  const filter = {
    workspaceId: "default",
    data_mode: undefined,
    where: { data_mode: "real" },
    deploymentOrUnset: "prod",
  };
  const last30 = { ...filter, from: now - 30 * DAY, to: now };
  const prev30 = { ...filter, from: now - 60 * DAY, to: now - 30 * DAY };
  const today = Math.floor(now / DAY) * DAY;
  return [
    ["cost per user per day (30 d)", (s) => userDayRollup(s, last30, 5)],
    ["cost per feature request (30 d vs 30 d before)", (s) => featureRollup(s, last30)],
    ["cost per agent run (30 d)", (s) => agentRunRollup(s, last30)],
    ["cost per customer (30 d, month to date vs last)", (s) => customerRollup(s, last30, now)],
    ["cost per successful outcome by prompt_version", (s) => outcomeRollup(s, last30, "prompt_version")],
    ["variance: 30 d vs 30 d before, 4 dimensions", (s) => explainChange(s, last30, prev30)],
    ["forecast", (s) => forecastMonth(s, filter, now)],
    [
      "point: one user's spend today",
      (s) =>
        s.spend(
          { ...filter, from: today, to: now, where: { ...filter.where, user_id: "user-0001" } },
          "user_id",
        ),
    ],
  ];
}
