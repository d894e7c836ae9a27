#!/usr/bin/env node
// DuckDB beside ClickHouse on the same generated traffic (bench/analytics-lib.mjs: the demo generator over 90
// days): ingest throughput (the same CallRecords appended to both stores, batch by batch, each store's
// appends timed apart; generation is not timed), storage on disk, and every analytics query of
// bench/analytics.mjs, cold and warm (median of 5), with the ratio ClickHouse/DuckDB and a check that both
// stores give the same answer. ClickHouse is a clickhouse-server the bench starts (free 127.0.0.1 ports, data
// in a temp dir, removed at the end) or the server at TOLLGATE_CLICKHOUSE_URL (a fresh database, dropped).
// Usage: npm run bench:scale [-- --calls 1000000,10000000 --batch 20000 --ch-batch 20000 --skip-optimize]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { openClickHouse } from "../packages/server/dist/store/clickhouse/open.js";
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
import { benchClickHouse, chQuery } from "./clickhouse.mjs";
import { cpuSeconds } from "./serve.mjs";

const { values } = benchArgs(import.meta.url, {
  calls: { type: "string", default: "1000000,10000000" },
  batch: { type: "string", default: String(BATCH) },
  // Records per ClickHouse append (default: --batch); a --batch batch is split into appends of this size.
  "ch-batch": { type: "string" },
  "skip-optimize": { type: "boolean", default: false },
  // max_query_size (bytes) of the clickhouse-server the bench starts (default: ClickHouse's, 256 KiB).
  "ch-max-query-size": { type: "string" },
});
const sizes = parseSizes(values.calls);
const batchSize = Number(values.batch);
let chBatch = Number(values["ch-batch"] ?? batchSize);
/** Used when an append of chBatch ids does not fit ClickHouse's max_query_size (256 KiB by default). */
const CH_FALLBACK_BATCH = 5_000;
const IN_FLIGHT = 2;

const fmt = (n, d = 0) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const mb = (bytes) => bytes / 1e6;
const ratio = (ch, duck) => (duck > 0 ? `${(ch / duck).toFixed(2)}×` : "n/a");
/** JSON with bigints as strings: the two stores' answers are compared as this text. */
const canon = (v) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x));

/** CPU seconds of this process (user + system). */
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** A timer for one store's appends in one mode: wall ms, this process's CPU s and the ClickHouse server's CPU s. */
function meter() {
  return { records: 0, ms: 0, cpu: 0, serverCpu: 0 };
}

async function metered(m, records, serverPid, fn) {
  const c0 = selfCpu();
  const s0 = serverPid ? cpuSeconds(serverPid) : 0;
  const t0 = performance.now();
  await fn();
  m.ms += performance.now() - t0;
  m.cpu += selfCpu() - c0;
  if (serverPid) m.serverCpu += cpuSeconds(serverPid) - s0;
  m.records += records;
}

/** Runs `jobs` (thunks) with at most `n` in flight; each job's records must all be new. */
async function pool(jobs, n) {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, worker));
}

function appendJob(store, records, label) {
  return async () => {
    const { inserted } = await store.append(records);
    if (inserted.size !== records.length)
      throw new Error(`${label}: append of ${records.length} new records inserted ${inserted.size}`);
  };
}

function chunks(records, size) {
  const out = [];
  for (let i = 0; i < records.length; i += size) out.push(records.slice(i, i + size));
  return out;
}

/**
 * Whether ClickHouseStore.append takes `chBatch` records at once here: tried on a scratch database before
 * anything is timed. When the id check does not fit max_query_size, the bench appends CH_FALLBACK_BATCH
 * records at a time instead, and says so.
 */
