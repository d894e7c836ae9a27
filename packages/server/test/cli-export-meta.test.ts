// A CSV export's `<FILE>.meta.json` is written as its data file is: as `.partial`, renamed once complete. A
// disk that fills while it is written keeps the previous export whole, its metadata included.

import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cliOnScratchDir } from "./cli-run.js";
import { dataFileCheck } from "./export-files.js";

const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-cli-export-meta-");
beforeAll(() => mkdirSync(dataDir)); // a data dir to export from

const EXPORTS = [["calls"], ["rollup", "features"]] as const;

/** The files beside `out` that start with its name: the export's own. */
const filesOf = (out: string) => readdirSync(dir).filter((f) => f.startsWith(basename(out)));

describe("a CSV export whose metadata cannot be written (a full disk)", () => {
  it("says so for the export (exit 1, no stack), keeps the previous export's file and metadata, leaves no partial file", async () => {
    for (const what of EXPORTS) {
      const out = join(dir, `full-${what.join("-")}.csv`);
      writeFileSync(out, "the previous export\n");
      writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
      // The metadata's partial file on a disk that is always full; the data's, on one with room.
      symlinkSync("/dev/full", `${out}.meta.json.partial`);
      const r = await tollgate("export", ...what, "-o", out);
      expect(
        r.err.endsWith(
          `error: cannot write ${out}: the disk is full; nothing was kept of it: free some space there, or write elsewhere\n`,
        ),
        `${what.join(" ")}: ${r.err}`,
      ).toBe(true);
      expect(r.code).toBe(1);
      expect(readFileSync(out, "utf8")).toBe("the previous export\n");
      expect(readFileSync(`${out}.meta.json`, "utf8")).toBe("the previous export's metadata\n");
      expect(filesOf(out).sort()).toEqual([basename(out), `${basename(out)}.meta.json`]);
    }
  });
});

describe("a complete CSV export", () => {
  it("replaces the previous file and metadata both, names both (--json), and leaves no partial file", async () => {
    for (const what of EXPORTS) {
      const out = join(dir, `whole-${what.join("-")}.csv`);
      writeFileSync(out, "the previous export\n");
      writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
      const r = await tollgate("export", ...what, "-o", out, "--json");
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out), what.join(" ")).toMatchObject({ file: out, meta_file: `${out}.meta.json` });
      // It names its data file: that file's size and SHA-256.
      expect(JSON.parse(readFileSync(`${out}.meta.json`, "utf8"))).toMatchObject({
        rows: 0,
        ...dataFileCheck(out),
      });
      expect(readFileSync(out, "utf8")).not.toBe("the previous export\n");
      expect(filesOf(out).sort()).toEqual([basename(out), `${basename(out)}.meta.json`]);
    }
  });
});
