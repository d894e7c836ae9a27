#!/usr/bin/env node
// Analytics query times on DuckDB: generated traffic (the demo generator: Zipf users and customers, five
// features, agent runs, a prompt regression, a retry storm) over 90 days, priced and appended straight to
// the store, then every rollup, the variance query and a point query, first run after opening the store
// ("cold": a fresh DuckDB instance; the OS page cache is dropped when this process may) and warm (median of 5).
// Usage: npm run bench:analytics [-- --calls 1000000,10000000]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDbStore } from "../packages/server/dist/store/duckdb/store.js";
import {
  analyticsQueries,
  BATCH,
  DAYS,
  demoCalls,
  dropPageCache,
  inBatches,
  parseSizes,
  time,
  warmMedian,
} from "./analytics-lib.mjs";
import { benchArgs } from "./args.mjs";

const { values } = benchArgs(import.meta.url, { calls: { type: "string", default: "1000000,10000000" } });
const sizes = parseSizes(values.calls);

/** Fills a fresh data dir with about `n` calls ending today; returns the dir and the count. */
async function load(n) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-analytics-"));
  const store = await DuckDbStore.open(dir);
  let done = 0;
  const t0 = performance.now();
  for (const batch of inBatches(demoCalls(n), BATCH)) {
    await store.append(batch);
    done += batch.length;
    if (batch.length === BATCH && done % 1_000_000 === 0)
      process.stdout.write(`\r  loading ${(done / 1e6).toFixed(0)}M / ${(n / 1e6).toFixed(1)}M calls…`);
  }
  await store.close();
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(
    `\r  loaded ${done.toLocaleString("en-US")} calls in ${s.toFixed(0)} s (${Math.round(done / s).toLocaleString("en-US")}/s)\n`,
  );
  return { dir, calls: done };
}

async function measure(dir) {
  const rows = [];
  for (const [name, q] of analyticsQueries(Date.now())) {
    const dropped = dropPageCache();
    let store;
    const open = await time(async () => {
      store = await DuckDbStore.open(dir);
    });
    const cold = await time(() => q(store));
    const warm = await warmMedian(() => q(store));
    await store.close();
    rows.push({ name, open, cold, warm, dropped });
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
      `  ${r.name.padEnd(50)} cold ${r.cold.toFixed(0).padStart(6)} ms   warm ${(r.warm < 1 ? r.warm.toFixed(3) : r.warm.toFixed(1)).padStart(7)} ms   (open ${r.open.toFixed(0)} ms)`,
    );
  console.log(
    `  (cold = first query of a freshly opened store, open = opening it, which sums the open days' calls; OS page cache ${rows[0].dropped ? "dropped" : "NOT dropped: no permission"})`,
  );
  results.push({ calls, mb_per_million: ((bytes / calls) * 1e6) / 1e6, rows });
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ bench: "analytics", results }));
