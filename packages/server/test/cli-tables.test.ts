// The CLI's tables as a terminal shows them: names as recorded (any language, emoji, and whatever an app's
// caller put in an attribution header), columns that line up, and figures right-aligned.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cliOnScratchDir } from "./cli-run.js";
import { validRecord } from "./helpers.js";

const { dir, tollgate } = cliOnScratchDir("tollgate-cli-tables-");
const DAY = 86_400_000;

async function ingest(name: string, records: Record<string, unknown>[]): Promise<void> {
  const file = join(dir, `${name}.jsonl`);
  writeFileSync(
    file,
    records.map((r) => JSON.stringify(validRecord({ data_mode: "test", ...r }))).join("\n"),
  );
  const r = await tollgate("ingest", file, "--json");
  expect(r.code, r.err).toBe(0);
}

/** The table's line whose first cell is `key`. */
const rowOf = (out: string, key: string) => out.split("\n").find((l) => l.startsWith(`${key} `))!;

describe("table cells", () => {
  it("line up by what a terminal shows: wide characters take two columns, a combining accent none", async () => {
    // Display widths: 表示 4, e + U+0301 (é) 1, 🚀 2; the widest key is 19 columns.
    await ingest(
      "wide",
      ["plain-ascii-feature", "表示", "e\u0301", "🚀"].map((feature) => ({ feature, customer_id: "c-wide" })),
    );
    const r = await tollgate("spend", "--by", "feature", "--customer", "c-wide", "--data-mode", "test");
    expect(r.code, r.err).toBe(0);
    // The key column is 19 wide, then two spaces, then the right-aligned calls column ("calls", 5 wide).
    const calls = (key: string, width: number) => `${key}${" ".repeat(19 - width)}      1  `;
    expect(rowOf(r.out, "plain-ascii-feature").startsWith(calls("plain-ascii-feature", 19))).toBe(true);
    expect(rowOf(r.out, "表示").startsWith(calls("表示", 4))).toBe(true);
    expect(rowOf(r.out, "e\u0301").startsWith(calls("e\u0301", 1))).toBe(true);
    expect(rowOf(r.out, "🚀").startsWith(calls("🚀", 2))).toBe(true);
  });

  it("escape control characters: a newline does not break the row, an ESC is not run by the terminal", async () => {
    await ingest("control", [
      { feature: "two\nlines", customer_id: "c-esc" },
      { feature: "red\u001b[31mtext", customer_id: "c-esc" },
      { feature: "a\tb\u202Eevil", customer_id: "c-esc" },
    ]);
    const r = await tollgate("spend", "--by", "feature", "--customer", "c-esc", "--data-mode", "test");
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toMatch(/[\u001b\t\u202E]/);
    const lines = r.out.trimEnd().split("\n");
    expect(lines).toHaveLength(2 + 3 + 1); // header, rule, three rows, TOTAL
    expect(rowOf(r.out, "two\\nlines")).toBeDefined();
    expect(rowOf(r.out, "red\\u001b[31mtext")).toBeDefined();
    expect(rowOf(r.out, "a\\tb\\u202eevil")).toBeDefined();
    // Every line as wide as the header: the rows line up.
    for (const line of lines) expect(line.length).toBe(lines[0]!.length);

    const explain = await tollgate("explain", "--customer", "c-esc", "--data-mode", "test", "--from", "1d");
    expect(explain.code, explain.err).toBe(0);
    expect(explain.out).not.toMatch(/[\u001b\t\u202E]/);
  });
});

describe("columns of figures are right-aligned", () => {
  it("with blank cells (spend's TOTAL has no token total) and - cells (a change from nothing)", async () => {
    await ingest("figures", [
      { feature: "steady", customer_id: "c-fig", ts_start: Date.now() - 2 * DAY + 60_000 },
      { feature: "steady", customer_id: "c-fig", output_tokens: 40 },
      { feature: "newcomer", customer_id: "c-fig", input_uncached_tokens: 12_345 },
    ]);
    const spend = await tollgate("spend", "--by", "feature", "--customer", "c-fig", "--data-mode", "test");
    expect(spend.code, spend.err).toBe(0);
    const head = spend.out.split("\n")[0]!;
    const endOf = (line: string, text: string) => line.indexOf(text) + text.length;
    expect(endOf(rowOf(spend.out, "newcomer"), "12,345")).toBe(endOf(head, "input_tok"));

    const features = await tollgate(
      "rollup",
      ...["features", "--customer", "c-fig", "--data-mode", "test", "--from", "1d"],
    );
    expect(features.code, features.err).toBe(0);
    const fhead = features.out.split("\n")[1]!;
    // steady: 40 output tokens against 20 a day before, cost per request up; newcomer: no before, "-".
    expect(rowOf(features.out, "steady")).toMatch(/\+\d+\.\d%$/);
    expect(rowOf(features.out, "steady").length).toBe(fhead.length);
    expect(rowOf(features.out, "newcomer").length).toBe(fhead.length);
    expect(rowOf(features.out, "newcomer")).toMatch(/ -$/);
  });
});

