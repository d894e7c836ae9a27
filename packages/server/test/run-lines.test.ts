// The lines of calls waiting for room under their agent run's ceilings: first come, first served; the first
// woken by a release here, else by its poll.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Place, RunLines } from "../src/gateway/run-lines.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const POLL_MS = 50;
/** A wait's deadline `ms` from now, on the clock waits are timed by (monotonic: performance.now()). */
const inMs = (ms: number) => performance.now() + ms;
const FAR = () => inMs(60_000);

/** Starts `place`'s next wait; `done` says whether it has ended. */
function waiting(place: Place, until = FAR()) {
  const w = { done: false };
  void place.next(until).then(() => {
    w.done = true;
  });
  return w;
}

/** Lets timers due within `ms` fire, and the promises they settle run. */
const pass = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

describe("run lines", () => {
  it("only the first in line polls; the others go in the order they came, each as the one before it leaves", async () => {
    const lines = new RunLines(POLL_MS);
    const [a, b, c] = [1, 2, 3].map(() => lines.join("ws", "run-1", lines.releases, lines.arrival())) as [
      Place,
      Place,
      Place,
    ];
    expect([a.first, b.first, c.first]).toEqual([true, false, false]);
    const [wa, wb, wc] = [waiting(a), waiting(b), waiting(c)];
    await pass(POLL_MS);
    expect([wa.done, wb.done, wc.done]).toEqual([true, false, false]);
    a.leave();
    await pass();
    expect([b.first, wb.done, wc.done]).toEqual([true, true, false]);
    // b waits again, now polling; c still waits its turn.
    const wb2 = waiting(b);
    await pass(POLL_MS);
    expect([wb2.done, wc.done]).toEqual([true, false]);
    b.leave();
    await pass();
    expect([c.first, wc.done]).toEqual([true, true]);
  });

  it("a call that came before others in line goes ahead of them: a gateway's retry keeps its call's place", async () => {
    const lines = new RunLines(POLL_MS);
    const [earliest, early, retried, late] = [1, 2, 3, 4].map(() => lines.arrival());
    const [a, b] = [early, late].map((at) => lines.join("ws", "run-1", lines.releases, at!)) as [
      Place,
      Place,
    ];
    const retry = lines.join("ws", "run-1", lines.releases, retried!);
    const [wb, wr] = [waiting(b), waiting(retry)];
    expect([a.first, retry.first, b.first]).toEqual([true, false, false]);
    a.leave();
    await pass();
    expect([retry.first, wr.done, wb.done]).toEqual([true, true, false]);
    const first = lines.join("ws", "run-1", lines.releases, earliest!);
    expect([first.first, retry.first]).toEqual([true, false]);
  });

  it("a call admitted outside the line leaves room for the first in line's hold when that one came before it", () => {
    const lines = new RunLines(POLL_MS);
    const [earliest, retried, fresh] = [1, 2, 3].map(() => lines.arrival()) as [number, number, number];
    const hold = (cost: bigint) => ({ cost_nanousd: cost, total_tokens: 0 });
    expect(lines.toLeave("ws", "run-1", fresh)).toBeNull(); // nobody waits
    const retry = lines.join("ws", "run-1", lines.releases, retried, hold(500n));
    expect(lines.toLeave("ws", "run-1", fresh)).toEqual(hold(500n));
    expect(lines.toLeave("ws", "run-1", retried)).toBeNull(); // its own place
    expect(lines.toLeave("ws", "run-2", fresh)).toBeNull(); // another run's line
    expect(lines.toLeave("ws-2", "run-1", fresh)).toBeNull(); // another workspace's
    // A call that came earlier joins ahead of the retry: the room to leave is its.
    const first = lines.join("ws", "run-1", lines.releases, earliest, hold(700n));
    expect(lines.toLeave("ws", "run-1", fresh)).toEqual(hold(700n));
    expect(lines.toLeave("ws", "run-1", retried)).toEqual(hold(700n));
    first.leave();
    retry.leave();
    expect(lines.toLeave("ws", "run-1", fresh)).toBeNull();
  });

  it("each place hears the figures its line was refused on last, whoever in it was refused", () => {
    const lines = new RunLines(POLL_MS);
    const figures = (used: string) => ({
      ceiling: "cost_nanousd" as const,
      used,
      held: "900",
      limit: "1000",
    });
    const a = lines.join("ws", "run-1", lines.releases, lines.arrival());
    a.heard(figures("0"));
    const b = lines.join("ws", "run-1", lines.releases, lines.arrival());
    b.heard(figures("10"));
    expect(a.lastHeard).toEqual(figures("10"));
    a.heard(figures("50")); // the first tried again
    expect(b.lastHeard).toEqual(figures("50"));
    const other = lines.join("ws", "run-2", lines.releases, lines.arrival());
    other.heard(figures("70"));
    expect(b.lastHeard).toEqual(figures("50"));
  });

  it("a refusal for the room its call had to leave (`kept`) is that call's own: the others in line hear the run's last refusal for its holds alone", () => {
    const lines = new RunLines(POLL_MS);
    const full = (used: string) => ({ ceiling: "cost_nanousd" as const, used, held: "900", limit: "1000" });
    const kept = { ceiling: "cost_nanousd" as const, used: "0", held: "0", limit: "1000", kept: "40" };
    const first = lines.join("ws", "run-1", lines.releases, lines.arrival());
    first.heard(full("0"));
    const second = lines.join("ws", "run-1", lines.releases, lines.arrival());
    second.heard(full("10"));
    const third = lines.join("ws", "run-1", lines.releases, lines.arrival());
    third.heard(kept); // room for itself, none left for the first: a refusal of its own
    expect(third.lastHeard).toEqual(kept);
    expect(first.lastHeard).toEqual(full("10")); // not told the room it is itself left
    expect(second.lastHeard).toEqual(full("10")); // nor a room its own hold need not fill
    first.heard(full("50")); // the first tried again: the run full, for every call in line
    expect([second.lastHeard, third.lastHeard]).toEqual([full("50"), full("50")]);
  });

  it("a release of the run wakes its first in line at once, and no one else", async () => {
    const lines = new RunLines(60_000); // no poll within the test: only a release ends the wait
    const a = lines.join("ws", "run-1", lines.releases, lines.arrival());
    const b = lines.join("ws", "run-1", lines.releases, lines.arrival());
    const other = lines.join("ws", "run-2", lines.releases, lines.arrival());
    const elsewhere = lines.join("ws-2", "run-1", lines.releases, lines.arrival());
    const [wa, wb, wo, we] = [waiting(a), waiting(b), waiting(other), waiting(elsewhere)];
    lines.released("ws", "run-1");
    await pass();
    expect([wa.done, wb.done, wo.done, we.done]).toEqual([true, false, false, false]);
    // Released while the first was not waiting (trying its admission): its next wait ends at once.
    lines.released("ws", "run-1");
    const wa2 = waiting(a);
    await pass();
    expect(wa2.done).toBe(true);
    lines.released("ws", "run-3"); // a run nobody waits for
  });

  it("a call that joins after a release heard since its admission began tries again at once", async () => {
    const lines = new RunLines(60_000); // no poll within the test: only a release ends the wait
    const before = lines.releases;
    lines.released("ws", "run-1"); // as its admission was answered: there was no line to wake
    const late = waiting(lines.join("ws", "run-1", before, lines.arrival()));
    const untouched = waiting(lines.join("ws", "run-2", lines.releases, lines.arrival()));
    await pass();
    expect([late.done, untouched.done]).toEqual([true, false]);
  });

  it("a wait never outlasts its deadline, the first's poll included", async () => {
    const lines = new RunLines(POLL_MS);
    const a = lines.join("ws", "run-1", lines.releases, lines.arrival());
    const b = lines.join("ws", "run-1", lines.releases, lines.arrival());
    const wa = waiting(a, inMs(20));
    const wb = waiting(b, inMs(30));
    await pass(19);
    expect([wa.done, wb.done]).toEqual([false, false]);
    await pass(1);
    expect([wa.done, wb.done]).toEqual([true, false]);
    await pass(10);
    expect(wb.done).toBe(true);
    const past = waiting(a, inMs(-1));
    await pass();
    expect(past.done).toBe(true);
  });

  it("a wait ends at its deadline whichever way the wall clock steps meanwhile (NTP)", async () => {
    const lines = new RunLines(60_000); // no poll within the test: only the deadline ends the wait
    const a = lines.join("ws", "run-1", lines.releases, lines.arrival());
    const until = inMs(1_000);
    vi.setSystemTime(Date.now() + 3_600_000); // an hour forward: the wait is not cut short
    const forward = waiting(a, until);
    await pass(999);
    expect(forward.done).toBe(false);
    await pass(1);
    expect(forward.done).toBe(true);
    const again = inMs(1_000);
    vi.setSystemTime(Date.now() - 7_200_000); // two hours back: nor is it made longer
    const back = waiting(a, again);
    await pass(1_000);
    expect(back.done).toBe(true);
  });

  it("closing ends every wait, and one begun after it at once", async () => {
    const lines = new RunLines(POLL_MS);
    const a = lines.join("ws", "run-1", lines.releases, lines.arrival());
    const b = lines.join("ws", "run-2", lines.releases, lines.arrival());
    const [wa, wb] = [waiting(a), waiting(b)];
    lines.close();
    await pass();
    expect([lines.closed, wa.done, wb.done]).toEqual([true, true, true]);
    const late = waiting(lines.join("ws", "run-1", lines.releases, lines.arrival()));
    await pass();
    expect(late.done).toBe(true);
  });

  it("leaving twice changes nothing; a line left empty starts afresh", async () => {
    const lines = new RunLines(POLL_MS);
    const a = lines.join("ws", "run-1", lines.releases, lines.arrival());
    const b = lines.join("ws", "run-1", lines.releases, lines.arrival());
    b.leave();
    b.leave();
    expect(a.first).toBe(true);
    a.leave();
    const c = lines.join("ws", "run-1", lines.releases, lines.arrival());
    expect(c.first).toBe(true);
    const wc = waiting(c);
    await pass(POLL_MS);
    expect(wc.done).toBe(true);
  });
});
