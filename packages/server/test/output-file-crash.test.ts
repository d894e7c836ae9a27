// An export killed (kill -9, a crash) at each rename that puts its files in place: a `<FILE>.meta.json` found
// then always describes the `FILE` beside it (its data_bytes and data_sha256), and the next export to the
// same path replaces what the killed one left, leaving only its own pair.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cliOnScratchDir, spawnCli } from "./cli-run.js";
import { dataFileCheck, filesOf } from "./export-files.js";

const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-output-file-crash-");
/** Loaded into the CLI (NODE_OPTIONS): it kills itself (SIGKILL: nothing of it runs after) as it is about to rename a file to KILLED_AT. */
const KILLER = join(dir, "kill-at-rename.mjs");
beforeAll(() => {
  mkdirSync(dataDir); // a data dir to export from
  // node:fs's renameSync replaced where the CLI's modules import it from (syncBuiltinESMExports).
  writeFileSync(
    KILLER,
    `import fs from "node:fs";
    import { syncBuiltinESMExports } from "node:module";
    const renameSync = fs.renameSync;
    fs.renameSync = (from, to) => {
      if (String(to) === process.env.KILLED_AT) process.kill(process.pid, "SIGKILL");
      return renameSync(from, to);
    };
    syncBuiltinESMExports();`,
  );
});

/** A CSV export to `out` by the CLI, killed as it is about to rename a file to `killedAt`; the signal it ended by. */
async function exportKilledAt(out: string, killedAt: string): Promise<NodeJS.Signals | null> {
  const env = { ...process.env, NODE_OPTIONS: `--import ${KILLER}`, KILLED_AT: killedAt };
  const run = spawnCli(["--data-dir", dataDir, "export", "calls", "-o", out, "--no-progress"], { env });
  await run;
  return run.child.signalCode;
}

/** The previous export's pair, its metadata naming its data file as an export's does. */
function previousExport(out: string): void {
  writeFileSync(out, "the previous export\n");
  writeFileSync(`${out}.meta.json`, JSON.stringify(dataFileCheck(out)));
}

const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8"));

describe("an export killed as it renames its files into place", () => {
  // Where it is killed (the rename to `<FILE><suffix>`), and which of `<FILE>`'s files then describes it: the
  // pair found is one export's, or the data file is alone, its metadata beside it under another name.
  it.each([
    ["moving the previous metadata aside", "aside", ".meta.json.previous", ".meta.json", "the previous"],
    ["renaming its data file", "data", "", ".meta.json.previous", "the previous"],
    ["renaming its metadata", "meta", ".meta.json", ".meta.json.partial", "its own"],
  ])(
    "leaves no metadata beside a data file it does not describe, killed %s; the next export replaces what it left",
    async (_, name, killedAt, describing, data) => {
      const out = join(dir, `killed-${name}.csv`);
      previousExport(out);
      expect(await exportKilledAt(out, `${out}${killedAt}`)).toBe("SIGKILL");
      expect(readFileSync(out, "utf8")).toMatch(
        data === "its own" ? /^event_id,/ : /^the previous export\n$/,
      );
      expect(readJson(`${out}${describing}`)).toMatchObject(dataFileCheck(out));
      // `<FILE>.meta.json`, if there, is that one: no other metadata is beside the data file.
      if (describing !== ".meta.json") expect(existsSync(`${out}.meta.json`)).toBe(false);

      const next = await tollgate("export", "calls", "-o", out, "--no-progress");
      expect(next.code, next.err).toBe(0);
      expect(next.err).toContain(`note: an export to ${out} (pid `);
      expect(readJson(`${out}.meta.json`)).toMatchObject(dataFileCheck(out));
      expect(filesOf(out)).toEqual([`killed-${name}.csv`, `killed-${name}.csv.meta.json`]);
    },
  );
});