describe("explain's drivers", () => {
  it("past the 5 shown are one row, so a dimension's column adds up to the total", async () => {
    // Seven features new in the window: each one's change is its spend, ranked largest first.
    const usd = [7, 6, 5, 4, 3, 2, 1];
    await ingest(
      "drivers",
      usd.map((d, i) => ({
        feature: `f${i + 1}`,
        customer_id: "c-drivers",
        cost_nanousd: d * 1_000_000_000,
      })),
    );
    const r = await tollgate("explain", "--customer", "c-drivers", "--data-mode", "test", "--from", "1d");
    expect(r.code, r.err).toBe(0);
    const table = r.out.slice(r.out.indexOf("\nfeature"));
    for (const [i, d] of usd.slice(0, 5).entries())
      expect(rowOf(table, `f${i + 1}`)).toMatch(new RegExp(`^f${i + 1}\\s+\\$0\\.00\\s+\\$${d}\\.00\\s`));
    const hidden = usd.slice(5).reduce((a, d) => a + d, 0);
    expect(rowOf(table, "(other: 2 more)")).toMatch(
      new RegExp(`^\\(other: 2 more\\)\\s+\\$0\\.00\\s+\\$${hidden}\\.00\\s`),
    );
  });
});

describe("forecast's rows", () => {
  it("past the 10 shown are one row, their figures added up", async () => {
    // Twelve customers of a feature, spending only today: each projected at its spend so far, largest first.
    const usd = [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1];
    await ingest(
      "forecast-rows",
      usd.map((d, i) => ({
        feature: "f-forecast",
        customer_id: `c${i + 1}`,
        cost_nanousd: d * 1_000_000_000,
      })),
    );
    const r = await tollgate("forecast", "--feature", "f-forecast", "--data-mode", "test");
    expect(r.code, r.err).toBe(0);
    const hidden = usd.slice(10).reduce((a, d) => a + d, 0);
    const tenth = usd[9];
    expect(rowOf(r.out, "c10")).toMatch(
      new RegExp(`^c10\\s+\\$${tenth}\\.00\\s+\\$0\\.00\\s+\\$${tenth}\\.00$`),
    );
    expect(rowOf(r.out, "(other: 2 more)")).toMatch(
      new RegExp(`^\\(other: 2 more\\)\\s+\\$${hidden}\\.00\\s+\\$0\\.00\\s+\\$${hidden}\\.00$`),
    );
  });
});

describe("forecast's budget burn-down", () => {
  it("names what each bucket counts as budgets status does, calls without a value as (none), and says why a bucket has no rate", async () => {
    const set = await tollgate(
      ...["budgets", "set", "burn", "--window", "month", "--limit", "5"],
      ...["--scope", "feature=f-burn", "--scope", "customer_id=*"],
    );
    expect(set.code, set.err).toBe(0);
    // Both buckets' calls came today: neither has a complete day to take a rate from.
    await ingest("burn", [
      { feature: "f-burn", customer_id: "c-burn" },
      { feature: "f-burn", customer_id: undefined },
    ]);
    const status = await tollgate("budgets", "status", "burn");
    expect(status.code, status.err).toBe(0);
    const r = await tollgate("forecast", "--feature", "f-burn", "--data-mode", "test");
    expect(r.code, r.err).toBe(0);
    // A row's cells: budget, bucket, then (forecast) state, remaining, per day, over, days left, before reset.
    const buckets = (out: string) =>
      out
        .split("\n")
        .filter((l) => l.startsWith("burn "))
        .map((l) => l.split(/\s{2,}/));
    const named = ["customer_id=(none) feature=f-burn", "customer_id=c-burn feature=f-burn"];
    expect(
      buckets(status.out)
        .map((c) => c[1])
        .sort(),
    ).toEqual(named);
    expect(
      buckets(r.out)
        .map((c) => c[1])
        .sort(),
    ).toEqual(named);
    // No rate per day, so no days left: both "-", the notes below saying why.
    for (const cells of buckets(r.out)) expect([cells[4], cells[6]]).toEqual(["-", "-"]);
    expect(r.err).toContain(
      "note: budget burn, customer_id=(none) feature=f-burn: no run rate for the bucket of calls without a value\n",
    );
    expect(r.err).toContain(
      "note: budget burn, customer_id=c-burn feature=f-burn: no run rate before a complete day of calls",
    );
    expect((await tollgate("budgets", "delete", "burn")).code).toBe(0);
  });
});

describe("an empty answer", () => {
  it("spend's TOTAL of nothing is 0 calls costing 0.00, a 0.0% share, not 100.0%", async () => {
    const r = await tollgate("spend", "--by", "feature", "--customer", "no-such-customer");
    expect(r.code, r.err).toBe(0);
    expect(rowOf(r.out, "TOTAL")).toMatch(/^TOTAL\s+0\s+0\.00\s+0\.0%\s+0$/);
  });
});
