// Where `tollgate export` writes: a path it cannot write is said before any work, and an export that
// fails midway leaves neither a partial file that reads as whole nor a previous export overwritten.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cliOnScratchDir } from "./cli-run.js";
import { firstPageServerFor } from "./cli-stub-server.js";

const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-cli-export-output-");
const failing = cliOnScratchDir("tollgate-cli-export-failing-");
firstPageServerFor(failing.dataDir, "fail");

describe("an output path that cannot be written", () => {
  it("is a usage error naming the path and why (exit 2, no stack), for every format and both exports", () => {
    mkdirSync(dataDir); // a data dir to export from
    const outDir = join(dir, "here");
    mkdirSync(outDir);
    for (const [args, path, why] of [
      [["calls"], join(dir, "missing", "x.csv"), "its directory does not exist"],
      [["calls", "--format", "json"], outDir, "it is a directory"],
      [["calls", "--format", "parquet"], join(dir, "missing", "x.parquet"), "its directory does not exist"],
      [["rollup", "features"], join(dir, "missing", "x.csv"), "its directory does not exist"],
    ] as const) {
      const r = tollgate("export", ...args, "-o", path);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toBe(`error: cannot write ${path}: ${why}\n`);
    }
  });
});

describe("an export that fails midway", () => {
  it("keeps the file it would have replaced and leaves no partial one", async () => {
    const out = join(failing.dir, "calls.csv");
    writeFileSync(out, "the previous export\n");
    const r = await failing.tollgateAsync("export", "calls", "-o", out);
    expect(r.code).toBe(1);
    expect(r.err).toContain("error: export failed (500): store went away");
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
    expect(readdirSync(failing.dir).filter((f) => f.startsWith("calls.csv"))).toEqual(["calls.csv"]);

    const fresh = join(failing.dir, "fresh.json");
    const again = await failing.tollgateAsync("export", "calls", "--format", "json", "-o", fresh);
    expect(again.code).toBe(1);
    expect(existsSync(fresh)).toBe(false);
    expect(readdirSync(failing.dir).filter((f) => f.startsWith("fresh"))).toEqual([]);

    const rollup = join(failing.dir, "features.csv");
    const failed = await failing.tollgateAsync("export", "rollup", "features", "-o", rollup);
    expect(failed.code).toBe(1);
    expect(readdirSync(failing.dir).filter((f) => f.startsWith("features"))).toEqual([]);
  });
});