async function probeClickHouseBatch(server) {
  if (chBatch <= CH_FALLBACK_BATCH) return;
  const db = server.newDatabase("tollgate_bench_probe");
  const store = await openClickHouse({ url: `${server.url}/${db}` });
  // The ClickHouse client logs a failed query with console.error: an expected failure here is reported below.
  const consoleError = console.error;
  try {
    const records = inBatches(demoCalls(chBatch * 2), chBatch).next().value;
    console.error = () => {};
    await appendJob(store, records, "ClickHouse")();
  } catch (e) {
    if (!/Max query size exceeded/i.test(String(e?.message ?? e))) throw e;
    console.log(
      `NOTE: ClickHouseStore.append(${fmt(chBatch)} records) fails on this server with "Max query size exceeded"` +
        ` (the id check sends all of a batch's event_ids in one IN list; max_query_size is 256 KiB),` +
        ` so the bench appends ${fmt(CH_FALLBACK_BATCH)} records at a time to ClickHouse.`,
    );
    chBatch = CH_FALLBACK_BATCH;
  } finally {
    console.error = consoleError;
    await store.close();
    await server.dropDatabase(db);
  }
}

/** Waits (at most `maxMs`) until the database has no merge running; returns the seconds waited. */
async function settleMerges(url, db, maxMs = 600_000) {
  const t0 = performance.now();
  let quiet = 0;
  while (performance.now() - t0 < maxMs && quiet < 3) {
    const n = Number(await chQuery(url, `SELECT count() FROM system.merges WHERE database = '${db}'`));
    quiet = n === 0 ? quiet + 1 : 0;
    await new Promise((r) => setTimeout(r, 500));
  }
  return (performance.now() - t0) / 1000;
}

async function chParts(url, db) {
  const tsv = await chQuery(
    url,
    `SELECT table, count(), sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database = '${db}' GROUP BY table ORDER BY table FORMAT TSV`,
  );
  const tables = {};
  for (const line of tsv.trim().split("\n").filter(Boolean)) {
    const [table, parts, rows, bytes] = line.split("\t");
    tables[table] = { parts: Number(parts), rows: Number(rows), bytes: Number(bytes) };
  }
  const bytes = Object.values(tables).reduce((a, t) => a + t.bytes, 0);
  return { tables, bytes };
}

const duBytes = (dir) => Number(execFileSync("du", ["-sb", dir]).toString().split("\t")[0]);

/** Appends the same records to both stores, batch by batch; alternate pairs of batches are sequential / 2 in flight. */
async function ingest(n, now, duck, ch, serverPid) {
  const m = {
    duck: { seq: meter(), par: meter() },
    ch: { seq: meter(), par: meter() },
    /** ClickHouse server CPU while DuckDB appends (background merges of earlier inserts). */
    serverCpuInDuck: 0,
  };
  const server0 = serverPid ? cpuSeconds(serverPid) : 0;
  let done = 0;
  let step = 0;
  let pair = [];
  let genMs = 0;
  let tGen = performance.now();
  const flush = async () => {
    genMs += performance.now() - tGen;
    const mode = step % 2 === 0 ? "seq" : "par";
    const records = pair.reduce((a, b) => a + b.length, 0);
    const s0 = serverPid ? cpuSeconds(serverPid) : 0;
    const duckJobs = pair.map((b) => appendJob(duck, b, "DuckDB"));
    await metered(m.duck[mode], records, null, () =>
      mode === "seq" ? pool(duckJobs, 1) : pool(duckJobs, IN_FLIGHT),
    );
    if (serverPid) m.serverCpuInDuck += cpuSeconds(serverPid) - s0;
    const chJobs = pair.flatMap((b) => chunks(b, chBatch).map((c) => appendJob(ch, c, "ClickHouse")));
    await metered(m.ch[mode], records, serverPid, () =>
      mode === "seq" ? pool(chJobs, 1) : pool(chJobs, IN_FLIGHT),
    );
    const before = done;
    done += records;
    if (Math.floor(done / 1e6) > Math.floor(before / 1e6))
      process.stdout.write(`\r  loading ${fmt(done / 1e6, 0)}M / ${fmt(n / 1e6, 1)}M calls…`);
    step++;
    pair = [];
    tGen = performance.now();
  };
  for (const batch of inBatches(demoCalls(n, now), batchSize)) {
    pair.push(batch);
    if (pair.length === IN_FLIGHT) await flush();
  }
  if (pair.length) await flush();
  genMs += performance.now() - tGen;
  m.serverCpuTotal = serverPid ? cpuSeconds(serverPid) - server0 : 0;
  m.records = done;
  m.genS = genMs / 1000;
  return m;
}

