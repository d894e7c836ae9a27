// RetryQueue: limit-backend writes that failed, retried until the backend answers, in order; bounded; and a
// shutdown that a backend still down does not hold for each write.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RetryQueue } from "../src/limits/retry-queue.js";

/** A write that fails `failures` times, then succeeds; how often it ran. */
function flaky(failures: number) {
  const job = {
    runs: 0,
    run: async () => {
      job.runs++;
      if (job.runs <= failures) throw new Error("backend down");
    },
  };
  return job;
}

describe("RetryQueue", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("retries a write with growing waits until it succeeds, then runs the next in order", async () => {
    const q = new RetryQueue(() => {});
    const first = flaky(2);
    const second = flaky(0);
    q.push("first", first.run);
    q.push("second", second.run);
    await vi.advanceTimersByTimeAsync(100); // fails
    expect([first.runs, second.runs]).toEqual([1, 0]);
    await vi.advanceTimersByTimeAsync(200); // fails again
    expect([first.runs, second.runs]).toEqual([2, 0]);
    await vi.advanceTimersByTimeAsync(400); // succeeds, and the next goes at once
    expect([first.runs, second.runs]).toEqual([3, 1]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect([first.runs, second.runs]).toEqual([3, 1]);
  });

  it("writes now while nothing waits; a write that fails, and those made while it waits, queue in order", async () => {
    const log: string[] = [];
    const q = new RetryQueue((m) => log.push(m));
    const [now, failing, behind] = [flaky(0), flaky(1), flaky(0)];
    await q.write("now", now.run);
    await q.write("failing", failing.run);
    await q.write("behind", behind.run); // not tried: it would land before the one that failed
    expect([now.runs, failing.runs, behind.runs]).toEqual([1, 1, 0]);
    expect(log).toEqual(["limits: failing failed, retrying until the backend answers: backend down"]);
    await vi.advanceTimersByTimeAsync(100);
    expect([now.runs, failing.runs, behind.runs]).toEqual([1, 2, 1]);
  });

  it("tells whoever waits on a write that it is given up: dropped, or left at shutdown", async () => {
    const given: string[] = [];
    const q = new RetryQueue(() => {}, 2);
    for (const what of ["a", "b", "c"]) q.push(what, flaky(5).run, () => given.push(what));
    expect(given).toEqual(["a"]);
    await q.flush();
    expect(given).toEqual(["a", "b", "c"]);
  });

  it("keeps at most `max`, dropping the oldest and saying so", async () => {
    const log: string[] = [];
    const q = new RetryQueue((m) => log.push(m), 2);
    const jobs = [flaky(0), flaky(0), flaky(0)];
    for (const [i, j] of jobs.entries()) q.push(`write ${i}`, j.run);
    expect(log).toEqual(["limits: too many writes waiting, dropped write 0"]);
    await vi.advanceTimersByTimeAsync(100);
    expect(jobs.map((j) => j.runs)).toEqual([0, 1, 1]);
  });

  it("at shutdown tries the writes once more, stopping at the first the backend still refuses", async () => {
    const log: string[] = [];
    const q = new RetryQueue((m) => log.push(m));
    const jobs = [flaky(0), flaky(5), flaky(0), flaky(0)];
    for (const [i, j] of jobs.entries()) q.push(`write ${i}`, j.run);
    await q.flush();
    expect(jobs.map((j) => j.runs)).toEqual([1, 1, 0, 0]);
    expect(log).toEqual(["limits: gave up on 3 writes the backend never took"]);
    await vi.advanceTimersByTimeAsync(10_000); // nothing left to retry
    expect(jobs.map((j) => j.runs)).toEqual([1, 1, 0, 0]);
  });
});
