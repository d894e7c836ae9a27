// Load generation and process probes for bench/gateway.mjs: a closed loop (N connections, each sends its
// next request when the previous reply is fully read) for saturation throughput, an open loop (sends on a
// fixed timeline, never waiting for replies; latency counted from the scheduled send time, so a stalled
// server cannot hide its own queueing — no coordinated omission) for latency, and sequential streaming
// requests for time to first token. All use undici keep-alive pools.
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Pool } from "undici";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let clkTck = 100;
try {
  clkTck = Number(execSync("getconf CLK_TCK", { encoding: "utf8" }).trim()) || 100;
} catch {}

/** utime+stime of a process (all its threads), in ms; null when it is gone. */
export function procCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / clkTck;
  } catch {
    return null;
  }
}

/** utime+stime of this process's children that have exited (and been waited for), in ms. */
export function exitedChildrenCpuMs() {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[13]) + Number(f[14])) * 1000) / clkTck;
}

/** Resident set size of a process in MB; null when it is gone. */
export function procRssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Samples RSS of some processes every `everyMs`; `max(pid)` since the last `reset(pid)`. */
export class RssSampler {
  #pids = new Map(); // pid -> { max, last, overall }
  #timer;
  constructor(everyMs = 100) {
    this.#timer = setInterval(() => this.sample(), everyMs);
    this.#timer.unref();
  }
  watch(pid) {
    this.#pids.set(pid, { max: 0, last: 0, overall: 0 });
    this.sample();
  }
  sample() {
    for (const [pid, s] of this.#pids) {
      const mb = procRssMb(pid);
      if (mb === null) continue;
      s.last = mb;
      if (mb > s.max) s.max = mb;
      if (mb > s.overall) s.overall = mb;
    }
  }
  reset(pid) {
    const s = this.#pids.get(pid);
    if (s) s.max = 0;
    this.sample();
  }
  max(pid) {
    this.sample();
    return this.#pids.get(pid)?.max ?? null;
  }
  overall(pid) {
    return this.#pids.get(pid)?.overall ?? null;
  }
  last(pid) {
    this.sample();
    return this.#pids.get(pid)?.last ?? null;
  }
  stop() {
    clearInterval(this.#timer);
  }
}

export function makePool(origin, connections) {
  return new Pool(origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 120_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
}

/** Percentile (0..100) of a sorted array, nearest-rank. */
export function pct(sorted, p) {
  if (!sorted.length) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const sortNum = (a) => Float64Array.from(a).sort();

/** One request, body read to the end. Resolves { status, bytes, headers }. */
async function send(pool, req) {
  const r = await pool.request(req);
  const buf = await r.body.arrayBuffer();
  return { status: r.statusCode, bytes: buf.byteLength, headers: r.headers };
}

/**
 * Closed loop: `connections` workers for warmupMs + durationMs; counts replies completed inside the
 * measured window. `onWindow` (optional) is called at the window's start and end (to read server CPU);
 * `sent` counts every request sent, warm-up included.
 */
export async function closedLoop(pool, req, { connections, warmupMs, durationMs, onWindow }) {
  let measuring = false;
  let stop = false;
  let done = 0;
  let sent = 0;
  let errors = 0;
  let firstError = null;
  let bytes = 0;
  const worker = async () => {
    while (!stop) {
      try {
        sent++;
        const r = await send(pool, req);
        if (r.status !== 200) {
          errors++;
          firstError ??= `HTTP ${r.status}`;
        } else if (measuring) {
          done++;
          bytes += r.bytes;
        }
      } catch (e) {
        errors++;
        firstError ??= e.code ?? e.message;
        await sleep(5);
      }
    }
  };
  const workers = Array.from({ length: connections }, worker);
  await sleep(warmupMs);
  const startProbe = onWindow?.("start");
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await sleep(durationMs);
  measuring = false;
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const endProbe = onWindow?.("end");
  stop = true;
  await Promise.all(workers);
  return {
    requests: done,
    sent,
    rps: (done * 1000) / wall,
    wallMs: wall,
    errors,
    firstError,
    avgBytes: done ? bytes / done : 0,
    clientCpuPct: ((cpu.user + cpu.system) / 1000 / wall) * 100,
    startProbe,
    endProbe,
  };
}

/**
 * One open-loop run at `rate` req/s for `ms`. Sends are on a fixed timeline; latency = reply fully read −
 * scheduled send time; send lag = actual − scheduled send time (timer and event-loop jitter in the load
 * generator). Raw figures, to be summed up by openLoopStats (one run or several slices of one target).
 */
export async function openLoopRun(pool, req, rate, ms) {
  const total = Math.round((rate * ms) / 1000);
  const interval = 1000 / rate;
  const lat = new Float64Array(total);
  const lag = new Float64Array(total);
  let errors = 0;
  let firstError = null;
  const inflight = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now() + 5;
  let i = 0;
  let maxOutstanding = 0;
  let outstanding = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && t0 + i * interval <= now) {
        const k = i++;
        const sched = t0 + k * interval;
        lag[k] = performance.now() - sched;
        outstanding++;
        if (outstanding > maxOutstanding) maxOutstanding = outstanding;
        inflight.push(
          send(pool, req).then(
            (r) => {
              lat[k] = performance.now() - sched;
              outstanding--;
              if (r.status !== 200) {
                errors++;
                firstError ??= `HTTP ${r.status}`;
              }
            },
            (e) => {
              lat[k] = performance.now() - sched;
              outstanding--;
              errors++;
              firstError ??= e.code ?? e.message;
            },
          ),
        );
      }
      if (i < total) setTimeout(tick, Math.max(0, t0 + i * interval - performance.now()));
      else resolve();
    };
    setTimeout(tick, 5);
  });
  await Promise.all(inflight);
  const cpu = process.cpuUsage(cpu0);
  return {
    lat,
    lag,
    errors,
    firstError,
    maxOutstanding,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - t0,
  };
}

