import { describe, expect, it } from "vitest";
import {
  concentration,
  daysUntilExhausted,
  nearestRank,
  type PeriodCell,
  project,
  sortBigints,
  splitVariance,
} from "../src/index.js";
import { rng } from "./rng.js";

describe("splitVariance", () => {
  it("a worked example: twice the requests at the same mix and rate is all volume", () => {
    const before: PeriodCell[] = [
      { key: "chat", requests: 100, cost_nanousd: 1_000_000n },
      { key: "search", requests: 50, cost_nanousd: 250_000n },
    ];
    const after = before.map((c) => ({ ...c, requests: c.requests * 2, cost_nanousd: c.cost_nanousd * 2n }));
    const v = splitVariance(before, after);
    expect(v).toMatchObject({
      change_nanousd: 1_250_000n,
      volume_nanousd: 1_250_000n,
      mix_nanousd: 0n,
      rate_nanousd: 0n,
    });
  });

  it("a price rise on the same traffic is all rate; a shift to a dearer feature is mix", () => {
    const before: PeriodCell[] = [
      { key: "chat", requests: 100, cost_nanousd: 1_000_000n },
      { key: "search", requests: 100, cost_nanousd: 100_000n },
    ];
    const dearer = splitVariance(before, [
      { key: "chat", requests: 100, cost_nanousd: 1_500_000n },
      { key: "search", requests: 100, cost_nanousd: 100_000n },
    ]);
    expect(dearer).toMatchObject({
      change_nanousd: 500_000n,
      volume_nanousd: 0n,
      mix_nanousd: 0n,
      rate_nanousd: 500_000n,
    });
    expect(dearer.segments[0]).toMatchObject({ key: "chat", rate_nanousd: 500_000n });
    const shifted = splitVariance(before, [
      { key: "chat", requests: 150, cost_nanousd: 1_500_000n },
      { key: "search", requests: 50, cost_nanousd: 50_000n },
    ]);
    // same 200 requests, same cost per request per feature: the change is the mix moving to chat
    expect(shifted).toMatchObject({
      change_nanousd: 450_000n,
      volume_nanousd: 0n,
      rate_nanousd: 0n,
      mix_nanousd: 450_000n,
    });
  });

  it("new and vanished segments: a new one is all mix, a vanished one loses exactly its spend", () => {
    const v = splitVariance(
      [{ key: "old", requests: 3, cost_nanousd: 1_000n }],
      [{ key: "new", requests: 7, cost_nanousd: 4_321n }],
    );
    const byKey = Object.fromEntries(v.segments.map((s) => [s.key, s]));
    expect(byKey.new).toMatchObject({
      change_nanousd: 4_321n,
      volume_nanousd: 0n,
      mix_nanousd: 4_321n,
      rate_nanousd: 0n,
    });
    expect(byKey.old!.change_nanousd).toBe(-1_000n);
    expect(byKey.old!.volume_nanousd + byKey.old!.mix_nanousd + byKey.old!.rate_nanousd).toBe(-1_000n);
    expect(byKey.old!.rate_nanousd).toBe(0n);
  });

  it("on 500 random cases the parts add up exactly, per segment and in total, to the change", () => {
    const r = rng(7);
    for (let c = 0; c < 500; c++) {
      const keys = Array.from({ length: 1 + Math.floor(r() * 8) }, (_, i) => `k${i}`);
      const cells = () =>
        keys
          .filter(() => r() > 0.2)
          .map((key) => ({
            key,
            requests: Math.floor(r() * 10_000),
            cost_nanousd: BigInt(Math.floor(r() * 1e12)),
          }))
          .map((x) => (x.requests === 0 ? { ...x, cost_nanousd: 0n } : x));
      const before = cells();
      const after = cells();
      const v = splitVariance(before, after);
      const total = (xs: PeriodCell[]) => xs.reduce((a, x) => a + x.cost_nanousd, 0n);
      expect(v.change_nanousd).toBe(total(after) - total(before));
      expect(v.volume_nanousd + v.mix_nanousd + v.rate_nanousd).toBe(v.change_nanousd);
      for (const s of v.segments)
        expect(s.volume_nanousd + s.mix_nanousd + s.rate_nanousd, String(s.key)).toBe(s.change_nanousd);
      for (let i = 1; i < v.segments.length; i++) {
        const abs = (x: bigint) => (x < 0n ? -x : x);
        expect(abs(v.segments[i - 1]!.change_nanousd) >= abs(v.segments[i]!.change_nanousd)).toBe(true);
      }
    }
  });
});

