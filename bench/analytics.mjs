#!/usr/bin/env node
// Analytics query times on DuckDB: generated traffic (the demo generator: Zipf users and customers, five
// features, agent runs, a prompt regression, a retry storm) over 90 days, priced and appended straight to
// the store, then every rollup, the variance query and a point query, first run after opening the store
// ("cold": a fresh DuckDB instance; the OS page cache is dropped when this process may) and warm (median of 5).
// Usage: npm run bench:analytics [-- --calls 1000000,10000000]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
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
import { DuckDbStore } from "../packages/server/dist/store/duckdb/store.js";

const { values } = parseArgs({ options: { calls: { type: "string", default: "1000000,10000000" } } });
const sizes = values.calls.split(",").map(Number);
const DAY = 86_400_000;
const DAYS = 90;
const BATCH = 20_000;

/**
 * The generator's callsPerDay that yields about `n` calls over DAYS: its growth, weekends and agent runs
 * (many steps each) multiply the nominal rate, so it is measured on a small sample first. Every day of
 * the range gets traffic, up to today.
 */
function callsPerDayFor(n) {
  let sample = 0;
  for (const _ of generateDemo({ days: DAYS, callsPerDay: 200, seed: 11 })) sample++;
  return Math.max(1, Math.round((200 * n) / sample));
}

/** Fills a fresh data dir with about `n` calls ending today; returns the dir and the count. */
async function load(n) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-analytics-"));
  const store = await DuckDbStore.open(dir);
  const engine = new PricingEngine();
  const perDay = callsPerDayFor(n);
  let batch = [];
  let done = 0;
  const t0 = performance.now();
  for (const rec of generateDemo({ days: DAYS, callsPerDay: perDay, seed: 11 })) {
    const built = buildCallRecord({ ...rec, data_mode: "real" }, { workspaceId: "default", engine });
    if (!built.ok) throw new Error(JSON.stringify(built.errors));
    batch.push(built.record);
    if (batch.length === BATCH) {
      await store.append(batch);
      done += batch.length;
      batch = [];
      if (done % 1_000_000 === 0)
        process.stdout.write(`\r  loading ${(done / 1e6).toFixed(0)}M / ${(n / 1e6).toFixed(1)}M calls…`);
    }
  }
  if (batch.length) await store.append(batch);
  done += batch.length;
  await store.close();
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(
    `\r  loaded ${done.toLocaleString("en-US")} calls in ${s.toFixed(0)} s (${Math.round(done / s).toLocaleString("en-US")}/s)\n`,
  );
  return { dir, calls: done };
}

function dropPageCache() {
  try {
    execFileSync("sync");
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

async function time(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function measure(dir) {
  const now = Date.now();
  const filter = {
    workspaceId: "default",
    data_mode: undefined,
    where: { data_mode: "real" },
    deploymentOrUnset: "prod",
  };
  const last30 = { ...filter, from: now - 30 * DAY, to: now };
  const prev30 = { ...filter, from: now - 60 * DAY, to: now - 30 * DAY };
  const today = Math.floor(now / DAY) * DAY;
  const queries = [
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
  const rows = [];
  for (const [name, q] of queries) {
    const dropped = dropPageCache();
    const store = await DuckDbStore.open(dir);
    const cold = await time(() => q(store));
    const warm = [];
    for (let i = 0; i < 5; i++) warm.push(await time(() => q(store)));
    warm.sort((a, b) => a - b);
    await store.close();
    rows.push({ name, cold, warm: warm[2], dropped });
  }
  return rows;
}

const results = [];
for (const n of sizes) {
  console.log(`${n.toLocaleString("en-US")} calls over ${DAYS} days`);
  const { dir, calls } = await load(n);
  const bytes = Number(execFileSync("du", ["-sb", dir]).toString().split("\t")[0]);
  console.log(
    `  store on disk: ${(bytes / 1e6).toFixed(0)} MB, ${(((bytes / calls) * 1e6) / 1e6).toFixed(0)} MB per million calls`,
  );
  const rows = await measure(dir);
  for (const r of rows)
    console.log(
      `  ${r.name.padEnd(50)} cold ${r.cold.toFixed(0).padStart(6)} ms   warm ${r.warm.toFixed(1).padStart(7)} ms`,
    );
  console.log(
    `  (cold = first query of a freshly opened store; OS page cache ${rows[0].dropped ? "dropped" : "NOT dropped: no permission"})`,
  );
  results.push({ calls, mb_per_million: ((bytes / calls) * 1e6) / 1e6, rows });
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ bench: "analytics", results }));
