#!/usr/bin/env node
// Sustained ingest throughput: POST /v1/events with batches of 1,000 into a real `tollgate serve`
// (DuckDB, durable acks), plus the server's RSS. Usage: npm run bench:ingest [-- --events 300000 --concurrency 4]
import { uuidv7 } from "@tollgate/core";
import { benchArgs } from "./args.mjs";
import { cpuSeconds, openDayStart, rssKb, startServe } from "./serve.mjs";

const { values } = benchArgs(import.meta.url, {
  events: { type: "string", default: "300000" },
  batch: { type: "string", default: "1000" },
  concurrency: { type: "string", default: "4" },
});
const total = Number(values.events);
const batchSize = Number(values.batch);
const concurrency = Number(values.concurrency);

const server = await startServe();

const FEATURES = ["chat", "search", "summarize", "agent"];
const MODELS = [
  ["openai", "gpt-4o-mini"],
  ["openai", "gpt-5"],
  ["anthropic", "claude-sonnet-4-5"],
  ["google", "gemini-2.5-flash"],
];
function record(i, ts) {
  const [provider, model] = MODELS[i % MODELS.length];
  return {
    event_id: uuidv7(ts),
    ts_start: ts,
    ts_end: ts + 900,
    provider,
    api:
      provider === "openai"
        ? "openai.chat"
        : provider === "anthropic"
          ? "anthropic.messages"
          : "google.generate_content",
    model,
    input_uncached_tokens: 500 + (i % 1500),
    cache_read_tokens: i % 3 === 0 ? 1024 : 0,
    output_tokens: 100 + (i % 400),
    reasoning_tokens: model === "gpt-5" ? 50 : 0,
    user_id: `user-${i % 5000}`,
    customer_id: `cust-${i % 300}`,
    feature: FEATURES[i % FEATURES.length],
    prompt_version: "v3",
    deployment: "prod",
    tags: i % 10 === 0 ? ["experiment"] : [],
    data_mode: "test",
  };
}

// Bodies are built before the clock starts: the client's own JSON work is not the server's throughput.
const now = openDayStart();
const bodies = [];
for (let b = 0; b < total / batchSize; b++) {
  const batch = [];
  for (let k = 0; k < batchSize; k++) batch.push(record(b * batchSize + k, now + b));
  bodies.push(JSON.stringify(batch));
}
const bytes = bodies.reduce((a, s) => a + s.length, 0);

let peakRss = 0;
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, rssKb(server.pid))), 200);
const cpuStart = cpuSeconds(server.pid);
const started = performance.now();
let next = 0;
let accepted = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const res = await fetch(`${server.url}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
        body,
      });
      const json = await res.json();
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(json).slice(0, 300)}`);
      accepted += json.accepted;
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
clearInterval(rssTimer);
const rssNow = rssKb(server.pid);
const cpuEnd = cpuSeconds(server.pid);
await server.stop();

console.log(
  `ingest bench: ${total.toLocaleString()} events in batches of ${batchSize}, ${concurrency} concurrent requests, ${(bytes / 1e6).toFixed(0)} MB of JSON`,
);
console.log(`  accepted           ${accepted.toLocaleString()}`);
console.log(`  wall time          ${seconds.toFixed(2)} s`);
console.log(
  `  throughput         ${Math.round(total / seconds).toLocaleString()} events/s (target >= 50,000)`,
);
console.log(
  `  server CPU         ${(cpuEnd - cpuStart).toFixed(2)} s (${((cpuEnd - cpuStart) / seconds).toFixed(2)} cores); bench client CPU ${(process.cpuUsage().user / 1e6).toFixed(2)} s total`,
);
console.log(
  `  server RSS         ${(rssNow / 1024).toFixed(0)} MB at end, ${(peakRss / 1024).toFixed(0)} MB peak`,
);
