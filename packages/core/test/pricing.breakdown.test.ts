// The cost of a call is summed in plain numbers when that is exact, in BigInts otherwise: the two must
// agree to the nano-dollar on every input the numbers path accepts, and it must refuse the rest.
import { describe, expect, it } from "vitest";
import { costInBigInts, costInNumbers, type PricedLine } from "../src/pricing/breakdown.js";
import { COST_CATEGORIES } from "../src/pricing/index.js";
import { rng } from "./rng.js";

const line = (category: PricedLine["category"], qty: number, units: bigint, scale: number): PricedLine => ({
  category,
  qty,
  price: { units, scale },
  nanoPerUnit: category === "requests" ? 1_000_000 : 1000,
  unitDen: 1,
});
/** Milliseconds of audio at `units`/10^scale USD an hour (2500/9 nano-USD per ms at $1 an hour). */
const audioMs = (qty: number, units: bigint, scale: number): PricedLine => ({
  category: "input_audio",
  qty,
  price: { units, scale },
  nanoPerUnit: 2500,
  unitDen: 9,
});

describe("cost breakdown sums", () => {
  it("agree on 50,000 random calls, rounding and apportioning included", () => {
    const rand = rng(42);
    const int = (max: number) => Math.floor(rand() * max);
    let inNumbers = 0;
    for (let i = 0; i < 50_000; i++) {
      const lines: PricedLine[] = [];
      for (let k = int(6); k >= 0; k--) {
        const category = COST_CATEGORIES[int(COST_CATEGORIES.length)]!;
        // Quantities from a token to a billion, prices from exact cents to long fractions and huge units.
        const qty = 1 + int([10, 10_000, 2_000_000, 1_000_000_000][int(4)]!);
        const units = BigInt(int([10, 1000, 100_000][int(3)]!)) * (int(20) === 0 ? 10n ** 10n : 1n);
        const scale = int(int(10) === 0 ? 20 : 7);
        lines.push(int(8) === 0 ? audioMs(qty, units, scale) : line(category, qty, units, scale));
      }
      const fast = costInNumbers(lines);
      if (fast === null) continue;
      inNumbers++;
      expect(fast).toEqual(costInBigInts(lines));
    }
    // Both paths must really be taken, or this test proves nothing.
    expect(inNumbers).toBeGreaterThan(15_000);
    expect(inNumbers).toBeLessThan(45_000);
  });

  it("round a half up and give the missing nano-dollars to the largest remainders, ties in line order", () => {
    // 3 × 0.5 nano-USD: the total 1.5 rounds to 2, so two of the three halves get the nano-dollar.
    const halves = [line("input_uncached", 1, 5n, 4), line("cache_read", 1, 5n, 4), line("output", 1, 5n, 4)];
    const fast = costInNumbers(halves)!;
    expect(fast.total_nanousd).toBe(2n);
    expect([fast.by_category.input_uncached, fast.by_category.cache_read, fast.by_category.output]).toEqual([
      1n,
      1n,
      0n,
    ]);
    expect(fast).toEqual(costInBigInts(halves));
  });

  it("price milliseconds of audio at an hourly rate exactly, one rounding for the whole call", () => {
    // whisper-1, $0.36 an hour: 9 s = $0.0009.
    expect(costInNumbers([audioMs(9_000, 36n, 2)])!.total_nanousd).toBe(900_000n);
    // $0.111 an hour (not a whole nano-dollar a second): 1 s = 30,833.33… nano-USD, rounded once.
    const groq = [audioMs(1_000, 111n, 3)];
    expect(costInNumbers(groq)!.total_nanousd).toBe(30_833n);
    expect(costInBigInts(groq).total_nanousd).toBe(30_833n);
    // A third of a nano-dollar each: summed before rounding (0.66… → 1), not rounded per line (0 + 0).
    const thirds = [audioMs(3, 4n, 4), { ...audioMs(3, 4n, 4), category: "output" as const }];
    const fast = costInNumbers(thirds)!;
    expect(fast).toEqual(costInBigInts(thirds));
    expect(fast.total_nanousd).toBe(1n);
  });

  it("refuse what numbers cannot hold exactly, and the BigInt path still sums it", () => {
    const huge = [line("output", 1_000_000_000, 10n ** 12n, 0)];
    expect(costInNumbers(huge)).toBeNull();
    expect(costInBigInts(huge).total_nanousd).toBe(10n ** 24n);
    const unsafeUnits = [line("output", 1, 2n ** 60n, 0)];
    expect(costInNumbers(unsafeUnits)).toBeNull();
    expect(costInNumbers([line("output", 1, 1n, 16)])).toBeNull();
    expect(costInNumbers([line("output", 1.5, 1n, 0)])).toBeNull();
  });
});