/** Where two answers' JSON texts first differ, with some context of each. */
function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const at = Math.max(0, i - 80);
  return { at: i, duckdb: a.slice(at, i + 80), clickhouse: b.slice(at, i + 80) };
}

const CH_CACHES = ["SYSTEM DROP MARK CACHE", "SYSTEM DROP UNCOMPRESSED CACHE"];

/** Every analytics query on both stores: cold (fresh store, caches dropped) and warm (median of 5), and the answers compared. */
async function measureQueries(now, dir, server, db) {
  const rows = [];
  for (const [name, q] of analyticsQueries(now)) {
    let duckAnswer;
    const droppedDuck = dropPageCache();
    const duck = await DuckDbStore.open(dir);
    const duckCold = await time(async () => {
      duckAnswer = await q(duck);
    });
    const duckWarm = await warmMedian(() => q(duck));
    await duck.close();

    let chAnswer;
    const ch = await openClickHouse({ url: `${server.url}/${db}` });
    for (const sql of CH_CACHES) await chQuery(server.url, sql);
    const droppedCh = dropPageCache();
    const chCold = await time(async () => {
      chAnswer = await q(ch);
    });
    const chWarm = await warmMedian(() => q(ch));
    await ch.close();

    const a = canon(duckAnswer);
    const b = canon(chAnswer);
    rows.push({
      name,
      duckdb: { cold: duckCold, warm: duckWarm },
      clickhouse: { cold: chCold, warm: chWarm },
      match: a === b,
      diff: a === b ? null : firstDiff(a, b),
      pageCacheDropped: droppedDuck && droppedCh,
    });
  }
  return rows;
}

const rate = (m) => (m.ms > 0 ? m.records / (m.ms / 1000) : 0);
const sumMeters = (a, b) => ({
  records: a.records + b.records,
  ms: a.ms + b.ms,
  cpu: a.cpu + b.cpu,
  serverCpu: a.serverCpu + b.serverCpu,
});

function printIngest(m, serverPid) {
  const row = (label, d, c) =>
    console.log(
      `    ${label.padEnd(36)} ${fmt(rate(d)).padStart(12)} ${fmt(rate(c)).padStart(16)} ${ratio(rate(c), rate(d)).padStart(11)}`,
    );
  console.log(
    `  ingest: the same ${fmt(m.records)} records into both stores (generated once, batch by batch; generation, ${fmt(m.genS)} s, not timed)`,
  );
  console.log(
    `    ${"appends (half of the batches each)".padEnd(36)} ${"DuckDB rec/s".padStart(12)} ${"ClickHouse rec/s".padStart(16)} ${"CH/DuckDB".padStart(11)}`,
  );
  row("sequential, 1 append at a time", m.duck.seq, m.ch.seq);
  row(`${IN_FLIGHT} appends in flight`, m.duck.par, m.ch.par);
  const duck = sumMeters(m.duck.seq, m.duck.par);
  const ch = sumMeters(m.ch.seq, m.ch.par);
  row("all appends", duck, ch);
  const perM = (s) => fmt((s / m.records) * 1e6, 1);
  let cpu = `    CPU s per million records: DuckDB ${perM(duck.cpu)} (in this process); ClickHouse client ${perM(ch.cpu)} (this process)`;
  if (serverPid) {
    cpu += ` + server ${perM(ch.serverCpu)} during its appends, ${perM(m.serverCpuTotal)} over the whole load incl. background merges`;
    cpu += ` (${perM(m.serverCpuInDuck)} of it while DuckDB was appending)`;
  } else cpu += " (server CPU not read: external server)";
  console.log(cpu);
  return { duck, ch };
}

