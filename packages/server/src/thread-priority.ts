import { readdirSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { isMainThread } from "node:worker_threads";
import { wholeNumberFromEnv } from "./config.js";

/** TOLLGATE_BACKGROUND_NICE: how much lower than the main thread background threads run, 0 (off) to 19; default 10. */
export function backgroundNiceFrom(env = process.env): number {
  return wholeNumberFromEnv(env, "TOLLGATE_BACKGROUND_NICE", { fallback: 10, max: 19, zeroMeans: "off" });
}

/**
 * Lowers the CPU priority of every thread of this process but the main one, which proxies and answers
 * requests: the store thread's appends and commits, DuckDB's workers, libuv's pool and V8's helpers then
 * give way to it when the cores are busy, instead of delaying the requests that arrive during a commit.
 * They run `nice` steps below the main thread (at most 19). Threads started later take their creator's
 * priority: lowered when a background thread starts them, not when the main thread does.
 * Linux only: there a thread id is a valid target of setpriority and niceness is per thread (elsewhere it
 * would lower the whole process, so nothing is done). Returns how many threads were lowered.
 */
export function lowerBackgroundThreads(nice: number): number {
  if (nice === 0 || process.platform !== "linux" || !isMainThread) return 0;
  let tids: string[];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    return 0; // no /proc: nothing to lower, and nothing to lose
  }
  // Without our own id among them, /proc is another PID namespace's: its ids are not our threads.
  if (!tids.includes(String(process.pid))) return 0;
  const target = Math.min(19, getPriority() + nice);
  let lowered = 0;
  for (const entry of tids) {
    const tid = Number(entry);
    if (tid === process.pid) continue; // the main thread's id is the process id
    try {
      setPriority(tid, target);
      lowered++;
    } catch {
      // The thread ended between listing and lowering it, or may not be changed (EACCES/EPERM): left as is.
    }
  }
  return lowered;
}
