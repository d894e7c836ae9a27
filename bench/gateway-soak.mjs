#!/usr/bin/env node
// Gateway soak: does the embedded gateway's memory stay flat under a long, mixed load? `tollgate serve`
// (in-memory limits, a limits file with budgets, a rate limit and an agent type with ceilings) runs against
// a mock upstream replaying real captures (bench/gateway/soak-upstream.mjs), and C workers drive a mix of
// calls for the whole run: chat whole and streamed, streams the client aborts mid-way, Anthropic messages
// whole and streamed, upstream 429s, 500s and connection resets the gateway retries (x-tollgate-retries),
// streams the upstream resets mid-way, agent runs (a fresh x-tollgate-agent-run-id each, parallel calls that
// wait for the run's holds, later ones refused once a ceiling kills it), background responses (polled by the
// client, or left to the gateway's own polls), embeddings, pass-through calls, calls a budget refuses and
// calls a rate limit refuses; customers drawn from --distinct ids (users and sessions from 20 and 5 times
// as many). The budgets' scopes read customer and feature only, so the admission plans of every customer
// and feature (the gateway caches 10,000) are made in the first minute or two and then stay.
// Every --sample-s the JS heaps of the gateway's main thread and of its store thread are read after a forced
// full GC, through the inspector protocol (the gateway runs with --inspect on 127.0.0.1; it needs no hook of
// its own), with its RSS. It prints those samples and their slopes over the second half of the run (MB per
// minute, the median of the slopes between every two samples), and flags the main heap's past
// --flag-mb-per-min. Some state grows by design during a short run, each bounded in time or count: an agent
// run's counters (kept a week), claims on finished background responses (10 minutes), the responses this
// gateway found finished (the last 10,000); at ~440 calls/s together ~0.3–0.6 MB/min. --snapshots DIR
// writes heap snapshots a third of the way in and at the end and prints what grew between them, by
// constructor.
// Usage: npm run bench:soak [-- --minutes 3 --concurrency 16 --sample-s 10 --distinct 500 --snapshots DIR]
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { request as undiciRequest } from "undici";
import { Rng } from "../packages/server/dist/demo/random.js";
import { benchArgs } from "./args.mjs";
import { countByConstructor, growth } from "./gateway/heap-snapshot.mjs";
import { Inspector, inspectorUrl } from "./gateway/inspector.mjs";
import { makePool, procCpuMs, procRssMb, sleep } from "./gateway/load.mjs";
import { shutdown, startMockScript, startTollgate, tmpDirs } from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  minutes: { type: "string", default: "3" },
  concurrency: { type: "string", default: "16" },
  "sample-s": { type: "string", default: "10" },
  distinct: { type: "string", default: "500" },
  "flag-mb-per-min": { type: "string", default: "1" },
  snapshots: { type: "string" },
  seed: { type: "string", default: "1" },
});
const RUN_MS = Number(argv.minutes) * 60_000;
const CONCURRENCY = Number(argv.concurrency);
const SAMPLE_MS = Number(argv["sample-s"]) * 1000;
const DISTINCT = Number(argv.distinct);
const FLAG_MB_PER_MIN = Number(argv["flag-mb-per-min"]);
const SNAPSHOTS = argv.snapshots ?? null;

const log = (...a) => console.log(...a);
const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : "n/a");
const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : "n/a");

// ---------------------------------------------------------------------------------------------------------
// The gateway, its limits and its upstream

const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-soak-"));
tmpDirs.push(dir);
const LIMITS = join(dir, "limits.yaml");
// Budgets per customer (calendar day), per feature (rolling 24 h) and a tiny one per customer of feature
// "capped" (refuses after a few calls); a request rate per customer of feature "bursty"; an agent type whose
// cost ceiling holds parallel calls back and whose call ceiling kills runs.
writeFileSync(
  LIMITS,
  `budgets:
  - { id: soak-customer-day, scope: { customer_id: "*" }, window: day, limit_usd: "100000", warn_at: [0.5] }
  - { id: soak-feature-24h, scope: { feature: "*" }, window: 24h, limit_usd: "1000000" }
  - { id: soak-capped, scope: { feature: capped, customer_id: "*" }, window: day, limit_usd: "0.0005" }
rate_limits:
  - { id: soak-bursty-rpm, scope: { feature: bursty, customer_id: "*" }, requests_per_min: 20 }
agents:
  soak-agent: { max_cost_usd: "0.0012", max_llm_calls: 6 }
`,
);

