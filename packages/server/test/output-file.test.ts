// An export's files are renamed into place once complete, the data file first. A rename that fails (a
// directory made in a file's place while the export ran, the output's directory removed) is said as which
// file, why and what to do (exit 1), not as Node's raw error, and keeps the previous export as it was.

import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { completeOutcome, writtenExport } from "./export-files.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-output-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DIRECTORY =
  "a directory is in its place; nothing was kept of it: move that directory away, or write elsewhere";

describe("an export's files renamed into place", () => {
  it("says a directory made in the data file's place, and keeps the previous metadata too", () => {
    const out = join(dir, "data-place.csv");
    writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
    const output = writtenExport(out);
    mkdirSync(out);
    expect(completeOutcome(output)).toEqual([`cannot write ${out}: ${DIRECTORY}`, 1]);
    // Not replaced by this export's: the data file beside it is still the previous export's (none here).
    expect(readFileSync(`${out}.meta.json`, "utf8")).toBe("the previous export's metadata\n");
  });

  it("says a directory made in the metadata's place, and keeps the previous data file", () => {
    const out = join(dir, "meta-place.csv");
    writeFileSync(out, "the previous export\n");
    const output = writtenExport(out);
    mkdirSync(`${out}.meta.json`);
    expect(completeOutcome(output)).toEqual([`cannot write ${out}.meta.json: ${DIRECTORY}`, 1]);
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
  });

  it("says a directory where the previous metadata is moved aside, and keeps the previous export", () => {
    const out = join(dir, "aside-place.csv");
    writeFileSync(out, "the previous export\n");
    writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
    const output = writtenExport(out);
    mkdirSync(`${out}.meta.json.previous`);
    expect(completeOutcome(output)).toEqual([`cannot write ${out}.meta.json.previous: ${DIRECTORY}`, 1]);
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
    expect(readFileSync(`${out}.meta.json`, "utf8")).toBe("the previous export's metadata\n");
  });

  it("says an output directory removed while the export ran", () => {
    const gone = join(dir, "gone");
    mkdirSync(gone);
    const out = join(gone, "calls.csv");
    const output = writtenExport(out);
    rmSync(gone, { recursive: true });
    expect(completeOutcome(output)).toEqual([
      `cannot write ${out}: its directory does not exist; nothing was kept of it: write elsewhere`,
      1,
    ]);
  });
  it("writes through a symbolic link to its target (there or not yet), as a shell's > does, and keeps the link", () => {
    const exports = join(dir, "links");
    mkdirSync(exports);
    writeFileSync(join(exports, "2026-11.csv"), "last month's export\n");
    symlinkSync("2026-11.csv", join(exports, "latest.csv")); // relative, as `ln -s` makes them
    symlinkSync(join(exports, "2026-12.csv"), join(exports, "next.csv")); // dangling: its file to come
    for (const [link, target] of [
      ["latest.csv", "2026-11.csv"],
      ["next.csv", "2026-12.csv"],
    ]) {
      const output = writtenExport(join(exports, link!));
      output.complete();
      expect(lstatSync(join(exports, link!)).isSymbolicLink(), link).toBe(true);
      expect(readFileSync(join(exports, target!), "utf8")).toBe("this export\n");
      expect(readFileSync(join(exports, `${link}.meta.json`), "utf8")).toBe("this export's metadata\n");
    }
  });

  it("follows a relative link from where it really is, in a directory reached through a link, as a shell's > does", () => {
    const real = join(dir, "real");
    mkdirSync(join(real, "monthly"), { recursive: true });
    writeFileSync(join(real, "2026-11.csv"), "last month's export\n");
    symlinkSync("../2026-11.csv", join(real, "monthly", "latest.csv")); // real/2026-11.csv
    symlinkSync(join(real, "monthly"), join(dir, "monthly")); // the directory, by another path
    const output = writtenExport(join(dir, "monthly", "latest.csv"));
    output.complete();
    expect(lstatSync(join(real, "monthly", "latest.csv")).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(real, "2026-11.csv"), "utf8")).toBe("this export\n");
    // Not a file of the link's own directory's parent by the path it was given: dir/2026-11.csv.
    expect(() => lstatSync(join(dir, "2026-11.csv"))).toThrow();
  });
});
