import { roundHalfUp } from "../money/nanousd.js";
import { keyOrder } from "./key-order.js";

/** One segment (a feature, customer, model, …) of one period: how many requests, what they cost. */
export interface PeriodCell {
  key: string | null;
  requests: number;
  cost_nanousd: bigint;
}

/** A segment's change in spend, split into the part of each driver. volume + mix + rate = change, exactly. */
export interface SegmentVariance {
  key: string | null;
  before: { requests: number; cost_nanousd: bigint };
  after: { requests: number; cost_nanousd: bigint };
  change_nanousd: bigint;
  /** More (or fewer) requests in total, at the segment's old share and old cost per request. */
  volume_nanousd: bigint;
  /** The segment's share of requests moved, at its old cost per request (all of a new segment's spend). */
  mix_nanousd: bigint;
  /** The segment's cost per request changed, on its new request count. */
  rate_nanousd: bigint;
}

export interface VarianceSplit {
  before: { requests: number; cost_nanousd: bigint };
  after: { requests: number; cost_nanousd: bigint };
  change_nanousd: bigint;
  volume_nanousd: bigint;
  mix_nanousd: bigint;
  rate_nanousd: bigint;
  /** Largest absolute change first. */
  segments: SegmentVariance[];
}

/**
 * Splits the change in spend between two periods into volume, mix and rate (cost per request) effects,
 * per segment and in total. With N requests, S spend, shares s = Nᵢ/N and costs per request cᵢ = Sᵢ/Nᵢ:
 *   volumeᵢ = (N₁ − N₀)·s₀ᵢ·c₀ᵢ,   mixᵢ = N₁·(s₁ᵢ − s₀ᵢ)·c₀ᵢ,   rateᵢ = N₁ᵢ·(c₁ᵢ − c₀ᵢ),
 * which add up to S₁ᵢ − S₀ᵢ. A segment new in the second period has no old cost per request: its
 * whole spend is mix. Volume and mix are rounded half-up to the nano-USD; rate takes the remainder,
 * so every segment's parts, and the totals, add up to the change exactly.
 */
export function splitVariance(before: readonly PeriodCell[], after: readonly PeriodCell[]): VarianceSplit {
  const cells = new Map<string | null, { b: PeriodCell | undefined; a: PeriodCell | undefined }>();
  for (const b of before) cells.set(b.key, { b, a: undefined });
  for (const a of after) cells.set(a.key, { b: cells.get(a.key)?.b, a });
  const N0 = BigInt(sum(before, (c) => c.requests));
  const N1 = BigInt(sum(after, (c) => c.requests));

  const segments: SegmentVariance[] = [];
  for (const [key, { b, a }] of cells) {
    const n0 = BigInt(b?.requests ?? 0);
    const s0 = b?.cost_nanousd ?? 0n;
    const n1 = BigInt(a?.requests ?? 0);
    const s1 = a?.cost_nanousd ?? 0n;
    const change = s1 - s0;
    let volume = 0n;
    let mix: bigint;
    if (n0 === 0n) {
      mix = change; // new segment (or one without requests before): c₀ᵢ := c₁ᵢ, so no rate effect
    } else {
      volume = roundHalfUp((N1 - N0) * s0, N0);
      // N₁ᵢ·S₀ᵢ/N₀ᵢ − N₁·S₀ᵢ/N₀ as one fraction, rounded once
      mix = roundHalfUp(s0 * (n1 * N0 - N1 * n0), n0 * N0);
    }
    segments.push({
      key,
      before: { requests: Number(n0), cost_nanousd: s0 },
      after: { requests: Number(n1), cost_nanousd: s1 },
      change_nanousd: change,
      volume_nanousd: volume,
      mix_nanousd: mix,
      rate_nanousd: change - volume - mix,
    });
  }
  segments.sort((x, y) => cmpAbs(y.change_nanousd, x.change_nanousd) || keyOrder(x.key, y.key));
  return { ...sumVariance(segments), segments };
}

/**
 * Segments' changes added up: before, after and each part. Over all of a split's segments it is the
 * split's total; over some, what they add to it (the drivers a list leaves out, say).
 */
export function sumVariance(segments: readonly SegmentVariance[]): Omit<SegmentVariance, "key"> {
  const total = (f: (s: SegmentVariance) => bigint) => segments.reduce((acc, s) => acc + f(s), 0n);
  return {
    before: {
      requests: sum(segments, (s) => s.before.requests),
      cost_nanousd: total((s) => s.before.cost_nanousd),
    },
    after: {
      requests: sum(segments, (s) => s.after.requests),
      cost_nanousd: total((s) => s.after.cost_nanousd),
    },
    change_nanousd: total((s) => s.change_nanousd),
    volume_nanousd: total((s) => s.volume_nanousd),
    mix_nanousd: total((s) => s.mix_nanousd),
    rate_nanousd: total((s) => s.rate_nanousd),
  };
}

function sum<T>(xs: readonly T[], f: (x: T) => number): number {
  let s = 0;
  for (const x of xs) s += f(x);
  return s;
}

function cmpAbs(a: bigint, b: bigint): number {
  const x = a < 0n ? -a : a;
  const y = b < 0n ? -b : b;
  return x < y ? -1 : x > y ? 1 : 0;
}
