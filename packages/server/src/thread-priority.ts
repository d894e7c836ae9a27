import { readdirSync } from "node:fs";
import { setPriority } from "node:os";
import { isMainThread } from "node:worker_threads";

/** Niceness given to a server's background threads unless TOLLGATE_BACKGROUND_NICE says otherwise. */
export const DEFAULT_BACKGROUND_NICE = 10;

/** TOLLGATE_BACKGROUND_NICE: 0 (off) to 19. */
export function backgroundNiceFrom(env = process.env): number {
  const v = env.TOLLGATE_BACKGROUND_NICE;
  if (v === undefined || v === "") return DEFAULT_BACKGROUND_NICE;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 19)
    throw new Error(
      `TOLLGATE_BACKGROUND_NICE must be a whole number from 0 (off) to 19, got ${JSON.stringify(v)}`,
    );
  return n;
}

/**
 * Lowers the CPU priority of every thread of this process but the main one, which proxies and answers
 * requests: the store thread's appends and commits, DuckDB's workers, libuv's pool and V8's helpers then
 * give way to it when the cores are busy, instead of delaying the requests that arrive during a commit.
 * Linux only: there a thread id is a valid target of setpriority and niceness is per thread (elsewhere it
 * would lower the whole process, so nothing is done). Threads started later keep the default priority.
 * Returns how many threads were lowered.
 */
export function lowerBackgroundThreads(nice: number): number {
  if (nice === 0 || process.platform !== "linux" || !isMainThread) return 0;
  let lowered = 0;
  for (const entry of readdirSync("/proc/self/task")) {
    const tid = Number(entry);
    if (tid === process.pid) continue; // the main thread's id is the process id
    try {
      setPriority(tid, nice);
      lowered++;
    } catch {
      // The thread ended between listing and lowering it.
    }
  }
  return lowered;
}
