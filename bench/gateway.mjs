#!/usr/bin/env node
// Gateway overhead, side by side against one local mock upstream (0 ms delay, a real chat completion with
// usage): (a) direct to the mock, (b) through `tollgate serve` with recording and attribution on, (c)
// through the Portkey open-source gateway (@portkey-ai/gateway, --headless). Closed loop for saturation
// throughput, open loop (constant rate, latency from the scheduled send time; the targets take turns in
// slices) for added latency, CPU-ms per request and RSS of the gateway processes, and streaming time to
// first token (the targets take turns request by request). (d), the floor: a bare Node proxy (undici, nothing
// parsed or recorded; bench/gateway/floor-proxy.mjs), so that what node and one more hop cost on this machine
// is told apart from what Tollgate's own work adds (--no-floor leaves it out).
// --scale-out: (b) is a gateway replica (`--role gateway`) recording into ClickHouse with limits on Redis — a
// clickhouse-server and a redis-server the bench starts (or TOLLGATE_CLICKHOUSE_URL) — instead of the embedded
// default; their CPU and RSS are reported beside the replica's, and an `--role api` process on the same
// ClickHouse answers the recording check. --small: (b) runs with the README's small-memory settings
// (SMALL_ENV below: appends in-process, heap growth 50%, 4 MB semi-spaces; for the embedded store also 16 KB
// blocks, checkpoints from 8 MB of WAL, and allocators that hand freed memory back).
// Usage: npm run bench:gateway [-- --quick] [-- --connections 64 --rate 500 --closed-s 6 --open-s 10 --streams 100]
//        [-- --small] [-- --scale-out] [-- --no-portkey] [-- --no-floor]
// Env BENCH_NODE_FLAGS: extra node flags for the `tollgate serve` process (e.g. --cpu-prof).
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { request as undiciRequest } from "undici";
import { benchArgs } from "./args.mjs";
import {
  closedLoop,
  makePool,
  openLoopRun,
  openLoopStats,
  procCpuMs,
  procRssMb,
  RssSampler,
  sleep,
  streamOnce,
  summarize,
} from "./gateway/load.mjs";
import {
  freePort,
  shutdown,
  startMock,
  startMockScript,
  startRedis,
  startTollgate,
  track,
  waitFor,
} from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  quick: { type: "boolean", default: false },
  connections: { type: "string", default: "64" },
  rate: { type: "string", default: "500" },
  "closed-s": { type: "string" },
  "open-s": { type: "string" },
  "warmup-s": { type: "string" },
  streams: { type: "string" },
  "no-portkey": { type: "boolean", default: false },
  "no-floor": { type: "boolean", default: false },
  "scale-out": { type: "boolean", default: false },
  small: { type: "boolean", default: false },
});
const quick = argv.quick;
const SCALE_OUT = argv["scale-out"];
const SMALL = argv.small;
/** The README's small-memory settings: they trade some throughput and tail latency for memory. */
const SMALL_ENV = {
  TOLLGATE_STORE_THREAD: "0",
  TOLLGATE_HEAP_GROWTH_PERCENT: "50",
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --max-semi-space-size=4`.trim(),
  ...(SCALE_OUT
    ? {}
    : {
        TOLLGATE_DUCKDB_BLOCK_SIZE: "16384",
        TOLLGATE_CHECKPOINT_WAL_MB: "8",
        DUCKDB_JE_MALLOC_CONF: "dirty_decay_ms:0,muzzy_decay_ms:0",
        MALLOC_ARENA_MAX: "2",
      }),
};
const CONNECTIONS = Number(argv.connections);
const RATE = Number(argv.rate);
const CLOSED_MS = Number(argv["closed-s"] ?? (quick ? 1.5 : 6)) * 1000;
const OPEN_MS = Number(argv["open-s"] ?? (quick ? 3 : 10)) * 1000;
const WARMUP_MS = Number(argv["warmup-s"] ?? (quick ? 0.5 : 2)) * 1000;
const STREAMS = Number(argv.streams ?? (quick ? 20 : 100));
const STREAM_GAP_MS = 10;
/** A short discarded run before each open-loop turn: reconnects (Portkey drops idle sockets after 5 s). */
const TURN_WARMUP_MS = 250;

const shared = fileURLToPath(new URL("../../shared/", import.meta.url));
const FIXTURE_JSON = join(shared, "fixtures/providers/openai/chat-completion.gpt-4.1-nano.json");
const FIXTURE_SSE = join(
  shared,
  "fixtures/providers/openai/chat-completion.stream.gpt-4o-mini.include-usage.sse",
);
const fixtureBytes = readFileSync(FIXTURE_JSON).length;

const log = (...a) => console.log(...a);
const f1 = (v) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(1));
const f2 = (v) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(2));
const f3 = (v) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(3));
const signed = (v, d = 2) =>
  v === null || v === undefined || Number.isNaN(v) ? "n/a" : `${v >= 0 ? "+" : ""}${v.toFixed(d)}`;

// ---------------------------------------------------------------------------------------------------------
// Processes

/**
 * --scale-out: ClickHouse (fresh database) and Redis for a gateway replica. Resolves with the replica's
 * store flags, the processes to watch (those the bench started), and stop().
 */
async function startScaleOutServices() {
  const { benchClickHouse } = await import("./clickhouse.mjs");
  const redis = await startRedis();
  if (!redis) throw new Error("--scale-out needs redis-server: apt-get install -y redis-server");
  const ch = await benchClickHouse();
  const database = ch.newDatabase("bench_gateway");
  const watched = [{ name: "redis", pid: redis.pid }];
  if (ch.pid) watched.unshift({ name: "clickhouse", pid: ch.pid });
  log(
    `scale-out: ClickHouse ${ch.version ?? ""} at ${ch.url}${ch.external ? " (TOLLGATE_CLICKHOUSE_URL)" : ` (pid ${ch.pid})`}, database ${database}; Redis ${redis.url} (pid ${redis.pid})`,
  );
  return {
    args: ["--clickhouse", `${ch.url}/${database}`, "--redis", redis.url],
    watched,
    stop: () => ch.stop(),
  };
}

async function startPortkey() {
  let bin;
  let version;
  try {
    const require = createRequire(import.meta.url);
    const pkgPath = require.resolve("@portkey-ai/gateway/package.json");
    const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
    const rel = typeof pkg.bin === "string" ? pkg.bin : Object.values(pkg.bin ?? {})[0];
    if (!rel) throw new Error("package.json has no bin");
    bin = join(dirname(pkgPath), rel);
    if (!existsSync(bin)) throw new Error(`bin ${rel} missing`);
    version = pkg.version;
  } catch (e) {
    return { unavailable: `@portkey-ai/gateway not installed (${e.message.split("\n")[0]})` };
  }
  const port = await freePort();
  const child = spawn(process.execPath, [bin, `--port=${port}`, "--headless"], {
    stdio: ["ignore", "pipe", "pipe"],
    cwd: tmpdir(),
  });
  const { out, err, exited } = track(child);
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        if (exited()) throw new Error(`portkey ${exited()}: ${(err.text || out.text).trim().slice(-500)}`);
        try {
          const r = await undiciRequest(`${origin}/`, { method: "GET" });
          await r.body.dump();
          return true;
        } catch {
          return false;
        }
      },
      30_000,
      `portkey on port ${port}`,
    );
  } catch (e) {
    child.kill("SIGTERM");
    return { unavailable: e.message };
  }
  return { pid: child.pid, port, origin, version, out, err };
}

// ---------------------------------------------------------------------------------------------------------
// Requests

const CHAT = Buffer.from(
  JSON.stringify({
    model: "gpt-4.1-nano",
    messages: [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "Invent a new holiday and describe its traditions." },
    ],
  }),
);
const CHAT_STREAM = Buffer.from(
  JSON.stringify({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "What is the capital of France? Use the tool." }],
    stream: true,
    stream_options: { include_usage: true },
  }),
);
const CLIENT_HEADERS = {
  "content-type": "application/json",
  authorization: "Bearer sk-bench-0000000000000000000000000000000000000000",
  "user-agent": "tollgate-bench/1",
};
const TOLLGATE_HEADERS = { "x-tollgate-feature": "bench", "x-tollgate-customer-id": "c1" };

function reqFor(target, body) {
  return {
    path: "/v1/chat/completions",
    method: "POST",
    headers: { ...CLIENT_HEADERS, ...target.extraHeaders, "content-length": String(body.length) },
    body,
  };
}

// ---------------------------------------------------------------------------------------------------------

log(
  `gateway benchmark${quick ? " (--quick)" : ""}: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model?.trim()}), loadavg ${loadavg()
    .map((v) => v.toFixed(2))
    .join(" ")}`,
);
log(
  `closed loop: ${CONNECTIONS} connections, ${WARMUP_MS / 1000}s warm-up + ${CLOSED_MS / 1000}s; open loop: ${RATE} req/s, ${WARMUP_MS / 1000}s warm-up + ${OPEN_MS / 1000}s; streaming: ${STREAMS} sequential requests per target, ${STREAM_GAP_MS} ms between SSE events`,
);

/** Share of the machine's CPU busy while this process idles: other work on the box skews every number. */
async function backgroundBusyPct(ms) {
  const read = () => {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await sleep(ms);
    const b = read();
    return 100 * (1 - (b.idle - a.idle) / (b.total - a.total));
  } catch {
    return null;
  }
}
const bgBusy = await backgroundBusyPct(1000);
log(
  `machine CPU busy before the run (other processes): ${f1(bgBusy)}%${bgBusy > 10 ? "  <-- WARNING: the box is not idle; absolute numbers will be low and noisy" : ""}`,
);

const rss = new RssSampler(100);
const mock = await startMock({ json: FIXTURE_JSON, sse: FIXTURE_SSE, gapMs: STREAM_GAP_MS });
rss.watch(mock.pid);
log(`mock upstream: ${mock.origin} (pid ${mock.pid}), reply ${fixtureBytes} bytes`);

/** --scale-out: the ClickHouse and Redis the replica records into and limits on, and its store flags. */
const services = SCALE_OUT ? await startScaleOutServices() : null;
const smallEnv = SMALL ? SMALL_ENV : {};
const tollgate = await startTollgate(
  mock.origin,
  services ? { args: services.args, env: { TOLLGATE_ROLE: "gateway", ...smallEnv } } : { env: smallEnv },
);
if (SMALL)
  log(
    `small-memory settings: ${Object.entries(SMALL_ENV)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(" ")}`,
  );
rss.watch(tollgate.pid);
for (const s of services?.watched ?? []) rss.watch(s.pid);
const tollgateIdleRss = procRssMb(tollgate.pid);
log(
  `tollgate: ${tollgate.url} (pid ${tollgate.pid}), idle RSS ${f1(tollgateIdleRss)} MB, data dir ${tollgate.dataDir}`,
);

let portkey = argv["no-portkey"] ? { unavailable: "--no-portkey" } : await startPortkey();
if (!portkey.unavailable) rss.watch(portkey.pid);
const floor = argv["no-floor"]
  ? null
  : await startMockScript(new URL("./gateway/floor-proxy.mjs", import.meta.url), [mock.origin]);
if (floor) {
  rss.watch(floor.pid);
  log(`floor (bare node proxy): ${floor.origin} (pid ${floor.pid})`);
}

const targets = [
  { key: "a", name: "(a) direct", origin: mock.origin, extraHeaders: {}, pid: null },
  {
    key: "b",
    name: `(b) tollgate${SMALL ? " small" : ""}${SCALE_OUT ? " replica" : ""}`,
    origin: tollgate.url,
    extraHeaders: TOLLGATE_HEADERS,
    pid: tollgate.pid,
  },
];
if (!portkey.unavailable)
  targets.push({
    key: "c",
    name: `(c) portkey ${portkey.version}`,
    origin: portkey.origin,
    extraHeaders: { "x-portkey-provider": "openai", "x-portkey-custom-host": `${mock.origin}/v1` },
    pid: portkey.pid,
  });
if (floor)
  targets.push({
    key: "d",
    name: "(d) floor: bare proxy",
    origin: floor.origin,
    extraHeaders: {},
    pid: floor.pid,
  });

// Sanity: each target answers 200 with the mock's completion; Tollgate adds its headers.
for (const t of [...targets]) {
  const pool = makePool(t.origin, 1);
  try {
    const r = await pool.request(reqFor(t, CHAT));
    const text = await r.body.text();
    let ok = r.statusCode === 200;
    let note = "";
    try {
      const j = JSON.parse(text);
      ok &&= j.usage?.completion_tokens === 363;
      note = `model=${j.model} usage.total_tokens=${j.usage?.total_tokens}`;
    } catch {
      ok = false;
    }
    if (t.key === "b")
      note += ` x-tollgate-event-id=${r.headers["x-tollgate-event-id"] ? "yes" : "MISSING"} x-tollgate-cost-usd=${r.headers["x-tollgate-cost-usd"]}`;
    log(
      `check ${t.name}: HTTP ${r.statusCode}, ${text.length} bytes, ${note}${ok ? "" : `  <-- UNEXPECTED: ${text.slice(0, 300)}`}`,
    );
    if (!ok && t.key === "c") {
      portkey = {
        unavailable: `HTTP ${r.statusCode} on a chat completion: ${text.slice(0, 200)}`,
        pid: portkey.pid,
      };
      targets.splice(targets.indexOf(t), 1);
    }
  } catch (e) {
    log(`check ${t.name}: FAILED ${e.code ?? ""} ${e.message}`);
    if (t.key === "c") {
      portkey = { unavailable: `request failed: ${e.message}`, pid: portkey.pid };
      targets.splice(targets.indexOf(t), 1);
    } else throw e;
  } finally {
    await pool.close();
  }
}
if (portkey.unavailable) log(`portkey: unavailable (${portkey.unavailable})`);
else log(`portkey: ${portkey.origin} (pid ${portkey.pid}) @portkey-ai/gateway ${portkey.version} --headless`);

/** Requests sent through Tollgate with attribution on, for the recorded-calls check at the end. */
let sentThroughTollgate = 1; // the sanity check above
/** Upstream calls the mock saw while Tollgate was under load (each one should be a record). */
let upstreamViaTollgate = 1;
async function mockCount() {
  const r = await undiciRequest(`${mock.origin}/__stats`);
  return (await r.body.json()).requests;
}
const results = Object.fromEntries(targets.map((t) => [t.key, {}]));

// Closed loop (saturation) first: it also warms every server's JIT before the latency phase, as a
// gateway in production would be warm; then the open loop (latency at a constant rate).
log(`\n-- closed loop, ${CONNECTIONS} connections --`);
/** --scale-out: ClickHouse's and Redis's CPU while (b) ran its closed loop. */
let servicesCpu = null;
for (const t of targets) {
  const pool = makePool(t.origin, CONNECTIONS);
  if (t.pid) rss.reset(t.pid);
  const probe = () => ({
    server: t.pid ? procCpuMs(t.pid) : null,
    mock: procCpuMs(mock.pid),
    services: (services?.watched ?? []).map((s) => procCpuMs(s.pid)),
  });
  const m0 = await mockCount();
  const r = await closedLoop(pool, reqFor(t, CHAT), {
    connections: CONNECTIONS,
    warmupMs: WARMUP_MS,
    durationMs: CLOSED_MS,
    onWindow: probe,
  });
  await pool.close();
  if (t.key === "b") upstreamViaTollgate += (await mockCount()) - m0;
  const serverCpu = t.pid ? r.endProbe.server - r.startProbe.server : null;
  const mockCpu = r.endProbe.mock - r.startProbe.mock;
  r.cpuMsPerReq = serverCpu === null ? null : serverCpu / r.requests;
  r.serverCpuPct = serverCpu === null ? null : (serverCpu / r.wallMs) * 100;
  r.mockCpuMsPerReq = mockCpu / r.requests;
  r.mockCpuPct = (mockCpu / r.wallMs) * 100;
  results[t.key].closed = r;
  results[t.key].rssClosed = t.pid ? rss.max(t.pid) : null;
  if (t.key === "b") sentThroughTollgate += r.sent;
  if (t.key === "b" && services)
    servicesCpu = services.watched.map((s, i) => ({
      name: s.name,
      pct: ((r.endProbe.services[i] - r.startProbe.services[i]) / r.wallMs) * 100,
      msPerReq: (r.endProbe.services[i] - r.startProbe.services[i]) / r.requests,
    }));
  log(
    `${t.name.padEnd(22)} ${f1(r.rps).padStart(8)} req/s  (${r.requests} in ${f1(r.wallMs / 1000)}s, errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ""}, ${f1(r.avgBytes)} B/reply)  server CPU ${r.serverCpuPct === null ? "n/a" : `${f1(r.serverCpuPct)}%`} = ${f3(r.cpuMsPerReq)} ms/req  mock CPU ${f1(r.mockCpuPct)}%  client CPU ${f1(r.clientCpuPct)}%`,
  );
  await sleep(1000);
}

// Targets take turns in slices (the order rotating), as in the streaming phase below: whatever else the
// machine does meanwhile (a server's GC or store work after its closed loop, another one's memory
// reducer) then falls on every target alike instead of on whichever runs at that moment.
// Two turns per target, so each one goes first and last equally often.
const openSlices = 2 * targets.length;
log(
  `\n-- open loop, ${RATE} req/s, targets taking turns: ${openSlices} slices of ${f2(OPEN_MS / openSlices / 1000)}s (after ${TURN_WARMUP_MS} ms warm-up each) --`,
);
const openPools = Object.fromEntries(targets.map((t) => [t.key, makePool(t.origin, 256)]));
const openRuns = Object.fromEntries(targets.map((t) => [t.key, []]));
for (const t of targets) if (t.pid) rss.reset(t.pid);
/** One open-loop run of a target; (b)'s requests and upstream calls are counted for the recording check. */
async function openTurn(t, ms) {
  const m0 = t.key === "b" ? await mockCount() : 0;
  const run = await openLoopRun(openPools[t.key], reqFor(t, CHAT), RATE, ms);
  if (t.key === "b") {
    upstreamViaTollgate += (await mockCount()) - m0;
    sentThroughTollgate += run.lat.length;
  }
  return run;
}
for (const t of targets) await openTurn(t, WARMUP_MS);
for (let slice = 0; slice < openSlices; slice++) {
  const turn = slice % targets.length;
  for (const t of [...targets.slice(turn), ...targets.slice(0, turn)]) {
    await openTurn(t, TURN_WARMUP_MS);
    openRuns[t.key].push(await openTurn(t, OPEN_MS / openSlices));
  }
}
for (const t of targets) {
  await openPools[t.key].close();
  const r = openLoopStats(openRuns[t.key]);
  results[t.key].open = r;
  results[t.key].rssOpen = t.pid ? rss.max(t.pid) : null;
  log(
    `${t.name.padEnd(22)} p50 ${f3(r.p50)} ms  p90 ${f3(r.p90)}  p99 ${f3(r.p99)}  max ${f2(r.max)}  errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ""}  max in flight ${r.maxOutstanding}  client send lag p50/p99 ${f3(r.lagP50)}/${f3(r.lagP99)} ms  client CPU ${f1(r.clientCpuPct)}%`,
  );
}
await sleep(1000);

// Streaming: sequential requests, targets interleaved so drift on the machine hits all of them alike.
log(`\n-- streaming, ${STREAMS} sequential requests per target --`);
const streamTargets = [];
for (const t of targets) {
  // A target that cannot stream at all (one probe request) is reported, not timed.
  const pool = makePool(t.origin, 1);
  try {
    const r = await pool.request(reqFor(t, CHAT_STREAM));
    const text = await r.body.text();
    if (t.key === "b") sentThroughTollgate++;
    if (r.statusCode === 200 && text.includes("data: [DONE]")) streamTargets.push(t);
    else
      log(
        `${t.name.padEnd(22)} streaming unavailable: HTTP ${r.statusCode} ${text.slice(0, 160)}${t.key === "c" ? ` | portkey stderr: ${(portkey.err.text.match(/[^\n]*error[^\n]*\n[^\n]*/i)?.[0] ?? "").trim().slice(0, 300)}` : ""}`,
      );
  } catch (e) {
    log(`${t.name.padEnd(22)} streaming unavailable: ${e.message}`);
  } finally {
    await pool.close();
  }
}
const ttft = Object.fromEntries(streamTargets.map((t) => [t.key, []]));
const streamTotal = Object.fromEntries(streamTargets.map((t) => [t.key, []]));
const streamIssues = Object.fromEntries(
  streamTargets.map((t) => [t.key, { errors: 0, events: new Set(), first: null, cost: 0 }]),
);
{
  const pools = Object.fromEntries(streamTargets.map((t) => [t.key, makePool(t.origin, 1)]));
  const m0 = await mockCount();
  const warm = 5;
  for (let i = 0; i < STREAMS + warm; i++) {
    for (const t of streamTargets) {
      if (t.key === "b") sentThroughTollgate++;
      try {
        const r = await streamOnce(pools[t.key], reqFor(t, CHAT_STREAM));
        const iss = streamIssues[t.key];
        if (r.status !== 200) {
          iss.errors++;
          iss.first ??= `HTTP ${r.status}`;
        }
        iss.events.add(r.events);
        if (r.trailers?.["x-tollgate-cost-usd"]) iss.cost++;
        if (i >= warm) {
          ttft[t.key].push(r.ttft);
          streamTotal[t.key].push(r.total);
        }
      } catch (e) {
        streamIssues[t.key].errors++;
        streamIssues[t.key].first ??= e.code ?? e.message;
      }
    }
  }
  // Every interleaved round made one upstream call per target; Tollgate's share is 1/targets.
  const mockStreams = (await mockCount()) - m0;
  upstreamViaTollgate += mockStreams / streamTargets.length + 1; // + its probe above
  await Promise.all(Object.values(pools).map((p) => p.close()));
}
for (const t of streamTargets) {
  const s = summarize(ttft[t.key]);
  const tot = summarize(streamTotal[t.key]);
  const iss = streamIssues[t.key];
  results[t.key].ttft = s;
  log(
    `${t.name.padEnd(22)} TTFT p50 ${f3(s.p50)} ms  p90 ${f3(s.p90)}  p99 ${f3(s.p99)}  (n=${s.n})  whole stream p50 ${f1(tot.p50)} ms  data: events/stream ${[...iss.events].join(",")}  errors ${iss.errors}${iss.first ? ` (${iss.first})` : ""}${t.key === "b" ? `  cost trailer on ${iss.cost}/${STREAMS + 5}` : ""}`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Memory after the run, recording check, gateway metrics.

const tollgateEndRss = procRssMb(tollgate.pid);
await sleep(1000);
const tollgateSettledRss = procRssMb(tollgate.pid);

log(
  `\n-- recording check (GET /api/spend?by=feature&from=1h${services ? " of an --role api process on the same ClickHouse" : ""}) --`,
);
// A gateway replica serves no query API: a process of the api role reads what it recorded.
const queryServer = services
  ? await startTollgate(mock.origin, { args: services.args, env: { TOLLGATE_ROLE: "api" } })
  : tollgate;
let recorded = null;
let spendRow = null;
{
  const deadline = Date.now() + 20_000;
  let last = -1;
  for (;;) {
    try {
      const r = await undiciRequest(`${queryServer.url}/api/spend?by=feature&from=1h`, {
        headers: { authorization: `Bearer ${queryServer.token}` },
      });
      const j = await r.body.json();
      if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}: ${JSON.stringify(j).slice(0, 300)}`);
      spendRow = j.rows.find((row) => row.key === "bench") ?? null;
      recorded = j.rows.reduce((n, row) => n + (row.key === "bench" ? row.calls : 0), 0);
      if (recorded >= sentThroughTollgate || (recorded === last && Date.now() > deadline - 15_000)) break;
      last = recorded;
    } catch (e) {
      log(`spend query failed: ${e.message}`);
      break;
    }
    if (Date.now() > deadline) break;
    await sleep(500);
  }
}
log(
  `requests sent through (b): ${sentThroughTollgate}; upstream calls the mock saw from (b): ${Math.round(upstreamViaTollgate)}; recorded calls with feature=bench: ${recorded ?? "n/a"}${spendRow ? ` (cost $${spendRow.cost_usd}, input ${spendRow.input_tokens} / output ${spendRow.output_tokens} tokens, unpriced ${spendRow.unpriced_calls})` : ""}  ${recorded === sentThroughTollgate ? "OK" : "MISMATCH"}`,
);
try {
  const r = await undiciRequest(`${tollgate.url}/metrics`, {
    headers: { authorization: `Bearer ${tollgate.token}` },
  });
  const text = await r.body.text();
  const pick = text
    .split("\n")
    .filter((l) =>
      /^(tollgate_spool_depth|tollgate_recorder_pending|tollgate_gateway_upstream_errors_total|tollgate_gateway_requests_total)/.test(
        l,
      ),
    );
  log(`tollgate /metrics (HTTP ${r.statusCode}): ${pick.length ? pick.join("; ") : text.slice(0, 200)}`);
} catch (e) {
  log(`tollgate /metrics failed: ${e.message}`);
}
log(
  `tollgate RSS: idle ${f1(tollgateIdleRss)} MB -> max ${f1(rss.overall(tollgate.pid))} MB -> end of load ${f1(tollgateEndRss)} MB -> 1 s later ${f1(tollgateSettledRss)} MB`,
);
for (const s of services?.watched ?? [])
  log(`${s.name} RSS: max ${f1(rss.overall(s.pid))} MB, now ${f1(procRssMb(s.pid))} MB`);
