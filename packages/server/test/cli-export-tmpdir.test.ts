// A parquet export writes its calls first to a CSV in the system's temp dir (TMPDIR): one it cannot write
// there is said as where, why and what to do (exit 2, as an output path that cannot be written), not as
// Node's raw error and stack, and leaves nothing beside the output.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cliOnScratchDir, spawnCli } from "./cli-run.js";

const { dir, dataDir } = cliOnScratchDir("tollgate-cli-export-tmpdir-");
beforeAll(() => mkdirSync(dataDir)); // a data dir to export from

describe("a parquet export whose temp dir (TMPDIR) cannot be written", () => {
  it("says which directory, why and to set TMPDIR (exit 2, no stack), keeps the previous export, leaves no partial file", async () => {
    const aFile = join(dir, "a-file");
    writeFileSync(aFile, "not a directory\n");
    for (const [tmp, why] of [
      [join(dir, "missing"), "it does not exist"],
      [aFile, "it is not a directory"],
    ] as const) {
      const out = join(dir, "calls.parquet");
      writeFileSync(out, "the previous export\n");
      const r = await spawnCli(["--data-dir", dataDir, "export", "calls", "--format", "parquet", "-o", out], {
        env: { ...process.env, TMPDIR: tmp },
      });
      expect(r.err).toMatch(/^note: workspace "default" has no calls recorded; .*\nerror: /);
      expect(
        r.err.endsWith(
          `error: cannot write the parquet export's temporary CSV in the temporary directory ${tmp}: ${why}; set TMPDIR to a directory that can be written\n`,
        ),
        r.err,
      ).toBe(true);
      expect(r.code).toBe(2);
      expect(readFileSync(out, "utf8")).toBe("the previous export\n");
      expect(readdirSync(dir).filter((f) => f.startsWith("calls"))).toEqual(["calls.parquet"]);
    }
  });
});
