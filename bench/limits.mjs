#!/usr/bin/env node
// Cost of spend controls on the gateway's request path: the same chat call through three `tollgate serve`
// processes side by side against one mock upstream — (a) no limits, (b) 5 budgets applying, in-memory
// limits, (c) the same 5 budgets on Redis. Rounds are interleaved (a, b, c, a, b, c, …) so drift on the
// shared box hits all three. (1) Sequential calls on one connection: the latency the check adds to a call.
// (2) An open loop (constant rate, latency from the scheduled send): the same under load, median over rounds
// of each target's p50 minus (a)'s. (3) The check alone, in-process: SpendGuard.admit with each backend.
// Usage: npm run bench:limits [-- --seq-rounds 6 --seq-calls 400 --rate 300 --rounds 5 --round-s 4 --calls 20000]
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PricingEngine } from "@tollgate/core";
import { benchArgs } from "./args.mjs";
import { makePool, openLoop, procCpuMs } from "./gateway/load.mjs";
import { shutdown, startMock, startRedis, startTollgate, tmpDirs } from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  rate: { type: "string", default: "300" },
  rounds: { type: "string", default: "5" },
  "round-s": { type: "string", default: "4" },
  calls: { type: "string", default: "20000" },
  "seq-rounds": { type: "string", default: "10" },
  "seq-calls": { type: "string", default: "400" },
});
const RATE = Number(argv.rate);
const ROUNDS = Number(argv.rounds);
const ROUND_MS = Number(argv["round-s"]) * 1000;
const CALLS = Number(argv.calls);
const SEQ_ROUNDS = Number(argv["seq-rounds"]);
const SEQ_CALLS = Number(argv["seq-calls"]);

const shared = fileURLToPath(new URL("../../shared/fixtures/providers/openai/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-limits-"));
tmpDirs.push(dir);

// Five budgets that all apply to the benchmark's call (high limits: nothing is refused), one per kind of
// scope: the workspace, a fixed feature, each customer (with an override), each user, a model.
const LIMITS = join(dir, "limits.yaml");
writeFileSync(
  LIMITS,
  `budgets:
  - { id: workspace-month, window: month, limit_usd: "1000000" }
  - { id: feature-day, scope: { feature: bench }, window: day, limit_usd: "100000", warn_at: [0.5, 0.8] }
  - { id: per-customer, scope: { customer_id: "*" }, window: day, limit_usd: "10000", overrides: [{ when: { customer_id: vip }, limit_usd: "50000" }] }
  - { id: per-user, scope: { user_id: "*" }, window: week, limit_usd: "10000" }
  - { id: model-rolling, scope: { model: gpt-4.1-nano }, window: 24h, limit_usd: "100000" }
`,
);

