// A Realtime session's client has left with a response under way: the meter waits for its response.done
// (after a response.cancel) on the monotonic clock, so a step of the wall clock (NTP, a VM resumed) neither
// cuts the wait short, its cost then counted as a worst case, nor holds the upstream open for as long as the step.
import { setTimeout as sleep } from "node:timers/promises";
import { PricingEngine } from "@tollgate/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type MeterDeps, RealtimeMeter } from "../src/gateway/realtime-meter.js";

const HOUR_MS = 3_600_000;

/** A meter with one response under way, and the events it sent upstream. */
function meterWithPending() {
  const toUpstream: Record<string, unknown>[] = [];
  const deps = {
    engine: new PricingEngine(),
    guard: { admit: async () => ({ ok: true, ticket: {} }) },
  } as unknown as MeterDeps;
  const caller = { provider: "openai", workspaceId: "default", keyId: null, attribution: {}, depth: 0 };
  const meter = new RealtimeMeter(
    deps,
    { ...caller, modelRequested: "gpt-realtime" },
    { toUpstream: (e) => toUpstream.push(e), toClient: () => {} },
  );
  meter.onServerText(Buffer.from(JSON.stringify({ type: "response.created", response: { id: "resp_1" } })));
  return { meter, toUpstream };
}

/** The wall clock from now on, `offset` ms off the real one. */
function stepWallClock(offset: number): void {
  const real = Date.now;
  const at = real();
  vi.spyOn(Date, "now").mockImplementation(() => at + offset + (real() - at));
}

afterEach(() => vi.restoreAllMocks());

describe("RealtimeMeter.cancelPending", () => {
  it("a wall clock stepped forward does not cut the wait short", async () => {
    const { meter, toUpstream } = meterWithPending();
    let done = false;
    const waited = meter.cancelPending(400).then(() => (done = true));
    await sleep(50);
    expect(toUpstream).toEqual([{ type: "response.cancel", response_id: "resp_1" }]);
    stepWallClock(HOUR_MS);
    await sleep(150);
    expect(done).toBe(false);
    await waited;
  });

  it("a wall clock stepped back does not stretch it", async () => {
    const { meter } = meterWithPending();
    const started = performance.now();
    const waited = meter.cancelPending(100);
    stepWallClock(-HOUR_MS);
    const late = new AbortController();
    const stillWaiting = sleep(2_000, "still waiting", { signal: late.signal }).catch(() => "");
    expect(await Promise.race([waited.then(() => "done"), stillWaiting])).toBe("done");
    late.abort();
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