function printQueries(rows) {
  const ms = (x) => (x < 10 ? x.toFixed(1) : x.toFixed(0));
  console.log(
    `    ${"query".padEnd(48)} ${"DuckDB cold".padStart(11)} ${"warm".padStart(7)}  ${"CH cold".padStart(8)} ${"warm".padStart(7)}  ${"CH/DuckDB cold".padStart(14)} ${"warm".padStart(7)}  answers`,
  );
  for (const r of rows)
    console.log(
      `    ${r.name.padEnd(48)} ${ms(r.duckdb.cold).padStart(11)} ${ms(r.duckdb.warm).padStart(7)}  ${ms(r.clickhouse.cold).padStart(8)} ${ms(r.clickhouse.warm).padStart(7)}  ${ratio(r.clickhouse.cold, r.duckdb.cold).padStart(14)} ${ratio(r.clickhouse.warm, r.duckdb.warm).padStart(7)}  ${r.match ? "MATCH" : "DIFF"}`,
    );
  const total = (k, t) => rows.reduce((a, r) => a + r[k][t], 0);
  console.log(
    `    ${"all queries (sum)".padEnd(48)} ${ms(total("duckdb", "cold")).padStart(11)} ${ms(total("duckdb", "warm")).padStart(7)}  ${ms(total("clickhouse", "cold")).padStart(8)} ${ms(total("clickhouse", "warm")).padStart(7)}  ${ratio(total("clickhouse", "cold"), total("duckdb", "cold")).padStart(14)} ${ratio(total("clickhouse", "warm"), total("duckdb", "warm")).padStart(7)}`,
  );
  for (const r of rows.filter((x) => !x.match))
    console.log(
      `    DIFF in "${r.name}" at char ${r.diff.at}:\n      DuckDB:     …${r.diff.duckdb}…\n      ClickHouse: …${r.diff.clickhouse}…`,
    );
  console.log(
    `    (ms; cold = first run on a freshly opened store: a new DuckDB instance / a new ClickHouse client after SYSTEM DROP MARK CACHE` +
      ` and DROP UNCOMPRESSED CACHE; OS page cache ${rows.every((r) => r.pageCacheDropped) ? "dropped" : "NOT dropped: no permission"}; the ClickHouse primary index stays in server memory.` +
      ` warm = median of 5. answers: the JSON of both stores' answers compared)`,
  );
}

