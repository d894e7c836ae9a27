// A real `tollgate serve` on a fresh data dir for the ingest benchmarks, and readings of its process:
// CPU seconds and RSS from /proc. BENCH_PROF=1 profiles it (--cpu-prof into /tmp/prof); BENCH_NODE_FLAGS
// adds node flags.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const cli = new URL("../packages/server/bin/tollgate.js", import.meta.url).pathname;

const DAY_MS = 86_400_000;
/**
 * Where a benchmark's calls start: an hour ago, but never before today's UTC midnight. Calls of a day that
 * has ended take the closed-day path (summed into segment_days as they arrive), which the file import
 * benchmark measures; an ingest benchmark run just after midnight would otherwise measure that path
 * instead of the usual one, and report ~35% less throughput.
 */
export function openDayStart(now = Date.now()) {
  return Math.max(now - 3_600_000, now - (now % DAY_MS) + 1_000);
}

/** Starts the server; resolves { pid, url, token, stop() } once it has written its server.json. */
export async function startServe() {
  const dataDir = mkdtempSync(join(tmpdir(), "tollgate-bench-"));
  const server = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : []),
      ...(process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(" ") : []),
      cli,
      "--data-dir",
      dataDir,
      "serve",
      "--port",
      "0",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const info = await waitFor(
    () =>
      existsSync(join(dataDir, "server.json")) &&
      JSON.parse(readFileSync(join(dataDir, "server.json"), "utf8")),
  );
  return {
    pid: server.pid,
    url: info.url,
    token: info.token,
    async stop() {
      server.kill("SIGTERM");
      await new Promise((r) => server.once("exit", r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks
  } catch {
    return 0;
  }
}

export function rssKb(pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
  } catch {
    return 0;
  }
}

async function waitFor(fn, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = fn();
      if (v) return v;
    } catch {}
    if (Date.now() > end) throw new Error("server did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}