const f3 = (v) => (Number.isFinite(v) ? v.toFixed(3) : "n/a");
const signed = (v) => (Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${v.toFixed(3)}` : "n/a");
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : Number.NaN;
};

const redis = await startRedis();
const mock = await startMock({
  json: join(shared, "chat-completion.gpt-4.1-nano.json"),
  sse: join(shared, "chat-completion.stream.gpt-4o-mini.include-usage.sse"),
  gapMs: 10,
});
const targets = [
  { name: "(a) no limits", t: await startTollgate(mock.origin) },
  // A second gateway without limits: how far two identical processes differ is the noise floor.
  { name: "(a') no limits, again", t: await startTollgate(mock.origin) },
  { name: "(b) 5 budgets, memory", t: await startTollgate(mock.origin, { args: ["--limits", LIMITS] }) },
  ...(redis
    ? [
        {
          name: "(c) 5 budgets, Redis",
          t: await startTollgate(mock.origin, { args: ["--limits", LIMITS, "--redis", redis.url] }),
        },
      ]
    : []),
];
console.log(
  `limits benchmark: ${RATE} req/s open loop, ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s per target${redis ? "" : " (redis-server not installed: Redis skipped)"}`,
);

const body = Buffer.from(
  JSON.stringify({
    model: "gpt-4.1-nano",
    max_tokens: 500,
    messages: [{ role: "user", content: "Invent a new holiday and describe its traditions." }],
  }),
);
const request = {
  path: "/v1/chat/completions",
  method: "POST",
  headers: {
    "content-type": "application/json",
    "content-length": String(body.length),
    authorization: "Bearer sk-bench",
    "x-tollgate-feature": "bench",
    "x-tollgate-customer-id": "c1",
    "x-tollgate-user-id": "u1",
  },
  body,
};
const row = (x, p50, p99, d50, d99, base, extra) =>
  `${x.name.padEnd(22)} ${f3(p50).padStart(6)}  ${f3(p99).padStart(6)}  ${(x === base ? "-" : signed(d50)).padStart(11)}  ${(x === base ? "-" : signed(d99)).padStart(11)}  ${extra}`;
const base = targets[0];

// 1. Sequential: one connection per target, one call at a time, the targets taking turns call by call
// (a, b, c, a, b, c, …) so whatever else the box does hits all three alike. The latency a call gains
// from the check itself, without the queueing that two busy cores add under load.
for (const x of targets) {
  x.seqPool = makePool(x.t.url, 1);
  x.seq = [];
}
for (let i = 0; i < SEQ_CALLS * (SEQ_ROUNDS + 1); i++)
  for (const x of targets) {
    const t0 = performance.now();
    const res = await x.seqPool.request(request);
    await res.body.arrayBuffer();
    if (i >= SEQ_CALLS) x.seq.push(performance.now() - t0); // the first SEQ_CALLS warm up (JIT, pools, leases)
  }
console.log(
  `\n== sequential: one call at a time, ${SEQ_ROUNDS} turns of ${SEQ_CALLS} calls per target, taken call by call ==`,
);
console.log("target                 p50 ms  p99 ms  +p50 vs (a)  +p99 vs (a)  p50 ratio");
const pct = (a, q) => [...a].sort((u, v) => u - v)[Math.floor(a.length * q)];
for (const x of targets) {
  x.seqD50 = pct(x.seq, 0.5) - pct(base.seq, 0.5);
  console.log(
    row(
      x,
      pct(x.seq, 0.5),
      pct(x.seq, 0.99),
      x.seqD50,
      pct(x.seq, 0.99) - pct(base.seq, 0.99),
      base,
      `${(pct(x.seq, 0.5) / pct(base.seq, 0.5)).toFixed(2).padStart(8)}x`,
    ),
  );
}

// 2. Open loop at RATE: the same under load, where the box's two cores are shared by three gateways,
// the mock, Redis and the load generator.
for (const x of targets) {
  x.pool = makePool(x.t.url, 64);
  x.p50 = [];
  x.p99 = [];
  x.cpu = 0;
  x.requests = 0;
  x.errors = 0;
  await openLoop(x.pool, request, { rate: RATE, warmupMs: 0, durationMs: 2000 }); // warm-up
}
for (let round = 0; round < ROUNDS; round++)
  for (const x of targets) {
    const cpu0 = procCpuMs(x.t.pid);
    const r = await openLoop(x.pool, request, { rate: RATE, warmupMs: 300, durationMs: ROUND_MS });
    x.cpu += procCpuMs(x.t.pid) - cpu0;
    x.requests += r.requests;
    x.errors += r.errors;
    x.p50.push(r.p50);
    x.p99.push(r.p99);
  }
console.log(`\n== open loop: ${RATE} req/s, median of ${ROUNDS} interleaved rounds ==`);
console.log("target                 p50 ms  p99 ms  +p50 vs (a)  +p99 vs (a)  CPU-ms/req  errors");
for (const x of targets) {
  const d50 = x === base ? Number.NaN : median(x.p50.map((v, i) => v - base.p50[i]));
  const d99 = x === base ? Number.NaN : median(x.p99.map((v, i) => v - base.p99[i]));
  x.d50 = d50;
  console.log(
    row(
      x,
      median(x.p50),
      median(x.p99),
      d50,
      d99,
      base,
      `${(x.cpu / x.requests).toFixed(3).padStart(10)}  ${String(x.errors).padStart(6)}`,
    ),
  );
}

// ---- the check alone, in-process ----
const { SpendGuard } = await import("../packages/server/dist/limits/guard.js");
const { PolicyRegistry } = await import("../packages/server/dist/limits/policies.js");
const { MemoryLimitStore } = await import("../packages/server/dist/limits/memory-store.js");
const { RedisLimitStore } = await import("../packages/server/dist/limits/redis-store.js");
const { openStore } = await import("../packages/server/dist/store/open-store.js");
const events = await openStore(join(dir, "guard-data"), { thread: false });
const registry = await PolicyRegistry.open(events, LIMITS);
const engine = new PricingEngine();
const parsed = JSON.parse(body.toString());
const ctx = {
  workspace: "default",
  facts: {
    feature: "bench",
    customer_id: "c1",
    user_id: "u1",
    model: "gpt-4.1-nano",
    provider: "openai",
    key_id: null,
  },
  api: "openai.chat",
  provider: "openai",
  model: "gpt-4.1-nano",
  body: parsed,
  raw: body,
  requestId: "bench",
  attempt: 1,
  depth: 1,
};
const outcome = { cost: 146_800n, tokens: 379, toolCalls: 0, eventId: null };
/**
 * The admission (on the request's path) timed alone; settles are started and not awaited, as in the
 * gateway, which settles after the reply (the Redis backend batches them).
 */
async function checkCost(store) {
  const guard = new SpendGuard(store, registry, events, engine, { log: () => {} });
  const times = new Float64Array(CALLS);
  const settles = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    const a = await guard.admit(ctx);
    times[i] = (performance.now() - t0) * 1000;
    if (!a.ok) throw new Error(a.error.message);
    settles.push(guard.settle(a.ticket, outcome));
    if (settles.length >= 256) await Promise.all(settles.splice(0));
  }
  await Promise.all(settles);
  times.sort();
  return { p50: times[Math.floor(CALLS / 2)], p99: times[Math.floor(CALLS * 0.99)] };
}
console.log(`\n== the check alone (SpendGuard.admit, 5 budgets, ${CALLS} calls, in-process) ==`);
const mem = await checkCost(new MemoryLimitStore());
console.log(`memory: admit p50 ${mem.p50.toFixed(1)} µs, p99 ${mem.p99.toFixed(1)} µs`);
let red = null;
if (redis) {
  const store = await RedisLimitStore.connect(redis.url);
  red = await checkCost(store);
  const trips = store.admitRoundTrips;
  await store.close();
  console.log(
    `redis:  admit p50 ${red.p50.toFixed(1)} µs, p99 ${red.p99.toFixed(1)} µs; ${trips} of ${CALLS} admissions went to Redis, the rest came from leases`,
  );
}
await events.close();

const control = targets[1];
console.log("\nissue 4 targets (added p50 latency, sequential; open loop and the check alone for context):");
console.log(
  `  noise floor: a second gateway without limits differs by ${signed(control.seqD50)} ms sequential, ${signed(control.d50)} ms open loop`,
);
const verdict = (ok) => (ok ? "PASS" : "FAIL");
const mem5 = targets[2];
console.log(
  `  ${verdict(mem5.seqD50 <= 0.05)}  in-memory adds <= 0.05 ms p50: ${signed(mem5.seqD50)} ms (open loop ${signed(mem5.d50)} ms; check alone ${(mem.p50 / 1000).toFixed(4)} ms)`,
);
if (targets[3])
  console.log(
    `  ${verdict(targets[3].seqD50 <= 0.3)}  Redis adds <= 0.3 ms p50: ${signed(targets[3].seqD50)} ms (open loop ${signed(targets[3].d50)} ms; check alone ${(red.p50 / 1000).toFixed(4)} ms)`,
  );
for (const x of targets) {
  await x.pool.close();
  await x.seqPool.close();
}
await shutdown();
process.exit(0);