/** The latency figures of one target's open-loop runs, taken together. */
export function openLoopStats(runs) {
  const s = sortNum(runs.flatMap((r) => [...r.lat]));
  const l = sortNum(runs.flatMap((r) => [...r.lag]));
  const sum = (f) => runs.reduce((a, r) => a + f(r), 0);
  return {
    requests: s.length,
    p50: pct(s, 50),
    p90: pct(s, 90),
    p99: pct(s, 99),
    max: s[s.length - 1],
    lagP50: pct(l, 50),
    lagP99: pct(l, 99),
    errors: sum((r) => r.errors),
    firstError: runs.find((r) => r.firstError)?.firstError ?? null,
    maxOutstanding: Math.max(...runs.map((r) => r.maxOutstanding)),
    clientCpuPct: (sum((r) => r.cpuMs) / sum((r) => r.wallMs)) * 100,
  };
}

/** Open loop at `rate` req/s for durationMs, after a discarded warm-up at the same rate (openLoopRun). */
export async function openLoop(pool, req, { rate, warmupMs, durationMs }) {
  await openLoopRun(pool, req, rate, warmupMs);
  return openLoopStats([await openLoopRun(pool, req, rate, durationMs)]);
}

/**
 * Time to first token of one streamed request: ms from the send to the first body chunk holding
 * `data:`; the stream is then read to the end. Resolves { ttft, total, status, events, trailers }.
 */
export async function streamOnce(pool, req) {
  const t0 = performance.now();
  const r = await pool.request(req);
  let ttft = null;
  let events = 0;
  for await (const chunk of r.body) {
    const s = chunk.toString("utf8");
    if (ttft === null && s.includes("data:")) ttft = performance.now() - t0;
    for (let i = s.indexOf("data:"); i !== -1; i = s.indexOf("data:", i + 5)) events++;
  }
  return { ttft, total: performance.now() - t0, status: r.statusCode, events, trailers: r.trailers };
}

export function summarize(values) {
  const s = sortNum(values.filter((v) => v !== null && Number.isFinite(v)));
  return { n: s.length, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), min: s[0], max: s[s.length - 1] };
}