const mock = await startMockScript(new URL("./gateway/soak-upstream.mjs", import.meta.url), ["--gap-ms=5"]);
const tollgate = await startTollgate(mock.origin, {
  args: ["--limits", LIMITS],
  nodeFlags: ["--inspect=127.0.0.1:0"],
  // Its own polls of background responses no client polls come within the run.
  env: { TOLLGATE_BACKGROUND_FOLLOW_MS: "1000", TOLLGATE_RUN_HOLD_WAIT_MS: "2000" },
});
const inspector = await Inspector.connect(await inspectorUrl(tollgate.err));
/** The gateway's worker threads (the store's): their heaps are sampled too. */
const threads = await inspector.workers();
log(
  `gateway soak: ${argv.minutes} min, ${CONCURRENCY} workers, ${DISTINCT} distinct customers (${DISTINCT * 20} users), heap after GC every ${SAMPLE_MS / 1000} s`,
);
log(`tollgate: ${tollgate.url} (pid ${tollgate.pid}); mock upstream ${mock.origin} (pid ${mock.pid})`);

// ---------------------------------------------------------------------------------------------------------
// The calls

const CLIENT = {
  "content-type": "application/json",
  authorization: "Bearer sk-soak-0000000000000000000000000000000000000000",
  "x-api-key": "sk-ant-soak-0000000000000000000000000000",
  "anthropic-version": "2023-06-01",
};
const PROMPT = [{ role: "user", content: "Invent a new holiday and describe its traditions." }];
const chatBody = (stream) =>
  JSON.stringify({
    model: stream ? "gpt-4o-mini" : "gpt-4.1-nano",
    messages: PROMPT,
    max_tokens: 400,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
const messagesBody = (stream) =>
  JSON.stringify({
    model: "claude-sonnet-4-5",
    max_tokens: 1024,
    messages: PROMPT,
    ...(stream ? { stream } : {}),
  });

/** Counts of outcomes, "scenario status". */
const outcomes = new Map();
const count = (scenario, status) => {
  const k = `${scenario} ${status}`;
  outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
};
let calls = 0;
let nextId = 0;

const pool = makePool(tollgate.url, CONCURRENCY * 6);

/** One call, its body read to the end (or, with `abortAfterFirst`, cut after its first chunk). */
async function call(scenario, { method = "POST", path, body, headers = {}, abortAfterFirst = false }) {
  calls++;
  const ac = new AbortController();
  try {
    const r = await pool.request({
      method,
      path,
      headers: { ...CLIENT, ...headers },
      body,
      signal: ac.signal,
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
    if (abortAfterFirst) {
      for await (const _ of r.body) break; // leaving the loop destroys the body: the client goes away
      count(scenario, `${r.statusCode} aborted`);
      return { status: r.statusCode };
    }
    const text = await r.body.text();
    count(scenario, r.statusCode);
    return { status: r.statusCode, text, headers: r.headers };
  } catch (e) {
    count(scenario, e.code ?? e.name);
    return { status: null };
  }
}

function attribution(rand, feature) {
  const c = Math.floor(rand() * DISTINCT);
  return {
    "x-tollgate-customer-id": `cust-${c}`,
    "x-tollgate-user-id": `user-${c}-${Math.floor(rand() * 20)}`,
    "x-tollgate-session-id": `sess-${Math.floor(rand() * DISTINCT * 5)}`,
    "x-tollgate-feature": feature,
    "x-tollgate-tags": rand() < 0.5 ? "soak,mixed" : "soak",
  };
}

const chat = (stream) => (rand, scenario) =>
  call(scenario, {
    path: "/v1/chat/completions",
    body: chatBody(stream),
    headers: attribution(rand, "chat"),
  });

/** An upstream failure the gateway retries (the mock fails the first attempt only). */
const failing = (fail, stream) => (rand, scenario) =>
  call(scenario, {
    path: "/v1/chat/completions",
    body: chatBody(stream),
    headers: {
      ...attribution(rand, "retry"),
      "x-tollgate-retries": "2",
      "x-soak-fail": fail,
      "x-soak-id": `f${++nextId}`,
    },
  });

/** An agent run: 4 calls at once (the cost ceiling holds some back until others settle), then one at a time until refused. */
async function agentRun(rand, scenario) {
  const headers = {
    ...attribution(rand, "agent"),
    "x-tollgate-agent-run-id": `run-${++nextId}`,
    "x-tollgate-agent-type": "soak-agent",
  };
  const one = () => call(scenario, { path: "/v1/chat/completions", body: chatBody(false), headers });
  await Promise.all([one(), one(), one(), one()]);
  for (let i = 0; i < 4; i++) if ((await one()).status !== 200) break;
}

/** A background response: polled by the client until finished, or (half of them) left to the gateway's own polls. */
async function background(rand, scenario) {
  const r = await call(scenario, {
    path: "/v1/responses",
    body: JSON.stringify({ model: "gpt-4o", input: "What fruit is in the image?", background: true }),
    headers: attribution(rand, "background"),
  });
  if (r.status !== 200 || rand() < 0.5) return;
  const id = JSON.parse(r.text).id;
  for (let i = 0; i < 4; i++) {
    await sleep(100);
    const p = await call(`${scenario}-poll`, { method: "GET", path: `/v1/responses/${id}`, headers: CLIENT });
    if (p.status !== 200 || JSON.parse(p.text).status === "completed") break;
  }
}

/** [name, weight, run(rand, name)] */
const SCENARIOS = [
  ["chat", 20, chat(false)],
  ["chat-stream", 10, chat(true)],
  [
    "stream-abort",
    5,
    (rand, s) =>
      call(s, {
        path: "/v1/chat/completions",
        body: chatBody(true),
        headers: attribution(rand, "chat"),
        abortAfterFirst: true,
      }),
  ],
  [
    "messages",
    7,
    (rand, s) =>
      call(s, { path: "/v1/messages", body: messagesBody(false), headers: attribution(rand, "anthropic") }),
  ],
  [
    "messages-stream",
    3,
    (rand, s) =>
      call(s, { path: "/v1/messages", body: messagesBody(true), headers: attribution(rand, "anthropic") }),
  ],
  ["retry-429", 4, failing("429", false)],
  ["retry-500", 4, failing("500", false)],
  ["retry-reset", 3, failing("reset", false)],
  ["reset-mid-stream", 2, failing("reset-mid-stream", true)],
  ["agent-run", 4, agentRun],
  ["background", 4, background],
  [
    "embeddings",
    6,
    (rand, s) =>
      call(s, {
        path: "/v1/embeddings",
        body: JSON.stringify({ model: "text-embedding-3-small", input: "The food was delicious." }),
        headers: attribution(rand, "embeddings"),
      }),
  ],
  [
    "pass-through",
    4,
    (rand, s) => call(s, { method: "GET", path: "/v1/models", headers: attribution(rand, "models") }),
  ],
  [
    "budget-capped",
    5,
    (rand, s) =>
      call(s, {
        path: "/v1/chat/completions",
        body: chatBody(false),
        headers: {
          ...attribution(rand, "capped"),
          "x-tollgate-customer-id": `capped-${Math.floor(rand() * 100)}`,
        },
      }),
  ],
  [
    "rate-limited",
    4,
    (rand, s) =>
      call(s, {
        path: "/v1/chat/completions",
        body: chatBody(false),
        headers: {
          ...attribution(rand, "bursty"),
          "x-tollgate-customer-id": `bursty-${Math.floor(rand() * 5)}`,
        },
      }),
  ],
];
const TOTAL_WEIGHT = SCENARIOS.reduce((s, [, w]) => s + w, 0);
function pick(rand) {
  let x = rand() * TOTAL_WEIGHT;
  for (const s of SCENARIOS) {
    x -= s[1];
    if (x < 0) return s;
  }
  return SCENARIOS[SCENARIOS.length - 1];
}

// ---------------------------------------------------------------------------------------------------------
// The run: workers until the end, the heap sampled meanwhile

const t0 = performance.now();
const end = t0 + RUN_MS;
const workers = Array.from({ length: CONCURRENCY }, async (_, w) => {
  // Seeded: the same mix every run.
  const random = new Rng(Number(argv.seed) * 1000 + w);
  const rand = () => random.next();
  while (performance.now() < end) {
    const [name, , run] = pick(rand);
    await run(rand, name);
  }
});

const samples = [];
const cpu0 = procCpuMs(tollgate.pid);
let snapshotA = null;
async function sample() {
  const heap = await inspector.heapAfterGc();
  const threadHeaps = await Promise.all(threads.map((t) => t.heapAfterGc()));
  const s = {
    t: (performance.now() - t0) / 1000,
    calls,
    rssMb: procRssMb(tollgate.pid),
    threadsMb: threadHeaps.reduce((sum, h) => sum + h.heapUsedMb, 0),
    ...heap,
  };
  samples.push(s);
  log(
    `${f1(s.t).padStart(6)} s ${String(s.calls).padStart(7)} calls  main ${f2(s.heapUsedMb).padStart(6)} MB (heap ${f1(s.heapTotalMb)}, external ${f1(s.externalMb)})  store thread ${f2(s.threadsMb).padStart(6)} MB  RSS ${f1(s.rssMb).padStart(6)} MB  GC pause ${f1(s.gcMs)} ms`,
  );
  return s;
}
log(
  `\nJS heap used after a full GC: the main thread's and the ${threads.length} worker thread's (the store's); the process's RSS`,
);
await sample();
while (performance.now() + SAMPLE_MS < end) {
  await sleep(SAMPLE_MS - ((performance.now() - t0) % SAMPLE_MS));
  const s = await sample();
  if (SNAPSHOTS && !snapshotA && s.t * 1000 >= RUN_MS / 3) {
    mkdirSync(SNAPSHOTS, { recursive: true });
    snapshotA = join(SNAPSHOTS, "soak-a.heapsnapshot");
    await inspector.writeHeapSnapshot(snapshotA);
    log(`        heap snapshot: ${snapshotA}`);
  }
}
let snapshotB = null;
if (snapshotA) {
  snapshotB = join(SNAPSHOTS, "soak-b.heapsnapshot");
  await inspector.writeHeapSnapshot(snapshotB);
  log(`        heap snapshot: ${snapshotB}`);
}
await Promise.all(workers);
const wallS = (performance.now() - t0) / 1000;
const cpuMs = procCpuMs(tollgate.pid) - cpu0;
// Quiet: what the load leaves behind once its calls, retries and background polls are done.
await sleep(5000);
const quiet = await sample();

// ---------------------------------------------------------------------------------------------------------
// Report

/**
 * Slope of `field` (MB) over the samples under load from `fromS` on, in MB per minute: the median of the
 * slopes between every two samples (Theil-Sen), which a sample caught with a batch of calls still in
 * memory does not sway as it does a least-squares line.
 */
function slope(field, fromS) {
  const pts = samples.filter((s) => s !== quiet && s.t >= fromS);
  const slopes = [];
  for (let i = 0; i < pts.length; i++)
    for (let j = i + 1; j < pts.length; j++)
      slopes.push((pts[j][field] - pts[i][field]) / ((pts[j].t - pts[i].t) / 60));
  slopes.sort((a, b) => a - b);
  return slopes.length < 3 ? Number.NaN : slopes[Math.floor(slopes.length / 2)];
}
const half = slope("heapUsedMb", RUN_MS / 2000);
const loaded = samples.filter((s) => s !== quiet);
const first = loaded[1] ?? loaded[0];
const last = loaded[loaded.length - 1];
const stats = await (await undiciRequest(`${mock.origin}/__stats`)).body.json();

log(`\n-- outcomes (scenario, HTTP status or error) --`);
for (const [k, n] of [...outcomes].sort()) log(`  ${k.padEnd(34)} ${n}`);
log(
  `\n${calls} calls in ${f1(wallS)} s (${f1(calls / wallS)}/s); gateway CPU ${f1((cpuMs / (wallS * 1000)) * 100)}%; upstream saw ${stats.requests} requests (${stats.failed} failed on purpose, ${stats.submitted} background submissions, ${stats.polled} polls)`,
);
log(
  `main thread's heap after GC: ${f2(first.heapUsedMb)} MB at ${f1(first.t)} s, ${f2(last.heapUsedMb)} MB at ${f1(last.t)} s, ${f2(quiet.heapUsedMb)} MB quiet 5 s after the load; store thread's ${f2(first.threadsMb)} → ${f2(last.threadsMb)} MB (quiet ${f2(quiet.threadsMb)}); RSS ${f1(first.rssMb)} → ${f1(last.rssMb)} MB (quiet ${f1(quiet.rssMb)}; the rest of RSS is native memory outside the JS heaps)`,
);
log(
  `slope over the second half: main heap ${f2(half)} MB/min${half > FLAG_MB_PER_MIN ? `  <-- GROWTH: over ${FLAG_MB_PER_MIN} MB/min` : `  (flat: under ${FLAG_MB_PER_MIN} MB/min)`}; store thread's heap ${f2(slope("threadsMb", RUN_MS / 2000))} MB/min; RSS ${f1(slope("rssMb", RUN_MS / 2000))} MB/min`,
);
if (snapshotA && snapshotB) {
  log(`\n-- what grew from the first heap snapshot to the second (count, own bytes, count after) --`);
  for (const r of growth(countByConstructor(snapshotA), countByConstructor(snapshotB)))
    log(
      `  ${r.key.slice(0, 60).padEnd(60)} ${String(r.count).padStart(9)} ${String(r.bytes).padStart(11)} ${String(r.after).padStart(9)}`,
    );
}

inspector.close();
await pool.close();
await shutdown();
