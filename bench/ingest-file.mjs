#!/usr/bin/env node
// `tollgate ingest FILE.jsonl` of a large file (default 1,000,000 lines of demo traffic) into a fresh
// data dir, as a user runs it: prints wall time and events/s. Usage: npm run bench:ingest-file [-- --lines N]
import { spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateDemo } from "../packages/server/dist/demo/generate.js";
import { benchArgs } from "./args.mjs";

const { values } = benchArgs(import.meta.url, { lines: { type: "string", default: "1000000" } });
const lines = Number(values.lines);
const dir = mkdtempSync(join(tmpdir(), "tollgate-ingest-file-"));
const file = join(dir, "calls.jsonl");

const out = createWriteStream(file);
let n = 0;
for (const rec of generateDemo({ days: 365, callsPerDay: Math.ceil(lines / 300), seed: 7 })) {
  if (n++ >= lines) break;
  if (!out.write(`${JSON.stringify(rec)}\n`)) await new Promise((r) => out.once("drain", r));
}
await new Promise((r) => out.end(r));
console.log(`generated ${n - 1 < lines ? n : lines} lines, ${(statSync(file).size / 1e6).toFixed(0)} MB`);

const cli = new URL("../packages/server/bin/tollgate.js", import.meta.url).pathname;
const started = performance.now();
const res = spawnSync(process.execPath, [cli, "--data-dir", join(dir, "data"), "ingest", file, "--json"], {
  encoding: "utf8",
  maxBuffer: 1e8,
});
const seconds = (performance.now() - started) / 1000;
if (res.status !== 0) {
  console.error(res.stderr || res.stdout);
  process.exit(1);
}
const summary = JSON.parse(res.stdout);
console.log(
  `tollgate ingest: ${summary.lines.toLocaleString()} lines → accepted ${summary.accepted.toLocaleString()}, duplicate ${summary.duplicates}, rejected ${summary.rejected}`,
);
console.log(`  wall time (process, incl. start-up)  ${seconds.toFixed(1)} s`);
console.log(
  `  throughput                          ${Math.round(summary.lines / seconds).toLocaleString()} events/s`,
);
rmSync(dir, { recursive: true, force: true });
