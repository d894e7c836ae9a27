// After a purge, the CLI's tables and export lines say when part of their window is gone: the figures
// alone (a TOTAL row, "N calls → file") read as complete. --json carries `coverage` as the API does.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cliOnScratchDir } from "./cli-run.js";
import { validRecord } from "./helpers.js";

const { dir, tollgate } = cliOnScratchDir("tollgate-cli-retention-");

const PARTIAL = /note: part of this window is past retention \(raw calls from .*\): the figures are partial/;

describe("the CLI after a purge", () => {
  it("says on stderr when a table or export reaches past the raw horizon, and only then", async () => {
    const file = join(dir, "calls.jsonl");
    const calls = [validRecord({ ts_start: Date.now() - 40 * 86_400_000 }), validRecord()];
    writeFileSync(file, `${calls.map((c) => JSON.stringify(c)).join("\n")}\n`);
    expect((await tollgate("ingest", file, "--json")).code).toBe(0);
    expect((await tollgate("purge", "--raw-days", "30", "--json")).code).toBe(0);

    const exported = await tollgate("export", "calls", "--from", "60d", "-o", join(dir, "out.csv"));
    expect(exported.code, exported.err).toBe(0);
    expect(exported.out).toMatch(/^1 calls → /);
    expect(exported.err).toMatch(PARTIAL);
    const rollup = await tollgate("rollup", "features", "--from", "60d");
    expect(rollup.code, rollup.err).toBe(0);
    expect(rollup.err).toMatch(PARTIAL);
    // Spend past the raw horizon comes from the daily summaries: whole, nothing to say.
    const spend = await tollgate("spend", "--by", "day", "--from", "60d");
    expect(spend.code, spend.err).toBe(0);
    expect(spend.err).not.toMatch(/note:/);
    const recent = await tollgate("export", "calls", "--from", "7d", "-o", join(dir, "recent.csv"));
    expect(recent.err).not.toMatch(/note:/);
    // Summaries older than 2 months dropped too: a 90-day spend table is partial.
    expect((await tollgate("purge", "--summary-months", "2", "--json")).code).toBe(0);
    expect((await tollgate("spend", "--by", "day", "--from", "90d")).err).toMatch(
      /daily summaries from .*partial/,
    );
  });
});