async function runSize(n, server) {
  const now = Date.now();
  console.log(`\n${fmt(n)} calls over ${DAYS} days`);
  const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-scale-"));
  // Ctrl-C mid-run exits from benchClickHouse's signal handler: the DuckDB dir goes too.
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  const db = server.newDatabase();
  try {
    const duck = await DuckDbStore.open(dir);
    const ch = await openClickHouse({ url: `${server.url}/${db}` });
    let m;
    try {
      m = await ingest(n, now, duck, ch, server.pid);
      process.stdout.write("\r");
      const total = { workspaceId: "default" };
      const [duckRows, chRows] = [await duck.count(total), await ch.count(total)];
      console.log(
        `  stored: DuckDB ${fmt(duckRows)} calls, ClickHouse ${fmt(chRows)} calls: ${duckRows === chRows && duckRows === m.records ? "MATCH" : "DIFF"}`,
      );
    } finally {
      await duck.close();
      await ch.close();
    }
    const all = printIngest(m, server.pid);

    const merged = await settleMerges(server.url, db);
    const duckBytes = duBytes(dir);
    const asLoaded = await chParts(server.url, db);
    const perM = (b) => fmt(mb((b / m.records) * 1e6), 1);
    const partsOf = (p) =>
      Object.entries(p.tables)
        .filter(([, t]) => t.bytes > 1e5)
        .map(([name, t]) => `${name} ${fmt(mb(t.bytes))} MB in ${t.parts} parts`)
        .join(", ");
    console.log("  storage on disk (MB, MB per million calls)");
    console.log(
      `    DuckDB file                      ${fmt(mb(duckBytes)).padStart(8)} ${perM(duckBytes).padStart(8)}`,
    );
    console.log(
      `    ClickHouse as loaded             ${fmt(mb(asLoaded.bytes)).padStart(8)} ${perM(asLoaded.bytes).padStart(8)}   ${ratio(asLoaded.bytes, duckBytes)} DuckDB  (${partsOf(asLoaded)}; after ${fmt(merged)} s waiting for background merges)`,
    );

    const rows = await measureQueries(now, dir, server, db);
    console.log("  analytics queries");
    printQueries(rows);

    let optimized = null;
    if (!values["skip-optimize"]) {
      const s = await time(async () => {
        for (const t of ["events", "event_ids", "daily_summary"])
          await chQuery(server.url, `OPTIMIZE TABLE ${db}.${t} FINAL`);
      });
      optimized = { ...(await chParts(server.url, db)), seconds: s / 1000 };
      console.log(
        `    ClickHouse after OPTIMIZE FINAL  ${fmt(mb(optimized.bytes)).padStart(8)} ${perM(optimized.bytes).padStart(8)}   ${ratio(optimized.bytes, duckBytes)} DuckDB  (${partsOf(optimized)}; OPTIMIZE took ${fmt(optimized.seconds)} s)`,
      );
    }
    return {
      calls: m.records,
      ch_append_batch: chBatch,
      ingest_per_s: {
        duckdb: { sequential: rate(m.duck.seq), in_flight_2: rate(m.duck.par), all: rate(all.duck) },
        clickhouse: { sequential: rate(m.ch.seq), in_flight_2: rate(m.ch.par), all: rate(all.ch) },
      },
      cpu_s_per_million: {
        duckdb: (all.duck.cpu / m.records) * 1e6,
        clickhouse_client: (all.ch.cpu / m.records) * 1e6,
        clickhouse_server_in_appends: server.pid ? (all.ch.serverCpu / m.records) * 1e6 : null,
        clickhouse_server_whole_load: server.pid ? (m.serverCpuTotal / m.records) * 1e6 : null,
      },
      mb_per_million: {
        duckdb: mb((duckBytes / m.records) * 1e6),
        clickhouse: mb((asLoaded.bytes / m.records) * 1e6),
        clickhouse_optimized: optimized ? mb((optimized.bytes / m.records) * 1e6) : null,
      },
      queries: rows.map((r) => ({
        name: r.name,
        duckdb: r.duckdb,
        clickhouse: r.clickhouse,
        ratio_cold: r.clickhouse.cold / r.duckdb.cold,
        ratio_warm: r.clickhouse.warm / r.duckdb.warm,
        match: r.match,
      })),
    };
  } finally {
    process.off("exit", removeDir);
    removeDir();
    await server.dropDatabase(db).catch(() => {});
  }
}

const server = await benchClickHouse({
  maxQuerySize: values["ch-max-query-size"] ? Number(values["ch-max-query-size"]) : undefined,
});
const results = [];
try {
  console.log(
    `DuckDB (embedded, in this process) beside ClickHouse ${server.version} (${server.external ? "TOLLGATE_CLICKHOUSE_URL, a fresh database" : `a clickhouse-server the bench started on ${server.url}, data in ${server.dataDir}`})`,
  );
  console.log(
    `Machine: ${cpus().length} cores, ${fmt(totalmem() / 2 ** 30)} GiB RAM. ${server.external ? "" : "The ClickHouse server (and its background merges) and this process (record generation, DuckDB, the ClickHouse client) share these cores: nothing runs on a machine of its own."}`,
  );
  await probeClickHouseBatch(server);
  console.log(
    `Appends: ${fmt(batchSize)} records per DuckDB append; ${fmt(chBatch)} per ClickHouse append (max_query_size ${fmt(server.maxQuerySize)}). Pairs of batches alternate between sequential appends and ${IN_FLIGHT} in flight (both stores report writeConcurrency ${IN_FLIGHT}).`,
  );
  for (const n of sizes) results.push(await runSize(n, server));
} finally {
  await server.stop();
}
console.log(
  JSON.stringify({
    bench: "scale",
    clickhouse: server.version,
    max_query_size: server.maxQuerySize,
    cores: cpus().length,
    results,
  }),
);
