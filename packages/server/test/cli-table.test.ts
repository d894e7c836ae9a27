// The CLI's table helpers on their own: alignment, and percentages at their edges.
import { describe, expect, it } from "vitest";
import { percent, percentChange, renderTable } from "../src/cli/table.js";

describe("renderTable", () => {
  it('a column of figures stays right-aligned when a row has none ("-", a cost per request without requests)', () => {
    const out = renderTable(
      ["feature", "cost/request"],
      [
        ["search", "$10.000000"],
        ["tools-only", "-"],
        ["chat", "$1.500000"],
      ],
    );
    expect(out.split("\n")).toEqual([
      "feature     cost/request",
      "----------  ------------",
      "search        $10.000000",
      "tools-only             -",
      "chat           $1.500000",
    ]);
  });

  it('a column of "-" alone, or of words, is left-aligned', () => {
    expect(renderTable(["a", "b"], [["-", "x"]]).split("\n")[2]).toBe("-  x");
  });
});

describe("percent and percentChange", () => {
  it("nothing of nothing, half-up on integers, past 2^53, and falls", () => {
    expect(percent(0n, 0n)).toBe("0.0%");
    expect(percent(3n, 2_000n)).toBe("0.2%");
    expect(percent(10n ** 30n, 10n ** 30n * 3n)).toBe("33.3%");
    expect(percent(10n ** 30n, 1n)).toBe(`${10n ** 32n}.0%`);
    expect(percentChange(1_000n, 2_000n)).toBe("-50.0%");
    expect(percentChange(0n, 5n)).toBe("-100.0%");
    expect(percentChange(5n, 0n)).toBe("-");
    expect(percentChange(2_003n, 2_000n)).toBe("+0.2%");
  });
});