describe("concentration, percentiles, forecast", () => {
  it("top-N share and HHI", () => {
    expect(concentration([100n, 0n], 1)).toMatchObject({ tenants: 1, top_share: 1, hhi: 1 });
    const even = concentration([25n, 25n, 25n, 25n], 2);
    expect(even).toMatchObject({ tenants: 4, top_share: 0.5, hhi: 0.25, total_nanousd: 100n });
    expect(concentration([], 3)).toMatchObject({ tenants: 0, top_share: 0, hhi: 0 });
  });

  it("nearest-rank percentiles are always one of the values", () => {
    const xs = sortBigints([5n, 1n, 4n, 2n, 3n]);
    expect([50, 90, 99, 100, 0].map((p) => nearestRank(xs, p))).toEqual([3n, 5n, 5n, 5n, 1n]);
    expect(nearestRank([], 50)).toBeNull();
    expect(nearestRank(sortBigints(Array.from({ length: 100 }, (_, i) => BigInt(i + 1))), 99)).toBe(99n);
  });

  it("projection: run rate from the trailing week, an interval that widens with days left", () => {
    const flat = Array.from({ length: 10 }, (_, i) => ({
      day: `2026-11-${10 + i}`,
      cost_nanousd: 1_000_000_000n,
    }));
    const p = project(flat, 20_000_000_000n, 10);
    expect(p).toMatchObject({
      run_rate_nanousd: 1_000_000_000n,
      projected_nanousd: 30_000_000_000n,
      window_days: 7,
    });
    expect(p.low_nanousd).toBe(p.projected_nanousd); // no day-to-day spread, no interval
    const bumpy = flat.map((d, i) => ({ ...d, cost_nanousd: i % 2 ? 2_000_000_000n : 0n }));
    const q = project(bumpy, 0n, 4);
    expect(q.high_nanousd - q.projected_nanousd).toBe(q.projected_nanousd - q.low_nanousd);
    expect(q.high_nanousd > q.projected_nanousd).toBe(true);
    expect(project(bumpy, 0n, 16).high_nanousd - project(bumpy, 0n, 16).projected_nanousd).toBeGreaterThan(
      q.high_nanousd - q.projected_nanousd,
    );
    expect(project([], 5n, 3)).toMatchObject({ projected_nanousd: 5n, run_rate_nanousd: 0n });
    expect(daysUntilExhausted(10n, 4n)).toBe(2.5);
    expect(daysUntilExhausted(10n, 0n)).toBeNull();
    expect(daysUntilExhausted(-1n, 4n)).toBe(0);
  });

  it("projection: today ends at no less than it has spent so far, nor the month below what is spent", () => {
    const flat = Array.from({ length: 7 }, (_, i) => ({ day: `2026-11-${10 + i}`, cost_nanousd: 1_000n }));
    // A spike today, the last day of the month: the month is already past the run rate's projection.
    expect(project(flat, 20_000n, 1, 5_000n)).toMatchObject({
      projected_nanousd: 25_000n,
      low_nanousd: 25_000n,
    });
    // Today below the run rate: projected at the rate, as before.
    expect(project(flat, 20_000n, 3, 400n)).toMatchObject({ projected_nanousd: 23_000n });
    // No complete day yet (a new workspace): what today spent, not nothing.
    expect(project([], 0n, 3, 700n)).toMatchObject({
      projected_nanousd: 700n,
      low_nanousd: 700n,
      high_nanousd: 700n,
    });
    const bumpy = flat.map((d, i) => ({ ...d, cost_nanousd: i % 2 ? 2_000_000_000n : 0n }));
    expect(project(bumpy, 0n, 2, 3_000_000_000n).low_nanousd).toBeGreaterThanOrEqual(3_000_000_000n);
  });
});
