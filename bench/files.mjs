#!/usr/bin/env node
// Pass-through file transfers through the gateway: a download (GET /v1/files/<MB>/content) and an upload
// (POST /v1/files) of --mb MB each, (a) direct to the mock upstream and (b) through `tollgate serve`, taking
// turns, --runs times. Reports MB/s of each, their ratio, the gateway's CPU per GB, and its RSS while a
// transfer runs: a body relayed as it comes keeps memory flat, one held whole would add its own size.
import { cpus } from "node:os";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.mjs";
import { makePool, procCpuMs, procRssMb, RssSampler } from "./gateway/load.mjs";
import { shutdown, startMock, startTollgate } from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  mb: { type: "string", default: "256" },
  runs: { type: "string", default: "3" },
});
const SIZE_MB = Number(argv.mb);
const RUNS = Number(argv.runs);
const MB = 1024 * 1024;
const CHUNK = Buffer.alloc(MB, 0x62);
const fixtures = fileURLToPath(new URL("../../shared/fixtures/providers/openai/", import.meta.url));
const HEADERS = { authorization: "Bearer sk-bench-0000" };

const f1 = (n) => n.toFixed(1);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function download(pool) {
  const t0 = performance.now();
  const r = await pool.request({ path: `/v1/files/${SIZE_MB}/content`, method: "GET", headers: HEADERS });
  let bytes = 0;
  for await (const chunk of r.body) bytes += chunk.length;
  if (r.statusCode !== 200 || bytes !== SIZE_MB * MB)
    throw new Error(`download: HTTP ${r.statusCode}, ${bytes} of ${SIZE_MB * MB} bytes`);
  return performance.now() - t0;
}

async function upload(pool) {
  const t0 = performance.now();
  const body = Readable.from(
    (function* () {
      for (let i = 0; i < SIZE_MB; i++) yield CHUNK;
    })(),
  );
  const r = await pool.request({
    path: "/v1/files",
    method: "POST",
    headers: {
      ...HEADERS,
      "content-type": "application/octet-stream",
      "content-length": String(SIZE_MB * MB),
    },
    body,
  });
  const answer = await r.body.json();
  if (r.statusCode !== 200 || answer.bytes !== SIZE_MB * MB)
    throw new Error(`upload: HTTP ${r.statusCode}, ${JSON.stringify(answer)}`);
  return performance.now() - t0;
}

console.log(
  `files benchmark: node ${process.version}, ${cpus().length} cores; ${SIZE_MB} MB each way, ${RUNS} runs`,
);
const mock = await startMock({
  json: `${fixtures}chat-completion.gpt-4.1-nano.json`,
  sse: `${fixtures}chat-completion.stream.gpt-4o-mini.include-usage.sse`,
  gapMs: 10,
});
const tollgate = await startTollgate(mock.origin);
const idleRss = procRssMb(tollgate.pid);
const rss = new RssSampler(50);
rss.watch(tollgate.pid);
const targets = [
  { key: "a", name: "(a) direct", pool: makePool(mock.origin, 1) },
  { key: "b", name: "(b) tollgate", pool: makePool(tollgate.url, 1) },
];
const results = { a: { down: [], up: [] }, b: { down: [], up: [] } };
const rssMax = { down: 0, up: 0 };
let cpuMs = 0;
// A warm-up transfer each way, then the runs, the targets taking turns (order flipped every run).
for (const t of targets) {
  await download(t.pool);
  await upload(t.pool);
}
for (let run = 0; run < RUNS; run++) {
  for (const t of run % 2 ? [...targets].reverse() : targets) {
    for (const [kind, transfer] of [
      ["down", download],
      ["up", upload],
    ]) {
      rss.reset(tollgate.pid);
      const cpu0 = procCpuMs(tollgate.pid);
      results[t.key][kind].push(await transfer(t.pool));
      if (t.key === "b") {
        cpuMs += procCpuMs(tollgate.pid) - cpu0;
        rssMax[kind] = Math.max(rssMax[kind], rss.max(tollgate.pid));
      }
    }
  }
}
rss.stop();
for (const t of targets) await t.pool.close();

const mbps = (ms) => (SIZE_MB / ms) * 1000;
console.log("\ntarget           download MB/s (median)   upload MB/s (median)");
for (const t of targets) {
  const r = results[t.key];
  console.log(
    `${t.name.padEnd(16)} ${f1(mbps(median(r.down))).padStart(10)}  [${r.down.map((ms) => f1(mbps(ms))).join(", ")}]   ${f1(mbps(median(r.up))).padStart(8)}  [${r.up.map((ms) => f1(mbps(ms))).join(", ")}]`,
  );
}
const ratio = (kind) => median(results.a[kind]) / median(results.b[kind]);
const gb = (RUNS * 2 * SIZE_MB) / 1024;
console.log(
  `\nratios (tollgate / direct): download ${ratio("down").toFixed(2)}x, upload ${ratio("up").toFixed(2)}x`,
);
console.log(`tollgate CPU: ${f1(cpuMs / gb)} ms per GB relayed`);
console.log(
  `tollgate RSS: idle ${f1(idleRss)} MB; max during a ${SIZE_MB} MB download ${f1(rssMax.down)} MB, during a ${SIZE_MB} MB upload ${f1(rssMax.up)} MB`,
);
await shutdown();
