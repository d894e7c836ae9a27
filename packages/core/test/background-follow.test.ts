// BackgroundFollower: the gateway's own polls of background responses no client polls. Timers are
// vitest's fake ones; each poll says what it found.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BackgroundFollower, type FollowOutcome, pollOutcomeOf } from "../src/usage/background-follow.js";

const times = { firstMs: 1_000, maxMs: 4_000, giveUpMs: 20_000 };

/** A poll that answers `outcomes` in turn (then "running"), and when each was asked (ms since the start). */
function scripted(...outcomes: FollowOutcome[]) {
  const at: number[] = [];
  const start = Date.now();
  const poll = async () => {
    at.push(Date.now() - start);
    return outcomes.shift() ?? "running";
  };
  return { poll, at };
}

describe("BackgroundFollower", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("polls after firstMs, then at doubling intervals up to maxMs, until it is found finished", async () => {
    const f = new BackgroundFollower(times);
    const s = scripted("running", "running", "running", "running", "finished");
    const counts: number[] = [];
    f.follow("resp_1", (n) => {
      counts.push(n);
      return s.poll();
    });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(s.at).toEqual([1_000, 3_000, 7_000, 11_000, 15_000]);
    expect(counts).toEqual([1, 2, 3, 4, 5]);
    expect(f.size).toBe(0);
  });

  it("stops at once when the response is gone, and gives up giveUpMs after the submission", async () => {
    const f = new BackgroundFollower(times);
    const gone = scripted("running", "gone");
    f.follow("resp_gone", gone.poll);
    const forever = scripted();
    f.follow("resp_forever", forever.poll);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(gone.at).toEqual([1_000, 3_000]);
    // 1, 3, 7, 11, 15, 19 s: the next would come past 20 s.
    expect(forever.at).toEqual([1_000, 3_000, 7_000, 11_000, 15_000, 19_000]);
    expect(f.size).toBe(0);
  });

  it("a client's poll puts the next one off by a full turn; a failed poll counts as still running", async () => {
    const f = new BackgroundFollower(times);
    const at: number[] = [];
    let calls = 0;
    f.follow("resp_2", async () => {
      at.push(Date.now());
      if (++calls === 1) throw new Error("upstream down");
      return "finished";
    });
    const start = Date.now();
    await vi.advanceTimersByTimeAsync(900);
    f.seen("resp_2"); // at 0.9 s: the first poll moves to 1.9 s
    await vi.advanceTimersByTimeAsync(5_000);
    expect(at.map((t) => t - start)).toEqual([1_900, 3_900]);
    expect(f.size).toBe(0);
  });

  it("follows an id once, never polls with firstMs 0, and polls nothing after close", async () => {
    const f = new BackgroundFollower(times);
    const a = scripted("finished");
    const b = scripted("finished");
    f.follow("resp_3", a.poll);
    f.follow("resp_3", b.poll);
    const off = new BackgroundFollower({ ...times, firstMs: 0 });
    const c = scripted("finished");
    off.follow("resp_4", c.poll);
    const closed = new BackgroundFollower(times);
    const d = scripted("finished");
    closed.follow("resp_5", d.poll);
    closed.close();
    closed.follow("resp_6", d.poll); // after close: not followed either
    await vi.advanceTimersByTimeAsync(10_000);
    expect([a.at, b.at, c.at, d.at]).toEqual([[1_000], [], [], []]);
    expect([off.size, closed.size]).toEqual([0, 0]);
  });
});

describe("pollOutcomeOf", () => {
  it("a deleted response, or one the key may not read, is gone; any other failure is asked again", () => {
    for (const s of [404, 401, 403]) expect(pollOutcomeOf(s)).toBe("gone");
    for (const s of [429, 500, 502, 503, undefined, "404"]) expect(pollOutcomeOf(s)).toBe("running");
  });
});