if (!portkey.unavailable)
  log(`portkey RSS: max ${f1(rss.overall(portkey.pid))} MB, now ${f1(procRssMb(portkey.pid))} MB`);
const tollErr = tollgate.err.text.trim();
if (tollErr) log(`tollgate stderr (last lines):\n${tollErr.split("\n").slice(-15).join("\n")}`);

// ---------------------------------------------------------------------------------------------------------
// Summary table and targets

const A = results.a;
const B = results.b;
const C = results.c;
const D = results.d;
log("\n== summary ==");
const header = [
  "target",
  "req/s (closed)",
  "p50 ms",
  "p99 ms",
  "+p50 ms",
  "+p99 ms",
  "CPU-ms/req",
  "RSS MB (max)",
  "TTFT p50 ms",
  "+TTFT ms",
];
const rows = targets.map((t) => {
  const r = results[t.key];
  const isA = t.key === "a";
  return [
    t.name,
    f1(r.closed?.rps),
    f3(r.open?.p50),
    f3(r.open?.p99),
    isA ? "-" : signed(r.open.p50 - A.open.p50, 3),
    isA ? "-" : signed(r.open.p99 - A.open.p99, 3),
    isA ? "-" : f3(r.closed?.cpuMsPerReq),
    isA ? "-" : f1(rss.overall(t.pid)),
    r.ttft ? f3(r.ttft.p50) : "n/a",
    isA || !r.ttft ? "-" : signed(r.ttft.p50 - A.ttft.p50, 3),
  ];
});
if (portkey.unavailable) rows.splice(2, 0, ["(c) portkey", "unavailable", "", "", "", "", "", "", "", ""]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells) =>
  cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
