#!/usr/bin/env node
// SDK overhead, side by side in one process: the official `openai` client unwrapped vs the same client
// wrapped by @tollgate/sdk (recording every call, exporting batches to a real `tollgate serve`), both
// against one local mock upstream (its own process, 0 ms delay, a real recorded reply). Calls alternate
// plain / wrapped (order swapped every pair) so drift hits both alike; the figure is the added p50.
// Usage: npm run bench:sdk [-- --rounds 5 --calls 2000 --streams 500]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { Exporter, withAttribution, wrapOpenAI } from "../packages/sdk/dist/index.js";
import { benchArgs } from "./args.mjs";
import { pct } from "./gateway/load.mjs";
import { shutdown, startMock, startTollgate } from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  rounds: { type: "string", default: "5" },
  calls: { type: "string", default: "2000" },
  streams: { type: "string", default: "500" },
  warmup: { type: "string", default: "1000" },
  // records are built and dropped instead of exported: the wrapper's own bookkeeping alone
  "no-export": { type: "boolean", default: false },
});
const ROUNDS = Number(argv.rounds);
const CALLS = Number(argv.calls);
const STREAMS = Number(argv.streams);
const WARMUP = Number(argv.warmup);

const fixtures = fileURLToPath(new URL("../../shared/fixtures/providers/openai/", import.meta.url));
const mock = await startMock({
  json: join(fixtures, "chat-completion.gpt-4.1-nano.json"),
  sse: join(fixtures, "chat-completion.stream.gpt-4o-mini.include-usage.sse"),
  gapMs: -1, // streams arrive at once: what is measured is the client's own work per event
});
const server = await startTollgate(mock.origin);
const exporter = new Exporter({ url: server.url, apiKey: server.token });

const opts = { apiKey: "sk-bench", baseURL: `${mock.origin}/v1`, maxRetries: 0 };
const wrapOptions = argv["no-export"] ? { sink: () => {} } : { exporter };
let plain = new OpenAI(opts);
let wrapped = wrapOpenAI(new OpenAI(opts), wrapOptions);
const messages = [{ role: "user", content: "What is the capital of the UK?" }];
const body = { model: "gpt-4.1-nano", messages };
const streamBody = { model: "gpt-4o-mini", messages, stream: true };

const once = async (client) => {
  const t = process.hrtime.bigint();
  await client.chat.completions.create(body);
  return Number(process.hrtime.bigint() - t) / 1000;
};
const streamOnce = async (client) => {
  const t = process.hrtime.bigint();
  for await (const _ of await client.chat.completions.create(streamBody));
  return Number(process.hrtime.bigint() - t) / 1000;
};

/** n calls of each, alternating, inside an attribution scope (as an app would run them). */
async function sideBySide(n, call) {
  const a = [];
  const b = [];
  await withAttribution({ userId: "u-bench", feature: "bench", tags: ["bench"] }, async () => {
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0) {
        a.push(await call(plain));
        b.push(await call(wrapped));
      } else {
        b.push(await call(wrapped));
        a.push(await call(plain));
      }
    }
  });
  a.sort((x, y) => x - y);
  b.sort((x, y) => x - y);
  return { plain: a, wrapped: b };
}

/** Rounds of side-by-side calls; the figure is the median over rounds of the added p50 (robust to drift). */
async function measure(name, rounds, n, call) {
  const added = [];
  const all = { plain: [], wrapped: [] };
  for (let r = 0; r < rounds; r++) {
    const { plain: a, wrapped: b } = await sideBySide(n, call);
    added.push(pct(b, 50) - pct(a, 50));
    all.plain.push(...a);
    all.wrapped.push(...b);
  }
  all.plain.sort((x, y) => x - y);
  all.wrapped.sort((x, y) => x - y);
  added.sort((x, y) => x - y);
  const median = added[Math.floor(added.length / 2)];
  const row = (label, xs) =>
    `  ${label.padEnd(9)} p50 ${pct(xs, 50).toFixed(1).padStart(7)} µs   p90 ${pct(xs, 90).toFixed(1).padStart(7)} µs   p99 ${pct(xs, 99).toFixed(1).padStart(7)} µs`;
  console.log(`${name}: ${rounds} rounds × ${n} calls each`);
  console.log(row("unwrapped", all.plain));
  console.log(row("wrapped", all.wrapped));
  console.log(
    `  added p50 ${median.toFixed(1)} µs, median of rounds [${added.map((x) => x.toFixed(1)).join(", ")}]   ratio p50 ${(pct(all.wrapped, 50) / pct(all.plain, 50)).toFixed(3)}`,
  );
  return median;
}

/**
 * The same clients with a fetch answered in-process from the fixture bytes: no sockets and no other
 * process competing for this machine's two cores, so what is left is the wrapper's own CPU per call.
 */
function inProcessClients() {
  const bodyBytes = readFileSync(join(fixtures, "chat-completion.gpt-4.1-nano.json"));
  const fetch = async () =>
    new Response(bodyBytes, { headers: { "content-type": "application/json", "x-request-id": "req_local" } });
  plain = new OpenAI({ ...opts, fetch });
  wrapped = wrapOpenAI(new OpenAI({ ...opts, fetch }), wrapOptions);
}

try {
  await sideBySide(WARMUP, once);
  await sideBySide(Math.min(WARMUP, 200), streamOnce);
  const stats0 = exporter.stats.delivered;
  const bodies = await measure("chat completion, non-streamed", ROUNDS, CALLS, once);
  console.log(`  target ≤ 20 µs added p50: ${bodies <= 20 ? "MET" : "NOT MET"}`);
  const streams = await measure(
    "chat completion, streamed, 9 events read to the end",
    ROUNDS,
    STREAMS,
    streamOnce,
  );
  inProcessClients();
  await sideBySide(WARMUP, once);
  const local = await measure("chat completion, non-streamed, in-process fetch", ROUNDS, CALLS * 2, once);
  await exporter.flush(30_000);
  const s = exporter.stats;
  console.log(
    `exporter: ${s.delivered - stats0} records delivered during the measured runs, ${s.queued} queued, ${s.dropped} dropped, ${s.rejected} rejected, ${s.retries} retries`,
  );
  console.log(
    JSON.stringify({
      bench: "sdk",
      added_p50_us: Number(bodies.toFixed(1)),
      stream_added_p50_us: Number(streams.toFixed(1)),
      in_process_added_p50_us: Number(local.toFixed(1)),
    }),
  );
} finally {
  await exporter.shutdown(5000);
  await shutdown();
}
