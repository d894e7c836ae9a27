#!/usr/bin/env node
// `tollgate export calls` end to end, as a user runs it: a `tollgate serve --demo` (--days of demo traffic,
// ~174k calls for 90) on a fresh data dir, then the CLI exports the demo calls in each format (csv, json,
// parquet) to a file, --runs times; the fastest run is reported: rows/s and MB/s of the file written, and the
// CPU seconds of the CLI process and of the server while it ran. The floor, in the same run: DuckDB's own COPY
// of the same rows (the export's columns and order, same window) to the same format, from the data dir once
// the server has stopped: what writing those bytes costs without Tollgate's paging, HTTP and formatting.
// --load N: N connections of gateway chat completions (a local mock upstream, recorded as real calls, so not
// exported) run through the server throughout each export; the requests/s they get are reported beside it.
// Usage: npm run bench:export [-- --runs 3] [-- --days 90] [-- --load 16]
import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DuckDBInstance } from "@duckdb/node-api";
import { EXPORT_COLUMNS } from "../packages/server/dist/query/export.js";
import { COLUMNS } from "../packages/server/dist/store/duckdb/columns.js";
import { benchArgs } from "./args.mjs";
import { exitedChildrenCpuMs, makePool, procCpuMs, sleep } from "./gateway/load.mjs";
import { children, shutdown, startMock, startTollgate, waitFor } from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  runs: { type: "string", default: "3" },
  days: { type: "string", default: "90" },
  load: { type: "string", default: "0" },
});
const RUNS = Number(argv.runs);
const LOAD = Number(argv.load);
const FORMATS = ["csv", "json", "parquet"];
const cli = fileURLToPath(new URL("../packages/server/bin/tollgate.js", import.meta.url));
const shared = fileURLToPath(new URL("../../shared/", import.meta.url));

const MB = 1e6;
const f1 = (v) => v.toFixed(1);
const int = (v) => Math.round(v).toLocaleString("en-US");

/** Runs the CLI; resolves its --json summary once it has exited. */
function runCli(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.once("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`tollgate ${args.join(" ")}: exit ${code}`)),
    );
  });
}

/** Gateway chat completions on `connections` connections until stop() (which resolves the replies counted). */
function gatewayLoad(origin, connections) {
  const pool = makePool(origin, connections);
  const body = Buffer.from(
    JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "Name a colour." }] }),
  );
  const req = {
    path: "/v1/chat/completions",
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-length": String(body.length),
      authorization: "Bearer sk-bench-0000",
      "x-tollgate-feature": "bench",
    },
    body,
  };
  let stop = false;
  let ok = 0;
  let errors = 0;
  const worker = async () => {
    while (!stop) {
      try {
        const r = await pool.request(req);
        await r.body.arrayBuffer();
        if (r.statusCode === 200) ok++;
        else errors++;
      } catch {
        errors++;
        await sleep(5);
      }
    }
  };
  const workers = Array.from({ length: connections }, worker);
  const t0 = performance.now();
  return async () => {
    stop = true;
    await Promise.all(workers);
    await pool.close();
    return { rps: (ok * 1000) / (performance.now() - t0), errors };
  };
}

/** One export by the CLI: wall time, the CLI's CPU and the server's, the file's size and its rows. */
async function exportOnce(tg, format, out) {
  const stopLoad = LOAD ? gatewayLoad(tg.url, LOAD) : null;
  const cli0 = exitedChildrenCpuMs();
  const server0 = procCpuMs(tg.pid);
  const t0 = performance.now();
  const summary = await runCli([
    "--data-dir",
    tg.dataDir,
    "export",
    "calls",
    "--from",
    `${Number(argv.days) + 1}d`,
    "--data-mode",
    "demo",
    "--format",
    format,
    "--no-progress",
    "--json",
    "-o",
    out,
  ]);
  const wall = (performance.now() - t0) / 1000;
  const serverCpu = (procCpuMs(tg.pid) - server0) / 1000;
  const cliCpu = (exitedChildrenCpuMs() - cli0) / 1000;
  const load = stopLoad ? await stopLoad() : null;
  return {
    wall,
    cliCpu,
    serverCpu,
    rows: summary.rows,
    bytes: statSync(out).size,
    window: summary.meta.window,
    load,
  };
}

