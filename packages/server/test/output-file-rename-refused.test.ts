// An export's data file whose rename is refused (EPERM: an immutable file, or another user's in a sticky
// directory; refused to root too) once the previous metadata is moved aside: the previous metadata is put
// back, so no metadata is left beside data it does not describe, and the failure says which file, why and
// what to do; likewise its metadata's, refused once the data file is in place.
// The refusal is injected into node:fs's renameSync: permission bits refuse nothing to root, and marking a
// file immutable needs root and a file system that has the attribute.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";

/** Renames the test refuses, by their source and target; none unless a test sets it. */
const refusal = vi.hoisted(() => ({ refuses: null as ((from: string, to: string) => boolean) | null }));

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const renameSync: typeof fs.renameSync = (from, to) => {
    if (refusal.refuses?.(String(from), String(to)))
      throw Object.assign(new Error(`EPERM: operation not permitted, rename '${from}' -> '${to}'`), {
        code: "EPERM",
      });
    fs.renameSync(from, to);
  };
  return { ...fs, renameSync, default: { ...fs, renameSync } };
});

const { completedExport, filesOf } = await import("./export-files.js");

const dir = mkdtempSync(join(tmpdir(), "tollgate-output-file-refused-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  refusal.refuses = null;
});

const NOT_PERMITTED =
  "not permitted (an immutable or append-only file or directory, or another user's file in a sticky directory such as /tmp)";

describe("an export whose files cannot be renamed into place", () => {
  it("puts the previous metadata back beside the previous data file, and says why and what to do", () => {
    const out = join(dir, "kept.csv");
    writeFileSync(out, "the previous export\n");
    writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
    refusal.refuses = (_, to) => to === out;
    const failed = completedExport(out);
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
    expect(readFileSync(`${out}.meta.json`, "utf8")).toBe("the previous export's metadata\n");
    expect(filesOf(out)).toEqual(["kept.csv", "kept.csv.meta.json"]);
    expect(failed).toEqual([
      `cannot write ${out}: ${NOT_PERMITTED}; nothing was kept of it: write elsewhere`,
      1,
    ]);
  });

  it("leaves no metadata where there was none before", () => {
    const out = join(dir, "first.csv");
    writeFileSync(out, "a file the export would have replaced\n");
    refusal.refuses = (_, to) => to === out;
    const failed = completedExport(out);
    expect(existsSync(`${out}.meta.json`)).toBe(false);
    expect(filesOf(out)).toEqual(["first.csv"]);
    expect(failed).toEqual([
      `cannot write ${out}: ${NOT_PERMITTED}; nothing was kept of it: write elsewhere`,
      1,
    ]);
  });

  it("says which file to put back by hand when the previous metadata cannot be put back either", () => {
    const out = join(dir, "stuck.csv");
    writeFileSync(out, "the previous export\n");
    writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
    refusal.refuses = (from, to) => to === out || from === `${out}.meta.json.previous`;
    expect(completedExport(out)).toEqual([
      `cannot write ${out}: ${NOT_PERMITTED}; nothing was kept of it: write elsewhere; but ${out}.meta.json could not be put back as it was (${NOT_PERMITTED}): rename ${out}.meta.json.previous to ${out}.meta.json`,
      1,
    ]);
    expect(readFileSync(`${out}.meta.json.previous`, "utf8")).toBe("the previous export's metadata\n");
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
    expect(existsSync(`${out}.meta.json`)).toBe(false); // none beside it rather than another export's
  });

  it("says the data file is this export's, without its metadata, when only the metadata's rename is refused", () => {
    const out = join(dir, "data-only.csv");
    writeFileSync(out, "the previous export\n");
    writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
    refusal.refuses = (_, to) => to === `${out}.meta.json`;
    expect(completedExport(out)).toEqual([
      `cannot write ${out}.meta.json: ${NOT_PERMITTED}; ${out} is this export's, complete, without its metadata: export again, or write elsewhere`,
      1,
    ]);
    expect(readFileSync(out, "utf8")).toBe("this export\n");
    // Neither the previous metadata, which describes a replaced file, nor a partial one is left.
    expect(filesOf(out)).toEqual(["data-only.csv"]);
  });

  it("replaces both, and keeps nothing aside, when every rename is made", () => {
    const out = join(dir, "replaced.csv");
    writeFileSync(out, "the previous export\n");
    writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
    expect(completedExport(out)).toBe("completed");
    expect(readFileSync(out, "utf8")).toBe("this export\n");
    expect(readFileSync(`${out}.meta.json`, "utf8")).toBe("this export's metadata\n");
    expect(filesOf(out)).toEqual(["replaced.csv", "replaced.csv.meta.json"]);
  });
});