log(line(header));
log(widths.map((w) => "-".repeat(w)).join("  "));
for (const r of rows) log(line(r));
log(
  `client (load generator) CPU: closed loop ${targets.map((t) => `${t.key} ${f1(results[t.key].closed?.clientCpuPct)}%`).join(", ")}; open loop ${targets.map((t) => `${t.key} ${f1(results[t.key].open?.clientCpuPct)}%`).join(", ")} of one core` +
    (targets.some((t) => (results[t.key].closed?.clientCpuPct ?? 0) > 90)
      ? "  <-- the client saturates a core in the closed loop: throughput numbers are a lower bound"
      : ""),
);
log(
  `mock upstream CPU in the closed loop: ${targets.map((t) => `${t.key} ${f1(results[t.key].closed?.mockCpuPct)}% (${f3(results[t.key].closed?.mockCpuMsPerReq)} ms/req)`).join(", ")}; ${cpus().length} cores shared by client, mock and gateway`,
);
if (servicesCpu)
  log(
    `scale-out services CPU in (b)'s closed loop: ${servicesCpu.map((c) => `${c.name} ${f1(c.pct)}% (${f3(c.msPerReq)} ms/req)`).join(", ")}; on the same ${cpus().length} cores`,
  );

log("\nratios:");
log(`  tollgate / direct throughput: ${f2(B.closed.rps / A.closed.rps)}x`);
log(
  `  tollgate vs direct latency at ${RATE} req/s: p50 ${f3(B.open.p50)} vs ${f3(A.open.p50)} ms (${signed(B.open.p50 - A.open.p50, 3)} ms, ${f2(B.open.p50 / A.open.p50)}x), p99 ${f3(B.open.p99)} vs ${f3(A.open.p99)} ms (${signed(B.open.p99 - A.open.p99, 3)} ms, ${f2(B.open.p99 / A.open.p99)}x)`,
);
if (C) {
  log(
    `  tollgate / portkey throughput: ${f2(B.closed.rps / C.closed.rps)}x (${f1(B.closed.rps)} vs ${f1(C.closed.rps)} req/s)`,
  );
  log(`  portkey / direct throughput: ${f2(C.closed.rps / A.closed.rps)}x`);
  log(
    `  added latency tollgate vs portkey: p50 ${signed(B.open.p50 - A.open.p50, 3)} vs ${signed(C.open.p50 - A.open.p50, 3)} ms, p99 ${signed(B.open.p99 - A.open.p99, 3)} vs ${signed(C.open.p99 - A.open.p99, 3)} ms`,
  );
  log(
    `  CPU-ms/request tollgate / portkey: ${f3(B.closed.cpuMsPerReq)} / ${f3(C.closed.cpuMsPerReq)} = ${f2(B.closed.cpuMsPerReq / C.closed.cpuMsPerReq)}x`,
  );
  log(
    `  RSS tollgate / portkey: ${f1(rss.overall(tollgate.pid))} / ${f1(rss.overall(portkey.pid))} MB = ${f2(rss.overall(tollgate.pid) / rss.overall(portkey.pid))}x`,
  );
} else
  log(
    `  tollgate / portkey: portkey unavailable (${portkey.unavailable}); issue's reference Portkey 1.15.2 ~900 req/s -> ${f2(B.closed.rps / 900)}x`,
  );

