import { describe, expect, it } from "vitest";
import {
  apportion,
  decimalToString,
  formatUsd,
  parseDecimal,
  parseNano,
  roundHalfUp,
  usdToNano,
} from "../src/money/index.js";

describe("decimal", () => {
  it("parses plain and exponent notation exactly", () => {
    expect(parseDecimal("0.025")).toEqual({ units: 25n, scale: 3 });
    expect(parseDecimal("9.1364e-05")).toEqual({ units: 91364n, scale: 9 });
    expect(parseDecimal("1.5E3")).toEqual({ units: 1500n, scale: 0 });
    expect(decimalToString(parseDecimal("-0.000100"))).toBe("-0.0001");
  });
  it("rejects what is not a decimal", () => {
    for (const bad of ["", "abc", "1.2.3", "NaN", "Infinity", "0x10", "1e999"]) {
      expect(() => parseDecimal(bad), bad).toThrow();
    }
  });
});

describe("nano-USD", () => {
  it("converts USD strings with half-up rounding at the 9th digit", () => {
    expect(usdToNano("1.23")).toBe(1_230_000_000n);
    expect(usdToNano("0.0000000005")).toBe(1n);
    expect(usdToNano("0.0000000004999")).toBe(0n);
  });
  it("formats with the precision asked for", () => {
    expect(formatUsd(1_161_000n)).toBe("0.001161");
    expect(formatUsd(1_000_000_000n)).toBe("1.00");
    expect(formatUsd(1_234_567_891n, 2)).toBe("1.23");
    expect(formatUsd(5_000_000n, 2)).toBe("0.01");
    expect(formatUsd(-15n)).toBe("-0.000000015");
  });
  it("rounds halves away from zero", () => {
    expect(roundHalfUp(5n, 10n)).toBe(1n);
    expect(roundHalfUp(-5n, 10n)).toBe(-1n);
    expect(roundHalfUp(4n, 10n)).toBe(0n);
  });
  it("parses integer nano values from numbers and strings, rejecting unsafe ones", () => {
    expect(parseNano(42)).toBe(42n);
    expect(parseNano("9223372036854775807")).toBe(9223372036854775807n);
    expect(() => parseNano(2 ** 60)).toThrow(/2\^53/);
    expect(() => parseNano(1.5)).toThrow();
    expect(() => parseNano("9223372036854775808")).toThrow(/int64/);
  });
  it("sums ten million small costs to the cent with integer arithmetic", () => {
    let sum = 0n;
    for (let i = 0; i < 10_000_000; i++) sum += 1_161n + BigInt(i % 7);
    expect(formatUsd(sum, 2)).toBe("11.64");
  });
});

describe("apportion", () => {
  it("keeps every part within 1 of its exact share and the parts summing to the rounded total", () => {
    const den = 1000n;
    const shares = [1500n, 1500n, 1500n, 0n, 2999n];
    const { total, parts } = apportion(shares, den);
    expect(total).toBe(roundHalfUp(7499n, den));
    expect(parts.reduce((a, b) => a + b, 0n)).toBe(total);
    shares.forEach((s, i) => {
      const exact = Number(s) / 1000;
      expect(Math.abs(Number(parts[i]) - exact)).toBeLessThan(1);
    });
  });
});
