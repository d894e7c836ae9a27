// An export killed (kill -9, a crash) while it renamed its files into place: what the next export to the same
// path leaves. The previous metadata moved aside (`<FILE>.meta.json.previous`) by the killed one describes
// a data file the next export replaces: once that export is complete, none of it is left beside its files.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { completedExport, filesOf } from "./export-files.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-output-file-crash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A CSV export to `out` with its metadata, in a process of its own that kills itself (SIGKILL: nothing of
 * it runs after) as it is about to rename a file to `killedAt`; resolves with the signal it ended by.
 */
function exportKilledAt(out: string, killedAt: string): Promise<NodeJS.Signals | null> {
  const outputFileModule = fileURLToPath(new URL("../dist/cli/output-file.js", import.meta.url));
  // node:fs's renameSync replaced where output-file.js imports it from (syncBuiltinESMExports).
  const script = `import fs from "node:fs";
    import { syncBuiltinESMExports } from "node:module";
    const [out, killedAt] = process.argv.slice(-2);
    const renameSync = fs.renameSync;
    fs.renameSync = (from, to) => {
      if (String(to) === killedAt) process.kill(process.pid, "SIGKILL");
      renameSync(from, to);
    };
    syncBuiltinESMExports();
    const { outputFile } = await import(${JSON.stringify(outputFileModule)});
    const output = outputFile(out, true);
    fs.writeFileSync(output.partial, "the killed export\\n");
    fs.writeFileSync(output.meta.partial, "the killed export's metadata\\n");
    output.complete();`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, out, killedAt], {
    stdio: "ignore",
  });
  return new Promise((resolve) => child.on("exit", (_, signal) => resolve(signal)));
}

describe("an export after one killed as it renamed its files into place", () => {
  it("leaves no metadata of a replaced data file aside, killed before its own metadata was renamed", async () => {
    const out = join(dir, "killed.csv");
    writeFileSync(out, "the previous export\n");
    writeFileSync(`${out}.meta.json`, "the previous export's metadata\n");
    expect(await exportKilledAt(out, `${out}.meta.json`)).toBe("SIGKILL");
    // Killed with the previous metadata aside: the previous data file is there, its metadata beside it.
    expect(readFileSync(`${out}.meta.json.previous`, "utf8")).toBe("the previous export's metadata\n");
    expect(completedExport(out)).toBe("completed");
    expect(readFileSync(out, "utf8")).toBe("this export\n");
    expect(readFileSync(`${out}.meta.json`, "utf8")).toBe("this export's metadata\n");
    expect(filesOf(out)).toEqual(["killed.csv", "killed.csv.meta.json"]);
  });
});