/** DuckDB's COPY of the export's rows (its columns, its order, its window) to `format`: the floor. */
async function duckdbCopy(dataDir, format, window, out) {
  const kind = new Map(COLUMNS.map((c) => [c.name, c.kind]));
  const select = EXPORT_COLUMNS.map((c) => (kind.get(c) === "timestamp" ? `epoch_ms(${c}) AS ${c}` : c));
  const options = { csv: "FORMAT csv, HEADER", json: "FORMAT json", parquet: "FORMAT parquet" }[format];
  const db = await DuckDBInstance.create(join(dataDir, "tollgate.duckdb"));
  const conn = await db.connect();
  try {
    const t0 = performance.now();
    await conn.run(
      `COPY (SELECT ${select.join(", ")} FROM events
             WHERE workspace_id = 'default' AND data_mode = 'demo'
               AND ts_start >= make_timestamp(${Date.parse(window.from)} * 1000)
               AND ts_start < make_timestamp(${Date.parse(window.to)} * 1000)
             ORDER BY ts_start, event_id)
       TO '${out}' (${options})`,
    );
    return { wall: (performance.now() - t0) / 1000, bytes: statSync(out).size };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

console.log(
  `export benchmark: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model?.trim()}), loadavg ${loadavg()
    .map((v) => v.toFixed(2))
    .join(" ")}`,
);
const mock = LOAD
  ? await startMock({
      json: join(shared, "fixtures/providers/openai/chat-completion.gpt-4.1-nano.json"),
      sse: join(shared, "fixtures/providers/openai/chat-completion.stream.gpt-4o-mini.include-usage.sse"),
      gapMs: 0,
    })
  : null;
const tg = await startTollgate(mock?.origin ?? "http://127.0.0.1:9", { serveArgs: ["--demo", argv.days] });
await waitFor(() => tg.out.text.includes("demo data loaded"), 600_000, "the demo data");
console.log(
  `demo data loaded (${argv.days} days); ${RUNS} run(s) per format${LOAD ? `, ${LOAD} gateway connections throughout` : ""}`,
);

const best = {};
for (let run = 0; run < RUNS; run++)
  for (const format of FORMATS) {
    const r = await exportOnce(tg, format, join(tg.dataDir, `export.${format}`));
    if (!best[format] || r.wall < best[format].wall) best[format] = r;
  }
const server = children.find((c) => c.pid === tg.childPid);
server.kill("SIGTERM");
await new Promise((r) => server.once("exit", r));

for (const format of FORMATS) {
  const r = best[format];
  const floor = await duckdbCopy(tg.dataDir, format, r.window, join(tg.dataDir, `floor.${format}`));
  console.log(
    `${format.padEnd(8)} ${int(r.rows)} rows, ${f1(r.bytes / MB)} MB in ${f1(r.wall)} s: ${int(r.rows / r.wall)} rows/s, ${f1(r.bytes / MB / r.wall)} MB/s` +
      ` (CPU s: CLI ${f1(r.cliCpu)}, server ${f1(r.serverCpu)})` +
      (r.load
        ? `; gateway ${int(r.load.rps)} req/s meanwhile${r.load.errors ? `, ${r.load.errors} errors` : ""}`
        : ""),
  );
  console.log(
    `${"".padEnd(8)} floor, DuckDB COPY of the same rows: ${f1(floor.bytes / MB)} MB in ${f1(floor.wall)} s: ${int(r.rows / floor.wall)} rows/s, ${f1(floor.bytes / MB / floor.wall)} MB/s`,
  );
}
await shutdown();
