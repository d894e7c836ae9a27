#!/usr/bin/env node
// Batch results read through the gateway: an OpenAI batch output file of --results lines (each a real
// chat completion body from ../shared/fixtures in the batch envelope) downloaded (a) direct from a local
// upstream and (b) through `tollgate serve`, which records every line as a call at the batch rate. Reports
// MB/s of each and their ratio, results recorded per second (until the last one is stored and counted
// against a budget), the gateway's CPU per 1,000 results and its RSS while it reads them.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { extractFromResponse, formatUsd, PricingEngine } from "@tollgate/core";
import { benchArgs } from "./args.mjs";
import { makePool, procCpuMs, RssSampler, sleep } from "./gateway/load.mjs";
import { shutdown, startTollgate } from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, { results: { type: "string", default: "100000" } });
const N = Number(argv.results);
const fixture = fileURLToPath(
  new URL("../../shared/fixtures/providers/openai/chat-completion.gpt-4.1-nano.json", import.meta.url),
);
// Made now, so today's budget counts them (a reply's `created` is when its call was billed).
const body = { ...JSON.parse(readFileSync(fixture, "utf8")), created: Math.floor(Date.now() / 1000) };
const file = Buffer.from(
  `${Array.from({ length: N }, (_, i) =>
    JSON.stringify({
      id: `batch_req_${i}`,
      custom_id: `request-${i}`,
      response: { status_code: 200, request_id: `req_${i}`, body },
      error: null,
    }),
  ).join("\n")}\n`,
);
const perCall = new PricingEngine().price({
  provider: "openai",
  model: body.model,
  usage: extractFromResponse("openai.chat", body).usage,
  at: Date.now(),
  batch: true,
}).cost.total_nanousd;

const upstream = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(file.length) });
  res.end(file);
});
await new Promise((r) => upstream.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${upstream.address().port}`;

async function download(url, headers = {}) {
  const pool = makePool(url, 1);
  const t0 = performance.now();
  const r = await pool.request({
    path: "/v1/files/file-batch-output/content",
    method: "GET",
    headers: { authorization: "Bearer sk-bench-0000", ...headers },
  });
  let bytes = 0;
  for await (const chunk of r.body) bytes += chunk.length;
  const ms = performance.now() - t0;
  await pool.close();
  if (r.statusCode !== 200 || bytes !== file.length)
    throw new Error(`download: HTTP ${r.statusCode}, ${bytes} bytes`);
  return ms;
}

try {
  const mb = file.length / 1024 / 1024;
  console.log(
    `batch results benchmark: node ${process.version}, ${cpus().length} cores; ${N} results, ${mb.toFixed(0)} MB`,
  );
  const tg = await startTollgate(origin);
  const admin = async (method, path, json) =>
    (
      await fetch(tg.url + path, {
        method,
        headers: { authorization: `Bearer ${tg.token}`, "content-type": "application/json" },
        body: json && JSON.stringify(json),
      })
    ).json();
  await admin("POST", "/api/budgets", {
    id: "bench-batch",
    scope: { feature: "batch" },
    window: "day",
    limit_usd: "100000",
  });
  const direct = await download(origin);
  const rss = new RssSampler(100);
  rss.watch(tg.pid);
  const cpu0 = procCpuMs(tg.pid);
  const t0 = performance.now();
  const through = await download(tg.url, { "x-tollgate-feature": "batch" });
  const expected = perCall * BigInt(N);
  let spend = 0n;
  while (spend < expected && performance.now() - t0 < 600_000) {
    spend = BigInt((await admin("GET", "/api/budgets/bench-batch")).spend_nanousd);
    if (spend < expected) await sleep(50);
  }
  const allStored = performance.now() - t0;
  const cpu = procCpuMs(tg.pid) - cpu0;
  rss.stop();
  if (spend !== expected) throw new Error(`budget counted ${spend} of ${expected} nano-USD`);
  console.log(`
target           download MB/s
(a) direct         ${(mb / (direct / 1000)).toFixed(1).padStart(8)}
(b) tollgate       ${(mb / (through / 1000)).toFixed(1).padStart(8)}   (${(direct / through).toFixed(2)}x direct)

recorded: ${N} calls, $${formatUsd(spend)} counted against the budget once each, all stored ${(allStored / 1000).toFixed(2)} s after the download began
results recorded per second: ${Math.round(N / (allStored / 1000))}
tollgate CPU: ${((cpu / N) * 1000).toFixed(1)} ms per 1,000 results
tollgate RSS: max while reading ${rss.max(tg.pid).toFixed(1)} MB`);
} finally {
  upstream.close();
  await shutdown();
}