if (D)
  log(
    `  tollgate over the floor (a bare node proxy, same hop): p50 ${signed(B.open.p50 - D.open.p50, 3)} ms, p99 ${signed(B.open.p99 - D.open.p99, 3)} ms, TTFT ${D.ttft && B.ttft ? signed(B.ttft.p50 - D.ttft.p50, 3) : "n/a"} ms, throughput ${f2(B.closed.rps / D.closed.rps)}x, CPU-ms/req ${f2(B.closed.cpuMsPerReq / D.closed.cpuMsPerReq)}x; the floor itself adds p50 ${signed(D.open.p50 - A.open.p50, 3)}, p99 ${signed(D.open.p99 - A.open.p99, 3)}, TTFT ${D.ttft && A.ttft ? signed(D.ttft.p50 - A.ttft.p50, 3) : "n/a"} ms over direct`,
  );

const addP50 = B.open.p50 - A.open.p50;
const addP99 = B.open.p99 - A.open.p99;
const rssMax = rss.overall(tollgate.pid);
const ttftDiff = B.ttft && A.ttft ? B.ttft.p50 - A.ttft.p50 : Number.NaN;
const verdict = (ok) => (ok === null ? "N/A " : ok ? "PASS" : "FAIL");
log("\nissue 3 targets (tollgate):");
log(`  ${verdict(addP50 <= 0.3)}  added p50 at ${RATE} req/s <= 0.3 ms: ${signed(addP50, 3)} ms`);
log(`  ${verdict(addP99 <= 1.5)}  added p99 at ${RATE} req/s <= 1.5 ms: ${signed(addP99, 3)} ms`);
log(
  C
    ? `  ${verdict(B.closed.rps >= 5 * C.closed.rps)}  saturation >= 5x portkey: ${f2(B.closed.rps / C.closed.rps)}x (${f1(B.closed.rps)} vs ${f1(C.closed.rps)} req/s)`
    : `  ${verdict(null)}  saturation >= 5x portkey: portkey unavailable (${portkey.unavailable}); vs the issue's ~900 req/s: ${f2(B.closed.rps / 900)}x`,
);
log(`  ${verdict(rssMax <= 150)}  RSS under load <= 150 MB: max ${f1(rssMax)} MB`);
log(
  `  ${verdict(Number.isNaN(ttftDiff) ? null : ttftDiff <= 1)}  streaming TTFT p50 within 1 ms of direct: ${signed(ttftDiff, 3)} ms`,
);

rss.stop();
await services?.stop();
await shutdown();
process.exit(0);
